#include "cli/run_cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "attachment/target.h"
#include "bpf/pins.h"
#include "cli/fence_removal.h"
#include "cli/run_rules.h"
#include "common/cgroup.h"
#include "common/dir_entries.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> pread_text(int fd, const std::string& what) {
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n < 0) return sys_error("read " + what);
  return std::string(buf, static_cast<size_t>(n));
}

Result<UniqueFd> open_locked_events(const std::string& dir) {
  UniqueFd fd(open((dir + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + dir + "/cgroup.events");
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return sys_error("lock " + dir + "/cgroup.events");
  return fd;
}

// Sub-cgroups first: only a CMD running as root can have made any.
void rmdir_children(const std::string& dir, int depth) {
  if (depth > 16) return;
  auto names = dir_entries(dir, EntryKind::Directory);
  if (!names) return;
  for (const std::string& name : *names) {
    std::string sub = dir + "/" + name;
    rmdir_children(sub, depth + 1);
    rmdir(sub.c_str());
  }
}

Status rmdir_cgroup(const std::string& dir, int events_fd) {
  rmdir_children(dir, 0);
  // Populated drops to 0 when the last task exits; the kernel may release it
  // a moment later. Wait on the events file, a bounded number of times.
  for (int i = 0; i < 50; ++i) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
    if (errno != EBUSY) break;
    pollfd p{events_fd, POLLPRI, 0};
    poll(&p, 1, 20);
  }
  return sys_error("remove cgroup " + dir);
}

}  // namespace

bool pid_in_cgroup(pid_t pid, const std::string& relative) {
  std::string text = read_text("/proc/" + std::to_string(pid) + "/cgroup");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return path_within(line.substr(3), relative);
  return false;
}

Result<RunCgroup> RunCgroup::create(const std::string& root) {
  std::string parent = root + "/" + std::string(kRunCgroupParent);
  EGD_TRY(ensure_cgroup_dir(parent));
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint32_t random = 0;
    if (getrandom(&random, sizeof(random), 0) != sizeof(random)) return sys_error("getrandom");
    std::string name = run_cgroup_name(getpid(), random);
    std::string path = parent + "/" + name;
    // Fresh, never adopted: an existing directory is someone else's.
    if (mkdir(path.c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;
      return sys_error("create cgroup " + path);
    }
    // 0755 whatever root's umask: CMD, as USER, reads its cgroup's files.
    if (auto s = hand_over_new_cgroup(path, 0755); !s) {
      rmdir(path.c_str());
      return s.error();
    }
    RunCgroup cg;
    cg.path_ = path;
    cg.relative_ = "/" + std::string(kRunCgroupParent) + "/" + name;
    auto fd = open_locked_events(path);
    if (!fd) {
      // Another run's sweep took it for a leftover in the instant before we
      // locked it: take another name.
      rmdir(path.c_str());
      if (fd.error().err == ENOENT || fd.error().err == EWOULDBLOCK) continue;
      return fd.error();
    }
    cg.events_ = std::move(*fd);
    return cg;
  }
  return logic_error("cannot find a free cgroup name under " + parent);
}

Result<bool> RunCgroup::populated() const {
  auto text = pread_text(events_.get(), path_ + "/cgroup.events");
  if (!text) return text.error();
  auto p = cgroup_populated(*text);
  if (!p) return logic_error(path_ + "/cgroup.events has no populated key");
  return *p;
}

std::vector<pid_t> RunCgroup::pids() const {
  std::vector<pid_t> out;
  std::istringstream in(read_text(procs_file()));
  for (pid_t pid; in >> pid;) out.push_back(pid);
  return out;
}

bool RunCgroup::contains(pid_t pid) const { return pid_in_cgroup(pid, relative_); }

Status RunCgroup::remove() { return rmdir_cgroup(path_, events_.get()); }

std::vector<std::string> sweep_stale_run_cgroups(const std::string& root) {
  std::vector<std::string> kept;
  std::string parent = root + "/" + std::string(kRunCgroupParent);
  auto entries = dir_entries(parent);
  if (!entries) return kept;
  std::vector<std::string> names;
  for (const std::string& n : *entries)
    if (is_run_cgroup_name(n) && names.size() < 4096) names.push_back(n);
  for (const std::string& name : names) {
    std::string path = parent + "/" + name;
    auto lock = open_locked_events(path);
    if (!lock) continue;  // a live egressd run holds it
    auto text = pread_text(lock->get(), path);
    auto populated = text ? cgroup_populated(*text) : std::nullopt;
    if (!populated || *populated) continue;  // its command still runs: the fence stays
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;
    Target t{path, static_cast<uint64_t>(st.st_ino), pins_for(st.st_ino)};
    if (daemon_pid(t) != 0) continue;
    if (path_exists(t.pins.dir)) {
      if (auto s = remove_fence(t); !s) {
        kept.push_back(path + ": " + s.error().message());
        continue;
      }
    }
    if (auto s = rmdir_cgroup(path, lock->get()); !s) kept.push_back(s.error().message());
  }
  return kept;
}

}  // namespace egressd::cli
