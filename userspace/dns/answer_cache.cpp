#include "dns/answer_cache.h"

#include <algorithm>

#include "common/big_endian.h"
#include "dns/message.h"

namespace egressd::dns {
namespace {

constexpr size_t kEntryOverhead = 160;  // map node, list node, vectors' headers: an estimate

}  // namespace

std::string AnswerCache::key(std::string_view qname, uint16_t qtype, uint16_t qclass, bool dnssec_ok,
                             bool checking_disabled) {
  std::string k;
  key_into(k, qname, qtype, qclass, dnssec_ok, checking_disabled);
  return k;
}

void AnswerCache::key_into(std::string& k, std::string_view qname, uint16_t qtype, uint16_t qclass, bool dnssec_ok,
                           bool checking_disabled) {
  // names never hold a raw NUL (the parser escapes it)
  const char tail[6] = {'\0',
                        static_cast<char>(qtype >> 8),
                        static_cast<char>(qtype),
                        static_cast<char>(qclass >> 8),
                        static_cast<char>(qclass),
                        static_cast<char>((dnssec_ok ? 1 : 0) | (checking_disabled ? 2 : 0))};
  k.assign(qname);
  k.append(tail, sizeof(tail));
}

bool AnswerCache::put(const std::string& key, std::string_view qname, std::vector<uint8_t> message,
                      Clock::time_point now, uint64_t tag) {
  ParseResult p = parse_message(message);
  return put(key, qname, std::move(message), p, now, tag);
}

bool AnswerCache::put(const std::string& key, std::string_view qname, std::vector<uint8_t> message,
                      const ParseResult& p, Clock::time_point now, uint64_t tag) {
  if (p.status != ParseStatus::Ok) return false;
  const Message& m = p.message;
  if (m.header.tc || m.edns || (m.header.rcode != kRcodeNoError && m.header.rcode != kRcodeNxDomain)) return false;

  Entry e;
  uint32_t ttl = UINT32_MAX;
  for (const auto* section : {&m.answers, &m.authority, &m.additional}) {
    for (const Record& r : *section) {
      e.ttls.emplace_back(static_cast<uint32_t>(r.rdata_offset - 6), r.ttl);
      ttl = std::min(ttl, r.ttl);
    }
  }
  bool negative = m.header.rcode == kRcodeNxDomain || m.answers.empty();
  if (negative) {
    // RFC 2308 section 5: the SOA's TTL, capped by its MINIMUM field.
    const Record* soa = nullptr;
    for (const Record& r : m.authority)
      if (r.type == kTypeSOA && r.rdata_length >= 20) soa = &r;
    if (!soa) return false;
    uint32_t minimum = be32(&message[soa->end - 4]);
    ttl = std::min(ttl, std::min(soa->ttl, minimum));
  }
  if (ttl == UINT32_MAX) return false;
  if (!m.questions.empty()) {
    uint16_t qtype = m.questions[0].type;
    if (qtype == kTypeA || qtype == kTypeAAAA) e.addrs = addresses_for(m, qname).addrs;
  }
  auto life = std::clamp(std::chrono::seconds(ttl), opt_.min_lifetime, opt_.max_ttl);
  e.stored = now;
  e.expires = now + life;
  e.tag = tag;
  e.cost = message.size() + 2 * key.size() + e.ttls.size() * 8 + e.addrs.size() * sizeof(IpAddr) + kEntryOverhead;
  if (e.cost > opt_.max_bytes / 4) return false;
  e.message = std::move(message);

  if (auto it = entries_.find(key); it != entries_.end()) erase(it);
  while (bytes_ + e.cost > opt_.max_bytes && !lru_.empty()) erase(entries_.find(lru_.back()));  // bounded by size()
  lru_.push_front(key);
  e.lru = lru_.begin();
  bytes_ += e.cost;
  entries_.emplace(key, std::move(e));
  return true;
}

std::optional<std::vector<uint8_t>> AnswerCache::get(const std::string& key, Clock::time_point now) {
  std::vector<uint8_t> out;
  if (!get_into(key, now, out)) return std::nullopt;
  return out;
}

bool AnswerCache::get_into(const std::string& key, Clock::time_point now, std::vector<uint8_t>& out, uint64_t* tag) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  Entry& e = it->second;
  if (e.expires <= now) {
    erase(it);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, e.lru);
  auto age = std::chrono::duration_cast<std::chrono::seconds>(now - e.stored).count();
  auto left = std::chrono::duration_cast<std::chrono::seconds>(e.expires - now).count();
  out.assign(e.message.begin(), e.message.end());
  for (auto [offset, original] : e.ttls) {
    int64_t ttl = std::min<int64_t>(static_cast<int64_t>(original) - age, left);
    uint32_t v = static_cast<uint32_t>(std::max<int64_t>(ttl, 0));
    out[offset] = static_cast<uint8_t>(v >> 24);
    out[offset + 1] = static_cast<uint8_t>(v >> 16);
    out[offset + 2] = static_cast<uint8_t>(v >> 8);
    out[offset + 3] = static_cast<uint8_t>(v);
  }
  if (tag) *tag = e.tag;
  return true;
}

std::optional<std::vector<IpAddr>> AnswerCache::addresses(std::string_view raw, Clock::time_point now) const {
  std::string name = canonical_name(raw);
  std::optional<std::vector<IpAddr>> out;
  for (uint16_t type : {kTypeA, kTypeAAAA}) {
    for (int flags = 0; flags < 4; ++flags) {
      auto it = entries_.find(key(name, type, kClassIN, flags & 1, flags & 2));
      if (it == entries_.end() || it->second.expires <= now) continue;
      if (!out) out.emplace();
      for (const IpAddr& a : it->second.addrs)
        if (std::find(out->begin(), out->end(), a) == out->end()) out->push_back(a);
    }
  }
  return out;
}

void AnswerCache::erase(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.cost;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void AnswerCache::clear() {
  entries_.clear();
  lru_.clear();
  bytes_ = 0;
}

}  // namespace egressd::dns
