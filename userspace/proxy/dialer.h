// dialer.h: the proxy's connection to the origin. The client's connect()
// landed on the proxy and succeeded, so the client can no longer fall back
// to the name's next address when the one it chose is dead; the proxy does
// it for it. The original address is dialed first; when that dial fails
// (refused, unreachable, or no answer within the attempt delay), the other
// addresses the admitted name resolved to, which the session has already
// judged like the original (fallback_order). Staggered as in Happy
// Eyeballs (RFC 8305): an attempt that has not answered within the delay
// stays open while the next one starts, and the first to connect wins.
// Non-blocking connects on the loop; bounded by the number of addresses and
// an overall deadline.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/unique_fd.h"
#include "events/event.h"

namespace egressd::proxy {

struct DialOptions {
  std::chrono::milliseconds attempt_delay{1000};  // before the next address is dialed alongside
  std::chrono::milliseconds deadline{10000};      // for all of them
};

struct DialResult {
  UniqueFd fd;                              // connected; invalid when every address failed
  IpAddr served;                            // the address fd is connected to
  DialError first_error = DialError::NONE;  // how the original address failed (NONE: it served)
  uint8_t dials = 0;                        // addresses dialed, the original included
};

// At most this many addresses per connection, the original included.
inline constexpr size_t kMaxDials = 4;

// How a connect() error reads in events.
DialError dial_error_of(int err);

// The addresses to dial after `original`, from those its name resolved to:
// the original's family first, then the other, each in answer order;
// never the original itself (nor, for an IPv6 form that embeds an IPv4
// host, that IPv4); only those `usable` admits (the policy's address
// check, as for the original); at most kMaxDials - 1.
std::vector<IpAddr> fallback_order(const IpAddr& original, const std::vector<IpAddr>& resolved,
                                   const std::function<bool(const IpAddr&)>& usable);

class Dialer {
 public:
  using Done = std::function<void(DialResult)>;
  explicit Dialer(Loop& loop) : loop_(loop) {}
  ~Dialer();
  Dialer(const Dialer&) = delete;
  Dialer& operator=(const Dialer&) = delete;

  // Dials `original`:`port`, then `others` (at most kMaxDials - 1 are
  // used). `done` runs exactly once: from the loop, or from inside start()
  // when no address could even be dialed.
  void start(const IpAddr& original, const std::vector<IpAddr>& others, uint16_t port, DialOptions options,
             Done done);
  // Abandons the dials in progress (the session ended): `done` never runs.
  void stop();

 private:
  // Attempts live in a fixed array for the Dialer's lifetime: an event the
  // loop collected before an attempt ended still finds a valid object.
  struct Attempt : Loop::Watcher {
    Dialer* d = nullptr;
    IpAddr addr;
    UniqueFd fd;
    DialError error = DialError::NONE;  // set once it failed
    void on_io(uint32_t events) override { d->on_io(*this, events); }
  };
  void on_io(Attempt& a, uint32_t events);
  void dial_next();  // starts the next address (repeats past immediate failures)
  void failed(Attempt& a, DialError e);
  void finish(Attempt* winner);
  void close_attempt(Attempt& a);

  Loop& loop_;
  std::array<Attempt, kMaxDials> attempts_;
  size_t planned_ = 0, started_ = 0, in_flight_ = 0;
  uint16_t port_ = 0;
  DialOptions opt_;
  Done done_;
  Loop::TimerId stagger_ = 0, deadline_ = 0;
  bool finished_ = true;
};

}  // namespace egressd::proxy
