// clock.h: clock readings shared by the daemon and the CLI.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace egressd {

// Nanoseconds on `clock` (CLOCK_REALTIME, CLOCK_BOOTTIME, ...).
inline int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Wall-clock nanoseconds since the epoch, as events and records carry them.
inline uint64_t unix_now_ns() { return static_cast<uint64_t>(clock_ns(CLOCK_REALTIME)); }

// Milliseconds since `t`, fractional, for the timings attach and reload log.
inline double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Milliseconds left until `deadline`, as poll() takes them: 0 once passed.
inline int ms_until(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace egressd
