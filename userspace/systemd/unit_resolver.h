// unit_resolver.h: where systemd keeps a unit's cgroup. One interface, two
// answers: systemd itself over D-Bus when it runs, systemd's naming rules
// when it does not. Target resolution takes the interface, so it is tested
// without a bus.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::systemd {

enum class UnitType { kNone, kSlice, kScope, kService };

// The unit types whose cgroup egressd can fence, by suffix; kNone for
// anything else (including names with a '/', which are paths).
UnitType unit_type(std::string_view name);

struct UnitState {
  std::string load_state;     // "loaded", "not-found", "masked", ...
  std::string active_state;   // "active", "inactive", "failed", ...
  std::string control_group;  // below the cgroup2 root, "/claude.slice"; empty while inactive
};

class UnitResolver {
 public:
  virtual ~UnitResolver() = default;
  // True when the answers come from a running systemd.
  virtual bool is_systemd() const = 0;
  // The unit's state; "-.slice" is the manager's root slice, whose
  // ControlGroup is the root of the cgroups it names ("/" on a host).
  virtual Result<UnitState> state(const std::string& unit) = 0;
};

// systemd is running (sd_booted(): /run/systemd/system exists).
bool systemd_booted();

// The resolver for this host: D-Bus when systemd runs and its bus answers,
// else naming rules. `warning` is set when systemd runs but its bus does not
// answer (the naming rules then refuse what only systemd can tell).
std::unique_ptr<UnitResolver> make_unit_resolver(std::string& warning);

}  // namespace egressd::systemd
