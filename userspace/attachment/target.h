// target.h: what every verb does first: check privileges, find cgroup2,
// resolve --cgroup, and serialise changes to one attachment.
#pragma once

#include <cstdint>
#include <string>

#include "bpf/pins.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "systemd/unit_cgroup.h"

namespace egressd::attachment {

struct Target {
  std::string path;  // absolute cgroup2 directory
  uint64_t id = 0;
  PinLayout pins;
};

// create (attach): make the cgroup if it does not exist, unless it is a
// running unit's (systemd's own); otherwise the cgroup must exist. Unit
// names are resolved by systemd when it runs, else by its naming rules.
Result<Target> resolve_target(const systemd::CgroupRequest& req, bool create);
Result<Target> resolve_target(const std::string& cgroup, bool create);

// Exclusive lock on the cgroup directory, held while the fd lives. With
// wait=false, fails with EWOULDBLOCK instead of waiting.
Result<UniqueFd> lock_target(const Target& t, bool wait = true);

// The daemon of an attachment holds an exclusive flock on its pidfile for
// its whole life: the lock, not a pid that may have been recycled, says
// whether it runs. Returns the held pidfile, or an error if another live
// daemon holds it.
Result<UniqueFd> claim_pidfile(const Target& t);

// The pid of the live daemon serving `t`, or 0 if none holds the pidfile.
int daemon_pid(const Target& t);

// Sends `sig` to the daemon serving `t` through a pidfd (never to a
// recycled pid). False if no daemon runs.
bool signal_daemon(const Target& t, int sig);

// Asks the daemon serving `t` (if any, other than us) to exit and waits up to
// `timeout_ms` for it. Returns false if it is still alive.
bool stop_daemon(const Target& t, int timeout_ms);

}  // namespace egressd::attachment
