// fence_removal.h: what `egressd detach` does, for every verb that removes a
// fence (detach, and run when its command is done).
#pragma once

#include "cli/target.h"
#include "common/result.h"

namespace egressd::cli {

// Under the target's lock: detaches every link, removes the pins, asks the
// daemon serving `t` to exit (waiting up to daemon_timeout_ms, then
// SIGKILL) and removes its socket and pidfile. An error if `t` is not fenced.
Status remove_fence(const Target& t, int daemon_timeout_ms = 5000);

}  // namespace egressd::cli
