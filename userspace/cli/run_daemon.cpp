#include "cli/run_daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "cli/run_rules.h"
#include "common/unix_addr.h"

extern char** environ;

namespace egressd::cli {
namespace {

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

void InheritedSignals::restore() const {
  sigaction(SIGPIPE, &sigpipe, nullptr);
  sigprocmask(SIG_SETMASK, &mask, nullptr);
}

Result<RunDaemon> RunDaemon::spawn(const std::string& cgroup, const std::string& policy,
                                   const InheritedSignals& sigs) {
  RunDaemon d;
  // A private datagram socket in the abstract namespace: nothing to clean up.
  d.notify_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!d.notify_.valid()) return sys_error("notify socket");
  int one = 1;
  if (setsockopt(d.notify_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
    return sys_error("notify socket SO_PASSCRED");
  uint32_t random = 0;
  if (getrandom(&random, sizeof(random), 0) != sizeof(random)) return sys_error("getrandom");
  char name[64];
  std::snprintf(name, sizeof(name), "egressd-run-%d-%08x", static_cast<int>(getpid()), random);
  auto sa = unix_addr(std::string("@") + name);
  if (!sa) return sa.error();
  if (bind(d.notify_.get(), sa->get(), sa->len) != 0) return sys_error("bind notify socket");

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return sys_error("pipe");
  UniqueFd log_read(pipefd[0]), log_write(pipefd[1]);
  UniqueFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull.valid()) return sys_error("open /dev/null");

  std::vector<std::string> argv = {"egressd", "attach", "--cgroup", cgroup};
  if (!policy.empty()) argv.insert(argv.end(), {"--policy", policy});
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env.push_back(*e);
  env.push_back(std::string("NOTIFY_SOCKET=@") + name);
  auto c_argv = c_strings(argv);
  auto c_env = c_strings(env);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return sys_error("fork egressd attach");
  if (pid == 0) {
    // Its own session: ^C and hangups on the terminal are CMD's business.
    setsid();
    // Gone with egressd run; the fence stays pinned (fail closed).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(kRunFailed);
    dup2(devnull.get(), STDIN_FILENO);
    dup2(devnull.get(), STDOUT_FILENO);
    dup2(log_write.get(), STDERR_FILENO);
    sigs.restore();
    execve("/proc/self/exe", c_argv.data(), c_env.data());
    const char msg[] = "egressd run: cannot exec /proc/self/exe attach\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(kRunFailed);
  }
  d.pid_ = pid;
  // Our child: it cannot be reaped (and its pid reused) before we wait for it.
  d.pidfd_ = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!d.pidfd_.valid()) {
    auto err = sys_error("pidfd_open");
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return err;
  }
  log_write.reset();
  fcntl(log_read.get(), F_SETFL, O_NONBLOCK);
  d.log_ = std::move(log_read);
  return d;
}

bool RunDaemon::read_ready() {
  bool ready = false;
  for (int i = 0; i < 64; ++i) {
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof(buf)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(notify_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) break;
    const ucred* cred = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred)))
        cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
    if (cred && cred->pid == pid_ && cred->uid == 0 && notify_says_ready(std::string_view(buf, static_cast<size_t>(n))))
      ready = true;
  }
  return ready;
}

std::vector<std::string> RunDaemon::read_log() {
  std::vector<std::string> lines;
  char buf[8192];
  for (int i = 0; i < 256 && !log_eof_; ++i) {
    ssize_t n = read(log_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: nothing more for now
    if (n == 0) {
      log_eof_ = true;
      break;
    }
    partial_.append(buf, static_cast<size_t>(n));
  }
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(partial_.substr(start, nl - start));
  partial_.erase(0, start);
  if (log_eof_ && !partial_.empty()) lines.push_back(std::exchange(partial_, {}));
  return lines;
}

int RunDaemon::reap() {
  if (reaped_) return status_;
  while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return status_;
}

}  // namespace egressd::cli
