// routes.h: which address families have a default route in the daemon's
// network namespace, read from rtnetlink and kept current on the Loop by a
// subscription to route changes (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE).
// The resolver leaves out answers of a family without one (dns/families.h):
// on an IPv4-only host, an AAAA answer only sends clients to an address
// they cannot reach. RouteSource is the interface the resolver sees, so
// its tests inject route states.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "common/loop.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

struct RouteFamilies {
  bool v4 = true, v6 = true;  // a default route exists for IPv4 / IPv6
  bool operator==(const RouteFamilies&) const = default;
};

class RouteSource {
 public:
  virtual ~RouteSource() = default;
  virtual RouteFamilies families() const = 0;
};

// What a buffer of rtnetlink messages (a route dump's replies) says: a
// default route is an RTM_NEWROUTE of type unicast with prefix length 0, in
// any table but local. Pure, bounded by the buffer.
struct RouteScan {
  bool v4 = false, v6 = false;
  bool done = false;   // NLMSG_DONE seen
  int error = 0;       // NLMSG_ERROR's errno (positive), 0 if none
};
void scan_route_messages(std::span<const uint8_t> buf, RouteScan& scan);

class NetlinkRoutes final : public RouteSource, Loop::Watcher {
 public:
  // Reads the routes once (an error if rtnetlink cannot be read) and
  // subscribes; `changed` is called after a change of families().
  static Result<std::unique_ptr<NetlinkRoutes>> start(Loop& loop, std::function<void(RouteFamilies)> changed = {});
  ~NetlinkRoutes() override;
  RouteFamilies families() const override { return now_; }

 private:
  NetlinkRoutes(Loop& loop, std::function<void(RouteFamilies)> changed) : loop_(loop), changed_(std::move(changed)) {}
  void on_io(uint32_t events) override;
  void reread();

  Loop& loop_;
  std::function<void(RouteFamilies)> changed_;
  UniqueFd events_;  // the subscription
  RouteFamilies now_;
  bool reread_due_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// One dump of the routing table of this network namespace.
Result<RouteFamilies> read_default_routes();

}  // namespace egressd
