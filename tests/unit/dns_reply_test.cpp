// Test the resolver's query reading and replies (dns/reply.h), mainly the
// fast path: fast_query_info must give exactly what the full parser and
// query_info give for every query it takes (plain, EDNS, DO, CD, 0x20 case,
// odd octets, trailing bytes), refuse everything else (so the full parser
// decides), and leave nothing of the previous query in reused buffers.
// answer_reply_in_place patches only what answer_reply did.
#include "dns/reply.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "dns/builder.h"
#include "dns/filter.h"
#include "dns/message.h"

namespace egressd::dns {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes query(const std::string& name, uint16_t type = kTypeA, int edns = -1, bool dnssec_ok = false,
            uint16_t id = 0x4242) {
  Header h;
  h.id = id;
  h.rd = true;
  MessageBuilder b(h, false);
  EXPECT_TRUE(b.question(name, type));
  if (edns >= 0) b.opt(static_cast<uint16_t>(edns), 0, dnssec_ok);
  return b.bytes();
}

// The full path's QueryInfo, as the server computed it before the fast path.
std::optional<QueryInfo> slow(const Bytes& wire) {
  ParseResult p = parse_message(wire);
  if (p.status != ParseStatus::Ok || p.message.header.qr || p.message.questions.size() != 1) return std::nullopt;
  return query_info(wire, p.message);
}

void expect_same(const QueryInfo& a, const QueryInfo& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.opcode, b.opcode);
  EXPECT_EQ(a.rd, b.rd);
  EXPECT_EQ(a.cd, b.cd);
  EXPECT_EQ(a.question, b.question);
  EXPECT_EQ(a.qname_wire, b.qname_wire);
  EXPECT_EQ(a.qname, b.qname);
  EXPECT_EQ(a.qtype, b.qtype);
  EXPECT_EQ(a.qclass, b.qclass);
  EXPECT_EQ(a.edns, b.edns);
  EXPECT_EQ(a.edns_version, b.edns_version);
  EXPECT_EQ(a.dnssec_ok, b.dnssec_ok);
  EXPECT_EQ(a.udp_size, b.udp_size);
}

TEST(DnsReply, FastQueryInfoMatchesTheFullParserForCommonQueries) {
  std::vector<Bytes> queries = {
      query("h000.cached.test"),
      query("WwW.ExAmPlE.CoM", kTypeAAAA),  // 0x20: the question keeps the case, the names do not
      query("example.com", kTypeHTTPS, 1232),
      query("example.com", kTypeA, 4096, true),
      query("x", 255, 512),
  };
  Bytes cd = query("cd.example", kTypeA, 1232);
  cd[3] |= 0x10;  // CD
  queries.push_back(cd);
  Bytes odd = query("a.b", kTypeTXT);
  odd[13] = '.';  // a label holding a dot, and below one with a space and a byte over 0x7e
  queries.push_back(odd);
  Bytes odd2 = query("ab.c", kTypeTXT);
  odd2[13] = ' ';
  odd2[14] = 0xc8;
  queries.push_back(odd2);
  Bytes v1 = query("v1.example", kTypeA, 1232);
  v1[v1.size() - 5] = 1;  // EDNS version 1 (the server answers BADVERS)
  queries.push_back(v1);
  Bytes notify = query("example.com", kTypeSOA);
  notify[2] = static_cast<uint8_t>(4 << 3);  // opcode NOTIFY
  queries.push_back(notify);
  Bytes with_options = query("example.com", kTypeA);
  {  // OPT with an option (padding): its rdata is carried, not read
    Header h;
    h.id = 7;
    MessageBuilder b(h, false);
    b.question("example.com", kTypeA);
    Bytes padding = {0, 12, 0, 4, 0, 0, 0, 0};
    b.opt(1232, 0, false, padding);
    with_options = b.bytes();
  }
  queries.push_back(with_options);
  Bytes trailing = query("trailing.example");
  trailing.insert(trailing.end(), {1, 2, 3, 4, 5});  // ignored by the parser too
  queries.push_back(trailing);

  QueryInfo fast;
  for (const Bytes& q : queries) {
    SCOPED_TRACE(::testing::PrintToString(q));
    auto expected = slow(q);
    ASSERT_TRUE(expected);
    ASSERT_TRUE(fast_query_info(q, fast));  // one object for all: reused buffers
    expect_same(fast, *expected);
  }
}

TEST(DnsReply, FastQueryInfoLeavesEverythingElseToTheFullParser) {
  Bytes base = query("example.com", kTypeA, 1232);
  std::vector<std::pair<std::string, Bytes>> others;
  auto variant = [&](const std::string& what, auto change) {
    Bytes b = base;
    change(b);
    others.emplace_back(what, b);
  };
  variant("empty", [](Bytes& b) { b.clear(); });
  variant("header only, short", [](Bytes& b) { b.resize(11); });
  variant("a response", [](Bytes& b) { b[2] |= 0x80; });
  variant("two questions", [](Bytes& b) { b[5] = 2; });
  variant("no question", [](Bytes& b) { b[5] = 0; });
  variant("an answer record", [](Bytes& b) { b[7] = 1; });
  variant("an authority record", [](Bytes& b) { b[9] = 1; });
  variant("two additional records", [](Bytes& b) { b[11] = 2; });
  variant("name ends early", [](Bytes& b) { b.resize(20); });
  variant("type and class cut", [](Bytes& b) { b.resize(12 + 13 + 2); });
  variant("OPT cut", [](Bytes& b) { b.resize(b.size() - 3); });
  variant("OPT rdata longer than the message", [](Bytes& b) { b[b.size() - 1] = 9; });
  variant("additional not OPT", [](Bytes& b) { b[b.size() - 9] = 0; });
  variant("OPT not owned by the root", [](Bytes& b) {
    b[b.size() - 11] = 0xc0;  // a pointer instead of the root: not the simple shape
  });
  variant("compression pointer in the question", [](Bytes& b) {
    b = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
  });
  variant("label type 01", [](Bytes& b) { b[12] = 0x47; });
  Bytes long_name = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(63);
    long_name.insert(long_name.end(), 63, 'a');
  }
  long_name.insert(long_name.end(), {0, 0, 1, 0, 1});
  others.emplace_back("name over 255 bytes", long_name);
  Bytes oversized(kMaxMessageBytes + 1, 0);
  std::copy(base.begin(), base.end(), oversized.begin());
  others.emplace_back("over 65535 bytes", oversized);

  for (const auto& [what, wire] : others) {
    QueryInfo q;
    q.qname = "untouched";
    EXPECT_FALSE(fast_query_info(wire, q)) << what;
    EXPECT_EQ(q.qname, "untouched") << what << ": written although refused";
  }
}

TEST(DnsReply, ReusedQueryInfoKeepsNothingOfThePreviousQuery) {
  QueryInfo q;
  ASSERT_TRUE(fast_query_info(query("a-much-longer-name.example.com", kTypeAAAA, 4096, true, 1), q));
  Bytes plain = query("b.ex", kTypeA, -1, false, 2);
  ASSERT_TRUE(fast_query_info(plain, q));
  expect_same(q, *slow(plain));
  EXPECT_FALSE(q.edns);
  EXPECT_FALSE(q.dnssec_ok);
  EXPECT_EQ(q.udp_size, 0);
}

TEST(DnsReply, AnswerInPlaceIsTheClientsOwn) {
  Header h;
  h.id = 0x1111;
  h.qr = h.ra = h.aa = true;
  h.rd = false;
  MessageBuilder b(h);
  b.question("www.example.com", kTypeA);
  b.address(Section::Answer, "www.example.com", 60, *IpAddr::parse("203.0.113.7"));
  Bytes answer = b.bytes();

  QueryInfo q;
  ASSERT_TRUE(fast_query_info(query("WWW.Example.com", kTypeA, 1232, true, 0xabcd), q));
  Bytes in_place = answer;
  ASSERT_TRUE(answer_reply_in_place(q, in_place, 4096, 1232));
  EXPECT_EQ(in_place, answer_reply(q, answer, 4096, 1232));
  ParseResult p = parse_message(in_place);
  ASSERT_EQ(p.status, ParseStatus::Ok);
  EXPECT_EQ(p.message.header.id, 0xabcd);
  EXPECT_TRUE(p.message.header.rd);
  EXPECT_FALSE(p.message.header.aa);
  ASSERT_TRUE(p.message.edns);
  EXPECT_TRUE(p.message.edns->dnssec_ok);
  EXPECT_TRUE(std::equal(q.question.begin(), q.question.end(), in_place.begin() + kHeaderBytes));
  // Another question: refused; too big for the client: a truncated bare reply.
  QueryInfo other;
  ASSERT_TRUE(fast_query_info(query("other.example.com"), other));
  Bytes copy = answer;
  EXPECT_FALSE(answer_reply_in_place(other, copy, 4096, 512));
  copy = answer;
  ASSERT_TRUE(answer_reply_in_place(q, copy, 4096, 40));
  ParseResult t = parse_message(copy);
  ASSERT_EQ(t.status, ParseStatus::Ok);
  EXPECT_TRUE(t.message.header.tc);
  EXPECT_TRUE(t.message.answers.empty());
}

}  // namespace
}  // namespace egressd::dns
