// run_cgroup.h: the transient cgroup of one `egressd run`,
// <cgroup2>/egressd/run-<pid>-<random>: made fresh (never reused), owned by
// root with mode 0755 so CMD can neither leave it nor make sub-cgroups, and
// locked (flock on its cgroup.events) for as long as egressd run lives, so a
// later run can tell a crashed run's leftovers from a live one.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::cli {

class RunCgroup {
 public:
  static Result<RunCgroup> create(const std::string& cgroup2_root);

  const std::string& path() const { return path_; }
  std::string procs_file() const { return path_ + "/cgroup.procs"; }
  // cgroup.events; poll() reports POLLPRI when "populated" changes.
  int events_fd() const { return events_.get(); }
  Result<bool> populated() const;
  // Processes in the cgroup now (its sub-cgroups included; CMD cannot make any).
  std::vector<pid_t> pids() const;
  // Whether `pid` is in this cgroup, from /proc/PID/cgroup.
  bool contains(pid_t pid) const;
  // rmdir; the cgroup must be empty. Keeps the lock until then.
  Status remove();

 private:
  std::string path_;
  std::string relative_;  // "/egressd/run-..." as /proc/PID/cgroup names it
  UniqueFd events_;
};

// Removes run-* cgroups an egressd run left behind when it was killed: those
// nobody holds locked, with no process in them and no daemon serving them
// (their fence, if still pinned, is detached first). Returns what it could
// not remove, for a warning.
std::vector<std::string> sweep_stale_run_cgroups(const std::string& cgroup2_root);

// Whether `pid` runs in the cgroup `relative` ("/a/b", as /proc/PID/cgroup names it).
bool pid_in_cgroup(pid_t pid, const std::string& relative);

}  // namespace egressd::cli
