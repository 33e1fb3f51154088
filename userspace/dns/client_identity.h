// client_identity.h: who sent a query: the process, user and cgroup behind
// the client socket, and the server address it asked before steering. The
// hooks record it per client socket (egd_orig in bpf/egressd_abi.h);
// injected into the server so unit tests can fake it.
#pragma once

#include <sys/socket.h>

#include <optional>

#include "bpf/steered_table.h"
#include "dns/sock_diag.h"

namespace egressd::dns {

class ClientIdentity {
 public:
  virtual ~ClientIdentity() = default;
  // A TCP client, at accept(): its record is taken (removed), so every
  // accept, not only events, calls this.
  virtual std::optional<decide::SteeredFlow> tcp(int fd, const sockaddr_storage& peer) = 0;
  // A UDP client at `peer` that sent to our socket at `local`. Costs a
  // netlink round trip: the server asks only when it records an event.
  virtual std::optional<decide::SteeredFlow> udp(const sockaddr_storage& peer, const sockaddr_storage& local) = 0;
};

// The BPF maps: TCP from egd_orig_by_port (the sockops program re-keys it
// by the client's address and netns), UDP by finding the client socket's
// cookie (sock_diag.h) and reading egd_orig_by_cookie.
class BpfClientIdentity final : public ClientIdentity {
 public:
  BpfClientIdentity(int orig_by_cookie_fd, int orig_by_port_fd)
      : by_cookie_(orig_by_cookie_fd), by_port_(orig_by_port_fd) {}
  std::optional<decide::SteeredFlow> tcp(int fd, const sockaddr_storage& peer) override {
    return by_port_.take(fd, peer);
  }
  std::optional<decide::SteeredFlow> udp(const sockaddr_storage& peer, const sockaddr_storage& local) override;

 private:
  int by_cookie_;
  BpfSteeredTable by_port_;
  SockDiag diag_;
};

}  // namespace egressd::dns
