// detached_record.cpp: reading and writing `detach`'s record of a cgroup left
// unfenced.
#include "attachment/detached_record.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "bpf/pins.h"
#include "common/cgroup.h"

namespace egressd::attachment {
namespace {

bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno || !end || *end || s[0] == '-') return false;
  out = v;
  return true;
}

}  // namespace

std::string format_detached_record(const DetachedRecord& r) {
  return "path=" + r.path + "\ncgroup_id=" + std::to_string(r.cgroup_id) +
         "\ndetached_at_ns=" + std::to_string(r.detached_unix_ns) + "\npolicy=" + r.policy + "\n";
}

std::optional<DetachedRecord> parse_detached_record(std::string_view text) {
  DetachedRecord r;
  bool have_path = false, have_id = false, have_at = false;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int i = 0; i < 16 && std::getline(in, line); ++i) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) return std::nullopt;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "path") {
      r.path = value;
      have_path = !value.empty() && value[0] == '/';
    } else if (key == "cgroup_id") {
      have_id = parse_u64(value, r.cgroup_id) && r.cgroup_id > 0;
    } else if (key == "detached_at_ns") {
      have_at = parse_u64(value, r.detached_unix_ns);
    } else if (key == "policy") {
      r.policy = value;
    }
    // other keys: written by a later egressd, ignored
  }
  if (!have_path || !have_id || !have_at) return std::nullopt;
  return r;
}

Status write_detached_record(const DetachedRecord& r) {
  // A newline in a path would make the record ambiguous: cgroup names
  // never hold one in practice; such a cgroup just goes unrecorded.
  if (r.path.find('\n') != std::string::npos || r.policy.find('\n') != std::string::npos)
    return logic_error("a newline in " + r.path + " or its policy path: not recorded");
  EGD_TRY(ensure_run_dir());
  std::string path = pins_for(r.cgroup_id).detached_record();
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return sys_error("create " + tmp);
  std::string text = format_detached_record(r);
  bool ok = fchmod(fd, 0644) == 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    unlink(tmp.c_str());
    return sys_error("write " + path, err);
  }
  return {};
}

Result<DetachedRecord> read_detached_record(uint64_t id) {
  std::string path = pins_for(id).detached_record();
  std::ifstream f(path);
  if (!f) return sys_error("open " + path);
  std::string text(4096, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(f.gcount()));
  auto r = parse_detached_record(text);
  if (!r || r->cgroup_id != id) return logic_error(path + ": not a detach record");
  return *r;
}

void remove_detached_record(uint64_t id) { unlink(pins_for(id).detached_record().c_str()); }

bool detached_cgroup_present(const DetachedRecord& r) {
  auto id = cgroup_id(r.path);
  return id && *id == r.cgroup_id;
}

void prune_detached_records() {
  for (uint64_t id : detached_record_ids()) {
    auto r = read_detached_record(id);
    if (!r || !detached_cgroup_present(*r) || path_exists(pins_for(id).dir)) remove_detached_record(id);
  }
}

}  // namespace egressd::attachment
