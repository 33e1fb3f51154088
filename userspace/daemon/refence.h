// refence.h: the attach daemon keeps the fence on the cgroup *path*. An
// attachment dies with its cgroup, and a directory made again under the same
// name is a new cgroup (new id) that nothing fences. So:
//   - the fenced directory is removed: egressd makes it again at once (same
//     mode, handed over like its parent as attach does) and moves the
//     attachment onto it, so the name is never there unfenced unless someone
//     else's mkdir wins the race; removed with its parents (a parent slice
//     stopped), the missing chain is made again too, except a subtree
//     delegated to a user (its manager makes that);
//   - someone else made it: egressd moves the attachment onto it at once.
// The new cgroup is frozen while the programs are attached (tasks moved in
// meanwhile stop before they run again in user space), then thawed. Moving
// keeps the maps, so policy, proxy/resolver registration and the event ring
// do not change; the pins and run files follow the new cgroup id. Processes
// already inside when it was frozen may have run unfenced: they are counted
// and logged.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attachment/target.h"
#include "bpf/policy_maps.h"
#include "common/cgroup_watch.h"
#include "common/loop.h"
#include "events/hub.h"

namespace egressd::daemon {

using attachment::Target;

class Refencer final : public Loop::Watcher {
 public:
  // `target` is updated in place when the fence moves (id, pins). `gone` runs
  // when the daemon should exit: another attach fenced the new cgroup.
  static Result<std::unique_ptr<Refencer>> start(Loop& loop, Target& target, const MapFds& maps, Hub& hub,
                                                 std::string cgroup_root, std::function<void()> gone,
                                                 const std::map<std::string, UniqueFd>* programs = nullptr);
  ~Refencer();

  // Looks at the path and acts (also called periodically, in case inotify
  // lost something).
  void reconcile();
  void on_io(uint32_t events) override;

 private:
  Refencer(Loop& loop, Target& target, const MapFds& maps, Hub& hub, CgroupWatch watch, std::function<void()> gone);
  void move_to_current(bool made_by_us);
  void give_up_to_other_attachment(uint64_t new_id);
  void retry_later();
  // A look every kPollInterval besides inotify: a burst of removals and
  // re-creations (a parent slice stopped and started) can outrun the watch's
  // re-aiming; the poll bounds what a lost event can cost.
  void poll();
  static constexpr std::chrono::milliseconds kPollInterval{250};
  void publish_move(uint64_t old_id, bool made_by_us, const std::vector<pid_t>& pids, double ms);

  Loop& loop_;
  Target& target_;
  const MapFds& maps_;
  Hub& hub_;
  CgroupWatch watch_;
  std::function<void()> gone_;
  const std::map<std::string, UniqueFd>* programs_ = nullptr;  // the daemon's loaded programs
  std::string root_;           // the cgroup2 mount
  std::string delegated_top_;  // see CgroupObservation::delegated_top
  int recreate_depth_ = 0;
  mode_t mode_ = 0755;
  uint64_t frozen_by_us_ = 0;  // cgroup id we froze and must thaw
  Loop::TimerId retry_ = 0;
  Loop::TimerId poll_ = 0;
  std::chrono::milliseconds backoff_{20};
  bool waiting_logged_ = false;
  std::chrono::steady_clock::time_point noticed_{};
};

}  // namespace egressd::daemon
