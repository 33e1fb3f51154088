#include "dns/client_identity.h"

#include <bpf/bpf.h>

#include <cstring>

#include "egressd_abi.h"

namespace egressd::dns {

std::optional<decide::SteeredFlow> BpfClientIdentity::udp(const sockaddr_storage& peer, const sockaddr_storage& local) {
  auto cookie = diag_.udp_cookie(peer, local);
  if (!cookie) return std::nullopt;  // the client closed its socket already, or was never steered
  egd_orig o{};
  uint64_t key = *cookie;
  // Looked up, not taken: the record answers recvmsg for as long as the
  // socket lives, and sock_release deletes it.
  if (bpf_map_lookup_elem(by_cookie_, &key, &o) != 0) return std::nullopt;
  return decide::steered_from_record(o);
}

}  // namespace egressd::dns
