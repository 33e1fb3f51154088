// dbus_resolver.h: asks systemd (PID 1) over D-Bus where a unit's cgroup is.
#pragma once

#include <memory>

#include "systemd/unit_resolver.h"

struct sd_bus;

namespace egressd::systemd {

class DbusUnitResolver final : public UnitResolver {
 public:
  // Connects to systemd: its private socket as root (works without a D-Bus
  // daemon, as systemctl does), else the system bus; then checks that
  // systemd answers.
  static Result<std::unique_ptr<DbusUnitResolver>> connect();
  ~DbusUnitResolver() override;
  DbusUnitResolver(const DbusUnitResolver&) = delete;
  DbusUnitResolver& operator=(const DbusUnitResolver&) = delete;

  bool is_systemd() const override { return true; }
  // LoadUnit (loads it if need be), then LoadState, ActiveState, ControlGroup.
  Result<UnitState> state(const std::string& unit) override;

 private:
  explicit DbusUnitResolver(sd_bus* bus) : bus_(bus) {}
  Result<std::string> unit_path(const std::string& unit);
  Result<std::string> property(const std::string& path, const char* iface, const char* name);

  sd_bus* bus_;
};

}  // namespace egressd::systemd
