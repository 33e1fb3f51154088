// unit_cgroup.h: what --cgroup (and --user) name, as a cgroup2 directory.
// Pure given a UnitResolver: tested with a fake one.
#pragma once

#include <chrono>
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
  bool made_by_systemd = false;  // systemd creates and removes it; egressd must not mkdir it
};

// How long attach waits for systemd to start an inactive slice.
constexpr std::chrono::milliseconds kSliceStartDeadline{10000};

// Resolves `req` below the cgroup2 mount `root`:
//   --user UID --cgroup S.slice  ControlGroup of user@UID.service + S's path
//                                (needs systemd; error if that manager is not running)
//   NAME.slice/.scope/.service   the unit's ControlGroup; an inactive slice is
//                                started when start_slices (attach), anything
//                                else inactive is an error
//   /abs/path                    must lie under root
//   rel/path                     below root
// Never the root cgroup, never "..".
Result<ResolvedCgroup> resolve_cgroup(const CgroupRequest& req, const std::string& root, UnitResolver& units,
                                      bool start_slices);

}  // namespace egressd::systemd
