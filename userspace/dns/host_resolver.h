// host_resolver.h: a host name's addresses for the proxy's name checks,
// asked through egressd's one DNS client (upstream.h) on the daemon's Loop.
// A and AAAA are asked in parallel, CNAMEs followed, concurrent lookups of
// one name share them, and the result is cached (bounded, LRU) by the
// rules below. Nothing blocks; no exceptions on the data path.
//
// Lifetime: `done` runs later from the loop (never inside resolve()),
// exactly once, unless the resolver is destroyed first: its destructor
// cancels its questions and calls no callback. Whatever a callback captures
// must therefore live until it runs or the resolver dies (callers own both,
// or capture a weak token). Destroy the resolver before its client. A
// callback may call resolve() or destroy the resolver.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "dns/upstream.h"

namespace egressd::dns {

struct Resolution {
  int rcode = 0;               // of the answers: 0 NOERROR if either type had one, else e.g. 3 NXDOMAIN
  std::vector<IpAddr> addrs;   // A then AAAA, after following CNAMEs; empty for NXDOMAIN/NODATA
  std::string error;           // empty if an upstream answered (for A or AAAA); else why not
  bool from_cache = false;
};

class HostResolver {
 public:
  struct Options {
    std::chrono::milliseconds try_timeout{1000};  // per try (the proxy waits on it; the client's own is the resolver's)
    size_t cache_entries = 10000;
    std::chrono::seconds min_ttl{1}, max_ttl{300}, negative_ttl{5};
    size_t max_in_flight = 4096;  // names being looked up at once; more fail at once
  };
  using Done = std::function<void(const Resolution&)>;

  HostResolver(Loop& loop, UpstreamClient& upstream) : HostResolver(loop, upstream, Options{}) {}
  HostResolver(Loop& loop, UpstreamClient& upstream, Options options);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // `name` is a host name (any case, trailing dot allowed); an IP literal
  // resolves to itself without a query.
  void resolve(const std::string& name, Done done);
  // A fresh cache entry, if any (does not count as a use for LRU).
  std::optional<Resolution> cached(const std::string& name) const;
  size_t in_flight() const { return lookups_.size(); }
  size_t cache_size() const { return cache_.size(); }

 private:
  struct Half;
  struct Lookup;
  struct CacheEntry {
    Resolution result;
    Loop::Clock::time_point expires;
    std::list<std::string>::iterator lru;
  };

  void later(Done done, Resolution r);
  void ask(Lookup& l, Half& h);
  void answered(const std::string& name, uint16_t qtype, UpstreamReply&& reply);
  void finish(std::shared_ptr<Lookup> lookup);
  void remember(const std::string& name, const Resolution& r, std::chrono::seconds ttl);

  Loop& loop_;
  UpstreamClient& upstream_;
  Options opt_;
  std::unordered_map<std::string, std::shared_ptr<Lookup>> lookups_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::list<std::string> lru_;  // most recently used first
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // deferred work holds a weak_ptr
};

}  // namespace egressd::dns
