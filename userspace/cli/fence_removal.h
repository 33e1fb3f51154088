// fence_removal.h: what `egressd detach` does, for every verb that removes a
// fence (detach, and run when its command is done).
#pragma once

#include <cstddef>
#include <string>

#include "attachment/target.h"
#include "common/result.h"

namespace egressd::cli {

// Under the target's lock: detaches every link, removes the pins, asks the
// daemon serving `t` to exit (waiting up to daemon_timeout_ms, then
// SIGKILL) and removes its socket and pidfile. An error if `t` is not fenced.
Status remove_fence(const attachment::Target& t, int daemon_timeout_ms = 5000);

// What `detach` says when the cgroup at `path` outlives its fence: the
// `procs` processes in it and, for a systemd slice, every session started in
// it from now on run unfenced, and how to end that (`user`: a slice of a
// user's manager). "" when there is nothing to warn about. Pure.
std::string unfenced_after_removal(const std::string& path, size_t procs, bool user);

}  // namespace egressd::cli
