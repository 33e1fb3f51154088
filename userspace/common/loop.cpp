#include "common/loop.h"

#include <cerrno>

namespace egressd {

Result<Loop> Loop::create() {
  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return sys_error("epoll_create1");
  return Loop(std::move(ep));
}

Status Loop::add(int fd, uint32_t events, Watcher* w) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = w;
  if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return sys_error("epoll_ctl add");
  return {};
}

Status Loop::modify(int fd, uint32_t events, Watcher* w) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = w;
  if (epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return sys_error("epoll_ctl mod");
  return {};
}

void Loop::remove(int fd) { epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr); }

Loop::TimerId Loop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  TimerId id = next_id_++;
  due_.push(Due{Clock::now() + delay, id});
  timers_.emplace(id, std::move(fn));
  return id;
}

void Loop::cancel(TimerId id) { timers_.erase(id); }

void Loop::defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }

void Loop::run_timers() {
  // Bounded: timers added by callbacks that are already due run on the next turn.
  size_t budget = due_.size();
  while (budget-- > 0 && !due_.empty() && due_.top().at <= now_) {
    TimerId id = due_.top().id;
    due_.pop();
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    auto fn = std::move(it->second);
    timers_.erase(it);
    fn();
  }
  // Cancelled timers leave heap entries; drop them when they dominate.
  if (due_.size() > 1024 && due_.size() > 4 * timers_.size()) {
    decltype(due_) kept;
    while (!due_.empty()) {
      if (timers_.count(due_.top().id)) kept.push(due_.top());
      due_.pop();
    }
    due_ = std::move(kept);
  }
}

void Loop::run_deferred() {
  // Deferred work may defer more; that runs on the next turn.
  std::vector<std::function<void()>> batch;
  batch.swap(deferred_);
  for (auto& fn : batch) fn();
}

Status Loop::run_once(int max_wait_ms) {
  int wait = max_wait_ms;
  now_ = Clock::now();
  if (!deferred_.empty()) wait = 0;
  while (!due_.empty() && !timers_.count(due_.top().id)) due_.pop();
  if (!due_.empty()) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(due_.top().at - now_).count();
    if (ms < 0) ms = 0;
    if (wait < 0 || ms < wait) wait = static_cast<int>(ms) + (due_.top().at > now_ + std::chrono::milliseconds(ms) ? 1 : 0);
  }
  epoll_event evs[256];
  int n = epoll_wait(ep_.get(), evs, 256, wait);
  if (n < 0) {
    if (errno == EINTR) return {};
    return sys_error("epoll_wait");
  }
  now_ = Clock::now();
  for (int i = 0; i < n; ++i) static_cast<Watcher*>(evs[i].data.ptr)->on_io(evs[i].events);
  now_ = Clock::now();
  run_timers();
  run_deferred();
  return {};
}

}  // namespace egressd
