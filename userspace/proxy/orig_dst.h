// orig_dst.h: where a steered connection was going, and who opened it.
// The connect hooks record it; the proxy takes it once per accepted
// connection (race-free: the record exists before the SYN is sent).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/ip_addr.h"
#include "egressd_abi.h"

namespace egressd::proxy {

struct OrigDst {
  IpAddr given;        // as the client passed it to connect() (v4-mapped kept)
  IpAddr target;       // what the proxy dials: `given` without the v4-mapped wrapping
  uint16_t port = 0;
  int family = 0;      // the client's socket family
  bool identified = false;  // from a hook's record: pid, tgid, uid and comm are the client's
  uint32_t pid = 0, tgid = 0, uid = 0;
  uint64_t cgroup_id = 0;
  uint64_t sock_cookie = 0;
  std::string comm;
};

// The record the hooks wrote, as a value.
OrigDst orig_from_record(const egd_orig& o);

// Injected into the proxy so tests can stand in for the BPF map.
class OrigDstTable {
 public:
  virtual ~OrigDstTable() = default;
  // The record of the client at `peer` (accept()'s address) of the accepted
  // socket `fd`, removed from the table; nullopt if there is none (the
  // listener was dialed directly).
  virtual std::optional<OrigDst> take(int fd, const sockaddr_storage& peer) = 0;
};

// egd_orig_by_port, keyed by the client's address and network namespace.
class BpfOrigDstTable final : public OrigDstTable {
 public:
  explicit BpfOrigDstTable(int map_fd) : map_fd_(map_fd) {}
  std::optional<OrigDst> take(int fd, const sockaddr_storage& peer) override;

 private:
  int map_fd_;
};

}  // namespace egressd::proxy
