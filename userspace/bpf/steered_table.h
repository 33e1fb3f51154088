// steered_table.h: egd_orig_by_port, the records of steered TCP
// connections keyed by the client's address and network namespace (the
// sockops program re-keys them there), read by the proxy and the resolver.
#pragma once

#include "decide/steered_flow.h"

namespace egressd {

class BpfSteeredTable final : public decide::SteeredTable {
 public:
  explicit BpfSteeredTable(int map_fd) : map_fd_(map_fd) {}
  std::optional<decide::SteeredFlow> take(int fd, const sockaddr_storage& peer) override;

 private:
  int map_fd_;
};

}  // namespace egressd
