#include "common/routes.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/netlink.h"

namespace egressd {
namespace {

constexpr size_t kBufBytes = 32 * 1024;
constexpr int kMaxDumpReads = 4096;  // a full BGP table would take more: then the families stay as they were
constexpr int kDrainPerWakeup = 64;

}  // namespace

void scan_route_messages(std::span<const uint8_t> buf, RouteScan& scan) {
  size_t at = 0;
  while (at + sizeof(nlmsghdr) <= buf.size()) {  // each turn moves on by one aligned message
    nlmsghdr h;
    std::memcpy(&h, buf.data() + at, sizeof(h));
    if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > buf.size() - at) return;
    std::span<const uint8_t> body = buf.subspan(at + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);
    at += NLMSG_ALIGN(h.nlmsg_len);
    if (h.nlmsg_type == NLMSG_DONE) {
      scan.done = true;
      return;
    }
    if (h.nlmsg_type == NLMSG_ERROR) {
      int err = 0;
      if (body.size() >= sizeof(int)) std::memcpy(&err, body.data(), sizeof(int));
      if (err < 0) {
        scan.error = -err;
        return;
      }
      continue;  // an acknowledgement
    }
    if (h.nlmsg_type != RTM_NEWROUTE || body.size() < sizeof(rtmsg)) continue;
    rtmsg r;
    std::memcpy(&r, body.data(), sizeof(r));
    uint32_t table = r.rtm_table;
    for (size_t a = NLMSG_ALIGN(sizeof(rtmsg)); a + sizeof(rtattr) <= body.size();) {
      rtattr attr;
      std::memcpy(&attr, body.data() + a, sizeof(attr));
      if (attr.rta_len < sizeof(rtattr) || attr.rta_len > body.size() - a) break;
      if (attr.rta_type == RTA_TABLE && attr.rta_len >= RTA_LENGTH(sizeof(uint32_t)))
        std::memcpy(&table, body.data() + a + RTA_LENGTH(0), sizeof(uint32_t));
      a += RTA_ALIGN(attr.rta_len);
    }
    if (r.rtm_dst_len != 0 || r.rtm_type != RTN_UNICAST || table == RT_TABLE_LOCAL) continue;
    if (r.rtm_family == AF_INET) scan.v4 = true;
    if (r.rtm_family == AF_INET6) scan.v6 = true;
  }
}

Result<RouteFamilies> read_default_routes() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd.valid()) return sys_error("rtnetlink socket");
  timeval tv{1, 0};  // the kernel answers a dump at once; never hang the loop on it
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct {
    nlmsghdr h;
    rtmsg r;
  } req{};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = RTM_GETROUTE;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r.rtm_family = AF_UNSPEC;  // both families in one dump
  EGD_TRY(netlink_send(fd.get(), &req, sizeof(req), "rtnetlink route dump request"));
  std::vector<uint8_t> buf(kBufBytes);
  RouteScan scan;
  for (int i = 0; i < kMaxDumpReads; ++i) {
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("rtnetlink route dump");
    }
    scan_route_messages(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)), scan);
    if (scan.error) return sys_error("rtnetlink route dump", scan.error);
    // Both found: the rest of the dump cannot change the answer (closing the socket drops it).
    if (scan.done || (scan.v4 && scan.v6)) return RouteFamilies{scan.v4, scan.v6};
  }
  return logic_error("rtnetlink route dump: more than " + std::to_string(kMaxDumpReads) + " reads");
}

Result<std::unique_ptr<NetlinkRoutes>> NetlinkRoutes::start(Loop& loop, std::function<void(RouteFamilies)> changed) {
  std::unique_ptr<NetlinkRoutes> r(new NetlinkRoutes(loop, std::move(changed)));
  // Subscribe first: a change between the dump and the subscription would be missed.
  r->events_ = UniqueFd(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!r->events_.valid()) return sys_error("rtnetlink socket");
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
  if (bind(r->events_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return sys_error("subscribe to route changes (rtnetlink)");
  auto now = read_default_routes();
  if (!now) return now.error();
  r->now_ = *now;
  if (auto s = loop.add(r->events_.get(), EPOLLIN, r.get()); !s) return s.error();
  return r;
}

NetlinkRoutes::~NetlinkRoutes() {
  alive_.reset();
  if (events_.valid()) loop_.remove(events_.get());
}

// Any route notification (or a lost one: ENOBUFS) means one fresh dump,
// after the batch, however many came.
void NetlinkRoutes::on_io(uint32_t) {
  std::vector<uint8_t> buf(kBufBytes);
  for (int i = 0; i < kDrainPerWakeup; ++i) {
    ssize_t n = recv(events_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != ENOBUFS) break;
  }
  if (reread_due_) return;
  reread_due_ = true;
  loop_.defer([this, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) reread();
  });
}

void NetlinkRoutes::reread() {
  reread_due_ = false;
  auto now = read_default_routes();
  if (!now || *now == now_) return;  // unreadable: keep what was known
  now_ = *now;
  if (changed_) changed_(now_);
}

}  // namespace egressd
