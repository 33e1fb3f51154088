#include "systemd/dbus_resolver.h"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdlib>
#include <tuple>

namespace egressd::systemd {
namespace {

constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnit = "org.freedesktop.systemd1.Unit";
constexpr uint64_t kCallTimeoutUs = 5'000'000;

struct BusError {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  ~BusError() { sd_bus_error_free(&e); }
};

struct MessageUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using Message = std::unique_ptr<sd_bus_message, MessageUnref>;

// systemd's own words ("Unit x.service not found.") when it gave any.
Error bus_error(const std::string& what, int r, const BusError& err) {
  if (sd_bus_error_is_set(&err.e) && err.e.message) return logic_error(what + ": " + err.e.message);
  return sys_error(what, -r);
}

// The interface holding ControlGroup depends on the unit type.
const char* cgroup_interface(UnitType t) {
  switch (t) {
    case UnitType::kSlice: return "org.freedesktop.systemd1.Slice";
    case UnitType::kScope: return "org.freedesktop.systemd1.Scope";
    case UnitType::kService: return "org.freedesktop.systemd1.Service";
    case UnitType::kNone: break;
  }
  return nullptr;
}

Result<sd_bus*> open_bus() {
  sd_bus* bus = nullptr;
  if (geteuid() == 0 && sd_bus_new(&bus) >= 0) {
    if (sd_bus_set_address(bus, "unix:path=/run/systemd/private") >= 0 && sd_bus_start(bus) >= 0) return bus;
    sd_bus_unref(bus);
    bus = nullptr;
  }
  int r = sd_bus_open_system(&bus);
  if (r < 0) return sys_error("connect to the system bus", -r);
  return bus;
}

}  // namespace

Result<std::unique_ptr<DbusUnitResolver>> DbusUnitResolver::connect() {
  auto bus = open_bus();
  if (!bus) return bus.error();
  std::unique_ptr<DbusUnitResolver> r(new DbusUnitResolver(*bus));
  sd_bus_set_method_call_timeout(*bus, kCallTimeoutUs);
  BusError err;
  int rc = sd_bus_call_method(*bus, kService, kManagerPath, "org.freedesktop.DBus.Peer", "Ping", &err.e, nullptr, nullptr);
  if (rc < 0) return bus_error("ask systemd on the bus", rc, err);
  return r;
}

DbusUnitResolver::~DbusUnitResolver() { sd_bus_flush_close_unref(bus_); }

Result<std::string> DbusUnitResolver::unit_path(const std::string& unit) {
  BusError err;
  sd_bus_message* reply = nullptr;
  int r = sd_bus_call_method(bus_, kService, kManagerPath, kManager, "LoadUnit", &err.e, &reply, "s", unit.c_str());
  Message owned(reply);
  if (r < 0) return bus_error("systemd: load " + unit, r, err);
  const char* path = nullptr;
  r = sd_bus_message_read(reply, "o", &path);
  if (r < 0) return sys_error("systemd: read the reply to LoadUnit " + unit, -r);
  return std::string(path);
}

Result<std::string> DbusUnitResolver::property(const std::string& path, const char* iface, const char* name) {
  BusError err;
  char* value = nullptr;
  int r = sd_bus_get_property_string(bus_, kService, path.c_str(), iface, name, &err.e, &value);
  if (r < 0) return bus_error(std::string("systemd: read ") + name + " of " + path, r, err);
  std::string out(value ? value : "");
  std::free(value);
  return out;
}

Result<UnitState> DbusUnitResolver::state(const std::string& unit) {
  const char* iface = cgroup_interface(unit_type(unit));
  if (!iface) return logic_error("not a slice, scope or service: " + unit);
  auto path = unit_path(unit);
  if (!path) return path.error();
  UnitState s;
  for (auto [field, ifc, name] : {std::tuple{&s.load_state, kUnit, "LoadState"},
                                  std::tuple{&s.active_state, kUnit, "ActiveState"},
                                  std::tuple{&s.control_group, iface, "ControlGroup"}}) {
    auto v = property(*path, ifc, name);
    if (!v) return v.error();
    *field = std::move(*v);
  }
  return s;
}

}  // namespace egressd::systemd
