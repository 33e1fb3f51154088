// event_ring.h: the daemon's end of the hooks' event ring. Owns libbpf's
// ring_buffer (freed on every path out), watches its fd on the Loop, and
// drains it on a loop timer too: producers wake the consumer only once
// EGD_RING_WAKEUP_BYTES are unread, so below that events are collected
// every EGD_EVENT_POLL_MS.
#pragma once

#include <bpf/libbpf.h>

#include <functional>
#include <memory>

#include "common/loop.h"
#include "common/result.h"
#include "events/event.h"

namespace egressd::daemon {

class EventRing final : public Loop::Watcher {
 public:
  using Sink = std::function<void(const Event&)>;
  // `loop` must outlive the ring.
  static Result<std::unique_ptr<EventRing>> open(Loop& loop, int events_map_fd, Sink sink);
  EventRing(const EventRing&) = delete;
  EventRing& operator=(const EventRing&) = delete;
  ~EventRing();

  void drain();  // every record there now, to the sink
  void on_io(uint32_t) override { drain(); }

 private:
  EventRing(Loop& loop, Sink sink);
  static int on_record(void* ctx, void* data, size_t size);
  void poll();

  struct Free {
    void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
  };
  Loop& loop_;
  Sink sink_;
  int64_t boot_to_unix_;
  std::unique_ptr<ring_buffer, Free> rb_;
  Loop::TimerId poll_ = 0;
};

}  // namespace egressd::daemon
