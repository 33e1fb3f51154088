// Test the answer filter (dns/filter.h): blocked A/AAAA removed (DNS
// rebinding) from every section, compression rebuilt so records that
// pointed into a removed one stay right, names in rdata expanded, ECH and
// blocked hints stripped from HTTPS/SVCB, OPT/TSIG left out, TTLs and
// everything else kept.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "decide/l3_check.h"
#include "dns/builder.h"
#include "dns/filter.h"
#include "dns/message.h"
#include "dns/wire_name.h"
#include "policy/toml_loader.h"

namespace egressd::dns {
namespace {

using Bytes = std::vector<uint8_t>;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

struct Fixture {
  policy::Policy policy = policy::parse_policy("version = 1\n", "t.toml");
  decide::L3Check l3{policy};
  FilterOptions options(bool strip_ech = true) {
    FilterOptions o;
    o.blocked = [this](const IpAddr& a) { return !l3.reachable(a); };
    o.strip_ech = strip_ech;
    return o;
  }
};

Header response_header(uint16_t rcode = 0) {
  Header h;
  h.id = 0x4242;
  h.qr = h.rd = h.ra = true;
  h.rcode = rcode;
  return h;
}

Message parse_ok(const Bytes& wire) {
  ParseResult p = parse_message(wire);
  EXPECT_EQ(p.status, ParseStatus::Ok) << p.error;
  return p.message;
}

FilterResult run(const Bytes& wire, const FilterOptions& o) {
  Message m = parse_ok(wire);
  FilterResult f = filter_answer(wire, m, o);
  EXPECT_TRUE(f.ok) << f.error;
  return f;
}

std::vector<std::string> addrs_of(const Message& m) {
  std::vector<std::string> out;
  for (const auto* s : {&m.answers, &m.authority, &m.additional})
    for (const Record& r : *s)
      if (r.addr) out.push_back(r.addr->to_string());
  return out;
}

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

TEST(DnsFilter, RemovesBlockedAddressesEverywhereAndKeepsTheRest) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("rebind.example.com", kTypeA);
  for (const char* a : {"203.0.113.10", "10.0.0.5", "169.254.169.254", "127.0.0.1", "192.168.1.1", "198.51.100.7"})
    b.address(Section::Answer, "rebind.example.com", 300, ip(a));
  b.address(Section::Additional, "ns.example.com", 60, ip("172.16.0.1"));
  b.address(Section::Additional, "ns.example.com", 60, ip("fd00::10"));
  b.address(Section::Additional, "ns.example.com", 60, ip("2001:db8::53"));
  b.opt(1232);
  FilterResult f = run(b.bytes(), fx.options());
  Message m = parse_ok(f.message);
  EXPECT_EQ(addrs_of(m), (std::vector<std::string>{"203.0.113.10", "127.0.0.1", "198.51.100.7", "2001:db8::53"}));
  std::vector<std::string> removed;
  for (const IpAddr& a : f.removed) removed.push_back(a.to_string());
  EXPECT_EQ(removed,
            (std::vector<std::string>{"10.0.0.5", "169.254.169.254", "192.168.1.1", "172.16.0.1", "fd00::10"}));
  EXPECT_EQ(m.header.id, 0x4242);
  EXPECT_TRUE(m.header.qr && m.header.rd && m.header.ra);
  ASSERT_EQ(m.questions.size(), 1u);
  EXPECT_EQ(m.questions[0].name, "rebind.example.com");
  EXPECT_FALSE(m.edns) << "the OPT record is the server's to add";
  EXPECT_EQ(m.answers.at(0).ttl, 300u);
  // Without a blocked predicate nothing goes.
  EXPECT_EQ(addrs_of(parse_ok(run(b.bytes(), FilterOptions{}).message)).size(), 9u);
}

TEST(DnsFilter, AllAddressesBlockedLeavesNoData) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("rebind.example.com", kTypeA);
  b.address(Section::Answer, "rebind.example.com", 60, ip("10.0.0.5"));
  FilterResult f = run(b.bytes(), fx.options());
  Message m = parse_ok(f.message);
  EXPECT_EQ(m.header.rcode, kRcodeNoError);
  EXPECT_TRUE(m.answers.empty());
  EXPECT_EQ(f.removed.size(), 1u);
}

// A later owner compressed against a removed record's name: editing in
// place would leave a dangling pointer; the rebuilt message is right.
TEST(DnsFilter, RecordsThatPointedIntoARemovedOneSurvive) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("q.test", kTypeA);
  b.address(Section::Answer, "lan.corp.example", 60, ip("10.1.2.3"));
  b.cname(Section::Answer, "q.test", 60, "www.lan.corp.example");  // target compressed into the A record's owner
  b.address(Section::Answer, "www.lan.corp.example", 60, ip("203.0.113.77"));
  Message in = parse_ok(b.bytes());
  ASSERT_EQ(in.answers.size(), 3u);
  FilterResult f = run(b.bytes(), fx.options());
  Message m = parse_ok(f.message);
  ASSERT_EQ(m.answers.size(), 2u);
  EXPECT_EQ(m.answers[0].target, "www.lan.corp.example");
  EXPECT_EQ(m.answers[1].name, "www.lan.corp.example");
  AddressAnswer a = addresses_for(m, "q.test");
  ASSERT_EQ(a.addrs.size(), 1u);
  EXPECT_EQ(a.addrs[0].to_string(), "203.0.113.77");
  EXPECT_EQ(a.cname_hops, 1u);
}

// Names in rdata (MX, SOA, SRV, NS) are expanded from the upstream's
// compression and survive a removal before them.
TEST(DnsFilter, NamesInRdataAreExpanded) {
  Fixture fx;
  Bytes wire;
  {
    MessageBuilder b(response_header());
    b.question("mail.example.com", kTypeMX);
    b.address(Section::Answer, "example.com", 60, ip("10.0.0.1"));  // removed: later names pointed here
    Bytes mx = {0, 10, 4, 'm', 'x', '0', '1', 0xc0, 0};             // preference 10, "mx01" + pointer
    // Point at "example.com" inside the question ("mail.example.com" at 12: "example" at 17).
    mx[8] = 17;
    b.record(Section::Answer, "mail.example.com", kTypeMX, 120, mx);
    Bytes srv = {0, 1, 0, 2, 0x01, 0xbb, 3, 's', 'r', 'v', 0xc0, 17};
    b.record(Section::Answer, "mail.example.com", kTypeSRV, 120, srv);
    Bytes soa = {2, 'n', 's', 0xc0, 17, 4, 'h', 'o', 's', 't', 0xc0, 17};
    for (int i = 0; i < 20; ++i) soa.push_back(static_cast<uint8_t>(i));
    b.record(Section::Authority, "example.com", kTypeSOA, 30, soa);
    wire = b.bytes();
  }
  FilterResult f = run(wire, fx.options());
  Message m = parse_ok(f.message);
  ASSERT_EQ(m.answers.size(), 2u);
  auto name_at = [&](size_t at, size_t limit) {
    Bytes n;
    EXPECT_TRUE(read_wire_name(f.message, at, limit, n));
    return wire_name_text(n);
  };
  const Record& mx = m.answers[0];
  EXPECT_EQ(mx.type, kTypeMX);
  EXPECT_EQ(name_at(mx.rdata_offset + 2, mx.end), "mx01.example.com");
  const Record& srv = m.answers[1];
  EXPECT_EQ(name_at(srv.rdata_offset + 6, srv.end), "srv.example.com");
  // SRV targets are written whole (only RFC 1035 types may be compressed).
  EXPECT_EQ(srv.rdata_length, 6u + 17u);
  const Record& soa = m.authority.at(0);
  size_t at = soa.rdata_offset;
  Bytes n;
  ASSERT_TRUE(read_wire_name(f.message, at, soa.end, n));
  EXPECT_EQ(wire_name_text(n), "ns.example.com");
  n.clear();
  ASSERT_TRUE(read_wire_name(f.message, at, soa.end, n));
  EXPECT_EQ(wire_name_text(n), "host.example.com");
  EXPECT_EQ(soa.end - at, 20u);
  EXPECT_EQ(f.message[soa.end - 1], 19);
}

TEST(DnsFilter, RdataThatBreaksItsLayoutFailsTheAnswer) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("example.com", kTypeMX);
  b.record(Section::Answer, "example.com", kTypeMX, 60, Bytes{0, 10, 2, 'm', 'x', 0, 0xff});  // trailing byte
  Message m = parse_ok(b.bytes());
  FilterResult f = filter_answer(b.bytes(), m, fx.options());
  EXPECT_FALSE(f.ok);
  EXPECT_NE(f.error.find("layout"), std::string::npos) << f.error;
  MessageBuilder c(response_header());
  c.question("example.com", kTypeNS);
  c.record(Section::Answer, "example.com", kTypeNS, 60, Bytes{0xc0, 200});  // forward pointer
  EXPECT_FALSE(filter_answer(c.bytes(), parse_ok(c.bytes()), fx.options()).ok);
}

// HTTPS rdata: priority 1, target ".", then params.
Bytes https_rdata(const std::vector<std::pair<uint16_t, Bytes>>& params) {
  Bytes r = {0, 1, 0};
  for (const auto& [key, value] : params) {
    put16(r, key);
    put16(r, static_cast<uint16_t>(value.size()));
    r.insert(r.end(), value.begin(), value.end());
  }
  return r;
}

TEST(DnsFilter, StripsEchAndBlockedHintsFromHttpsRecords) {
  Fixture fx;
  Bytes ech = {0x00, 0x45, 0xfe, 0x0d, 1, 2, 3, 4};
  Bytes v4 = {203, 0, 113, 10, 10, 0, 0, 5};
  Bytes v6(16, 0);
  v6[0] = 0xfd;                                        // fd00:: only: the whole parameter goes
  Bytes rdata = https_rdata({{0, {0, 1, 0, 5, 0, 6}},  // mandatory: alpn, ech, ipv6hint
                             {1, {2, 'h', '2'}},
                             {4, v4},
                             {5, ech},
                             {6, v6}});
  MessageBuilder b(response_header());
  b.question("api.example.com", kTypeHTTPS);
  b.record(Section::Answer, "api.example.com", kTypeHTTPS, 300, rdata);
  FilterResult f = run(b.bytes(), fx.options(true));
  EXPECT_EQ(f.ech_stripped, 1u);
  ASSERT_EQ(f.removed.size(), 2u);
  EXPECT_EQ(f.removed[0].to_string(), "10.0.0.5");
  EXPECT_EQ(f.removed[1].to_string(), "fd00::");
  Message m = parse_ok(f.message);
  ASSERT_EQ(m.answers.size(), 1u);
  const Record& r = m.answers[0];
  Bytes got(f.message.begin() + static_cast<std::ptrdiff_t>(r.rdata_offset),
            f.message.begin() + static_cast<std::ptrdiff_t>(r.end));
  EXPECT_EQ(got, https_rdata({{0, {0, 1}}, {1, {2, 'h', '2'}}, {4, {203, 0, 113, 10}}}));
  EXPECT_EQ(r.ttl, 300u);

  // ECH allowed by the policy ([proxy] ech = "outer-sni"): kept; hints still filtered.
  FilterResult keep = run(b.bytes(), fx.options(false));
  EXPECT_EQ(keep.ech_stripped, 0u);
  Message k = parse_ok(keep.message);
  const Record& kr = k.answers.at(0);
  Bytes kept(keep.message.begin() + static_cast<std::ptrdiff_t>(kr.rdata_offset),
             keep.message.begin() + static_cast<std::ptrdiff_t>(kr.end));
  EXPECT_EQ(kept, https_rdata({{0, {0, 1, 0, 5}}, {1, {2, 'h', '2'}}, {4, {203, 0, 113, 10}}, {5, ech}}));
}

TEST(DnsFilter, MandatoryListEmptiedGoesAndSvcbIsFilteredToo) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("_dns.example.com", kTypeSVCB);
  b.record(Section::Answer, "_dns.example.com", kTypeSVCB, 60, https_rdata({{0, {0, 5}}, {3, {1, 187}}, {5, {9, 9}}}));
  FilterResult f = run(b.bytes(), fx.options(true));
  Message m = parse_ok(f.message);
  const Record& r = m.answers.at(0);
  Bytes got(f.message.begin() + static_cast<std::ptrdiff_t>(r.rdata_offset),
            f.message.begin() + static_cast<std::ptrdiff_t>(r.end));
  EXPECT_EQ(got, https_rdata({{3, {1, 187}}}));
}

TEST(DnsFilter, HttpsRecordsWhoseParamsDoNotParseAreDropped) {
  Fixture fx;
  MessageBuilder b(response_header());
  b.question("api.example.com", kTypeHTTPS);
  b.record(Section::Answer, "api.example.com", kTypeHTTPS, 60,
           https_rdata({{5, {1}}, {1, {2, 'h', '2'}}}));                                        // keys out of order
  b.record(Section::Answer, "api.example.com", kTypeHTTPS, 60, https_rdata({{4, {1, 2, 3}}}));  // hint not 4n bytes
  b.record(Section::Answer, "api.example.com", kTypeHTTPS, 60, Bytes{0, 1, 0, 0, 5, 0, 9});     // value past the end
  b.record(Section::Answer, "api.example.com", kTypeHTTPS, 60, https_rdata({{1, {2, 'h', '3'}}}));
  FilterResult f = run(b.bytes(), fx.options(true));
  EXPECT_EQ(f.dropped_svcb, 3u);
  EXPECT_EQ(parse_ok(f.message).answers.size(), 1u);
}

TEST(DnsFilter, OptAndTsigLeftOutExtendedRcodeBitsDropped) {
  Fixture fx;
  MessageBuilder b(response_header(kRcodeNxDomain));
  b.question("nope.example.com", kTypeA);
  b.record(Section::Authority, "example.com", kTypeSOA, 30,
           Bytes{2, 'n', 's', 0xc0, 17, 1, 'h', 0xc0, 17, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5});
  b.opt(1232, 0x13, true);  // extended rcode bits
  b.record(Section::Additional, "key.example.com", kTypeTSIG, 0, Bytes{1, 2, 3});
  // The builder refuses records after OPT in the same section? No: additional holds both.
  FilterResult f = run(b.bytes(), fx.options());
  Message m = parse_ok(f.message);
  EXPECT_FALSE(m.edns);
  EXPECT_TRUE(m.additional.empty());
  EXPECT_EQ(m.header.rcode, kRcodeNxDomain);
  EXPECT_EQ(m.authority.size(), 1u);
}

// Labels with octets only escapes can spell are copied byte for byte.
TEST(DnsFilter, OddLabelsCopyExactly) {
  Fixture fx;
  Bytes wire = {0x12, 0x34, 0x81, 0x80, 0,  1, 0, 1,    0,  0, 0,  0, 3, 'a', '.', 0, 7,  'e', 'x', 'a', 'm', 'p',
                'l',  'e',  0,    0,    16, 0, 1, 0xc0, 12, 0, 16, 0, 1, 0,   0,   0, 60, 0,   2,   1,   'x'};
  FilterResult f = run(wire, fx.options());
  EXPECT_EQ(f.message, wire);  // the same message: nothing to compress differently
  EXPECT_EQ(parse_ok(f.message).answers.at(0).name, "a\\.\\000.example");
}

}  // namespace
}  // namespace egressd::dns
