#include "daemon/event_ring.h"

#include <cstring>

namespace egressd::daemon {

EventRing::EventRing(Loop& loop, Sink sink)
    : loop_(loop), sink_(std::move(sink)), boot_to_unix_(boottime_to_unix_offset_ns()) {}

Result<std::unique_ptr<EventRing>> EventRing::open(Loop& loop, int events_map_fd, Sink sink) {
  std::unique_ptr<EventRing> r(new EventRing(loop, std::move(sink)));
  r->rb_.reset(ring_buffer__new(events_map_fd, &EventRing::on_record, r.get(), nullptr));
  if (!r->rb_) return sys_error("open event ring");
  EGD_TRY(loop.add(ring_buffer__epoll_fd(r->rb_.get()), EPOLLIN, r.get()));
  r->poll();
  return r;
}

EventRing::~EventRing() {
  if (poll_) loop_.cancel(poll_);
  if (rb_) {
    loop_.remove(ring_buffer__epoll_fd(rb_.get()));
    drain();  // what the hooks wrote before we stopped still reaches the log
  }
}

int EventRing::on_record(void* ctx, void* data, size_t size) {
  if (size < sizeof(egd_event)) return 0;
  auto* self = static_cast<EventRing*>(ctx);
  egd_event raw;
  std::memcpy(&raw, data, sizeof(raw));
  self->sink_(decode_event(raw, self->boot_to_unix_));
  return 0;
}

void EventRing::drain() { ring_buffer__consume(rb_.get()); }

void EventRing::poll() {
  poll_ = loop_.after(std::chrono::milliseconds(EGD_EVENT_POLL_MS), [this] {
    poll_ = 0;
    drain();
    poll();
  });
}

}  // namespace egressd::daemon
