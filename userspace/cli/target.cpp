#include "cli/target.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <cstdlib>

#include "common/cgroup.h"

namespace egressd::cli {

Result<Target> resolve_target(const std::string& arg, bool create) {
  auto root = cgroup2_mount();
  if (!root) return root.error();
  auto path = resolve_cgroup_arg(arg, *root);
  if (!path) return path.error();
  if (create) {
    EGD_TRY(ensure_cgroup_dir(*path));
  } else if (!path_exists(*path)) {
    return logic_error("cgroup " + *path + " does not exist");
  }
  auto id = cgroup_id(*path);
  if (!id) return id.error();
  return Target{*path, *id, pins_for(*id)};
}

Result<UniqueFd> lock_target(const Target& t, bool wait) {
  // The cgroup directory itself is the lock: nothing to create or clean up.
  UniqueFd fd(open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + t.path);
  if (flock(fd.get(), wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0) return sys_error("lock " + t.path);
  return fd;
}

int fail(const char* verb, const std::string& message) {
  std::fprintf(stderr, "egressd %s: %s\n", verb, message.c_str());
  return 1;
}

Result<UniqueFd> claim_pidfile(const Target& t) {
  EGD_TRY(ensure_run_dir());
  UniqueFd fd(open(t.pins.pidfile().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return sys_error("open " + t.pins.pidfile());
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return sys_error("another egressd daemon serves " + t.path);
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return sys_error("write " + t.pins.pidfile());
  return fd;
}

int daemon_pid(const Target& t) {
  UniqueFd fd(open(t.pins.pidfile().c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  if (flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return 0;  // nobody holds it: stale
  char buf[32] = {};
  if (pread(fd.get(), buf, sizeof(buf) - 1, 0) <= 0) return 0;
  int pid = std::atoi(buf);
  return pid > 0 ? pid : 0;
}

bool signal_daemon(const Target& t, int sig) {
  int pid = daemon_pid(t);
  if (pid == 0 || pid == getpid()) return false;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  bool sent = daemon_pid(t) == pid && syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
  close(pidfd);
  return sent;
}

bool stop_daemon(const Target& t, int timeout_ms) {
  int pid = daemon_pid(t);
  if (pid == 0 || pid == getpid()) return true;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;
  // The pidfd pins the process; if the pidfile lock is still held by that
  // pid now, the signal cannot reach a recycled one.
  if (daemon_pid(t) != pid || syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0) != 0) {
    close(pidfd);
    return daemon_pid(t) == 0;
  }
  pollfd p{pidfd, POLLIN, 0};
  int rc = poll(&p, 1, timeout_ms);
  if (rc <= 0) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);  // the pins hold the fence
    rc = poll(&p, 1, 1000);
  }
  close(pidfd);
  return rc > 0;
}

}  // namespace egressd::cli
