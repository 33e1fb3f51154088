// run_daemon.h: the `egressd attach` that `egressd run` starts for its
// transient cgroup: the same binary (/proc/self/exe), in a session of its own
// (the terminal's signals are CMD's, not the daemon's), outside the fence,
// and told to exit when egressd run dies (the pins keep the fence).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::cli {

// What a child of egressd run gets back before exec: the signal mask and
// SIGPIPE disposition egressd run was started with.
struct InheritedSignals {
  sigset_t mask;
  struct sigaction sigpipe;
  void restore() const;  // in the child, before exec
};

class RunDaemon {
 public:
  // Forks and execs `egressd attach --cgroup CGROUP [--policy POLICY]` with
  // NOTIFY_SOCKET set to a private abstract socket; its stderr is read_log()'s.
  static Result<RunDaemon> spawn(const std::string& cgroup, const std::string& policy,
                                 const InheritedSignals& sigs);

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }       // readable once it exited
  int notify_fd() const { return notify_.get(); }  // readable: a notification
  int log_fd() const { return log_.get(); }        // readable: log output or EOF

  // Reads pending notifications; true once the daemon (checked by the
  // sender's credentials, not just any process that knows the name) sent READY=1.
  bool read_ready();
  // Appends pending log output to `partial` and returns the complete lines;
  // at EOF the remainder too. Sets eof().
  std::vector<std::string> read_log();
  bool log_eof() const { return log_eof_; }
  // Reaps it once pidfd() is readable (or blocks until then); its wait status.
  int reap();
  bool reaped() const { return reaped_; }

 private:
  pid_t pid_ = 0;
  UniqueFd pidfd_, notify_, log_;
  std::string partial_;
  bool log_eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace egressd::cli
