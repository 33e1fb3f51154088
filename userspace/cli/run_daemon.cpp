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
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path + 1, name, std::strlen(name));
  if (bind(d.notify_.get(), reinterpret_cast<sockaddr*>(&sa),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::strlen(name))) != 0)
    return sys_error("bind notify socket");

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

Result<UniqueFd> subscribe_events(const std::string& socket_path, int timeout_ms) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(sa.sun_path)) return logic_error("socket path too long: " + socket_path);
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error("socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return sys_error("connect " + socket_path);
  if (send(fd.get(), "text\n", 5, MSG_NOSIGNAL) != 5) return sys_error("subscribe on " + socket_path);
  // "ok <cgroup>\n": then the daemon has us on its list and no event is missed.
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string line;
  while (line.size() < 4096) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
    pollfd p{fd.get(), POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0) return logic_error("no answer from the daemon on " + socket_path);
    char c;
    if (recv(fd.get(), &c, 1, 0) != 1) return logic_error("the daemon closed " + socket_path);
    if (c == '\n') break;
    line.push_back(c);
  }
  if (line.rfind("ok ", 0) != 0) return logic_error("the daemon refused the subscription: " + line);
  fcntl(fd.get(), F_SETFL, O_NONBLOCK);
  return fd;
}

}  // namespace egressd::cli
