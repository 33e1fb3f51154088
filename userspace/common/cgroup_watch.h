// cgroup_watch.h: notice when the fenced cgroup's directory is removed or
// made again. An attachment dies with its cgroup (`systemctl stop` of a
// slice, any rmdir), and a directory made later under the same name is a
// new, unfenced cgroup. inotify on the parent directory sees both; if the
// parent is gone too, the watch moves up to the nearest ancestor that
// exists and comes back down as the chain is made again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

// What is at the fenced path now, against what the pins fence.
struct CgroupObservation {
  bool parent_exists = false;
  std::optional<uint64_t> current_id;  // the cgroup at the path, if any
  uint64_t fenced_id = 0;              // the cgroup the attachment is on
  // With the parent gone: the nearest ancestor that exists, and the top of
  // the subtree delegated to a user the path lay in when it was fenced ("" if
  // none). Below a delegation's top egressd may make the chain again (handed
  // over like its parents); a removed delegation (its user logged out) is
  // its manager's to make again, with owners egressd cannot know.
  std::string nearest_ancestor;
  std::string delegated_top;
};

enum class RefenceAction {
  kNone,          // the fenced cgroup is in place
  kRecreate,      // the directory is gone and its parent is there: make it again, then attach
  kRecreateChain, // the parent is gone too: make the missing chain again, then attach
  kAttach,        // someone else made the directory: a new cgroup to attach to at once
  kWaitParent,    // a delegated subtree above it is gone: wait for its manager to make it again
};

RefenceAction decide_refence(const CgroupObservation& o);

// Whether one inotify event on the watched directory may have changed what
// is at the target path: `next` is the name of the path component below the
// watched directory (the target's own name when the parent is watched).
// Lost events (IN_Q_OVERFLOW) and the watched directory going away count.
bool inotify_event_matters(uint32_t mask, std::string_view name, std::string_view next);

// The component of `target` right below `dir` ("" if target is not below dir).
std::string next_component(std::string_view dir, std::string_view target);

// The parent of `path` ("/" for a top-level path).
std::string parent_dir(std::string_view path);

class CgroupWatch {
 public:
  // Watches for `target` (an absolute path) appearing and going away.
  // `stop_at` is a directory that always exists (the cgroup2 mount): the
  // watch never climbs above it.
  static Result<CgroupWatch> create(std::string target, std::string stop_at);
  CgroupWatch(CgroupWatch&&) = default;
  CgroupWatch& operator=(CgroupWatch&&) = default;

  int fd() const { return fd_.get(); }
  const std::string& watched() const { return watched_; }

  // Reads every queued event (non-blocking). True if one may have changed
  // what is at the target path; the caller then calls aim() and looks.
  bool drain();

  // Points the watch at the target's parent, or the nearest ancestor that
  // exists. Call after drain() returned true, then check the target: it may
  // have changed while no watch covered it.
  Status aim();

 private:
  CgroupWatch() = default;
  UniqueFd fd_;
  int wd_ = -1;
  std::string target_;
  std::string stop_at_;
  std::string watched_;
  std::string next_;  // name below watched_ on the way to target_
};

}  // namespace egressd
