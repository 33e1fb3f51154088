#include "cli/run_rules.h"

#include <sys/wait.h>

#include <cstdio>

#include "cli/args.h"

namespace egressd::cli {
namespace {

std::string_view key_of(std::string_view entry) { return entry.substr(0, entry.find('=')); }

bool all_of_set(std::string_view s, std::string_view set) {
  return !s.empty() && s.find_first_not_of(set) == std::string_view::npos;
}

}  // namespace

RunCommandLine split_run_command_line(const std::vector<std::string>& argv) {
  RunCommandLine out;
  size_t i = 0;
  for (; i < argv.size() && argv[i] != "--"; ++i) out.options.push_back(argv[i]);
  if (i == argv.size()) throw UsageError("run needs -- before the command: egressd run [OPTIONS] -- CMD [ARGS...]");
  out.command.assign(argv.begin() + static_cast<long>(i) + 1, argv.end());
  if (out.command.empty()) throw UsageError("run needs a command after --");
  return out;
}

int shell_exit_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return kRunFailed;
}

SignalAction decide_signal(int signo, const SignalOrigin& origin, RunPhase phase, bool cmd_shares_pgrp,
                           pid_t own_pgrp) {
  // CMD (or a descendant) signalling its own process group or egressd run
  // must not have it bounced back.
  if (origin.from_fence) return SignalAction::Ignore;
  switch (phase) {
    case RunPhase::Starting:
      return signo == SIGHUP || signo == SIGINT || signo == SIGQUIT || signo == SIGTERM ? SignalAction::Abort
                                                                                          : SignalAction::Ignore;
    case RunPhase::Running: {
      // Only what a process sent: the kernel's own (the terminal's ^C, ^\,
      // SIGWINCH, hangup) go to the foreground group, CMD included.
      bool sent = origin.code == SI_USER || origin.code == SI_QUEUE || origin.code == SI_TKILL;
      if (!sent) return SignalAction::Ignore;
      if (cmd_shares_pgrp && origin.pgrp == own_pgrp) return SignalAction::Ignore;
      return SignalAction::Relay;
    }
    case RunPhase::Draining:
      // Whatever is left may have left the terminal's process group.
      return SignalAction::Relay;
  }
  return SignalAction::Ignore;
}

std::string choose_run_user(const std::string& user_option, const char* sudo_user, uid_t real_uid) {
  if (!user_option.empty()) return user_option;
  if (real_uid == 0 && sudo_user && *sudo_user) return sudo_user;
  return std::to_string(real_uid);
}

std::vector<std::string> command_environment(const std::vector<std::string>& env, const RunUser& user) {
  std::vector<std::string> out;
  for (const std::string& e : env) {
    std::string_view k = key_of(e);
    if (k == "HOME" || k == "USER" || k == "LOGNAME" || k == "NOTIFY_SOCKET") continue;
    if (user.uid != 0 && k.substr(0, 5) == "SUDO_") continue;
    out.push_back(e);
  }
  out.push_back("HOME=" + user.home);
  out.push_back("USER=" + user.name);
  out.push_back("LOGNAME=" + user.name);
  return out;
}

std::string run_cgroup_name(pid_t pid, uint32_t random) {
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", random);
  return "run-" + std::to_string(pid) + "-" + hex;
}

bool is_run_cgroup_name(std::string_view name) {
  if (name.substr(0, 4) != "run-") return false;
  name.remove_prefix(4);
  size_t dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  std::string_view hex = name.substr(dash + 1);
  return all_of_set(name.substr(0, dash), "0123456789") && hex.size() == 8 && all_of_set(hex, "0123456789abcdef");
}

std::optional<bool> cgroup_populated(std::string_view events) {
  while (!events.empty()) {
    size_t nl = events.find('\n');
    std::string_view line = events.substr(0, nl);
    if (line == "populated 0") return false;
    if (line == "populated 1") return true;
    if (nl == std::string_view::npos) break;
    events.remove_prefix(nl + 1);
  }
  return std::nullopt;
}

bool notify_says_ready(std::string_view datagram) {
  while (!datagram.empty()) {
    size_t nl = datagram.find('\n');
    if (datagram.substr(0, nl) == "READY=1") return true;
    if (nl == std::string_view::npos) break;
    datagram.remove_prefix(nl + 1);
  }
  return false;
}

bool daemon_line_is_notable(std::string_view line) {
  for (std::string_view quiet : {"egressd: info: ", "egressd: debug: ", "egressd: trace: "})
    if (line.substr(0, quiet.size()) == quiet) return false;
  return !line.empty();
}

}  // namespace egressd::cli
