// token_bucket.h: rate limits for what a flood would otherwise multiply:
// events and log lines. A bucket holds up to `burst` tokens and gains
// `rate` per second; each take() spends one.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace egressd {

struct TokenBucket {
  using Clock = std::chrono::steady_clock;
  double tokens = 0;
  Clock::time_point last{};  // never taken yet: starts full

  bool take(double rate, double burst, Clock::time_point now) {
    if (last == Clock::time_point{}) {
      tokens = burst;
    } else {
      double dt = std::chrono::duration<double>(now - last).count();
      tokens = std::min(burst, tokens + std::max(0.0, dt) * rate);
    }
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }
};

// Log lines about one recurring condition, at most `rate` per second
// (bursts of `burst`); the lines left out are counted and the next line
// says how many.
class ThrottledLog {
 public:
  using Sink = std::function<void(const std::string&)>;
  ThrottledLog(double rate, double burst) : rate_(rate), burst_(burst) {}

  // `line()` is built only when it is written.
  template <class Fn>
  void say(const Sink& sink, TokenBucket::Clock::time_point now, Fn&& line) {
    if (!sink || !bucket_.take(rate_, burst_, now)) {
      ++left_out_;
      return;
    }
    std::string text = line();
    if (left_out_) text += " (" + std::to_string(left_out_) + " similar lines left out before this one)";
    left_out_ = 0;
    sink(text);
  }
  uint64_t left_out() const { return left_out_; }

 private:
  double rate_, burst_;
  TokenBucket bucket_;
  uint64_t left_out_ = 0;
};

}  // namespace egressd
