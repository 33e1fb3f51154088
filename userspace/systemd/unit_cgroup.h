// unit_cgroup.h: what --cgroup (and --user) name, as a cgroup2 directory.
// Pure given a UnitResolver: tested with a fake one.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "systemd/unit_resolver.h"

namespace egressd::systemd {

struct CgroupRequest {
  std::string cgroup;           // --cgroup: a path or a unit name
  std::optional<unsigned> uid;  // --user: cgroup names a slice of this user's systemd manager
};

struct ResolvedCgroup {
  std::string path;              // absolute cgroup2 directory
  std::string unit;              // the system manager's unit behind it; "" for a path
  bool made_by_systemd = false;  // a running unit's cgroup: systemd made it, egressd must not
};

// Resolves `req` below the cgroup2 mount `root`:
//   --user UID --cgroup S.slice  ControlGroup of user@UID.service + S's path
//                                (needs systemd; error if that manager is not running)
//   NAME.scope/.service          a running unit's ControlGroup; not running is an error
//   NAME.slice                   its ControlGroup when active; when inactive, the
//                                place systemd will put it (its manager's root +
//                                the naming rule), never started here: attach
//                                creates the directory, which systemd adopts
//                                with the fence on it when the slice starts
//   /abs/path                    must lie under root
//   rel/path                     below root
// Never the root cgroup, never "..".
Result<ResolvedCgroup> resolve_cgroup(const CgroupRequest& req, const std::string& root, UnitResolver& units);

}  // namespace egressd::systemd
