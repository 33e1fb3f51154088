// The pure decisions of `egressd run`: command line, exit status, which
// signals are relayed, CMD's environment, transient cgroup names and files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>

#include "cli/args.h"
#include "cli/run_rules.h"

namespace egressd::cli {
namespace {

TEST(RunCommandLine, SplitsAtTheFirstDoubleDash) {
  auto l = split_run_command_line({"--policy", "p.toml", "--tail", "--", "curl", "--max-time", "5", "--", "x"});
  EXPECT_EQ(l.options, (std::vector<std::string>{"--policy", "p.toml", "--tail"}));
  EXPECT_EQ(l.command, (std::vector<std::string>{"curl", "--max-time", "5", "--", "x"}));
  auto bare = split_run_command_line({"--", "true"});
  EXPECT_TRUE(bare.options.empty());
  EXPECT_EQ(bare.command, std::vector<std::string>{"true"});
}

TEST(RunCommandLine, NeedsDoubleDashAndACommand) {
  EXPECT_THROW(split_run_command_line({"true"}), UsageError);
  EXPECT_THROW(split_run_command_line({"--policy", "p.toml"}), UsageError);
  EXPECT_THROW(split_run_command_line({"--tail", "--"}), UsageError);
}

TEST(ShellExitStatus, ExitCodeOr128PlusSignal) {
  EXPECT_EQ(shell_exit_status(0), 0);
  EXPECT_EQ(shell_exit_status(3 << 8), 3);
  EXPECT_EQ(shell_exit_status(255 << 8), 255);
  EXPECT_EQ(shell_exit_status(SIGKILL), 137);
  EXPECT_EQ(shell_exit_status(SIGTERM), 143);
  EXPECT_EQ(shell_exit_status(SIGINT), 130);
  EXPECT_EQ(shell_exit_status(SIGSEGV | WCOREFLAG), 128 + SIGSEGV);  // core dumped: same as the shell
}

SignalOrigin sent_by(pid_t pid, pid_t pgrp, int code = SI_USER) {
  SignalOrigin o;
  o.code = code;
  o.pid = pid;
  o.pgrp = pgrp;
  return o;
}

TEST(DecideSignal, RelaysWhatAnotherProcessSentWhileRunning) {
  for (int sig : kRelayedSignals) {
    EXPECT_EQ(decide_signal(sig, sent_by(10, 10), RunPhase::Running, false, 500), SignalAction::Relay) << sig;
    EXPECT_EQ(decide_signal(sig, sent_by(10, 10, SI_QUEUE), RunPhase::Running, true, 500), SignalAction::Relay);
    EXPECT_EQ(decide_signal(sig, sent_by(10, 10, SI_TKILL), RunPhase::Running, true, 500), SignalAction::Relay);
  }
}

TEST(DecideSignal, TerminalSignalsReachedCmdAlready) {
  // ^C, ^\ and SIGWINCH come from the kernel to the whole foreground group.
  for (int sig : {SIGINT, SIGQUIT, SIGWINCH, SIGHUP})
    EXPECT_EQ(decide_signal(sig, sent_by(0, -1, SI_KERNEL), RunPhase::Running, true, 500), SignalAction::Ignore);
}

TEST(DecideSignal, SameProcessGroupIsNotRelayedWhenCmdSharesIt) {
  // kill(0, SIGTERM) by a process of our group reached CMD too (sudo's rule).
  EXPECT_EQ(decide_signal(SIGTERM, sent_by(42, 500), RunPhase::Running, true, 500), SignalAction::Ignore);
  // With a group of its own, CMD got nothing: relay.
  EXPECT_EQ(decide_signal(SIGTERM, sent_by(42, 500), RunPhase::Running, false, 500), SignalAction::Relay);
  // A sender that is gone (pgrp unknown) is not in our group.
  EXPECT_EQ(decide_signal(SIGTERM, sent_by(42, -1), RunPhase::Running, true, 500), SignalAction::Relay);
}

TEST(DecideSignal, NeverBouncesBackWhatTheFenceSent) {
  SignalOrigin o = sent_by(77, 77);
  o.from_fence = true;
  for (RunPhase ph : {RunPhase::Starting, RunPhase::Running, RunPhase::Draining})
    EXPECT_EQ(decide_signal(SIGTERM, o, ph, false, 500), SignalAction::Ignore);
}

TEST(DecideSignal, TerminatingSignalsAbortAStart) {
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) {
    EXPECT_EQ(decide_signal(sig, sent_by(1, 1), RunPhase::Starting, false, 500), SignalAction::Abort);
    EXPECT_EQ(decide_signal(sig, sent_by(0, -1, SI_KERNEL), RunPhase::Starting, true, 500), SignalAction::Abort);
  }
  for (int sig : {SIGWINCH, SIGCONT, SIGUSR1, SIGUSR2})
    EXPECT_EQ(decide_signal(sig, sent_by(1, 1), RunPhase::Starting, false, 500), SignalAction::Ignore);
}

TEST(DecideSignal, LeftoversGetEverySignalWhileDraining) {
  EXPECT_EQ(decide_signal(SIGINT, sent_by(0, -1, SI_KERNEL), RunPhase::Draining, true, 500), SignalAction::Relay);
  EXPECT_EQ(decide_signal(SIGTERM, sent_by(42, 500), RunPhase::Draining, true, 500), SignalAction::Relay);
}

TEST(ChooseRunUser, OptionThenSudoUserThenCaller) {
  EXPECT_EQ(choose_run_user("alice", "bob", 0), "alice");
  EXPECT_EQ(choose_run_user("", "bob", 0), "bob");
  EXPECT_EQ(choose_run_user("", nullptr, 0), "0");
  EXPECT_EQ(choose_run_user("", "", 0), "0");
  // SUDO_USER means something only when sudo made us root.
  EXPECT_EQ(choose_run_user("", "bob", 1000), "1000");
}

bool has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

TEST(CommandEnvironment, SetsTheUsersIdentityAndDropsSudoAndNotify) {
  RunUser u{"alice", 1000, 1000, {1000, 27}, "/home/alice"};
  auto env = command_environment({"PATH=/usr/bin", "HOME=/root", "USER=root", "LOGNAME=root", "SUDO_USER=alice",
                                  "SUDO_UID=1000", "NOTIFY_SOCKET=/run/systemd/notify", "TERM=xterm", "WEIRD"},
                                 u);
  EXPECT_TRUE(has(env, "PATH=/usr/bin"));
  EXPECT_TRUE(has(env, "TERM=xterm"));
  EXPECT_TRUE(has(env, "WEIRD"));
  EXPECT_TRUE(has(env, "HOME=/home/alice"));
  EXPECT_TRUE(has(env, "USER=alice"));
  EXPECT_TRUE(has(env, "LOGNAME=alice"));
  for (const std::string& e : env) {
    EXPECT_NE(e.rfind("SUDO_", 0), 0u) << e;
    EXPECT_NE(e.rfind("NOTIFY_SOCKET=", 0), 0u) << e;
    EXPECT_NE(e, "HOME=/root");
  }
  EXPECT_EQ(std::count_if(env.begin(), env.end(), [](const std::string& e) { return e.rfind("HOME=", 0) == 0; }), 1);
}

TEST(CommandEnvironment, RootKeepsSudoVariables) {
  RunUser root{"root", 0, 0, {0}, "/root"};
  auto env = command_environment({"SUDO_USER=alice", "HOME=/home/alice"}, root);
  EXPECT_TRUE(has(env, "SUDO_USER=alice"));
  EXPECT_TRUE(has(env, "HOME=/root"));
}

TEST(RunCgroupName, FormatAndRecognition) {
  EXPECT_EQ(run_cgroup_name(1234, 0xdeadbeef), "run-1234-deadbeef");
  EXPECT_EQ(run_cgroup_name(7, 0x1), "run-7-00000001");
  EXPECT_TRUE(is_run_cgroup_name("run-1234-deadbeef"));
  for (const char* other : {"run-1234-deadbee", "run-1234-DEADBEEF", "run--deadbeef", "run-12a-deadbeef",
                            "run-1234-deadbeef0", "claude.slice", "run-1234", "xrun-1-00000000", ""})
    EXPECT_FALSE(is_run_cgroup_name(other)) << other;
}

TEST(CgroupPopulated, ReadsTheKey) {
  EXPECT_EQ(cgroup_populated("populated 1\nfrozen 0\n"), true);
  EXPECT_EQ(cgroup_populated("populated 0\nfrozen 0\n"), false);
  EXPECT_EQ(cgroup_populated("frozen 0\npopulated 0"), false);
  EXPECT_EQ(cgroup_populated("frozen 0\n"), std::nullopt);
  EXPECT_EQ(cgroup_populated(""), std::nullopt);
}

TEST(NotifySaysReady, NeedsAReadyLine) {
  EXPECT_TRUE(notify_says_ready("READY=1\nSTATUS=enforcing on /x\nMAINPID=5"));
  EXPECT_TRUE(notify_says_ready("STATUS=x\nREADY=1"));
  EXPECT_FALSE(notify_says_ready("STATUS=READY=1"));
  EXPECT_FALSE(notify_says_ready("READY=0\n"));
  EXPECT_FALSE(notify_says_ready(""));
}

TEST(DaemonLineIsNotable, WarningsAndErrorsNotInfo) {
  EXPECT_TRUE(daemon_line_is_notable("egressd: warning: event ring overflowed: 3 events dropped so far"));
  EXPECT_TRUE(daemon_line_is_notable("egressd: error: reload: x"));
  EXPECT_TRUE(daemon_line_is_notable("egressd attach: mount bpffs on /x: Not a directory"));
  EXPECT_FALSE(daemon_line_is_notable("egressd: info: enforcing on /sys/fs/cgroup/egressd/run-1-00000000"));
  EXPECT_FALSE(daemon_line_is_notable(""));
}

}  // namespace
}  // namespace egressd::cli
