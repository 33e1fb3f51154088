#include "common/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/dir_entries.h"

namespace egressd {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<std::string> cgroup2_mount_from(std::string_view mountinfo) {
  for (std::string_view line : split(mountinfo, '\n')) {
    // "36 25 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    auto post = split(line.substr(dash + 3), ' ');
    if (post.empty() || post[0] != "cgroup2") continue;
    auto pre = split(line.substr(0, dash), ' ');
    if (pre.size() < 5 || pre[3] != "/") continue;  // a bind mount of a subtree is not the root
    return unescape_mountinfo(pre[4]);
  }
  return logic_error("cgroup2 is not mounted (no cgroup2 entry in /proc/self/mountinfo); "
                     "egressd needs the unified cgroup hierarchy");
}

Result<std::string> cgroup2_mount() {
  std::string info = read_file("/proc/self/mountinfo");
  if (info.empty()) return sys_error("read /proc/self/mountinfo");
  return cgroup2_mount_from(info);
}

Result<std::string> slice_path(std::string_view unit) {
  constexpr std::string_view kSuffix = ".slice";
  if (unit.size() <= kSuffix.size() || unit.substr(unit.size() - kSuffix.size()) != kSuffix)
    return logic_error("not a slice name: " + std::string(unit));
  std::string_view stem = unit.substr(0, unit.size() - kSuffix.size());
  if (stem == "-") return std::string();
  if (stem.front() == '-' || stem.back() == '-' || stem.find("--") != std::string_view::npos ||
      stem.find('/') != std::string_view::npos)
    return logic_error("invalid slice name: " + std::string(unit));
  std::string path;
  std::string prefix;
  for (std::string_view part : split(stem, '-')) {
    prefix += (prefix.empty() ? "" : "-") + std::string(part);
    path += (path.empty() ? "" : "/") + cgroup_escape(prefix + std::string(kSuffix));
  }
  return path;
}

std::string cgroup_escape(std::string_view name) {
  // systemd 252's controller names (cgroup_controller_to_string), BPF pseudo-controllers included.
  static constexpr std::string_view kControllers[] = {
      "cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices", "pids", "bpf-firewall", "bpf-devices",
      "bpf-foreign", "bpf-socket-bind", "bpf-restrict-network-interfaces"};
  bool escape = name.empty() || name[0] == '_' || name[0] == '.' || name == "notify_on_release" ||
                name == "release_agent" || name == "tasks" || name.substr(0, 7) == "cgroup.";
  for (std::string_view c : kControllers)
    escape = escape || (name.size() > c.size() && name.substr(0, c.size()) == c && name[c.size()] == '.');
  return escape ? "_" + std::string(name) : std::string(name);
}

bool path_within(std::string_view inner, std::string_view outer) {
  while (outer.size() > 1 && outer.back() == '/') outer.remove_suffix(1);
  if (inner.substr(0, outer.size()) != outer) return false;
  return inner.size() == outer.size() || inner[outer.size()] == '/' || outer == "/";
}

Result<std::string> cgroup_below(const std::string& root, std::string_view rel, std::string_view what) {
  std::string clean;
  for (std::string_view part : split(rel, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return logic_error("cgroup path must not contain '..': " + std::string(what));
    clean += "/" + std::string(part);
  }
  if (clean.empty())
    return logic_error("refusing to fence the root cgroup (it holds egressd itself and the whole system): " +
                       std::string(what));
  return root + clean;
}

Result<std::string> resolve_cgroup_arg(std::string_view arg, const std::string& root) {
  if (arg.empty()) return logic_error("empty cgroup name");
  std::string rel;
  if (arg.front() == '/') {
    if (arg.find_first_not_of('/') == std::string_view::npos) return cgroup_below(root, "", arg);
    if (!path_within(arg, root))
      return logic_error(std::string(arg) + " is not under the cgroup2 mount " + root +
                         ": it is no cgroup2 directory, and processes put there would run unfenced; name the "
                         "cgroup as " + root + "/..., relative to " + root + ", or as a systemd unit");
    rel = std::string(arg.substr(root.size()));
  } else if (arg.find('/') == std::string_view::npos && arg.size() > 6 &&
             arg.substr(arg.size() - 6) == ".slice") {
    auto p = slice_path(arg);
    if (!p) return p.error();
    rel = *p;
  } else {
    rel = std::string(arg);
  }
  return cgroup_below(root, rel, arg);
}

namespace {

// What systemd hands to the user of a delegated cgroup (the kernel lists
// them in /sys/kernel/cgroup/delegate).
constexpr const char* kDelegatedFiles[] = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"};

}  // namespace

std::optional<FileOwner> cgroup_handover(std::optional<FileOwner> parent_procs) {
  if (!parent_procs || parent_procs->uid == 0) return std::nullopt;
  return parent_procs;
}

Status hand_over_new_cgroup(const std::string& path, mode_t mode) {
  if (chmod(path.c_str(), mode) != 0) return sys_error("chmod cgroup " + path);
  std::optional<FileOwner> parent_procs;
  struct stat st {};
  if (stat((path.substr(0, path.rfind('/')) + "/cgroup.procs").c_str(), &st) == 0)
    parent_procs = FileOwner{static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid)};
  auto owner = cgroup_handover(parent_procs);
  if (!owner) return {};
  // CAP_CHOWN: a daemon without it leaves the cgroup root's, which the
  // user's manager cannot use; the error says so.
  if (chown(path.c_str(), owner->uid, owner->gid) != 0)
    return sys_error("hand " + path + " over to uid " + std::to_string(owner->uid) + " like its parent (chown)");
  for (const char* f : kDelegatedFiles) {
    std::string file = path + "/" + f;
    if (chown(file.c_str(), owner->uid, owner->gid) != 0 && errno != ENOENT) return sys_error("chown " + file);
  }
  return {};
}

Status ensure_cgroup_dir(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return logic_error(path + ": not a directory");
    return {};
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) EGD_TRY(ensure_cgroup_dir(path.substr(0, slash)));
  if (mkdir(path.c_str(), 0755) != 0) {
    if (errno == EEXIST) return {};
    return sys_error("create cgroup " + path);
  }
  return hand_over_new_cgroup(path, 0755);
}

Result<uint64_t> cgroup_id(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return sys_error("stat cgroup " + path);
  return static_cast<uint64_t>(st.st_ino);
}

std::optional<Delegation> find_delegation(const std::string& path, const std::string& root) {
  std::string dir = path;
  while (dir.size() > root.size() && path_within(dir, root)) {
    struct stat st {};
    if (stat((dir + "/cgroup.procs").c_str(), &st) == 0 && st.st_uid != 0)
      return Delegation{dir, static_cast<unsigned>(st.st_uid)};
    dir = dir.substr(0, dir.rfind('/'));
  }
  return std::nullopt;
}

namespace {

Status procs_below(const std::string& dir, int depth, std::vector<pid_t>& pids) {
  if (depth > 64) return logic_error(dir + ": cgroup tree deeper than 64 levels");
  std::string file = dir + "/cgroup.procs";
  FILE* f = std::fopen(file.c_str(), "re");
  if (!f) return sys_error("read " + file);
  for (long pid; std::fscanf(f, "%ld", &pid) == 1;) pids.push_back(static_cast<pid_t>(pid));
  std::fclose(f);
  auto children = dir_entries(dir, EntryKind::Directory);
  if (!children) return children.error();
  for (const std::string& c : *children) {
    Status s = procs_below(dir + "/" + c, depth + 1, pids);
    if (!s && s.error().err != ENOENT) return s;  // a child removed meanwhile held nobody
  }
  return {};
}

Status write_freeze(const std::string& path, char value) {
  std::string file = path + "/cgroup.freeze";
  int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return sys_error("open " + file);
  bool ok = write(fd, &value, 1) == 1;
  int err = errno;
  close(fd);
  if (!ok) return sys_error("write " + file, err);
  return {};
}

}  // namespace

Result<std::vector<pid_t>> cgroup_procs(const std::string& path) {
  std::vector<pid_t> pids;
  EGD_TRY(procs_below(path, 0, pids));
  return pids;
}

Result<bool> freeze_cgroup(const std::string& path) {
  std::ifstream in(path + "/cgroup.freeze");
  char state = 0;
  if (!(in >> state)) return false;  // no freezer (or not a cgroup we may freeze)
  if (state != '0') return false;
  EGD_TRY(write_freeze(path, '1'));
  return true;
}

Status thaw_cgroup(const std::string& path) { return write_freeze(path, '0'); }

Result<std::string> self_cgroup(const std::string& root) {
  std::string text = read_file("/proc/self/cgroup");
  for (std::string_view line : split(text, '\n')) {
    if (line.substr(0, 3) == "0::") {
      std::string_view p = line.substr(3);
      return p == "/" ? root : root + std::string(p);
    }
  }
  return logic_error("no cgroup2 entry in /proc/self/cgroup");
}

}  // namespace egressd
