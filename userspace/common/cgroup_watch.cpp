#include "common/cgroup_watch.h"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/cgroup.h"

namespace egressd {
namespace {

constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF |
                           IN_ONLYDIR;

bool is_dir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

RefenceAction decide_refence(const CgroupObservation& o) {
  if (o.current_id) return *o.current_id == o.fenced_id ? RefenceAction::kNone : RefenceAction::kAttach;
  if (o.parent_exists) return RefenceAction::kRecreate;
  // Made again at once, like the directory itself: a parent slice stopped
  // and started would otherwise come back with the child made by systemd,
  // which may put a session in it before egressd has seen it.
  if (o.delegated_top.empty() || path_within(o.nearest_ancestor, o.delegated_top))
    return RefenceAction::kRecreateChain;
  return RefenceAction::kWaitParent;
}


bool inotify_event_matters(uint32_t mask, std::string_view name, std::string_view next) {
  if (mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) return true;
  if (!(mask & (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM))) return false;
  return !next.empty() && name == next;
}

std::string parent_dir(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string next_component(std::string_view dir, std::string_view target) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  if (!path_within(target, dir) || target.size() == dir.size()) return "";
  std::string_view rest = target.substr(dir == "/" ? 1 : dir.size() + 1);
  return std::string(rest.substr(0, rest.find('/')));
}

Result<CgroupWatch> CgroupWatch::create(std::string target, std::string stop_at) {
  if (!path_within(target, stop_at) || target == stop_at)
    return logic_error(target + " is not below " + stop_at);
  CgroupWatch w;
  w.target_ = std::move(target);
  w.stop_at_ = std::move(stop_at);
  w.fd_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w.fd_.valid()) return sys_error("inotify_init1");
  EGD_TRY(w.aim());
  return w;
}

Status CgroupWatch::aim() {
  // Bounded: a directory removed between the check and the watch sends us
  // one level up, at most once per level, and stop_at always exists.
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string dir = parent_dir(target_);
    while (dir.size() > stop_at_.size() && !is_dir(dir)) dir = parent_dir(dir);
    // Added even when the path is the one watched: the directory there may
    // be a new one (removed and made again before its removal was read). The
    // same directory gives back the same descriptor; a new one a new
    // descriptor, and the old watch goes.
    int wd = inotify_add_watch(fd_.get(), dir.c_str(), kMask);
    if (wd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return sys_error("watch " + dir);
    }
    if (wd_ >= 0 && wd_ != wd) inotify_rm_watch(fd_.get(), wd_);  // its IN_IGNORED is skipped by drain()
    wd_ = wd;
    watched_ = dir;
    next_ = next_component(dir, target_);
    // The next level made between the check above and the watch: its
    // IN_CREATE came before the watch, and a watch left up here would miss
    // everything below it (the fenced directory removed again). Go down.
    if (dir != parent_dir(target_) && is_dir(dir + "/" + next_)) continue;
    return {};
  }
  return logic_error("cannot keep a watch above " + target_ + ": its ancestors keep changing");
}

bool CgroupWatch::drain() {
  bool matters = false;
  alignas(inotify_event) char buf[8192];
  for (int i = 0; i < 64; ++i) {  // bounded; the fd stays readable if more is queued
    ssize_t n = read(fd_.get(), buf, sizeof(buf));
    if (n <= 0) break;
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      // Events of a watch we already replaced say nothing about the current one.
      if (!(ev->mask & IN_Q_OVERFLOW) && ev->wd != wd_) continue;
      std::string_view name(ev->len ? ev->name : "", ev->len ? strnlen(ev->name, ev->len) : 0);
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) wd_ = -1;
      if (inotify_event_matters(ev->mask, name, next_)) matters = true;
    }
  }
  return matters;
}

}  // namespace egressd
