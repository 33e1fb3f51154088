// hub.h: fans decoded events out to live subscribers (egressd tail) over a
// Unix stream socket. A subscriber sends one line, "json" or "text", and
// gets "ok <cgroup path>" back once it is registered, then one event per
// line. Each subscriber has a bounded output queue flushed as its socket
// drains; a subscriber too slow for even that loses lines, and is told how
// many, but never stalls the daemon. The listener and every subscriber are
// watchers on the daemon's Loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/loop.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "events/event.h"

namespace egressd {

class Hub {
 public:
  static constexpr size_t kMaxQueuedBytes = 16u << 20;
  static constexpr size_t kMaxSubscribers = 64;
  static constexpr int kHelloTimeoutSeconds = 10;

  // Watches the listener and its subscribers on `loop`, which must outlive the hub.
  static Result<std::unique_ptr<Hub>> listen(Loop& loop, const std::string& socket_path, std::string cgroup_path);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  void publish(const Event& e);
  // A line about the attachment itself rather than a decision (the fence
  // moved to a recreated cgroup): `json` is one object with a "type" key,
  // `text` one line; each subscriber gets the one in its format.
  void notice(const std::string& json, const std::string& text);
  // Moves the listening socket's file to `path` (the run files follow the
  // cgroup id); subscribers stay connected.
  Status rename_socket(const std::string& path);
  // Periodic: drops subscribers that never said hello, re-arms the listener
  // after running out of file descriptors.
  void tick();
  uint64_t dropped_lines() const { return dropped_total_; }
  size_t subscribers() const { return subs_.size(); }

 private:
  enum class Mode { Pending, Json, Text };
  struct Listener final : Loop::Watcher {
    Hub* hub = nullptr;
    void on_io(uint32_t) override { hub->accept_all(); }
  };
  struct Sub final : Loop::Watcher {
    Hub* hub = nullptr;
    UniqueFd fd;
    Mode mode = Mode::Pending;
    std::string inbuf;
    std::string out;        // queued; bytes before out_off are already sent
    size_t out_off = 0;
    uint64_t dropped = 0;   // lines lost since the last notice
    bool want_write = false;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    void on_io(uint32_t events) override { hub->on_sub_io(*this, events); }
  };
  using Subs = std::map<int, std::unique_ptr<Sub>>;
  explicit Hub(Loop& loop) : loop_(loop) { listener_.hub = this; }
  void accept_all();
  void on_sub_io(Sub& s, uint32_t events);
  bool on_input(Sub& s);
  void enqueue(Sub& s, const std::string& line);
  bool flush(Sub& s);  // false: the subscriber is gone
  // Closes the subscriber; the loop may still hold events for it in the
  // current batch, so it is freed after the batch (Loop's lifetime rule).
  Subs::iterator close_sub(Subs::iterator it);

  Loop& loop_;
  Listener listener_;
  UniqueFd listen_;
  std::string path_;
  uint64_t path_ino_ = 0;
  std::string cgroup_path_;
  Subs subs_;
  uint64_t dropped_total_ = 0;
  bool listener_paused_ = false;
};

}  // namespace egressd
