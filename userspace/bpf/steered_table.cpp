#include "bpf/steered_table.h"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cstring>

#include "egressd_abi.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace egressd {

std::optional<decide::SteeredFlow> BpfSteeredTable::take(int fd, const sockaddr_storage& peer) {
  egd_port_key k{};  // zeroed: padding is part of the hash key
  socklen_t len = sizeof(k.netns_cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &k.netns_cookie, &len) != 0) return std::nullopt;
  if (peer.ss_family == AF_INET) {
    auto* sa = reinterpret_cast<const sockaddr_in*>(&peer);
    k.family = AF_INET;
    std::memcpy(&k.addr[0], &sa->sin_addr, 4);
    k.port = ntohs(sa->sin_port);
  } else if (peer.ss_family == AF_INET6) {
    auto* sa = reinterpret_cast<const sockaddr_in6*>(&peer);
    IpAddr a = IpAddr::v6(&sa->sin6_addr).unmapped();
    k.family = static_cast<__u16>(a.family);
    std::memcpy(k.addr, a.bytes.data(), a.family == AF_INET ? 4 : 16);
    k.port = ntohs(sa->sin6_port);
  } else {
    return std::nullopt;
  }
  egd_orig o{};
  if (bpf_map_lookup_and_delete_elem(map_fd_, &k, &o) != 0) {
    if (bpf_map_lookup_elem(map_fd_, &k, &o) != 0) return std::nullopt;
    bpf_map_delete_elem(map_fd_, &k);
  }
  return decide::steered_from_record(o);
}

}  // namespace egressd
