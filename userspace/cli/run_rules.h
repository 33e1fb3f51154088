// run_rules.h: the pure decisions behind `egressd run`: its command line,
// the exit status it reports, which signals it relays to CMD, CMD's
// environment, and the names and files of its transient cgroups.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::cli {

// `egressd run [OPTIONS] -- CMD ARGS...`: everything before the first "--"
// is egressd's, everything after it is CMD's, untouched (CMD's own "--" and
// --options included). No "--" or nothing after it is a UsageError.
struct RunCommandLine {
  std::vector<std::string> options;
  std::vector<std::string> command;
};
RunCommandLine split_run_command_line(const std::vector<std::string>& argv);

// What egressd run exits with, as a shell reports a command in $?: the exit
// code, or 128+N when the command was killed by signal N. `wait_status` is
// waitpid()'s.
int shell_exit_status(int wait_status);

// egressd run's own exit codes, the convention of env(1), nice(1), timeout(1).
inline constexpr int kRunFailed = 125;        // egressd run itself failed; CMD did not run
inline constexpr int kCommandNotExecutable = 126;
inline constexpr int kCommandNotFound = 127;

// Signals egressd run relays to CMD.
inline constexpr int kRelayedSignals[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGCONT, SIGWINCH};

enum class RunPhase {
  Starting,  // CMD is not running yet: a terminating signal aborts
  Running,   // CMD runs: relay to CMD
  Draining,  // CMD has exited, descendants remain in the cgroup: relay to them
};
enum class SignalAction { Ignore, Relay, Abort };

// Who sent a signal, from its siginfo.
struct SignalOrigin {
  int code = 0;            // si_code
  pid_t pid = 0;           // si_pid
  bool from_fence = false;  // the sender is in the fenced cgroup (CMD or a descendant)
  pid_t pgrp = -1;         // the sender's process group, -1 if unknown
};

// What to do with a signal egressd run received. `cmd_shares_pgrp`: CMD is in
// egressd run's process group `own_pgrp` (it has a terminal), so anything the
// terminal or a sender in that group sends to the group reached CMD already
// and is not relayed again (sudo's rule). Signals from inside the fence are
// never relayed back.
SignalAction decide_signal(int signo, const SignalOrigin& origin, RunPhase phase, bool cmd_shares_pgrp,
                           pid_t own_pgrp);

// The account CMD runs as.
struct RunUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, from the group database
  std::string home;
};

// Which account to look up: --user if given, else $SUDO_USER when egressd run
// was started through sudo by someone else than root, else the caller's real
// uid (as a number).
std::string choose_run_user(const std::string& user_option, const char* sudo_user, uid_t real_uid);

// CMD's environment: egressd run's own, with HOME, USER and LOGNAME of `user`,
// without NOTIFY_SOCKET (egressd run's service manager is not CMD's) and,
// when CMD is not root, without sudo's SUDO_* (CMD does not run under sudo).
std::vector<std::string> command_environment(const std::vector<std::string>& env, const RunUser& user);

// Transient cgroups are <cgroup2>/egressd/run-<pid>-<8 hex digits>.
inline constexpr std::string_view kRunCgroupParent = "egressd";
std::string run_cgroup_name(pid_t pid, uint32_t random);
bool is_run_cgroup_name(std::string_view name);

// The "populated" key of a cgroup.events file; nullopt if absent.
std::optional<bool> cgroup_populated(std::string_view events);

// True if an sd_notify datagram announces readiness (a "READY=1" line).
bool notify_says_ready(std::string_view datagram);

// Lines of the attach daemon's log worth showing once it runs: warnings and
// errors ("egressd: warning: ..."), not its info lines (it logs every event).
bool daemon_line_is_notable(std::string_view line);

}  // namespace egressd::cli
