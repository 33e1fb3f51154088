#include "cli/target.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

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

Result<UniqueFd> lock_target(const Target& t) {
  // The cgroup directory itself is the lock: nothing to create or clean up.
  UniqueFd fd(open(t.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + t.path);
  if (flock(fd.get(), LOCK_EX) != 0) return sys_error("lock " + t.path);
  return fd;
}

int fail(const char* verb, const std::string& message) {
  std::fprintf(stderr, "egressd %s: %s\n", verb, message.c_str());
  return 1;
}

int daemon_pid(const Target& t) {
  std::ifstream in(t.pins.pidfile());
  int pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  // A recycled pid must not be signalled: the process must be a live
  // (not zombie) egressd. /proc/PID/stat is "pid (comm) state ...".
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return 0;
  size_t close_paren = line.rfind(')');
  if (line.find("(egressd)") == std::string::npos || close_paren == std::string::npos ||
      close_paren + 2 >= line.size() || line[close_paren + 2] == 'Z')
    return 0;
  return pid;
}

bool stop_daemon(const Target& t, int timeout_ms) {
  int pid = daemon_pid(t);
  if (pid == 0 || pid == getpid()) return true;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (kill(pid, SIGTERM) != 0) {
    if (pidfd >= 0) close(pidfd);
    return true;
  }
  if (pidfd < 0) return false;
  pollfd p{pidfd, POLLIN, 0};
  int rc = poll(&p, 1, timeout_ms);
  if (rc <= 0) {
    kill(pid, SIGKILL);  // it no longer matters: the pins hold the fence
    rc = poll(&p, 1, 1000);
  }
  close(pidfd);
  return rc > 0;
}

}  // namespace egressd::cli
