// sock_diag.h: the socket cookie of a local UDP socket, found by its
// address and the peer it talks to (NETLINK_SOCK_DIAG, inet_diag exact
// lookup). UDP has no sockops callback to re-key the hooks' record by
// address, so the resolver finds the client socket's cookie this way and
// looks the cookie up in egd_orig_by_cookie. One synchronous netlink round
// trip: the kernel answers within sendmsg(), so it never waits on anyone.
// Same network namespace as the sockets asked about.
#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::dns {

class SockDiag {
 public:
  // The cookie of the UDP socket bound to `socket_addr` that a datagram
  // from `peer` would reach (connected to it, or not connected at all).
  // Errors: no such socket (ENOENT), netlink failures.
  Result<uint64_t> udp_cookie(const sockaddr_storage& socket_addr, const sockaddr_storage& peer);

 private:
  Result<uint64_t> ask(const sockaddr_storage& src, const sockaddr_storage& dst);
  UniqueFd fd_;  // opened on first use
  uint32_t seq_ = 0;
};

}  // namespace egressd::dns
