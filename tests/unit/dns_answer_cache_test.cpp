// Test the resolver's answer cache (dns/answer_cache.h): TTLs honoured and
// aged on every reply, capped lifetimes, negative caching from the SOA,
// what is never cached, the byte budget with LRU eviction, and the
// addresses the proxy checks against.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/answer_cache.h"
#include "dns/builder.h"
#include "dns/message.h"

namespace egressd::dns {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;
using Clock = AnswerCache::Clock;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

Bytes answer(const std::string& name, uint16_t type, std::vector<std::pair<const char*, uint32_t>> addrs,
             uint16_t rcode = 0, std::string cname = "", uint32_t cname_ttl = 600) {
  Header h;
  h.id = 7;
  h.qr = h.rd = h.ra = true;
  h.rcode = rcode;
  MessageBuilder b(h);
  b.question(name, type);
  std::string owner = name;
  if (!cname.empty()) {
    b.cname(Section::Answer, name, cname_ttl, cname);
    owner = cname;
  }
  for (auto [a, ttl] : addrs) b.address(Section::Answer, owner, ttl, ip(a));
  return b.bytes();
}

Bytes negative(const std::string& name, uint16_t rcode, uint32_t soa_ttl, uint32_t minimum) {
  Header h;
  h.id = 7;
  h.qr = h.ra = true;
  h.rcode = rcode;
  MessageBuilder b(h);
  b.question(name, kTypeA);
  Bytes soa = {2, 'n', 's', 0, 1, 'h', 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  for (int i = 3; i >= 0; --i) soa.push_back(static_cast<uint8_t>(minimum >> (8 * i)));
  b.record(Section::Authority, "example.com", kTypeSOA, soa_ttl, soa);
  return b.bytes();
}

std::vector<uint32_t> ttls(const Bytes& wire) {
  ParseResult p = parse_message(wire);
  EXPECT_EQ(p.status, ParseStatus::Ok) << p.error;
  std::vector<uint32_t> out;
  for (const auto* s : {&p.message.answers, &p.message.authority})
    for (const Record& r : *s) out.push_back(r.ttl);
  return out;
}

std::string key_a(const std::string& name) { return AnswerCache::key(name, kTypeA, kClassIN, false, false); }

TEST(AnswerCache, TtlsAgeAndTheEntryLivesAsItsShortestRecord) {
  AnswerCache c;
  Clock::time_point t0{};
  t0 += 1000s;
  ASSERT_TRUE(c.put(key_a("a.example.com"), "a.example.com",
                    answer("a.example.com", kTypeA, {{"203.0.113.1", 100}, {"203.0.113.2", 40}}), t0));
  auto fresh = c.get(key_a("a.example.com"), t0);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(ttls(*fresh), (std::vector<uint32_t>{40, 40}));  // capped by the entry's life (its shortest record)
  auto later = c.get(key_a("a.example.com"), t0 + 15s);
  ASSERT_TRUE(later);
  EXPECT_EQ(ttls(*later), (std::vector<uint32_t>{25, 25}));
  EXPECT_EQ(later->size(), fresh->size());
  EXPECT_FALSE(c.get(key_a("a.example.com"), t0 + 40s)) << "expired with its shortest TTL";
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
}

TEST(AnswerCache, LongTtlsAreCappedShortOnesLiveAMinimum) {
  AnswerCache::Options o;
  o.max_ttl = 3600s;
  o.min_lifetime = 5s;
  AnswerCache c(o);
  Clock::time_point t0{};
  ASSERT_TRUE(c.put(key_a("long.example.com"), "long.example.com",
                    answer("long.example.com", kTypeA, {{"203.0.113.1", 86400}}), t0));
  EXPECT_EQ(ttls(*c.get(key_a("long.example.com"), t0 + 100s)), (std::vector<uint32_t>{3500}));
  EXPECT_FALSE(c.get(key_a("long.example.com"), t0 + 3600s));
  ASSERT_TRUE(c.put(key_a("zero.example.com"), "zero.example.com",
                    answer("zero.example.com", kTypeA, {{"203.0.113.9", 0}}), t0));
  auto z = c.get(key_a("zero.example.com"), t0 + 4s);
  ASSERT_TRUE(z) << "kept a few seconds for the proxy's check";
  EXPECT_EQ(ttls(*z), (std::vector<uint32_t>{0})) << "but never served with more than its TTL";
  EXPECT_FALSE(c.get(key_a("zero.example.com"), t0 + 5s));
}

TEST(AnswerCache, NegativeAnswersLiveByTheirSoa) {
  AnswerCache c;
  Clock::time_point t0{};
  ASSERT_TRUE(
      c.put(key_a("nx.example.com"), "nx.example.com", negative("nx.example.com", kRcodeNxDomain, 900, 60), t0));
  EXPECT_TRUE(c.get(key_a("nx.example.com"), t0 + 59s));
  EXPECT_FALSE(c.get(key_a("nx.example.com"), t0 + 60s)) << "SOA minimum caps the SOA's TTL (RFC 2308)";
  ASSERT_TRUE(c.put(key_a("nodata.example.com"), "nodata.example.com", negative("nodata.example.com", 0, 30, 600), t0));
  EXPECT_FALSE(c.get(key_a("nodata.example.com"), t0 + 30s));
  // Without an SOA a negative answer has no lifetime.
  EXPECT_FALSE(c.put(key_a("x.example.com"), "x.example.com", answer("x.example.com", kTypeA, {}, kRcodeNxDomain), t0));
  EXPECT_FALSE(c.put(key_a("x.example.com"), "x.example.com", answer("x.example.com", kTypeA, {}), t0));
}

TEST(AnswerCache, NeverCachesFailuresTruncationOrGarbage) {
  AnswerCache c;
  Clock::time_point t0{};
  EXPECT_FALSE(c.put(key_a("a.example.com"), "a.example.com",
                     answer("a.example.com", kTypeA, {{"203.0.113.1", 60}}, kRcodeServFail), t0));
  Bytes tc = answer("a.example.com", kTypeA, {{"203.0.113.1", 60}});
  tc[2] |= 0x02;
  EXPECT_FALSE(c.put(key_a("a.example.com"), "a.example.com", tc, t0));
  EXPECT_FALSE(c.put(key_a("a.example.com"), "a.example.com", Bytes{1, 2, 3}, t0));
  EXPECT_EQ(c.size(), 0u);
}

TEST(AnswerCache, KeysSeparateTypeClassAndDnssecBits) {
  EXPECT_NE(AnswerCache::key("a.example.com", kTypeA, 1, false, false),
            AnswerCache::key("a.example.com", kTypeAAAA, 1, false, false));
  EXPECT_NE(AnswerCache::key("a.example.com", kTypeA, 1, false, false),
            AnswerCache::key("a.example.com", kTypeA, 1, true, false));
  EXPECT_NE(AnswerCache::key("a.example.com", kTypeA, 1, false, false),
            AnswerCache::key("a.example.com", kTypeA, 1, false, true));
  EXPECT_NE(AnswerCache::key("a.example.com", kTypeA, 1, false, false),
            AnswerCache::key("a.example.co", kTypeA, 1, false, false));
}

// The byte budget holds whatever is stored; the least recently used go first.
TEST(AnswerCache, ByteBudgetEvictsLeastRecentlyUsed) {
  AnswerCache::Options o;
  o.max_bytes = 4000;
  AnswerCache c(o);
  Clock::time_point t0{};
  for (int i = 0; i < 200; ++i) {
    std::string name = "n" + std::to_string(i) + ".example.com";
    ASSERT_TRUE(c.put(key_a(name), name, answer(name, kTypeA, {{"203.0.113.1", 600}}), t0));
    if (i >= 1) ASSERT_TRUE(c.get(key_a("n0.example.com"), t0)) << "used, so kept, at " << i;
    EXPECT_LE(c.bytes(), o.max_bytes);
  }
  EXPECT_GT(c.size(), 5u);
  EXPECT_LT(c.size(), 200u);
  EXPECT_FALSE(c.get(key_a("n1.example.com"), t0));
  EXPECT_TRUE(c.get(key_a("n199.example.com"), t0));
  // An answer larger than a quarter of the budget is not cached at all.
  std::vector<std::pair<const char*, uint32_t>> many(100, {"203.0.113.1", 60});
  EXPECT_FALSE(c.put(key_a("big.example.com"), "big.example.com", answer("big.example.com", kTypeA, many), t0));
  // Replacing an entry does not count it twice.
  size_t before = c.bytes();
  ASSERT_TRUE(c.put(key_a("n199.example.com"), "n199.example.com",
                    answer("n199.example.com", kTypeA, {{"203.0.113.1", 600}}), t0));
  EXPECT_EQ(c.bytes(), before);
}

TEST(AnswerCache, AddressesAreWhatClientsWereGiven) {
  AnswerCache c;
  Clock::time_point t0{};
  EXPECT_FALSE(c.addresses("web.example.com", t0));
  ASSERT_TRUE(c.put(key_a("web.example.com"), "web.example.com",
                    answer("web.example.com", kTypeA, {{"203.0.113.5", 60}, {"203.0.113.6", 60}}, 0, "edge.cdn.test"),
                    t0));
  std::string aaaa = AnswerCache::key("web.example.com", kTypeAAAA, kClassIN, true, false);  // a DO=1 client
  ASSERT_TRUE(c.put(aaaa, "web.example.com", answer("web.example.com", kTypeAAAA, {{"2001:db8::5", 60}}), t0));
  auto got = c.addresses("Web.Example.COM.", t0 + 1s);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].to_string(), "203.0.113.5");
  EXPECT_EQ((*got)[1].to_string(), "203.0.113.6");
  EXPECT_EQ((*got)[2].to_string(), "2001:db8::5");
  EXPECT_FALSE(c.addresses("edge.cdn.test", t0)) << "cached under the name asked, not the CNAME target";
  EXPECT_FALSE(c.addresses("web.example.com", t0 + 60s));
  // A negative entry is known, with no addresses.
  ASSERT_TRUE(c.put(key_a("nx.example.com"), "nx.example.com", negative("nx.example.com", kRcodeNxDomain, 60, 60), t0));
  auto nx = c.addresses("nx.example.com", t0);
  ASSERT_TRUE(nx);
  EXPECT_TRUE(nx->empty());
  c.clear();
  EXPECT_FALSE(c.addresses("nx.example.com", t0));
  EXPECT_EQ(c.bytes(), 0u);
}

}  // namespace
}  // namespace egressd::dns
