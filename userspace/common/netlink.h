// netlink.h: one request to the kernel over a netlink socket (the route
// dump of routes.cpp, the sock_diag lookup of dns/sock_diag.cpp).
#pragma once

#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>

#include "common/result.h"

namespace egressd {

// `msg` starts with its nlmsghdr, nlmsg_len already set to `len`.
inline Status netlink_send(int fd, const void* msg, size_t len, const std::string& what) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, msg, len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel)) < 0) return sys_error(what);
  return {};
}

}  // namespace egressd
