// run.cpp: `egressd run [--policy FILE] [--user USER] [--tail] -- CMD ARGS...`
//
// Fences one command: a fresh cgroup under <cgroup2>/egressd/, an `egressd
// attach` on it (a child outside the fence, ready before anything else
// happens: fail closed), then CMD, moved into the cgroup before it drops to
// USER and execs. egressd run relays signals to CMD, waits for CMD and every
// process it left behind, removes the fence and the cgroup, and exits as a
// shell reports CMD: its exit code, or 128+N if signal N killed it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "attachment/policy_source.h"
#include "attachment/target.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fence_removal.h"
#include "cli/run_cgroup.h"
#include "cli/run_daemon.h"
#include "cli/run_rules.h"
#include "cli/run_user.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "events/subscribe.h"

extern char** environ;

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on
namespace {

// How long `egressd attach` may take to load the programs and say READY=1
// (a policy of 100k CIDRs takes seconds on a busy machine).
constexpr int kReadyTimeoutMs = 60000;
constexpr int kDaemonStopMs = 5000;
constexpr int kDrainMs = 2000;

void say(const std::string& text) { std::fprintf(stderr, "egressd run: %s\n", text.c_str()); }

int failed(const std::string& text) {
  say(text);
  return kRunFailed;
}

int pidfd_send(int pidfd, int sig) { return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Why the command child did not exec, sent over a close-on-exec pipe.
struct ChildFailure {
  int code;      // the exit code it used
  int err;       // errno
  char step[64];
};

class RunSession {
 public:
  RunSession(RunUser user, std::vector<std::string> command, std::string policy, bool tail, RunCgroup cg,
             Target target)
      : user_(std::move(user)), command_(std::move(command)), policy_(std::move(policy)), tail_(tail),
        cg_(std::move(cg)), target_(std::move(target)) {}

  int run() {
    if (auto s = block_signals(); !s) return abort_with(failed(s.error().message()));
    if (int rc = start_daemon(); rc >= 0) return abort_with(rc);
    say(command_[0] + " runs as " + user_.name + " in " + cg_.path() + ", fenced by " +
        (policy_.empty() ? std::string(kBuiltinPolicy) : policy_) + "; events: egressd tail --cgroup " + cg_.path());
    if (tail_) {
      auto sub = subscribe_events(target_.pins.socket(), "text", 10000);
      if (!sub) return abort_with(failed("--tail: " + sub.error().message()));
      fcntl(sub->fd.get(), F_SETFL, O_NONBLOCK);
      tail_fd_ = std::move(sub->fd);
    }
    if (int rc = start_command(); rc >= 0) return abort_with(rc);
    phase_ = RunPhase::Running;
    supervise();
    return finish();
  }

 private:
  Status block_signals() {
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : kRelayedSignals) sigaddset(&mask, sig);
    if (sigprocmask(SIG_BLOCK, &mask, &inherited_.mask) != 0) return sys_error("sigprocmask");
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    // A closed stderr must not kill egressd run while CMD is fenced.
    sigaction(SIGPIPE, &ign, &inherited_.sigpipe);
    sigfd_ = UniqueFd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sigfd_.valid()) return sys_error("signalfd");
    return {};
  }

  // Returns -1 once the daemon is ready, else egressd run's exit code.
  int start_daemon() {
    auto d = RunDaemon::spawn(cg_.path(), policy_, inherited_);
    if (!d) return failed("start egressd attach: " + d.error().message());
    daemon_ = std::move(*d);
    std::vector<std::string> log;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
    for (;;) {
      int left = ms_until(end);
      if (left <= 0) {
        print_lines(log);
        return failed("egressd attach did not report ready within " + std::to_string(kReadyTimeoutMs / 1000) +
                      " s; " + command_[0] + " was not started");
      }
      pollfd p[] = {{daemon_->notify_fd(), POLLIN, 0}, {daemon_->pidfd(), POLLIN, 0},
                    {daemon_->log_eof() ? -1 : daemon_->log_fd(), POLLIN, 0}, {sigfd_.get(), POLLIN, 0}};
      if (poll(p, 4, left) < 0 && errno != EINTR)
        return failed("poll: " + std::string(std::strerror(errno)));
      if (p[3].revents) {
        if (int sig = read_signals(); sig) return 128 + sig;
      }
      for (std::string& l : daemon_->read_log()) log.push_back(std::move(l));
      if (daemon_->read_ready()) break;
      if (p[1].revents) {
        while (!daemon_->log_eof() && poll(&p[2], 1, kDrainMs) > 0)
          for (std::string& l : daemon_->read_log()) log.push_back(std::move(l));
        print_lines(log);
        return failed("egressd attach " + describe(daemon_->reap()) + "; " + command_[0] + " was not started");
      }
    }
    // Trust, but check: the attachment is pinned and this daemon serves it.
    if (!path_exists(target_.pins.dir) || daemon_pid(target_) != daemon_->pid())
      return failed("egressd attach reported ready, but " + cg_.path() + " is not fenced by it; " + command_[0] +
                    " was not started");
    for (const std::string& l : log)
      if (daemon_line_is_notable(l)) std::fprintf(stderr, "%s\n", l.c_str());
    return -1;
  }

  // Returns -1 once CMD runs, else egressd run's exit code.
  int start_command() {
    auto env = command_environment(std::vector<std::string>(environ, environ + count_env()), user_);
    auto c_env = c_strings(env);
    auto c_argv = c_strings(command_);
    std::string procs = cg_.procs_file();
    // With a terminal, CMD stays in our process group, the terminal's
    // foreground one: its ^C, ^Z, SIGWINCH and reads go to CMD as if egressd
    // run were not there. Without one, CMD gets a group of its own, so that
    // every signal sent to egressd run reaches it exactly once, relayed.
    int tty = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
    shares_pgrp_ = tty >= 0;
    if (tty >= 0) close(tty);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return failed("pipe: " + std::string(std::strerror(errno)));
    UniqueFd report_read(pipefd[0]), report_write(pipefd[1]);

    pid_t pid = fork();
    if (pid < 0) return failed("fork: " + std::string(std::strerror(errno)));
    if (pid == 0) {
      auto die = [&](int code, const char* step, int err) {
        ChildFailure f{code, err, {}};
        std::strncpy(f.step, step, sizeof(f.step) - 1);
        (void)!write(report_write.get(), &f, sizeof(f));
        _exit(code);
      };
      if (!shares_pgrp_ && setpgid(0, 0) != 0) die(kRunFailed, "setpgid", errno);
      // Into the fence first, while still root: every socket CMD makes is judged.
      int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) die(kRunFailed, "join the fenced cgroup", errno);
      close(fd);
      const char* step = "";
      if (int err = drop_privileges(user_, &step)) die(kRunFailed, step, err);
      inherited_.restore();
      execvpe(c_argv[0], c_argv.data(), c_env.data());
      int err = errno;
      die(err == ENOENT || err == ENOTDIR ? kCommandNotFound : kCommandNotExecutable, "exec", err);
    }
    cmd_pid_ = pid;
    cmd_pidfd_ = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    report_write.reset();
    ChildFailure f{};
    ssize_t n;
    while ((n = read(report_read.get(), &f, sizeof(f))) < 0 && errno == EINTR) {
    }
    if (n == sizeof(f)) {
      reap_command(/*block=*/true);
      if (f.code == kRunFailed) return failed(std::string(f.step) + ": " + std::strerror(f.err));
      say(command_[0] + ": " + std::strerror(f.err));
      return f.code;
    }
    if (!cmd_pidfd_.valid()) {  // cannot happen with our own unreaped child, but never run unsupervised
      say("pidfd_open: " + std::string(std::strerror(errno)));
      kill(pid, SIGKILL);
      reap_command(true);
      return kRunFailed;
    }
    return -1;
  }

  // Until CMD has exited and its cgroup is empty: relay signals, show the
  // daemon's warnings and (--tail) the events. Waits on events only.
  void supervise() {
    for (;;) {
      if (phase_ == RunPhase::Draining) {
        auto populated = cg_.populated();
        if (!populated) {
          say(populated.error().message());
          return;
        }
        if (!*populated) return;
      }
      std::vector<pollfd> p;
      p.push_back({sigfd_.get(), POLLIN, 0});
      if (phase_ == RunPhase::Running) p.push_back({cmd_pidfd_.get(), POLLIN, 0});
      else p.push_back({cg_.events_fd(), POLLPRI, 0});
      p.push_back({daemon_->reaped() ? -1 : daemon_->pidfd(), POLLIN, 0});
      p.push_back({daemon_->log_eof() ? -1 : daemon_->log_fd(), POLLIN, 0});
      p.push_back({tail_fd_.valid() ? tail_fd_.get() : -1, POLLIN, 0});
      if (poll(p.data(), p.size(), -1) < 0) {
        if (errno == EINTR) continue;
        say("poll: " + std::string(std::strerror(errno)));
        return;
      }
      if (p[0].revents) read_signals();
      if (phase_ == RunPhase::Running && p[1].revents && reap_command(false)) {
        phase_ = RunPhase::Draining;
        auto left = cg_.pids();
        if (!left.empty())
          say(command_[0] + " exited; waiting for the " + std::to_string(left.size()) + " process" +
              (left.size() == 1 ? "" : "es") + " it left in " + cg_.path());
      }
      if (p[2].revents) {
        say("egressd attach for " + cg_.path() + " " + describe(daemon_->reap()) +
            "; the fence holds, but web and DNS traffic from " + command_[0] + " is refused from now on");
      }
      if (p[3].revents) print_notable(daemon_->read_log());
      if (p[4].revents) pump_tail();
    }
  }

  int finish() {
    if (auto s = remove_fence(target_, kDaemonStopMs); !s)
      say("remove the fence on " + cg_.path() + ": " + s.error().message() + " (egressd detach --cgroup " +
          cg_.path() + ")");
    stop_daemon_child();
    drain_outputs();
    if (auto s = cg_.remove(); !s) say(s.error().message());
    return shell_exit_status(cmd_status_);
  }

  // Before CMD ran (or when it could not): undo everything, exit with `rc`.
  int abort_with(int rc) {
    if (daemon_) {
      stop_daemon_child();
      drain_outputs();
    }
    if (path_exists(target_.pins.dir)) {
      if (auto s = remove_fence(target_, kDaemonStopMs); !s) say("remove the fence: " + s.error().message());
    }
    if (auto s = cg_.remove(); !s) say(s.error().message());
    return rc;
  }

  // Reads every queued signal and acts on it; returns the first signal that
  // aborts a start, else 0.
  int read_signals() {
    int abort = 0;
    signalfd_siginfo si{};
    for (int i = 0; i < 64 && read(sigfd_.get(), &si, sizeof(si)) == sizeof(si); ++i) {
      SignalOrigin o;
      o.code = si.ssi_code;
      o.pid = static_cast<pid_t>(si.ssi_pid);
      if (o.pid > 0) {
        o.from_fence = cg_.contains(o.pid);
        o.pgrp = getpgid(o.pid);
      }
      int sig = static_cast<int>(si.ssi_signo);
      switch (decide_signal(sig, o, phase_, shares_pgrp_, getpgrp())) {
        case SignalAction::Ignore:
          break;
        case SignalAction::Abort:
          if (!abort) abort = sig;
          break;
        case SignalAction::Relay:
          relay(sig);
          break;
      }
    }
    if (abort) say("interrupted by " + std::string(strsignal(abort)) + "; " + command_[0] + " was not started");
    return abort;
  }

  void relay(int sig) {
    if (phase_ == RunPhase::Running) {
      pidfd_send(cmd_pidfd_.get(), sig);
      return;
    }
    // CMD is gone: its leftovers, each through a pidfd taken while it is
    // still in the cgroup (never a recycled pid).
    for (pid_t pid : cg_.pids()) {
      UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
      if (fd.valid() && cg_.contains(pid)) pidfd_send(fd.get(), sig);
    }
  }

  bool reap_command(bool block) {
    int status = 0;
    pid_t r;
    while ((r = waitpid(cmd_pid_, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
    }
    if (r != cmd_pid_) return false;
    cmd_status_ = status;
    return true;
  }

  void stop_daemon_child() {
    if (daemon_->reaped()) return;
    pollfd p{daemon_->pidfd(), POLLIN, 0};
    if (poll(&p, 1, 0) == 0) {
      pidfd_send(daemon_->pidfd(), SIGTERM);
      if (poll(&p, 1, kDaemonStopMs) <= 0) pidfd_send(daemon_->pidfd(), SIGKILL);
    }
    daemon_->reap();
  }

  // After the daemon exited: the rest of its log and of the event stream.
  void drain_outputs() {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDrainMs);
    while (!daemon_->log_eof() || tail_fd_.valid()) {
      int left = ms_until(end);
      pollfd p[] = {{daemon_->log_eof() ? -1 : daemon_->log_fd(), POLLIN, 0},
                    {tail_fd_.valid() ? tail_fd_.get() : -1, POLLIN, 0}};
      if (left <= 0 || poll(p, 2, left) <= 0) break;
      if (p[0].revents) print_notable(daemon_->read_log());
      if (p[1].revents) pump_tail();
    }
    tail_fd_.reset();
  }

  void pump_tail() {
    char buf[65536];
    ssize_t n = recv(tail_fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      if (!tail_buf_.empty()) std::fprintf(stderr, "%s\n", tail_buf_.c_str());
      tail_buf_.clear();
      tail_fd_.reset();
      return;
    }
    tail_buf_.append(buf, static_cast<size_t>(n));
    size_t end = tail_buf_.rfind('\n');
    if (end == std::string::npos) return;
    (void)!fwrite(tail_buf_.data(), 1, end + 1, stderr);
    tail_buf_.erase(0, end + 1);
  }

  static void print_lines(const std::vector<std::string>& lines) {
    for (const std::string& l : lines) std::fprintf(stderr, "%s\n", l.c_str());
  }
  static void print_notable(const std::vector<std::string>& lines) {
    for (const std::string& l : lines)
      if (daemon_line_is_notable(l)) std::fprintf(stderr, "%s\n", l.c_str());
  }

  static std::string describe(int status) {
    if (WIFSIGNALED(status)) return "was killed by " + std::string(strsignal(WTERMSIG(status)));
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }

  static size_t count_env() {
    size_t n = 0;
    while (environ[n]) ++n;
    return n;
  }

  RunUser user_;
  std::vector<std::string> command_;
  std::string policy_;
  bool tail_;
  RunCgroup cg_;
  Target target_;
  InheritedSignals inherited_{};
  UniqueFd sigfd_;
  std::optional<RunDaemon> daemon_;
  UniqueFd tail_fd_;
  std::string tail_buf_;
  pid_t cmd_pid_ = 0;
  UniqueFd cmd_pidfd_;
  int cmd_status_ = 0;
  bool shares_pgrp_ = false;
  RunPhase phase_ = RunPhase::Starting;
};

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  RunCommandLine line = split_run_command_line(argv);
  Args args(line.options, {"policy", "user"}, {"tail"});
  if (!args.positional().empty()) throw UsageError("unexpected argument before --: " + args.positional()[0]);
  if (args.has("user") && args.get("user").empty()) throw UsageError("--user needs a user name or uid");

  if (geteuid() != 0)
    return failed("needs root (sudo): it makes a cgroup, moves the command into it and starts it as USER");
  if (auto s = check_bpf_privileges(); !s) return failed(s.error().message());
  auto user = lookup_run_user(choose_run_user(args.get("user"), std::getenv("SUDO_USER"), getuid()));
  if (!user) return failed("--user: " + user.error().message());
  std::string policy = args.get("policy");
  // Checked here too, so a broken policy costs no cgroup and no daemon.
  if (auto p = load_policy(policy); !p) return failed(p.error().message());
  if (user->uid == 0)
    say("warning: " + line.command[0] + " runs as root, which can leave any fence; use --user, or sudo from "
        "your own account");

  auto root = cgroup2_mount();
  if (!root) return failed(root.error().message());
  for (const std::string& kept : sweep_stale_run_cgroups(*root)) say("warning: leftover cgroup kept: " + kept);
  auto cg = RunCgroup::create(*root);
  if (!cg) return failed(cg.error().message());
  auto target = resolve_target(cg->path(), /*create=*/false);
  if (!target) {
    (void)cg->remove();
    return failed(target.error().message());
  }
  RunSession session(std::move(*user), std::move(line.command), policy, args.has("tail"), std::move(*cg),
                     std::move(*target));
  return session.run();
}

}  // namespace egressd::cli
