#include "dns/sock_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "common/netlink.h"

namespace egressd::dns {
namespace {

constexpr int kMaxReplies = 4;  // an exact lookup answers with one message (or an error)

void put_endpoint(const sockaddr_storage& ss, __be16* port, __be32 addr[4]) {
  if (ss.ss_family == AF_INET) {
    const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    *port = sa->sin_port;
    std::memcpy(addr, &sa->sin_addr, 4);
  } else {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    *port = sa->sin6_port;
    std::memcpy(addr, &sa->sin6_addr, 16);
  }
}

}  // namespace

Result<uint64_t> SockDiag::udp_cookie(const sockaddr_storage& socket_addr, const sockaddr_storage& peer) {
  if (socket_addr.ss_family != peer.ss_family || (peer.ss_family != AF_INET && peer.ss_family != AF_INET6))
    return logic_error("sock_diag: addresses of different families");
  // udp_dump_one() looks the socket up as a datagram's receiver: "src" is
  // the sender (the peer), "dst" the socket's own address.
  return ask(peer, socket_addr);
}

Result<uint64_t> SockDiag::ask(const sockaddr_storage& src, const sockaddr_storage& dst) {
  if (!fd_.valid()) {
    fd_.reset(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!fd_.valid()) return sys_error("socket(NETLINK_SOCK_DIAG)");
  }
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: an exact lookup
  msg.nlh.nlmsg_seq = ++seq_;
  msg.req.sdiag_family = static_cast<__u8>(dst.ss_family);
  msg.req.sdiag_protocol = IPPROTO_UDP;
  msg.req.idiag_states = ~0u;
  put_endpoint(src, &msg.req.id.idiag_sport, msg.req.id.idiag_src);
  put_endpoint(dst, &msg.req.id.idiag_dport, msg.req.id.idiag_dst);
  msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  EGD_TRY(netlink_send(fd_.get(), &msg, sizeof(msg), "sock_diag request"));

  alignas(nlmsghdr) char buf[8192];
  for (int i = 0; i < kMaxReplies; ++i) {
    // The reply is queued before sendto() returns: never block for it.
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("sock_diag reply");
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != seq_) continue;  // a late reply to an earlier request
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return logic_error("sock_diag: short error");
        return sys_error("sock_diag lookup", -e->error);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
      auto* d = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      return static_cast<uint64_t>(d->id.idiag_cookie[0]) | static_cast<uint64_t>(d->id.idiag_cookie[1]) << 32;
    }
  }
  return logic_error("sock_diag: no reply");
}

}  // namespace egressd::dns
