// kernel_probe.h: what egressd needs of the kernel, and naming what is
// missing. As systemd's bpf-socket-bind probe does, it asks with the real
// object rather than a list of versions: its maps, each program loaded on
// its own, and a bpf_link of each to an invalid cgroup fd, which fails with
// EBADF exactly where cgroup links of that attach type work. cgroup2 and the
// capabilities are checked where the target is resolved (common/cgroup.h,
// common/caps.h).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "common/result.h"

struct bpf_object;

namespace egressd {

// The oldest kernel egressd runs on, stated once: its newest need is
// bpf_get_netns_cookie in sockops (5.15; SO_NETNS_COOKIE is 5.14). README.md
// (Privileges) says the same.
inline constexpr const char* kMinimumKernel = "5.15";

// What this kernel refuses of the object `elf`: map types ("map egd_events:
// type ringbuf"), programs the verifier rejects with their attach type
// ("program egd_sockops (sockops): Invalid argument"). Empty when all
// loads. Costs a load per program: for explaining a failed load.
std::vector<std::string> missing_kernel_features(std::span<const unsigned char> elf);

// Every program of the loaded `obj` can be attached to a cgroup through a
// bpf_link: checked before anything is pinned or attached.
Status check_cgroup_links(bpf_object* obj);

// The error for a failed load of the object (`err`, a positive errno), with
// what the kernel lacks when that can be told.
Error load_error(std::span<const unsigned char> elf, int err);

}  // namespace egressd
