#include "dns/families.h"

namespace egressd::dns {

FamilyDrop families_to_drop(const RouteFamilies& routes, bool enabled) {
  if (!enabled || routes.v4 == routes.v6) return {};
  return FamilyDrop{!routes.v4, !routes.v6};
}

}  // namespace egressd::dns
