// fence.h: whether an attachment is really in force on its cgroup, and
// moving it onto a cgroup made again under the same path.
//
// An attachment dies with its cgroup: rmdir (systemctl stop of a slice)
// leaves the pinned links defunct, and a directory made later under the same
// name is a new cgroup (a new id) that nothing fences. The BPF maps are not
// tied to a cgroup, so the same maps and programs can be attached to the new
// one: policy, proxy/resolver registration, counters and unread events carry
// over unchanged.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/pins.h"
#include "bpf/policy_maps.h"
#include "common/result.h"

namespace egressd {

struct FenceCheck {
  enum class State {
    kEnforcing,  // the pinned cgroup is at its path and every program is attached to it
    kUnfenced,   // the path holds a cgroup the fence is not in force on
    kStale,      // the pinned cgroup is gone, and so is the path (or another attachment fences it)
  };
  State state = State::kUnfenced;
  std::string reason;       // why, when not enforcing
  int attached = 0;         // programs BPF_PROG_QUERY lists on the pinned cgroup
  uint64_t current_id = 0;  // the cgroup now at the path, 0 if none
};

std::string_view fence_state_name(FenceCheck::State s);

// Looks at `cgroup_path` (from egd_meta) and asks the kernel which programs
// are attached to it. `pinned`: every cgroup id that has pins, so a
// recreated cgroup fenced by its own attachment makes this one stale rather
// than unfenced.
FenceCheck check_fence(const PinLayout& pins, const std::string& cgroup_path, const std::vector<uint64_t>& pinned);

// Moves the attachment pinned in `from` onto the cgroup open as `cgroup_fd`
// (id `new_id`): the programs of the pinned links, attached to it in the
// loader's order, and the maps pinned in `from`, all pinned under the new
// id; egd_meta (written through `maps`, the attachment's own) gets the new id; the old pin directory is removed. On failure
// nothing new stays attached or pinned and egd_meta is as before.
struct MovedFence {
  PinLayout pins;
  std::string warning;  // the old pins could not be removed (the move itself succeeded)
};
// `loaded`: the daemon's own program fds by name; programs not in it are
// opened by id from the pinned links (CAP_SYS_ADMIN).
Result<MovedFence> move_fence(const MapFds& maps, const PinLayout& from, int cgroup_fd, uint64_t new_id,
                              const std::map<std::string, UniqueFd>* loaded = nullptr);

}  // namespace egressd
