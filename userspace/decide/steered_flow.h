// steered_flow.h: who opened a steered flow and where it was going. The
// connect and sendmsg hooks record it per client socket (egd_orig in
// bpf/egressd_abi.h); the proxy takes it once per accepted connection
// (race-free: the record exists before the SYN is sent), the resolver per
// TCP client or, for UDP, when it records an event. One type for both.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/ip_addr.h"
#include "egressd_abi.h"

namespace egressd::decide {

struct SteeredFlow {
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
SteeredFlow steered_from_record(const egd_orig& o);

// The records of steered TCP connections (bpf/steered_table.h reads the
// BPF map); injected so tests can stand in for the map.
class SteeredTable {
 public:
  virtual ~SteeredTable() = default;
  // The record of the client at `peer` (accept()'s address) of the accepted
  // socket `fd`, removed from the table; nullopt if there is none (the
  // listener was dialed directly).
  virtual std::optional<SteeredFlow> take(int fd, const sockaddr_storage& peer) = 0;
};

}  // namespace egressd::decide
