#include "bpf/pins.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstdlib>
#include <linux/magic.h>

namespace egressd {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

Status mkdir_mode(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return sys_error("create " + path);
  return {};
}

constexpr std::string_view kDetachedSuffix = ".detached";

}  // namespace

std::string bpffs_base() { return env_or("EGRESSD_BPFFS_DIR", "/sys/fs/bpf/egressd"); }
std::string run_dir() { return env_or("EGRESSD_RUN_DIR", "/run/egressd"); }

std::string PinLayout::socket() const { return run_dir() + "/" + std::to_string(cgroup_id) + ".sock"; }
std::string PinLayout::pidfile() const { return run_dir() + "/" + std::to_string(cgroup_id) + ".pid"; }

std::string PinLayout::detached_record() const {
  return run_dir() + "/" + std::to_string(cgroup_id) + std::string(kDetachedSuffix);
}

std::vector<uint64_t> detached_record_ids() {
  std::vector<uint64_t> ids;
  DIR* d = opendir(run_dir().c_str());
  if (!d) return ids;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    unsigned long long id = std::strtoull(e->d_name, &end, 10);
    if (end && std::string_view(end) == kDetachedSuffix && id > 0) ids.push_back(id);
  }
  closedir(d);
  return ids;
}

PinLayout pins_for(uint64_t cgroup_id) {
  return PinLayout{cgroup_id, bpffs_base() + "/" + std::to_string(cgroup_id)};
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

Status ensure_bpffs() {
  std::string base = bpffs_base();
  std::string parent = base.substr(0, base.rfind('/'));
  if (parent.empty()) parent = "/";
  struct statfs fs {};
  if (statfs(parent.c_str(), &fs) != 0) return sys_error("statfs " + parent);
  if (static_cast<unsigned long>(fs.f_type) != BPF_FS_MAGIC) {
    if (mount("bpf", parent.c_str(), "bpf", 0, "mode=0700") != 0)
      return sys_error("mount bpffs on " + parent);
  }
  return mkdir_mode(base, 0700);
}

Status ensure_run_dir() { return mkdir_mode(run_dir(), 0755); }

std::vector<uint64_t> pinned_cgroups() {
  std::vector<uint64_t> ids;
  DIR* d = opendir(bpffs_base().c_str());
  if (!d) return ids;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    unsigned long long id = std::strtoull(e->d_name, &end, 10);
    if (end && *end == '\0' && id > 0) ids.push_back(id);
  }
  closedir(d);
  return ids;
}

}  // namespace egressd
