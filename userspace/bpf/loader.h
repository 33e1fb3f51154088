// loader.h: load the enforcer, attach it to a cgroup through pinned
// bpf_links, or adopt an existing attachment and swap in new programs and a
// new policy without a moment of no enforcement.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "bpf/pins.h"
#include "bpf/policy_maps.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "policy/model.h"

namespace egressd {

// Every program attached to a fenced cgroup, in attach order, and every map
// pinned beside them, read from the compiled object: a new hook or map needs
// no list here. Each program has a pin link_<name>, each map one by its name.
const std::vector<std::string>& program_names();
const std::vector<std::string>& map_names();

struct Attached {
  PinLayout pins;
  MapFds maps;
  bool adopted = false;  // pins existed: programs and policy were swapped in place
  InstallInfo install;
  double load_ms = 0;    // open + verify + load of the programs
  // The loaded programs by name, kept so a recreated cgroup can be fenced
  // again without reopening them by id (that needs CAP_SYS_ADMIN).
  std::map<std::string, UniqueFd> programs;
};

// cgroup_path must exist. Everything ends up pinned; the returned map fds let
// the caller consume events.
Result<Attached> attach_cgroup(const std::string& cgroup_path, uint64_t cgroup_id,
                               const policy::Policy& policy);

// Detaches every link (even ones other processes hold) and removes the pins.
Status detach_cgroup(uint64_t cgroup_id);

// Loads the programs and checks they can be linked to a cgroup, attaching
// nothing: what attach checks before it pins anything, each missing kernel
// feature named (bpf/kernel_probe.h).
Status probe_kernel_support();

// The compiled object this binary carries.
std::span<const unsigned char> object_elf();

}  // namespace egressd
