// recent_answers.h: the addresses egressd's resolver gave clients for each
// name, remembered past their TTL. Clients keep addresses longer than the
// TTL says (libcurl caches names for 60 s, JVMs longer) while CDNs rotate
// them, so a connection to an address the name was answered with a minute
// ago still goes to that name: the proxy's SNI/Host check accepts such an
// address for a grace window after its TTL ([proxy] address_grace). The
// address checks (rebinding, deny_cidr) still judge it like any other.
//
// One store per daemon, fed with every answer the resolver forwards.
// Bounded: at most max_names names (the least recently answered leaves
// first), max_addrs addresses per name (the one whose TTL ended first
// leaves first), nothing kept longer than TTL + max_grace. Pure: time is
// passed in; names are taken as given (callers canonicalize).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ip_addr.h"

namespace egressd::proxy {

class RecentAnswers {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    size_t max_names = 4096;
    size_t max_addrs = 16;                // per name
    std::chrono::seconds max_grace{3600};  // the longest grace a policy may ask for
    std::chrono::seconds max_ttl{86400};   // longer TTLs count as this
  };

  RecentAnswers() : RecentAnswers(Options{}) {}
  explicit RecentAnswers(Options o) : opt_(o) {}

  // `name` was answered with `addrs`, valid for `ttl` from `now`.
  void note(std::string_view name, const std::vector<IpAddr>& addrs, std::chrono::seconds ttl, Clock::time_point now);
  // The addresses answered for `name` whose TTL has not ended more than
  // `grace` before `now` (grace is capped by max_grace).
  std::vector<IpAddr> within(std::string_view name, std::chrono::seconds grace, Clock::time_point now) const;

  size_t names() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<std::pair<IpAddr, Clock::time_point>> addrs;  // address, end of its TTL
    std::list<std::string>::iterator lru;
  };
  bool stale(const Entry& e, Clock::time_point now) const;  // nothing in it can be asked for any more
  void erase(std::unordered_map<std::string, Entry>::iterator it);

  Options opt_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently answered first
};

}  // namespace egressd::proxy
