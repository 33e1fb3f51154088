// target.h: what every verb does first: check privileges, find cgroup2,
// resolve --cgroup, and serialise changes to one attachment.
#pragma once

#include <cstdint>
#include <string>

#include "bpf/pins.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::cli {

struct Target {
  std::string path;  // absolute cgroup2 directory
  uint64_t id = 0;
  PinLayout pins;
};

// create: make the cgroup if it does not exist (attach); otherwise it must.
Result<Target> resolve_target(const std::string& arg, bool create);

// Exclusive lock on the attachment's lock file, held while the fd lives.
Result<UniqueFd> lock_target(const Target& t);

// Prints "egressd VERB: message" and returns 1.
int fail(const char* verb, const std::string& message);

// The pid in the attachment's pidfile if that process is alive, else 0.
int daemon_pid(const Target& t);

// Asks the daemon serving `t` (if any, other than us) to exit and waits up to
// `timeout_ms` for it. Returns false if it is still alive.
bool stop_daemon(const Target& t, int timeout_ms);

}  // namespace egressd::cli
