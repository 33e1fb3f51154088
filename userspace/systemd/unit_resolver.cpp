#include "systemd/unit_resolver.h"

#include <systemd/sd-daemon.h>

#include "systemd/dbus_resolver.h"
#include "systemd/naming_resolver.h"

namespace egressd::systemd {

UnitType unit_type(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return UnitType::kNone;
  for (auto [suffix, type] : {std::pair{std::string_view(".slice"), UnitType::kSlice},
                              {std::string_view(".scope"), UnitType::kScope},
                              {std::string_view(".service"), UnitType::kService}}) {
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) return type;
  }
  return UnitType::kNone;
}

bool systemd_booted() { return sd_booted() > 0; }

std::unique_ptr<UnitResolver> make_unit_resolver(std::string& warning) {
  if (!systemd_booted()) return std::make_unique<NamingRulesResolver>(false);
  auto bus = DbusUnitResolver::connect();
  if (bus) return std::move(*bus);
  warning = "systemd runs (/run/systemd/system exists) but does not answer (" + bus.error().message() +
            "); slices are resolved by systemd's naming rules";
  return std::make_unique<NamingRulesResolver>(true);
}

}  // namespace egressd::systemd
