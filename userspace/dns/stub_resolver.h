// stub_resolver.h: an asynchronous DNS stub resolver on the daemon's Loop.
// The proxy asks it for a name's addresses to check a client's original
// destination against them; the filtering DNS proxy (issue 5) will reuse it.
//
// Each query goes out on a fresh connected UDP socket (kernel-chosen source
// port) with a random id; an answer counts only if its id and question
// match. A truncated answer is asked again over TCP. A and AAAA are asked
// in parallel, concurrent lookups of one name share them, and answers are
// cached (bounded, LRU). Nothing blocks; no exceptions on the data path.
//
// Lifetime: `done` runs later from the loop (never inside resolve()),
// exactly once, unless the resolver is destroyed first: its destructor
// closes every socket, cancels its timers and calls no callback. Whatever a
// callback captures must therefore live until it runs or the resolver dies
// (callers own both, or capture a weak token). Destroy the resolver before
// its Loop. A callback may call resolve() or destroy the resolver.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/result.h"
#include "dns/message.h"

namespace egressd::dns {

struct Resolution {
  int rcode = 0;               // of the answers: 0 NOERROR if either type had one, else e.g. 3 NXDOMAIN
  std::vector<IpAddr> addrs;   // A then AAAA, after following CNAMEs; empty for NXDOMAIN/NODATA
  std::string error;           // empty if an upstream answered (for A or AAAA); else why not
  bool from_cache = false;
};

class StubResolver {
 public:
  struct Options {
    std::vector<sockaddr_storage> upstreams;  // tried in turn, `attempts` rounds
    std::chrono::milliseconds try_timeout{1000};
    int attempts = 2;  // per upstream
    size_t cache_entries = 10000;
    std::chrono::seconds min_ttl{1}, max_ttl{300}, negative_ttl{5};
    size_t max_in_flight = 4096;  // names being looked up at once; more fail at once
    uint16_t edns_udp_size = 1232;  // 0: no EDNS0 (a FORMERR answer also turns it off for that query)
  };
  using Done = std::function<void(const Resolution&)>;

  StubResolver(Loop& loop, Options options);
  ~StubResolver();
  StubResolver(const StubResolver&) = delete;
  StubResolver& operator=(const StubResolver&) = delete;

  // `name` is a host name (any case, trailing dot allowed); an IP literal
  // resolves to itself without a query.
  void resolve(const std::string& name, Done done);
  // A fresh cache entry, if any (does not count as a use for LRU).
  std::optional<Resolution> cached(const std::string& name) const;
  size_t in_flight() const { return lookups_.size(); }
  size_t cache_size() const { return cache_.size(); }

 private:
  struct Conn;
  struct Lookup;
  struct Query;
  struct CacheEntry {
    Resolution result;
    Loop::Clock::time_point expires;
    std::list<std::string>::iterator lru;
  };

  void fail_later(Done done, std::string error);
  void start(Query& q);
  bool open_udp(Query& q);
  bool open_tcp(Query& q);
  bool watch(Query& q, std::shared_ptr<Conn> conn, uint32_t events);
  void retire(Query& q);
  void try_failed(Query& q, std::string error);
  void on_io(Conn& conn, uint32_t events);
  void udp_input(Query& q);
  void tcp_io(Query& q, Conn& conn, uint32_t events);
  bool matches(const Query& q, const Message& m) const;
  void on_answer(Query& q, const Message& m);
  void finish(Query& q);
  void deliver(std::shared_ptr<Lookup> lookup);
  void remember(const std::string& name, const Resolution& r, std::chrono::seconds ttl);
  uint16_t random_id();

  Loop& loop_;
  Options opt_;
  std::unordered_map<std::string, std::shared_ptr<Lookup>> lookups_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::list<std::string> lru_;  // most recently used first
  std::vector<uint8_t> rx_;     // one UDP datagram
  uint16_t ids_[32] = {};
  size_t ids_left_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // deferred work holds a weak_ptr
};

// Upstreams from resolv.conf text: `nameserver ADDR` lines (IPv4 or IPv6,
// a numeric %scope allowed), port 53, at most 3 like glibc; comments and
// other keywords skipped.
std::vector<sockaddr_storage> parse_resolv_conf(std::string_view text);
// Reads and parses a resolv.conf (start-up only: blocking). An error if it
// names no nameserver.
Result<std::vector<sockaddr_storage>> read_resolv_conf(const std::string& path = "/etc/resolv.conf");
// "1.2.3.4:53", "[::1]:53".
std::string to_string(const sockaddr_storage& addr);

}  // namespace egressd::dns
