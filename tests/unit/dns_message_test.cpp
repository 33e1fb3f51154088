// Test the DNS codec (dns/message.h, dns/builder.h): queries and responses
// round trip; a hand-written server response parses with its offsets; every
// prefix of it fails cleanly; compression pointers that loop, point forward
// or build over-long names are refused; CNAME chains are followed only from
// the name asked, and only so far.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dns/builder.h"

namespace egressd::dns {
void PrintTo(ParseStatus s, std::ostream* os) { *os << to_string(s); }
}  // namespace egressd::dns

namespace {

using namespace egressd::dns;
using egressd::IpAddr;
using Bytes = std::vector<uint8_t>;

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

ParseResult parse(const Bytes& b) { return parse_message(b); }

// What a recursive resolver sends for `www.github.com A` (EDNS0, RD+RA),
// written the way servers compress: the CNAME owner points at the question,
// its target and the A owner at "github.com" inside it.
const Bytes kGithubResponse = {
    0x1a, 0x2b, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,  // header
    0x03, 'w', 'w', 'w', 0x06, 'g', 'i', 't', 'h', 'u', 'b', 0x03, 'c', 'o', 'm', 0x00,
    0x00, 0x01, 0x00, 0x01,                                                     // question A IN (12..31)
    0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x02,  // CNAME, ttl 3600
    0xc0, 0x10,                                                                 // -> github.com (32..45)
    0xc0, 0x10, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04,  // A, ttl 60
    0x8c, 0x52, 0x79, 0x04,                                                     // 140.82.121.4 (46..61)
    0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,        // OPT 1232 (62..72)
};

Header response_header(uint16_t id = 7, uint16_t rcode = 0) {
  Header h;
  h.id = id;
  h.qr = h.rd = h.ra = true;
  h.rcode = rcode;
  return h;
}

// A header and the question "a.example" A IN; tests append the rest.
Bytes header_and_question(uint16_t ancount) {
  Bytes b = {0, 1, 0x81, 0x80, 0, 1, 0, static_cast<uint8_t>(ancount), 0, 0, 0, 0};
  b.insert(b.end(), {1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1});
  return b;
}

// ---- Queries ----

TEST(DnsQuery, RoundTripsWithEdns) {
  Bytes q = build_query(0xbeef, "Api.Example.COM.", kTypeAAAA);
  ParseResult r = parse(q);
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  const Header& h = r.message.header;
  EXPECT_EQ(h.id, 0xbeef);
  EXPECT_FALSE(h.qr);
  EXPECT_EQ(h.opcode, 0);
  EXPECT_TRUE(h.rd);
  EXPECT_EQ(h.rcode, 0);
  ASSERT_EQ(r.message.questions.size(), 1u);
  EXPECT_EQ(r.message.questions[0].name, "api.example.com");  // lower-cased on parse
  EXPECT_EQ(r.message.questions[0].type, kTypeAAAA);
  EXPECT_EQ(r.message.questions[0].klass, kClassIN);
  EXPECT_EQ(r.message.questions[0].offset, kHeaderBytes);
  ASSERT_TRUE(r.message.edns.has_value());
  EXPECT_EQ(r.message.edns->udp_size, 1232);
  EXPECT_EQ(r.message.edns->version, 0);
  EXPECT_EQ(r.message.end, q.size());
  // The name goes out as given (case preserved).
  EXPECT_EQ(std::string(q.begin() + 13, q.begin() + 16), "Api");
}

TEST(DnsQuery, WithoutEdnsOrRd) {
  Bytes q = build_query(1, "example.com", kTypeA, false, 0);
  ParseResult r = parse(q);
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_FALSE(r.message.header.rd);
  EXPECT_FALSE(r.message.edns.has_value());
  EXPECT_EQ(r.message.header.arcount, 0);
  EXPECT_EQ(q.size(), kHeaderBytes + 13 + 4);
}

TEST(DnsQuery, NameValidation) {
  std::string label63(63, 'a');
  EXPECT_FALSE(build_query(1, label63 + ".com", kTypeA).empty());
  EXPECT_TRUE(build_query(1, label63 + "a.com", kTypeA).empty()) << "64-byte label";
  EXPECT_TRUE(build_query(1, "", kTypeA).empty());
  EXPECT_TRUE(build_query(1, "a..b", kTypeA).empty());
  EXPECT_TRUE(build_query(1, ".a", kTypeA).empty());
  EXPECT_TRUE(build_query(1, "a b.com", kTypeA).empty());
  EXPECT_TRUE(build_query(1, std::string("a\0b", 3), kTypeA).empty());
  EXPECT_FALSE(build_query(1, ".", kTypeA).empty()) << "the root";
  // 255 wire bytes is the limit: three labels of 63 and one of 61 take 3*64 + 62 + 1.
  std::string fits = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  EXPECT_EQ(fits.size(), 253u);
  Bytes q = build_query(1, fits, kTypeA);
  ASSERT_FALSE(q.empty());
  EXPECT_EQ(parse(q).message.questions.at(0).name, fits);
  EXPECT_FALSE(build_query(1, fits + ".", kTypeA).empty()) << "trailing dot is free";
  EXPECT_TRUE(build_query(1, fits + "b", kTypeA).empty()) << "256 wire bytes";
}

TEST(DnsQuery, AppendNameLeavesOutputAloneOnError) {
  Bytes out = {9};
  EXPECT_FALSE(append_name(out, "ok.bad..name"));
  EXPECT_EQ(out, Bytes{9});
}

// ---- A server's response ----

TEST(DnsResponse, HandWrittenResponseAndItsOffsets) {
  ParseResult r = parse(kGithubResponse);
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  const Message& m = r.message;
  EXPECT_EQ(m.header.id, 0x1a2b);
  EXPECT_TRUE(m.header.qr);
  EXPECT_TRUE(m.header.rd);
  EXPECT_TRUE(m.header.ra);
  EXPECT_FALSE(m.header.aa);
  EXPECT_FALSE(m.header.tc);
  ASSERT_EQ(m.answers.size(), 2u);
  const Record& cname = m.answers[0];
  EXPECT_EQ(cname.name, "www.github.com");
  EXPECT_EQ(cname.type, kTypeCNAME);
  EXPECT_EQ(cname.ttl, 3600u);
  EXPECT_EQ(cname.target, "github.com");
  EXPECT_EQ(cname.offset, 32u);
  EXPECT_EQ(cname.rdata_offset, 44u);
  EXPECT_EQ(cname.rdata_length, 2);
  EXPECT_EQ(cname.end, 46u);
  const Record& a = m.answers[1];
  EXPECT_EQ(a.name, "github.com");
  EXPECT_EQ(a.offset, 46u);
  EXPECT_EQ(a.rdata_offset, 58u);
  EXPECT_EQ(a.end, 62u);
  ASSERT_TRUE(a.addr.has_value());
  EXPECT_EQ(a.addr->to_string(), "140.82.121.4");
  ASSERT_EQ(m.additional.size(), 1u);
  EXPECT_EQ(m.additional[0].type, kTypeOPT);
  ASSERT_TRUE(m.edns.has_value());
  EXPECT_EQ(m.edns->udp_size, 1232);
  EXPECT_EQ(m.end, kGithubResponse.size());

  AddressAnswer aa = addresses_for(m, "WWW.GitHub.com.");
  EXPECT_EQ(aa.addrs, std::vector<IpAddr>{ip("140.82.121.4")});
  EXPECT_EQ(aa.ttl, 60u);
  EXPECT_EQ(aa.cname_hops, 1u);
  EXPECT_EQ(aa.final_name, "github.com");
}

TEST(DnsResponse, EveryPrefixFailsCleanly) {
  for (size_t n = 0; n < kGithubResponse.size(); ++n) {
    ParseResult r = parse_message(std::span(kGithubResponse).first(n));
    EXPECT_EQ(r.status, ParseStatus::Truncated) << "prefix " << n << ": " << r.error;
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(DnsResponse, TrailingBytesAreIgnored) {
  Bytes b = kGithubResponse;
  b.insert(b.end(), {1, 2, 3});
  ParseResult r = parse(b);
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_EQ(r.message.end, kGithubResponse.size());
}

TEST(DnsResponse, BuilderRoundTripWithCompression) {
  auto build = [](bool compress) {
    MessageBuilder b(response_header(0x4242), compress);
    EXPECT_TRUE(b.question("cdn.example.org", kTypeAAAA));
    EXPECT_TRUE(b.cname(Section::Answer, "cdn.example.org", 300, "edge.example.net"));
    EXPECT_TRUE(b.address(Section::Answer, "edge.example.net", 20, ip("2001:db8::1")));
    EXPECT_TRUE(b.address(Section::Answer, "EDGE.example.net", 30, ip("2001:db8::2")));
    EXPECT_TRUE(b.record(Section::Authority, "example.net", kTypeNS, 100, Bytes{3, 'n', 's', '1', 0xc0, 12 + 4}));
    EXPECT_TRUE(b.opt(4096));
    return b;
  };
  MessageBuilder b = build(true);
  // Each later name is a 2-byte pointer: the CNAME owner (17 bytes plain),
  // both address owners (18, one in other case) and the NS owner (13).
  EXPECT_EQ(build(false).bytes().size() - b.bytes().size(), 15u + 16 + 16 + 11);
  EXPECT_EQ(parse(build(false).bytes()).status, ParseStatus::Ok);

  ParseResult r = parse(b.bytes());
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  const Message& m = r.message;
  EXPECT_EQ(m.header.id, 0x4242);
  ASSERT_EQ(m.answers.size(), 3u);
  EXPECT_EQ(m.answers[0].target, "edge.example.net");
  EXPECT_EQ(m.answers[1].name, "edge.example.net");
  ASSERT_EQ(m.authority.size(), 1u);
  EXPECT_EQ(m.authority[0].name, "example.net");
  for (const Record& rec : m.answers) {
    if (!rec.addr) continue;
    // rdata_offset really points at the address bytes.
    EXPECT_EQ(0, std::memcmp(b.bytes().data() + rec.rdata_offset, rec.addr->bytes.data(), 16));
  }
  AddressAnswer aa = addresses_for(m, "cdn.example.org");
  EXPECT_EQ(aa.addrs, (std::vector<IpAddr>{ip("2001:db8::1"), ip("2001:db8::2")}));
  EXPECT_EQ(aa.ttl, 20u);
}

TEST(DnsResponse, BuilderRefusesOutOfOrderSectionsAndBadNames) {
  MessageBuilder b(response_header());
  ASSERT_TRUE(b.address(Section::Additional, "a.example", 1, ip("1.2.3.4")));
  size_t size = b.bytes().size();
  EXPECT_FALSE(b.question("a.example", kTypeA));
  EXPECT_FALSE(b.address(Section::Answer, "a.example", 1, ip("1.2.3.4")));
  EXPECT_FALSE(b.address(Section::Additional, "bad..name", 1, ip("1.2.3.4")));
  EXPECT_FALSE(b.cname(Section::Additional, "a.example", 1, "bad..target"));
  EXPECT_EQ(b.bytes().size(), size);
  EXPECT_EQ(parse(b.bytes()).status, ParseStatus::Ok);
}

TEST(DnsResponse, ExtendedRcodeFromOpt) {
  MessageBuilder b(response_header(1, 16 & 0x0f));
  ASSERT_TRUE(b.question("a.example", kTypeA));
  ASSERT_TRUE(b.opt(1232, 16));  // BADVERS
  ParseResult r = parse(b.bytes());
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_EQ(r.message.header.rcode, 16);
  EXPECT_EQ(rcode_name(16), "RCODE16");
  EXPECT_EQ(rcode_name(3), "NXDOMAIN");
}

TEST(DnsResponse, OptMisuseIsMalformed) {
  MessageBuilder two(response_header());
  ASSERT_TRUE(two.opt(1232));
  ASSERT_TRUE(two.opt(1232));
  EXPECT_EQ(parse(two.bytes()).status, ParseStatus::Malformed);
  MessageBuilder in_answer(response_header());
  ASSERT_TRUE(in_answer.record(Section::Answer, ".", kTypeOPT, 0, {}, 1232));
  EXPECT_EQ(parse(in_answer.bytes()).status, ParseStatus::Malformed);
  MessageBuilder owned(response_header());
  ASSERT_TRUE(owned.record(Section::Additional, "x.example", kTypeOPT, 0, {}, 1232));
  EXPECT_EQ(parse(owned.bytes()).status, ParseStatus::Malformed);
}

TEST(DnsResponse, RdataShapes) {
  MessageBuilder a5(response_header());
  ASSERT_TRUE(a5.record(Section::Answer, "a.example", kTypeA, 1, Bytes{1, 2, 3, 4, 5}));
  EXPECT_EQ(parse(a5.bytes()).status, ParseStatus::Malformed);
  MessageBuilder aaaa4(response_header());
  ASSERT_TRUE(aaaa4.record(Section::Answer, "a.example", kTypeAAAA, 1, Bytes{1, 2, 3, 4}));
  EXPECT_EQ(parse(aaaa4.bytes()).status, ParseStatus::Malformed);
  // Class CH "A" records are not addresses: not decoded, not refused.
  MessageBuilder chaos(response_header());
  ASSERT_TRUE(chaos.record(Section::Answer, "a.example", kTypeA, 1, Bytes{1, 2, 3, 4, 5}, 3));
  ParseResult r = parse(chaos.bytes());
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_FALSE(r.message.answers[0].addr.has_value());
  // A CNAME with bytes after its name, and one whose name runs past the rdata.
  MessageBuilder extra(response_header());
  ASSERT_TRUE(extra.record(Section::Answer, "a.example", kTypeCNAME, 1, Bytes{1, 'b', 0, 9}));
  EXPECT_EQ(parse(extra.bytes()).status, ParseStatus::Malformed);
  MessageBuilder over(response_header());
  ASSERT_TRUE(over.record(Section::Answer, "a.example", kTypeCNAME, 1, Bytes{3, 'b'}));
  over.address(Section::Answer, "c.example", 1, ip("1.2.3.4"));  // bytes after, so not Truncated
  EXPECT_EQ(parse(over.bytes()).status, ParseStatus::Malformed);
}

TEST(DnsResponse, TtlWithTopBitReadsAsZero) {
  MessageBuilder b(response_header());
  ASSERT_TRUE(b.address(Section::Answer, "a.example", 0x80000001u, ip("1.2.3.4")));
  ParseResult r = parse(b.bytes());
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_EQ(r.message.answers[0].ttl, 0u);
}

TEST(DnsResponse, HugeCountsDoNotAllocateOrHang) {
  Bytes b = {0, 1, 0x81, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(parse(b).status, ParseStatus::Truncated);
  Bytes big(kMaxMessageBytes + 1, 0);
  EXPECT_EQ(parse(big).status, ParseStatus::Malformed);
}

TEST(DnsResponse, LabelsAreShownInPresentationForm) {
  Bytes b = {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0};
  b.insert(b.end(), {4, 'A', '.', 0x00, '\\', 3, 'C', 'o', 'M', 0, 0, 1, 0, 1});
  ParseResult r = parse(b);
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  EXPECT_EQ(r.message.questions[0].name, "a\\.\\000\\\\.com");
}

// ---- Compression ----

TEST(DnsCompression, PointerToItselfIsALoop) {
  Bytes b = header_and_question(1);
  b.insert(b.end(), {0xc0, 27});  // the record's owner points at itself (offset 27)
  ASSERT_EQ(b.size(), 29u);
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::Malformed) << r.error;  // not backwards
}

TEST(DnsCompression, PointerIntoTheSameNameIsALoop) {
  Bytes b = header_and_question(1);
  b.insert(b.end(), {1, 'x', 0xc0, 27});  // label at 27, then a pointer back to it
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::CompressionLoop) << r.error;
}

TEST(DnsCompression, PointersChasingEachOtherNeedAForwardOne) {
  // Owner of record 1 is a label then a pointer to record 2's owner, which
  // points back at record 1's label: the loop needs one forward pointer.
  Bytes b = header_and_question(2);
  size_t r1 = b.size();  // 27
  b.insert(b.end(), {1, 'x', 0xc0, 0});  // pointer patched below
  size_t ptr1 = b.size() - 1;
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  size_t r2 = b.size();
  b.insert(b.end(), {0xc0, static_cast<uint8_t>(r1)});
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  b[ptr1] = static_cast<uint8_t>(r2);  // forward: refused before any loop
  EXPECT_EQ(parse(b).status, ParseStatus::Malformed);
}

TEST(DnsCompression, ForwardPointerIsMalformed) {
  Bytes b = header_and_question(1);
  b.insert(b.end(), {0xc0, 40});
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::Malformed);
  EXPECT_NE(r.error.find("forward"), std::string::npos) << r.error;
}

// The pointer goes backwards, but the labels it reaches run over the
// pointer itself: the name would depend on bytes after it (found by the fuzzer).
TEST(DnsCompression, PointedNameMustEndBeforeThePointer) {
  Bytes b = header_and_question(2);
  b.insert(b.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 9, 9, 9, 2});  // 27..42; byte 42 reads as a label of 2
  b.insert(b.end(), {0xc0, 42, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});  // owner: pointer at 43 to 42
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::Malformed);
  EXPECT_NE(r.error.find("past its pointer"), std::string::npos) << r.error;
}

TEST(DnsCompression, PointerIntoTheHeaderIsMalformed) {
  Bytes b = header_and_question(1);
  b.insert(b.end(), {0xc0, 4});
  b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  EXPECT_EQ(parse(b).status, ParseStatus::Malformed);
}

TEST(DnsCompression, ReservedLabelTypesAreMalformed) {
  for (uint8_t kind : {0x40, 0x80}) {
    Bytes b = {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, kind, 0, 0, 1, 0, 1};
    EXPECT_EQ(parse(b).status, ParseStatus::Malformed) << int(kind);
  }
}

// Chained pointers each adding a 63-byte label: every jump goes backwards,
// but the name grows past 255 bytes.
TEST(DnsCompression, NameGrownPastTheLimitByPointers) {
  Bytes b = {0, 1, 0x81, 0x80, 0, 0, 0, 5, 0, 0, 0, 0};
  std::vector<size_t> owners;
  for (int i = 0; i < 5; ++i) {
    owners.push_back(b.size());
    b.push_back(63);
    b.insert(b.end(), 63, static_cast<uint8_t>('a' + i));
    if (i == 0) {
      b.push_back(0);
    } else {
      b.push_back(static_cast<uint8_t>(0xc0 | owners[i - 1] >> 8));
      b.push_back(static_cast<uint8_t>(owners[i - 1]));
    }
    b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  }
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::NameTooLong) << r.error;
  // Four of them (4*64 + 1 = 257 bytes) already are too long; three fit.
  b[7] = 3;
  EXPECT_EQ(parse(b).status, ParseStatus::Ok);
}

TEST(DnsCompression, LongChainsOfPointersAreCut) {
  // 200 records whose owners are each a pointer to the previous owner: a
  // legal-looking chain of jumps that adds no labels.
  Bytes b = {0, 1, 0x81, 0x80, 0, 0, 0, 200, 0, 0, 0, 0};
  size_t prev = b.size();
  b.insert(b.end(), {1, 'a', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  for (int i = 1; i < 200; ++i) {
    size_t here = b.size();
    b.push_back(static_cast<uint8_t>(0xc0 | prev >> 8));
    b.push_back(static_cast<uint8_t>(prev));
    b.insert(b.end(), {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
    prev = here;
  }
  ParseResult r = parse(b);
  EXPECT_EQ(r.status, ParseStatus::CompressionLoop) << r.error;
  EXPECT_NE(r.error.find("too many"), std::string::npos) << r.error;
}

// ---- CNAME chains ----

Message chain(const std::vector<std::pair<std::string, std::string>>& cnames, const std::string& final_name,
              std::vector<IpAddr> addrs, uint32_t addr_ttl = 50) {
  MessageBuilder b(response_header());
  EXPECT_TRUE(b.question(cnames.empty() ? final_name : cnames[0].first, kTypeA));
  uint32_t ttl = 100;
  for (const auto& [from, to] : cnames) EXPECT_TRUE(b.cname(Section::Answer, from, ttl++, to));
  for (const IpAddr& a : addrs) EXPECT_TRUE(b.address(Section::Answer, final_name, addr_ttl, a));
  ParseResult r = parse(b.bytes());
  EXPECT_EQ(r.status, ParseStatus::Ok) << r.error;
  return r.message;
}

TEST(DnsCname, NoChain) {
  Message m = chain({}, "a.example", {ip("1.1.1.1"), ip("2.2.2.2"), ip("1.1.1.1")});
  AddressAnswer aa = addresses_for(m, "a.example");
  EXPECT_EQ(aa.addrs, (std::vector<IpAddr>{ip("1.1.1.1"), ip("2.2.2.2")})) << "duplicates dropped";
  EXPECT_EQ(aa.cname_hops, 0u);
  EXPECT_EQ(aa.ttl, 50u);
}

TEST(DnsCname, ChainOfThreeTakesTheMinimumTtl) {
  Message m = chain({{"a.example", "b.example"}, {"b.example", "c.example"}, {"c.example", "d.example"}},
                    "d.example", {ip("9.9.9.9")}, 500);
  AddressAnswer aa = addresses_for(m, "A.EXAMPLE");
  EXPECT_EQ(aa.addrs, std::vector<IpAddr>{ip("9.9.9.9")});
  EXPECT_EQ(aa.cname_hops, 3u);
  EXPECT_EQ(aa.ttl, 100u);
  EXPECT_EQ(aa.final_name, "d.example");
}

TEST(DnsCname, ChainsAreBounded) {
  std::vector<std::pair<std::string, std::string>> links;
  for (int i = 0; i < 9; ++i) links.emplace_back("n" + std::to_string(i) + ".example", "n" + std::to_string(i + 1) + ".example");
  Message nine = chain(links, "n9.example", {ip("1.2.3.4")});
  AddressAnswer aa = addresses_for(nine, "n0.example");
  EXPECT_TRUE(aa.chain_too_long);
  EXPECT_TRUE(aa.addrs.empty());
  links.pop_back();
  Message eight = chain(links, "n8.example", {ip("1.2.3.4")});
  aa = addresses_for(eight, "n0.example");
  EXPECT_FALSE(aa.chain_too_long);
  EXPECT_EQ(aa.cname_hops, 8u);
  EXPECT_EQ(aa.addrs.size(), 1u);
}

TEST(DnsCname, LoopsSpendTheHopBudget) {
  Message m = chain({{"a.example", "b.example"}, {"b.example", "a.example"}}, "a.example", {ip("1.2.3.4")});
  AddressAnswer aa = addresses_for(m, "a.example");
  EXPECT_TRUE(aa.chain_too_long);
  EXPECT_TRUE(aa.addrs.empty());
}

TEST(DnsCname, OtherOwnersAreIgnored) {
  // An answer that slips in addresses for a name nobody asked about, and
  // the chain's target in another section: neither counts.
  MessageBuilder b(response_header());
  ASSERT_TRUE(b.question("a.example", kTypeA));
  ASSERT_TRUE(b.cname(Section::Answer, "a.example", 60, "b.example"));
  ASSERT_TRUE(b.address(Section::Answer, "evil.example", 60, ip("6.6.6.6")));
  ASSERT_TRUE(b.address(Section::Additional, "b.example", 60, ip("7.7.7.7")));
  ParseResult r = parse(b.bytes());
  ASSERT_EQ(r.status, ParseStatus::Ok) << r.error;
  AddressAnswer aa = addresses_for(r.message, "a.example");
  EXPECT_TRUE(aa.addrs.empty());
  EXPECT_EQ(aa.final_name, "b.example");
  EXPECT_EQ(aa.ttl, 60u);
  EXPECT_TRUE(addresses_for(r.message, "nothing.example").addrs.empty());
}

TEST(DnsName, Canonical) {
  EXPECT_EQ(canonical_name("WwW.Example.COM."), "www.example.com");
  EXPECT_EQ(canonical_name("a.b"), "a.b");
  EXPECT_EQ(canonical_name("."), "");
}

}  // namespace
