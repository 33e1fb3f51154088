// hub.h: fans decoded events out to live subscribers (egressd tail) over a
// Unix stream socket. A subscriber sends one line, "json" or "text", and
// gets "ok <cgroup path>" back once it is registered, then one event per
// line. Each subscriber has a bounded output queue flushed as its socket
// drains; a subscriber too slow for even that loses lines, and is told how
// many, but never stalls the daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "events/event.h"

namespace egressd {

class Hub {
 public:
  static constexpr size_t kMaxQueuedBytes = 16u << 20;
  static constexpr size_t kMaxSubscribers = 64;
  static constexpr int kHelloTimeoutSeconds = 10;

  // Registers its fds (listener, subscribers) in `epoll_fd` itself.
  static Result<Hub> listen(const std::string& socket_path, std::string cgroup_path, int epoll_fd);
  Hub(Hub&&) = default;
  Hub& operator=(Hub&&) = default;
  ~Hub();

  // True if `fd` is the listener or a subscriber; handles its epoll events.
  bool handle(int fd, uint32_t events);
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
  struct Sub {
    UniqueFd fd;
    Mode mode = Mode::Pending;
    std::string inbuf;
    std::string out;        // queued; bytes before out_off are already sent
    size_t out_off = 0;
    uint64_t dropped = 0;   // lines lost since the last notice
    bool want_write = false;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  };
  Hub() = default;
  void accept_all();
  bool on_input(Sub& s);
  void enqueue(Sub& s, const std::string& line);
  bool flush(Sub& s);  // false: the subscriber is gone
  void watch(int fd, uint32_t events, int op);
  void close_sub(int fd);

  UniqueFd listen_;
  int epoll_fd_ = -1;
  std::string path_;
  uint64_t path_ino_ = 0;
  std::string cgroup_path_;
  std::map<int, Sub> subs_;
  uint64_t dropped_total_ = 0;
  bool listener_paused_ = false;
};

}  // namespace egressd
