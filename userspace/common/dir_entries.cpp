#include "common/dir_entries.h"

#include <dirent.h>

#include <string_view>

namespace egressd {

Result<std::vector<std::string>> dir_entries(const std::string& dir, EntryKind kind, size_t max) {
  DIR* d = opendir(dir.c_str());
  if (!d) return sys_error("open " + dir);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (names.size() >= max) break;
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    if (kind == EntryKind::Directory && e->d_type != DT_DIR) continue;
    names.emplace_back(n);
  }
  closedir(d);
  return names;
}

}  // namespace egressd
