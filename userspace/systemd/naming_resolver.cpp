#include "systemd/naming_resolver.h"

#include "common/cgroup.h"

namespace egressd::systemd {

Result<UnitState> NamingRulesResolver::state(const std::string& unit) {
  switch (unit_type(unit)) {
    case UnitType::kSlice: {
      auto p = slice_path(unit);
      if (!p) return p.error();
      return UnitState{"loaded", "active", "/" + *p};
    }
    case UnitType::kScope:
    case UnitType::kService:
      if (systemd_host_)
        return logic_error("systemd runs but does not answer on the system bus, and only systemd knows where " +
                           unit + " lives; give its cgroup path instead (systemctl show -p ControlGroup " + unit + ")");
      return UnitState{"loaded", "active", "/" + unit};
    case UnitType::kNone:
      break;
  }
  return logic_error("not a systemd unit name: " + unit);
}

}  // namespace egressd::systemd
