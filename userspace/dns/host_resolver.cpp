#include "dns/host_resolver.h"

#include <sys/socket.h>

#include <algorithm>

#include "dns/message.h"

namespace egressd::dns {

// One question (A or AAAA) of a lookup.
struct HostResolver::Half {
  uint16_t qtype = 0;
  UpstreamClient::Ticket ticket = 0;  // while asked
  bool done = false;
  // Outcome.
  bool answered = false;
  uint16_t rcode = kRcodeServFail;
  std::vector<IpAddr> addrs;
  uint32_t ttl = 0;
  std::string error;
};

struct HostResolver::Lookup {
  std::string name;
  Half a, aaaa;
  std::vector<Done> waiters;
};

HostResolver::HostResolver(Loop& loop, UpstreamClient& upstream, Options options)
    : loop_(loop), upstream_(upstream), opt_(std::move(options)) {}

HostResolver::~HostResolver() {
  alive_.reset();  // deferred deliveries see this and call nothing
  for (auto& [name, lookup] : lookups_) {
    upstream_.cancel(lookup->a.ticket);
    upstream_.cancel(lookup->aaaa.ticket);
  }
}

void HostResolver::later(Done done, Resolution r) {
  loop_.defer([alive = std::weak_ptr<int>(alive_), done = std::move(done), r = std::move(r)] {
    if (!alive.expired()) done(r);
  });
}

void HostResolver::resolve(const std::string& raw, Done done) {
  auto fail = [&](std::string error) {
    Resolution r;
    r.rcode = kRcodeServFail;
    r.error = std::move(error);
    later(std::move(done), std::move(r));
  };
  if (auto ip = IpAddr::parse(raw)) {
    Resolution r;
    r.addrs.push_back(*ip);
    return later(std::move(done), std::move(r));
  }
  std::string name = canonical_name(raw);
  std::vector<uint8_t> wire;
  if (name.empty() || !append_name(wire, name)) return fail("invalid name");

  if (auto it = cache_.find(name); it != cache_.end()) {
    if (it->second.expires > Loop::Clock::now()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      Resolution r = it->second.result;
      r.from_cache = true;
      return later(std::move(done), std::move(r));
    }
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  if (auto it = lookups_.find(name); it != lookups_.end()) {
    it->second->waiters.push_back(std::move(done));  // coalesced
    return;
  }
  if (!upstream_.has_upstreams()) return fail("no DNS upstreams");
  if (lookups_.size() >= opt_.max_in_flight) return fail("too many DNS lookups in flight");

  auto lookup = std::make_shared<Lookup>();
  lookup->name = name;
  lookup->waiters.push_back(std::move(done));
  lookup->a.qtype = kTypeA;
  lookup->aaaa.qtype = kTypeAAAA;
  lookups_.emplace(name, lookup);
  UpstreamQuestion q;
  q.name = std::move(wire);
  q.text = name;
  q.klass = kClassIN;
  q.try_timeout = opt_.try_timeout;
  for (Half* h : {&lookup->a, &lookup->aaaa}) {
    q.type = h->qtype;
    h->ticket = upstream_.ask(q, [this, name, qtype = h->qtype](UpstreamReply&& r) { answered(name, qtype, std::move(r)); });
    if (!h->ticket) {
      h->done = true;
      h->error = "too many DNS questions in flight";
    }
  }
  // Neither was asked: the waiters hear so later, as from an upstream.
  if (lookup->a.done && lookup->aaaa.done) {
    loop_.defer([this, alive = std::weak_ptr<int>(alive_), lookup] {
      if (!alive.expired()) finish(lookup);
    });
  }
}

std::optional<Resolution> HostResolver::cached(const std::string& raw) const {
  auto it = cache_.find(canonical_name(raw));
  if (it == cache_.end() || it->second.expires <= Loop::Clock::now()) return std::nullopt;
  Resolution r = it->second.result;
  r.from_cache = true;
  return r;
}

// The client tried every upstream it had for this half (timeouts, SERVFAIL,
// a FORMERR without EDNS too); only NOERROR and NXDOMAIN are answers.
void HostResolver::answered(const std::string& name, uint16_t qtype, UpstreamReply&& r) {
  auto it = lookups_.find(name);
  if (it == lookups_.end()) return;
  std::shared_ptr<Lookup> lookup = it->second;
  Half& h = qtype == kTypeA ? lookup->a : lookup->aaaa;
  h.ticket = 0;
  h.done = true;
  h.error = std::move(r.error);
  uint16_t rcode = r.answered ? r.message.header.rcode : kRcodeServFail;
  if (r.answered && rcode != kRcodeNoError && rcode != kRcodeNxDomain) {
    h.rcode = rcode;
  } else if (r.answered) {
    AddressAnswer answer = addresses_for(r.message, name);
    if (answer.chain_too_long) {
      h.error = r.upstream + ": CNAME chain longer than " + std::to_string(kMaxCnameHops);
    } else {
      int family = qtype == kTypeA ? AF_INET : AF_INET6;
      for (const IpAddr& a : answer.addrs)
        if (a.family == family) h.addrs.push_back(a);
      h.answered = true;
      h.rcode = rcode;
      h.ttl = answer.ttl;
      h.error.clear();
    }
  }
  if (lookup->a.done && lookup->aaaa.done) finish(std::move(lookup));
}

// Runs from the loop (the client's delivery, or deferred): never inside resolve().
void HostResolver::finish(std::shared_ptr<Lookup> lookup) {
  lookups_.erase(lookup->name);
  const Lookup& l = *lookup;
  Resolution r;
  if (!l.a.answered && !l.aaaa.answered) {
    r.rcode = l.a.rcode;
    r.error = l.a.error == l.aaaa.error ? l.a.error : "A: " + l.a.error + "; AAAA: " + l.aaaa.error;
    if (r.error.empty()) r.error = "no answer";
  } else {
    bool noerror = (l.a.answered && l.a.rcode == kRcodeNoError) || (l.aaaa.answered && l.aaaa.rcode == kRcodeNoError);
    r.rcode = noerror ? kRcodeNoError : (l.a.answered ? l.a.rcode : l.aaaa.rcode);
    r.addrs = l.a.addrs;
    r.addrs.insert(r.addrs.end(), l.aaaa.addrs.begin(), l.aaaa.addrs.end());
    std::chrono::seconds ttl = opt_.negative_ttl;
    if (!r.addrs.empty()) {
      uint32_t min_ttl = UINT32_MAX;
      for (const Half* x : {&l.a, &l.aaaa})
        if (!x->addrs.empty()) min_ttl = std::min(min_ttl, x->ttl);
      ttl = std::clamp(std::chrono::seconds(min_ttl), opt_.min_ttl, opt_.max_ttl);
    }
    // Half an answer (one type failed) is kept only briefly, so the failed
    // half is asked again soon.
    if (!l.a.answered || !l.aaaa.answered) ttl = std::min(ttl, opt_.negative_ttl);
    remember(l.name, r, ttl);
  }
  std::weak_ptr<int> alive = alive_;
  for (Done& done : lookup->waiters) {  // a callback may destroy the resolver: check before each
    if (alive.expired()) return;
    done(r);
  }
}

void HostResolver::remember(const std::string& name, const Resolution& r, std::chrono::seconds ttl) {
  if (opt_.cache_entries == 0 || ttl.count() <= 0) return;
  auto expires = Loop::Clock::now() + ttl;
  if (auto it = cache_.find(name); it != cache_.end()) {
    it->second.result = r;
    it->second.expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  while (cache_.size() >= opt_.cache_entries) {  // bounded: one eviction per entry
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(name);
  cache_.emplace(name, CacheEntry{r, expires, lru_.begin()});
}

}  // namespace egressd::dns
