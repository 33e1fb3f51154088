#include "daemon/refence.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include <spdlog/spdlog.h>

#include "bpf/fence.h"
#include "bpf/loader.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "events/format.h"

namespace egressd::daemon {
namespace {

using Clock = std::chrono::steady_clock;

std::optional<uint64_t> id_at(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_ino);
}

bool dir_exists(const std::string& path) { return id_at(path).has_value(); }

std::string nearest_existing(std::string dir, const std::string& root) {
  while (dir.size() > root.size() && !dir_exists(dir)) dir = parent_dir(dir);
  return dir;
}

// The top of the subtree delegated to a user that `path` lies in (the
// highest ancestor whose cgroup.procs a non-root user owns), "" if none.
std::string delegated_top(const std::string& path, const std::string& root) {
  std::string top;
  for (std::string dir = parent_dir(path); dir.size() > root.size() && path_within(dir, root); dir = parent_dir(dir)) {
    struct stat st {};
    if (stat((dir + "/cgroup.procs").c_str(), &st) == 0 && st.st_uid != 0) top = dir;
  }
  return top;
}

// "123 (systemd-run), 456 (python3)": who was in a cgroup before its fence.
std::string describe_procs(const std::vector<pid_t>& pids) {
  std::string out;
  for (size_t i = 0; i < pids.size() && i < 8; ++i) {
    std::string comm;
    if (FILE* f = std::fopen(("/proc/" + std::to_string(pids[i]) + "/comm").c_str(), "re")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof(buf), f)) comm = buf;
      std::fclose(f);
    }
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    out += (i ? ", " : "") + std::to_string(pids[i]) + " (" + (comm.empty() ? "exited" : comm) + ")";
  }
  if (pids.size() > 8) out += ", ...";
  return out;
}

}  // namespace

Result<std::unique_ptr<Refencer>> Refencer::start(Loop& loop, Target& target, const MapFds& maps, Hub& hub,
                                                  std::string cgroup_root, std::function<void()> gone,
                                                 const std::map<std::string, UniqueFd>* programs) {
  auto watch = CgroupWatch::create(target.path, cgroup_root);
  if (!watch) return watch.error();
  std::unique_ptr<Refencer> r(new Refencer(loop, target, maps, hub, std::move(*watch), std::move(gone)));
  r->programs_ = programs;
  r->delegated_top_ = delegated_top(target.path, cgroup_root);
  r->root_ = std::move(cgroup_root);
  EGD_TRY(loop.add(r->watch_.fd(), EPOLLIN, r.get()));
  // The directory may have gone between the attach and the watch.
  r->reconcile();
  r->poll();
  return r;
}

Refencer::Refencer(Loop& loop, Target& target, const MapFds& maps, Hub& hub, CgroupWatch watch,
                   std::function<void()> gone)
    : loop_(loop), target_(target), maps_(maps), hub_(hub), watch_(std::move(watch)), gone_(std::move(gone)) {
  struct stat st {};
  if (stat(target_.path.c_str(), &st) == 0) mode_ = st.st_mode & 07777;
}

Refencer::~Refencer() {
  loop_.remove(watch_.fd());
  if (retry_) loop_.cancel(retry_);
  if (poll_) loop_.cancel(poll_);
  // Failing closed: a cgroup we froze and could not fence stays frozen.
  if (frozen_by_us_)
    spdlog::error("{} (cgroup id {}) stays frozen: the fence could not be moved onto it; "
                  "`echo 0 > {}/cgroup.freeze` releases it unfenced",
                  target_.path, frozen_by_us_, target_.path);
}

void Refencer::on_io(uint32_t) {
  if (!watch_.drain()) return;
  if (noticed_ == Clock::time_point{}) noticed_ = Clock::now();
  reconcile();
}

void Refencer::retry_later() {
  if (retry_) return;
  retry_ = loop_.after(backoff_, [this] {
    retry_ = 0;
    reconcile();
  });
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(1000));
}

void Refencer::poll() {
  poll_ = loop_.after(kPollInterval, [this] {
    poll_ = 0;
    reconcile();
    poll();
  });
}

void Refencer::reconcile() {
  // `egressd detach` removed the attachment: nothing to keep (the daemon exits).
  if (!path_exists(target_.pins.dir)) return;
  // Re-aimed on every look (the timers' too): a watch left above a level
  // that exists again would miss the directory's next removal.
  if (auto s = watch_.aim(); !s) spdlog::error("watching for {} to be made again: {}", target_.path, s.error().message());
  CgroupObservation o;
  o.parent_exists = dir_exists(parent_dir(target_.path));
  o.current_id = id_at(target_.path);
  o.fenced_id = target_.id;
  if (!o.parent_exists) {
    o.nearest_ancestor = nearest_existing(parent_dir(target_.path), root_);
    o.delegated_top = delegated_top_;
  }
  switch (decide_refence(o)) {
    case RefenceAction::kNone:
      noticed_ = {};
      backoff_ = std::chrono::milliseconds(20);
      return;
    case RefenceAction::kWaitParent:
      if (!waiting_logged_)
        spdlog::warn("{} and its parent are gone with the subtree delegated to a user ({}); the fence is moved "
                     "onto it as soon as {} exists again",
                     target_.path, delegated_top_, parent_dir(target_.path));
      waiting_logged_ = true;
      noticed_ = {};  // the delay logged counts from the chain's return
      return;
    case RefenceAction::kRecreateChain:
      // The parents are handed over like theirs, mode 0755, as attach makes them.
      if (auto s = ensure_cgroup_dir(parent_dir(target_.path)); !s) {
        spdlog::error("{} and its parent were removed; making them again failed: {}; retrying", target_.path,
                      s.error().message());
        retry_later();
        return;
      }
      [[fallthrough]];
    case RefenceAction::kRecreate:
      waiting_logged_ = false;
      if (noticed_ == Clock::time_point{}) noticed_ = Clock::now();
      // Made again at once: the name is never there unfenced, unless
      // someone else's mkdir wins (EEXIST), handled like theirs.
      if (mkdir(target_.path.c_str(), mode_) == 0) {
        // Fenced even if the hand-over fails: the user's manager then cannot
        // use it (the error says why), but nothing in it runs unfenced.
        if (auto s = hand_over_new_cgroup(target_.path, mode_); !s)
          spdlog::error("{} made again: {}", target_.path, s.error().message());
        move_to_current(true);
      } else if (errno == EEXIST) {
        move_to_current(false);
      } else if (errno == ENOENT && recreate_depth_ < 4) {
        // The parent went meanwhile (a slice stopped with its parent):
        // look again, bounded, rather than wait for a timer.
        ++recreate_depth_;
        reconcile();
        --recreate_depth_;
      } else {
        spdlog::error("{} was removed; making it again failed: {}; retrying", target_.path,
                      sys_error("mkdir").message());
        retry_later();
      }
      return;
    case RefenceAction::kAttach:
      waiting_logged_ = false;
      if (noticed_ == Clock::time_point{}) noticed_ = Clock::now();
      move_to_current(false);
      return;
  }
}

void Refencer::move_to_current(bool made_by_us) {
  const std::string& path = target_.path;
  UniqueFd cg(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!cg.valid() || fstat(cg.get(), &st) != 0) {
    // Removed again already: the watch brings us back.
    spdlog::warn("{} changed while the fence was being moved: {}", path, sys_error("open").message());
    retry_later();
    return;
  }
  uint64_t new_id = st.st_ino, old_id = target_.id;
  if (new_id == old_id) return;
  // The same lock as attach/reload/detach, never waited for: a daemon
  // blocked here would miss the SIGTERM of the attach holding it.
  if (flock(cg.get(), LOCK_EX | LOCK_NB) != 0) {
    spdlog::info("{} is locked by another egressd command; moving the fence once it is done", path);
    retry_later();
    return;
  }
  if (path_exists(pins_for(new_id).dir)) {
    give_up_to_other_attachment(new_id);
    return;
  }
  // Frozen first: anything moved in from now on stops before it runs in
  // user space again, until every program is attached.
  if (frozen_by_us_ != new_id) {
    auto froze = freeze_cgroup(path);
    if (!froze) spdlog::warn("cannot freeze {} while the fence is moved: {}", path, froze.error().message());
    if (froze && *froze) frozen_by_us_ = new_id;
  }
  auto procs = cgroup_procs(path);
  auto moved = move_fence(maps_, target_.pins, cg.get(), new_id, programs_);
  if (!moved) {
    spdlog::error("{} is not fenced: moving the fence onto it (cgroup id {}) failed: {}{}; retrying", path, new_id,
                  moved.error().message(),
                  frozen_by_us_ == new_id ? " (it stays frozen meanwhile, so nothing in it runs unfenced; "
                                            "`echo 0 > cgroup.freeze` releases it)"
                                          : "");
    retry_later();
    return;
  }
  if (!moved->warning.empty()) spdlog::warn("{}", moved->warning);
  // The run files are named by cgroup id: `egressd tail/status/reload/
  // detach --cgroup` find this daemon under the new one. Subscribers stay.
  PinLayout old = target_.pins;
  if (rename(old.pidfile().c_str(), moved->pins.pidfile().c_str()) != 0)
    spdlog::warn("{}", sys_error("rename " + old.pidfile() + " to " + moved->pins.pidfile()).message());
  if (auto s = hub_.rename_socket(moved->pins.socket()); !s)
    spdlog::warn("event subscribers: {}", s.error().message());
  target_.id = new_id;
  target_.pins = moved->pins;
  mode_ = st.st_mode & 07777;
  if (frozen_by_us_ == new_id) {
    if (auto s = thaw_cgroup(path); !s) spdlog::error("{} is fenced but still frozen: {}", path, s.error().message());
    frozen_by_us_ = 0;
  }
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - noticed_).count();
  noticed_ = {};
  backoff_ = std::chrono::milliseconds(20);
  publish_move(old_id, made_by_us, procs ? *procs : std::vector<pid_t>{}, ms);
  if (!procs) spdlog::warn("counting processes in {}: {}", path, procs.error().message());
}

void Refencer::publish_move(uint64_t old_id, bool made_by_us, const std::vector<pid_t>& pids, double ms) {
  size_t procs = pids.size();
  const std::string& path = target_.path;
  std::string how = made_by_us ? "egressd made it again after it was removed" : "it was made again by someone else";
  spdlog::info("fence moved onto {} (cgroup id {}, was {}): {}; same policy, proxy and resolver; {:.1f} ms after "
               "the change was seen",
               path, target_.id, old_id, how, ms);
  if (procs > 0) spdlog::warn("{} processes ran in {} before it was fenced: {}", procs, path, describe_procs(pids));
  std::string json = "{\"type\":\"refenced\",\"time\":\"" + iso8601(unix_now_ns()) + "\",\"cgroup\":\"" +
                     json_escape(path) + "\",\"cgroup_id\":" + std::to_string(target_.id) +
                     ",\"previous_cgroup_id\":" + std::to_string(old_id) + ",\"made_by\":\"" +
                     (made_by_us ? "egressd" : "other") + "\",\"processes_before_fence\":" + std::to_string(procs) +
                     "}";
  std::string text = "-- fence moved onto " + path + " (cgroup id " + std::to_string(target_.id) + ", was " +
                     std::to_string(old_id) + "): " + how +
                     (procs ? "; " + std::to_string(procs) + " processes ran in it before it was fenced" : "");
  hub_.notice(json, text);
}

void Refencer::give_up_to_other_attachment(uint64_t new_id) {
  // Another `egressd attach` fenced the new cgroup (its daemon owns it now).
  // Ours is the fence of a cgroup that no longer exists.
  spdlog::info("{} is now cgroup id {}, fenced by another egressd attach; removing the pins of the removed "
               "cgroup id {} and exiting",
               target_.path, new_id, target_.id);
  if (auto s = detach_cgroup(target_.id); !s) spdlog::warn("{}", s.error().message());
  gone_();
}

}  // namespace egressd::daemon
