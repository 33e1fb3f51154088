// answer_cache.h: the resolver's cache of filtered answers, keyed by
// question (name, type, class) and the DO and CD bits (they change what an
// upstream returns). TTLs are honoured: an entry lives as long as its
// shortest record (RFC 2308 for negative answers: the SOA's TTL capped by
// its minimum), and every reply carries TTLs aged by the time it spent
// here. Memory is bounded by a byte budget with least-recently-used
// eviction. The proxy asks it which addresses a client was given for a name.
// Pure (time is passed in), no exceptions.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_addr.h"
#include "dns/message.h"

namespace egressd::dns {

class AnswerCache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    size_t max_bytes = 16u << 20;        // messages, keys and bookkeeping
    std::chrono::seconds max_ttl{3600};  // longer TTLs are served shortened to this
    // Entries live at least this long, so the proxy can check a connection
    // made right after a TTL-0 answer against that answer; replies never
    // carry more than the record's own TTL aged.
    std::chrono::seconds min_lifetime{5};
  };

  AnswerCache() : AnswerCache(Options{}) {}
  explicit AnswerCache(Options options) : opt_(options) {}

  static std::string key(std::string_view qname, uint16_t qtype, uint16_t qclass, bool dnssec_ok,
                         bool checking_disabled);
  // The same into `out` (replaced, its capacity reused).
  static void key_into(std::string& out, std::string_view qname, uint16_t qtype, uint16_t qclass, bool dnssec_ok,
                       bool checking_disabled);

  // Stores an answer (no OPT record; NOERROR or NXDOMAIN) for `qname`.
  // False if it is not cacheable: another rcode, truncated, does not parse,
  // a negative answer without SOA, or too large for the budget.
  // `tag` is the caller's, kept with the entry and given back with every
  // hit (the resolver keeps its policy decision for the question there).
  bool put(const std::string& key, std::string_view qname, std::vector<uint8_t> message, Clock::time_point now,
           uint64_t tag = 0);
  // The same, with `message` already parsed into `parsed` (not parsed again).
  bool put(const std::string& key, std::string_view qname, std::vector<uint8_t> message, const ParseResult& parsed,
           Clock::time_point now, uint64_t tag = 0);
  // A copy with every TTL aged (and capped by the entry's remaining life);
  // the caller sets the id and the client's spelling of the question.
  std::optional<std::vector<uint8_t>> get(const std::string& key, Clock::time_point now);
  // The same copy into `out` (replaced, its capacity reused: no allocation
  // per hit) and the entry's tag; false, `out` untouched, on a miss.
  bool get_into(const std::string& key, Clock::time_point now, std::vector<uint8_t>& out, uint64_t* tag = nullptr);
  // The A and AAAA addresses cached for `name` (CNAMEs followed, as the
  // client was given them), from every fresh entry; nullopt if none is
  // cached. Does not count as a use.
  std::optional<std::vector<IpAddr>> addresses(std::string_view name, Clock::time_point now) const;

  size_t size() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }
  void clear();

 private:
  struct Entry {
    std::vector<uint8_t> message;
    std::vector<std::pair<uint32_t, uint32_t>> ttls;  // (offset of a TTL field, TTL as received)
    std::vector<IpAddr> addrs;                        // for A/AAAA questions
    Clock::time_point stored, expires;
    size_t cost = 0;
    uint64_t tag = 0;
    std::list<std::string>::iterator lru;
  };
  void erase(std::unordered_map<std::string, Entry>::iterator it);

  Options opt_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently used first
  size_t bytes_ = 0;
};

}  // namespace egressd::dns
