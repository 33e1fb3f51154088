// pins.h: where an attachment lives in bpffs and in the run directory.
//
// <bpffs base>/<cgroup id>/    one directory per fenced cgroup, mode 0700:
//   egd_<map>                  every map, by its BPF name
//   link_<program>             every cgroup link; the pin keeps it attached
//                              after the daemon exits (fail closed)
// <run dir>/<cgroup id>.sock   event subscribers (egressd tail)
// <run dir>/<cgroup id>.pid    the daemon consuming this attachment's ring
// <run dir>/<cgroup id>.detached  left by detach while the cgroup outlives its
//                              fence, so status can say it runs unfenced
// attach / reload / detach serialise on flock() of the cgroup directory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd {

// EGRESSD_BPFFS_DIR overrides /sys/fs/bpf/egressd, EGRESSD_RUN_DIR /run/egressd.
std::string bpffs_base();
std::string run_dir();

struct PinLayout {
  uint64_t cgroup_id = 0;
  std::string dir;
  std::string map(std::string_view name) const { return dir + "/" + std::string(name); }
  std::string link(std::string_view prog) const { return dir + "/link_" + std::string(prog); }
  std::string socket() const;
  std::string pidfile() const;
  std::string detached_record() const;
};

// Cgroup ids that have a detached record in the run directory.
std::vector<uint64_t> detached_record_ids();

PinLayout pins_for(uint64_t cgroup_id);

// Mounts bpffs on the base's parent if it is not one, and creates the base.
Status ensure_bpffs();
Status ensure_run_dir();

// Cgroup ids that have a pin directory.
std::vector<uint64_t> pinned_cgroups();

bool path_exists(const std::string& path);

}  // namespace egressd
