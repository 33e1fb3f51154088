// hub.h: fans decoded events out to live subscribers (egressd tail) over a
// Unix stream socket. A subscriber sends one line, "json" or "text", and
// gets "ok <cgroup path>" back once it is registered, then one event per
// line. A subscriber that cannot keep up loses lines (counted), never stalls
// the daemon.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "events/event.h"

namespace egressd {

class Hub {
 public:
  static Result<Hub> listen(const std::string& socket_path, std::string cgroup_path);
  Hub(Hub&&) = default;
  Hub& operator=(Hub&&) = default;
  ~Hub();

  int listen_fd() const { return listen_.get(); }
  // Accepts one pending connection; returns its fd (to watch) or -1.
  int accept_one();
  // Input or hang-up on a subscriber fd. Returns false once it is closed.
  bool on_readable(int fd);
  void publish(const Event& e);
  uint64_t dropped_lines() const { return dropped_; }
  size_t subscribers() const { return subs_.size(); }

 private:
  enum class Mode { Pending, Json, Text };
  struct Sub {
    UniqueFd fd;
    Mode mode = Mode::Pending;
    std::string inbuf;
  };
  Hub() = default;
  bool send_line(Sub& s, const std::string& line);

  UniqueFd listen_;
  std::string path_;
  uint64_t path_ino_ = 0;
  std::string cgroup_path_;
  std::map<int, Sub> subs_;
  uint64_t dropped_ = 0;
};

}  // namespace egressd
