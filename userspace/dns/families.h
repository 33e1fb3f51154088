// families.h: which address family the resolver leaves out of its answers
// (issue 13). A family the daemon's network namespace has no default route
// for cannot reach the internet; offering its addresses only sends clients
// there first (glibc sorts IPv6 first when it cannot probe the route, and
// curl, git and pip then fail instead of using IPv4). Its A (AAAA) records
// and ipv4hint (ipv6hint) addresses are removed, so an AAAA question is
// answered NODATA. Pure.
#pragma once

#include <cstdint>

#include "common/routes.h"

namespace egressd::dns {

struct FamilyDrop {
  bool v4 = false, v6 = false;  // leave out IPv4 / IPv6 addresses
  uint8_t bits() const { return static_cast<uint8_t>((v4 ? 1 : 0) | (v6 ? 2 : 0)); }
  bool operator==(const FamilyDrop&) const = default;
};

// Nothing when `enabled` is false ([dns] drop_unroutable_families), and
// nothing when neither family has a default route (nothing to tell them
// apart by: policy routing, or a namespace egressd cannot see into);
// otherwise the family without one.
FamilyDrop families_to_drop(const RouteFamilies& routes, bool enabled);

}  // namespace egressd::dns
