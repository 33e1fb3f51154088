#include "systemd/unit_cgroup.h"

#include "common/cgroup.h"

namespace egressd::systemd {
namespace {

Result<ResolvedCgroup> user_slice(const CgroupRequest& req, const std::string& root, UnitResolver& units) {
  const std::string uid = std::to_string(*req.uid);
  if (unit_type(req.cgroup) != UnitType::kSlice)
    return logic_error("--user takes a slice name in --cgroup (such as claude.slice), not " + req.cgroup);
  auto sub = slice_path(req.cgroup);
  if (!sub) return sub.error();
  if (sub->empty()) return logic_error("refusing to fence the whole user manager of uid " + uid + " (-.slice)");
  if (!units.is_systemd())
    return logic_error("--user needs systemd: a user's slices live in its systemd user manager (user@" + uid +
                       ".service), and no systemd answers here");
  // root cannot talk to another user's manager; the system manager knows
  // where that manager's cgroup is, and the user's slices follow the
  // naming rule below it.
  const std::string manager = "user@" + uid + ".service";
  auto s = units.state(manager);
  if (!s) return s.error();
  if (s->control_group.empty())
    return logic_error(manager + " is not running (" + s->active_state + "): uid " + uid +
                       " has no systemd user manager now; it runs while the user is logged in, or always after "
                       "`loginctl enable-linger " + uid + "`");
  auto path = cgroup_below(root, s->control_group + "/" + *sub, req.cgroup);
  if (!path) return path.error();
  return ResolvedCgroup{*path, "", false};
}

Result<ResolvedCgroup> unit_cgroup(const std::string& unit, UnitType type, const std::string& root,
                                   UnitResolver& units) {
  auto s = units.state(unit);
  if (!s) return s.error();
  if (s->load_state == "not-found" && type != UnitType::kSlice)  // slices need no unit file
    return logic_error("systemd has no unit " + unit);
  if (s->load_state == "masked") return logic_error(unit + " is masked (systemctl unmask " + unit + ")");
  const std::string unit_name = units.is_systemd() ? unit : "";
  if (!s->control_group.empty()) {
    auto path = cgroup_below(root, s->control_group, unit);
    if (!path) return path.error();
    return ResolvedCgroup{*path, unit_name, units.is_systemd()};
  }
  if (type != UnitType::kSlice)
    return logic_error(unit + " is not running (" + s->active_state + "), so it has no cgroup to fence; start it first");
  // An inactive slice is not started here: a slice ordered after egressd
  // (After=egressd@claude.service) would wait for egressd, and egressd for
  // it; started early, it would take sessions before the fence is on.
  auto rel = slice_path(unit);
  if (!rel) return rel.error();
  auto top = units.state("-.slice");
  if (!top) return top.error();
  auto path = cgroup_below(root, top->control_group + "/" + *rel, unit);
  if (!path) return path.error();
  return ResolvedCgroup{*path, unit_name, false};
}

}  // namespace

Result<ResolvedCgroup> resolve_cgroup(const CgroupRequest& req, const std::string& root, UnitResolver& units) {
  if (req.uid) return user_slice(req, root, units);
  if (UnitType t = unit_type(req.cgroup); t != UnitType::kNone) return unit_cgroup(req.cgroup, t, root, units);
  auto path = resolve_cgroup_arg(req.cgroup, root);
  if (!path) return path.error();
  return ResolvedCgroup{*path, "", false};
}

}  // namespace egressd::systemd
