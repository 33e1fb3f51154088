#include "attachment/target.h"

#include <fcntl.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/cgroup.h"
#include "systemd/naming_resolver.h"

namespace egressd::attachment {

Result<Target> resolve_target(const systemd::CgroupRequest& req, bool create) {
  auto root = cgroup2_mount();
  if (!root) return root.error();
  // Ask systemd only when a unit is named: plain paths need no bus.
  std::unique_ptr<systemd::UnitResolver> units;
  if (req.uid || systemd::unit_type(req.cgroup) != systemd::UnitType::kNone) {
    std::string warning;
    units = systemd::make_unit_resolver(warning);
    if (!warning.empty()) std::fprintf(stderr, "egressd: warning: %s\n", warning.c_str());
  } else {
    units = std::make_unique<systemd::NamingRulesResolver>(false);
  }
  auto cg = systemd::resolve_cgroup(req, *root, *units);
  if (!cg) return cg.error();
  if (create && !cg->made_by_systemd) {
    EGD_TRY(ensure_cgroup_dir(cg->path));
  } else if (!path_exists(cg->path)) {
    return logic_error("cgroup " + cg->path + " does not exist" +
                       (cg->unit.empty() ? "" : " (where systemd puts " + cg->unit + "; it is not active)"));
  }
  auto id = cgroup_id(cg->path);
  if (!id) return id.error();
  return Target{cg->path, *id, pins_for(*id)};
}

Result<Target> resolve_target(const std::string& cgroup, bool create) {
  return resolve_target(systemd::CgroupRequest{cgroup, std::nullopt}, create);
}

Result<UniqueFd> lock_target(const Target& t, bool wait) {
  // The cgroup directory itself is the lock: nothing to create or clean up.
  UniqueFd fd(open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + t.path);
  if (flock(fd.get(), wait ? LOCK_EX : LOCK_EX | LOCK_NB) != 0) return sys_error("lock " + t.path);
  return fd;
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

}  // namespace egressd::attachment
