// loop.h: the daemon's one event loop (epoll, level-triggered by default,
// single-threaded) with one-shot timers. The proxy, the resolver and the
// event hub all hang their fds here; nothing blocks.
//
// Lifetime rule: a Watcher removed during dispatch may still receive events
// already collected in the same batch, so owners remove their fd, mark
// themselves closed, and free themselves through defer(), which runs after
// the batch.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

class Loop {
 public:
  struct Watcher {
    virtual void on_io(uint32_t events) = 0;  // EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP
   protected:
    ~Watcher() = default;
  };
  using TimerId = uint64_t;
  using Clock = std::chrono::steady_clock;

  static Result<Loop> create();
  Loop(Loop&&) = default;
  Loop& operator=(Loop&&) = default;

  Status add(int fd, uint32_t events, Watcher* w);
  Status modify(int fd, uint32_t events, Watcher* w);
  void remove(int fd);  // never fails visibly: the fd may already be closed

  // One-shot timer; the callback runs from run_once(). cancel() of a fired
  // or unknown id is a no-op.
  TimerId after(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancel(TimerId id);

  // Runs after the current batch of events (or at the end of the next one).
  void defer(std::function<void()> fn);

  // Waits at most max_wait_ms (less if a timer is due), dispatches events,
  // then due timers, then deferred work. EINTR is not an error.
  Status run_once(int max_wait_ms);

  Clock::time_point now() const { return now_; }
  int fd() const { return ep_.get(); }

 private:
  explicit Loop(UniqueFd ep) : ep_(std::move(ep)) {}
  void run_timers();
  void run_deferred();

  struct Due {
    Clock::time_point at;
    TimerId id;
    bool operator>(const Due& o) const { return at > o.at || (at == o.at && id > o.id); }
  };
  UniqueFd ep_;
  Clock::time_point now_ = Clock::now();
  TimerId next_id_ = 1;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::unordered_map<TimerId, std::function<void()>> timers_;
  std::vector<std::function<void()>> deferred_;
};

}  // namespace egressd
