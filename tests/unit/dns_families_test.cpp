// Test the pieces of issue 13's resolver changes that need no sockets:
// which family is left out for which routes, the rtnetlink dump reader
// (messages built here as the kernel writes them), the answer filter
// leaving a family out, SRV names judged as the name they are about, and
// the Extended DNS Error option.
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/routes.h"
#include "decide/dns_check.h"
#include "dns/builder.h"
#include "dns/families.h"
#include "dns/filter.h"
#include "dns/reply.h"
#include "policy/toml_loader.h"

namespace egressd::dns {
namespace {

using Bytes = std::vector<uint8_t>;
IpAddr ip(const char* s) { return *IpAddr::parse(s); }

TEST(DnsFamilies, TheFamilyWithoutADefaultRouteIsLeftOut) {
  EXPECT_EQ(families_to_drop({true, true}, true), FamilyDrop{});
  EXPECT_EQ(families_to_drop({true, false}, true), (FamilyDrop{false, true}));  // IPv4-only host: no AAAA
  EXPECT_EQ(families_to_drop({false, true}, true), (FamilyDrop{true, false}));  // IPv6-only host: no A
  // Neither: nothing tells them apart (policy routing, another netns): both kept.
  EXPECT_EQ(families_to_drop({false, false}, true), FamilyDrop{});
  // [dns] drop_unroutable_families = false
  EXPECT_EQ(families_to_drop({true, false}, false), FamilyDrop{});
  EXPECT_EQ((FamilyDrop{true, false}).bits(), 1);
  EXPECT_EQ((FamilyDrop{false, true}).bits(), 2);
}

// ---- rtnetlink dump -----------------------------------------------------------------

struct RouteMsg {
  uint8_t family = AF_INET;
  uint8_t dst_len = 0;
  uint8_t type = RTN_UNICAST;
  uint8_t table = RT_TABLE_MAIN;
  std::optional<uint32_t> table_attr;  // RTA_TABLE (tables above 255)
  uint16_t msg_type = RTM_NEWROUTE;
};

void append(Bytes& out, const RouteMsg& m) {
  Bytes body(NLMSG_ALIGN(sizeof(rtmsg)), 0);
  rtmsg r{};
  r.rtm_family = m.family;
  r.rtm_dst_len = m.dst_len;
  r.rtm_type = m.type;
  r.rtm_table = m.table;
  std::memcpy(body.data(), &r, sizeof(r));
  if (m.table_attr) {
    rtattr a{};
    a.rta_len = RTA_LENGTH(sizeof(uint32_t));
    a.rta_type = RTA_TABLE;
    size_t at = body.size();
    body.resize(at + RTA_SPACE(sizeof(uint32_t)));
    std::memcpy(body.data() + at, &a, sizeof(a));
    std::memcpy(body.data() + at + RTA_LENGTH(0), &*m.table_attr, sizeof(uint32_t));
  }
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + body.size());
  h.nlmsg_type = m.msg_type;
  size_t at = out.size();
  out.resize(at + NLMSG_ALIGN(h.nlmsg_len));
  std::memcpy(out.data() + at, &h, sizeof(h));
  std::memcpy(out.data() + at + NLMSG_HDRLEN, body.data(), body.size());
}

void append_control(Bytes& out, uint16_t type, int error = 0) {
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_HDRLEN + sizeof(int);
  h.nlmsg_type = type;
  size_t at = out.size();
  out.resize(at + NLMSG_ALIGN(h.nlmsg_len));
  std::memcpy(out.data() + at, &h, sizeof(h));
  std::memcpy(out.data() + at + NLMSG_HDRLEN, &error, sizeof(int));
}

TEST(RouteScan, FindsUnicastDefaultRoutesPerFamily) {
  Bytes b;
  append(b, {.family = AF_INET, .dst_len = 24});                  // a connected /24: not a default
  append(b, {.family = AF_INET, .dst_len = 0});                   // default via the gateway
  append(b, {.family = AF_INET6, .dst_len = 64});                 // the link's /64
  append(b, {.family = AF_INET6, .dst_len = 0, .type = RTN_UNREACHABLE});  // "unreachable default": not a route out
  append(b, {.family = AF_INET6, .dst_len = 0, .table = RT_TABLE_LOCAL});
  append_control(b, NLMSG_DONE);
  RouteScan s;
  scan_route_messages(b, s);
  EXPECT_TRUE(s.done);
  EXPECT_TRUE(s.v4);
  EXPECT_FALSE(s.v6);
  EXPECT_EQ(s.error, 0);

  Bytes c;
  append(c, {.family = AF_INET6, .dst_len = 0, .table = RT_TABLE_COMPAT, .table_attr = 1000});  // policy routing table
  RouteScan t;
  scan_route_messages(c, t);
  EXPECT_TRUE(t.v6);
  EXPECT_FALSE(t.done);  // more to read
  Bytes d;
  append(d, {.family = AF_INET, .dst_len = 0, .table = RT_TABLE_COMPAT, .table_attr = RT_TABLE_LOCAL});
  RouteScan u;
  scan_route_messages(d, u);
  EXPECT_FALSE(u.v4);
}

TEST(RouteScan, ErrorsAndTruncatedMessagesStopTheScan) {
  Bytes b;
  append_control(b, NLMSG_ERROR, -EPERM);
  append(b, {.family = AF_INET});
  RouteScan s;
  scan_route_messages(b, s);
  EXPECT_EQ(s.error, EPERM);
  EXPECT_FALSE(s.v4);

  Bytes t;
  append(t, {.family = AF_INET});
  t.resize(t.size() - 4);  // the last message cut short: ignored, no read past the end
  RouteScan u;
  scan_route_messages(t, u);
  EXPECT_FALSE(u.v4);
  RouteScan none;
  scan_route_messages({}, none);
  EXPECT_FALSE(none.done);
}

// ---- the filter leaving a family out ------------------------------------------------------

TEST(DnsFilter, LeavesOutTheFamilyWithoutARouteAndKeepsTheRest) {
  Header h;
  h.id = 7;
  h.qr = h.rd = h.ra = true;
  MessageBuilder b(h);
  b.question("www.example.com", kTypeAAAA);
  b.cname(Section::Answer, "www.example.com", 300, "edge.example.net");
  b.address(Section::Answer, "edge.example.net", 300, ip("2001:db8::10"));
  b.address(Section::Answer, "edge.example.net", 300, ip("2001:db8::11"));
  b.record(Section::Authority, "example.net", kTypeSOA, 60,
           Bytes{1, 'n', 0, 1, 'h', 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60});
  b.address(Section::Additional, "ns.example.net", 300, ip("203.0.113.53"));
  Bytes wire = b.bytes();
  ParseResult p = parse_message(wire);
  ASSERT_EQ(p.status, ParseStatus::Ok);
  FilterOptions o;
  o.drop_v6 = true;
  FilterResult f = filter_answer(wire, p.message, o);
  ASSERT_TRUE(f.ok) << f.error;
  EXPECT_EQ(f.family_dropped, 2u);
  EXPECT_TRUE(f.removed.empty()) << "not a rebinding removal";
  ParseResult out = parse_message(f.message);
  ASSERT_EQ(out.status, ParseStatus::Ok);
  // NODATA: the CNAME and the SOA stay, no AAAA; the IPv4 glue stays.
  ASSERT_EQ(out.message.answers.size(), 1u);
  EXPECT_EQ(out.message.answers[0].type, kTypeCNAME);
  ASSERT_EQ(out.message.authority.size(), 1u);
  EXPECT_EQ(out.message.authority[0].type, kTypeSOA);
  ASSERT_EQ(out.message.additional.size(), 1u);
  EXPECT_EQ(out.message.additional[0].addr->to_string(), "203.0.113.53");
  EXPECT_EQ(out.message.header.rcode, kRcodeNoError);
}

// ---- SRV names -----------------------------------------------------------------------------

TEST(DnsSrv, ServiceAndProtocolLabelsAreStripped) {
  EXPECT_EQ(decide::srv_base_name("_http._tcp.deb.example.org"), "deb.example.org");
  EXPECT_EQ(decide::srv_base_name("_xmpp-client._tcp.example.com"), "example.com");
  EXPECT_FALSE(decide::srv_base_name("_http.deb.example.org"));
  EXPECT_FALSE(decide::srv_base_name("deb.example.org"));
  EXPECT_FALSE(decide::srv_base_name("_http._tcp"));
  EXPECT_FALSE(decide::srv_base_name("_http._tcp."));
  EXPECT_FALSE(decide::srv_base_name("_._tcp.example.org"));
  EXPECT_FALSE(decide::srv_base_name("_http.tcp.example.org"));
  EXPECT_FALSE(decide::srv_base_name(""));
}

TEST(DnsSrv, SrvOfAnAllowedNameIsJudgedAsTheName) {
  policy::Policy p = policy::parse_policy("version = 1\n[[allow]]\nhost = \"deb.example.org\"\n[[allow]]\n"
                                          "host = \"*.pkg.example.com\"\n",
                                          "t.toml");
  decide::QueryCheck c = decide::check_query(p, "_http._tcp.deb.example.org", kTypeSRV, kClassIN);
  EXPECT_TRUE(c.forward);
  EXPECT_EQ(c.reason, EGD_REASON_DNS_NAME_ALLOWED);
  EXPECT_EQ(c.rule_id, 1u);
  EXPECT_TRUE(decide::check_query(p, "_https._tcp.a.pkg.example.com", kTypeSRV, kClassIN).forward);
  EXPECT_EQ(decide::check_query(p, "_https._tcp.a.pkg.example.com", kTypeSRV, kClassIN).rule_id, 2u);
  // Only SRV; only the name it is about; only two service labels.
  EXPECT_FALSE(decide::check_query(p, "_http._tcp.deb.example.org", kTypeA, kClassIN).forward);
  EXPECT_FALSE(decide::check_query(p, "_http._tcp.deb.example.org", kTypeTXT, kClassIN).forward);
  EXPECT_FALSE(decide::check_query(p, "_http._tcp.evil.example.org", kTypeSRV, kClassIN).forward);
  EXPECT_FALSE(decide::check_query(p, "_a._b._http._tcp.deb.example.org", kTypeSRV, kClassIN).forward);
  EXPECT_FALSE(decide::check_query(p, "x._http._tcp.deb.example.org", kTypeSRV, kClassIN).forward);
  EXPECT_FALSE(decide::check_query(p, "_http._tcp.deb.example.org", kTypeSRV, 3).forward);
}

TEST(DnsPolicyCheck, SinkholeAnswersLocallyWithNoError) {
  policy::Policy p = policy::parse_policy("version = 1\n[dns]\ndenied = \"sinkhole\"\n", "t.toml");
  decide::QueryCheck c = decide::check_query(p, "evil.test", kTypeA, kClassIN);
  EXPECT_FALSE(c.forward);
  EXPECT_EQ(c.reason, EGD_REASON_DNS_NAME_NOT_ALLOWED);
  EXPECT_EQ(c.rcode, kRcodeNoError);
}

// ---- Extended DNS Errors --------------------------------------------------------------------

TEST(DnsEde, OptionLayoutAndBoundedText) {
  Bytes o;
  append_ede(o, kEdeBlocked, "egressd: no");
  EXPECT_EQ(o, (Bytes{0, 15, 0, 13, 0, 15, 'e', 'g', 'r', 'e', 's', 's', 'd', ':', ' ', 'n', 'o'}));
  // Over kMaxEdeText: cut, never inside a UTF-8 sequence ("é" is 2 bytes).
  std::string text(kMaxEdeText - 1, 'a');
  text += "\xc3\xa9tail";
  Bytes big;
  append_ede(big, 18, text);
  size_t len = static_cast<size_t>(big[2] << 8 | big[3]) - 2;
  EXPECT_EQ(len, kMaxEdeText - 1);
  EXPECT_EQ(big.size(), 6 + len);
  EXPECT_EQ(big[5], 18);
}

TEST(DnsEde, AddressReplyCarriesTheRecordAndTheExplanation) {
  QueryInfo q;
  q.id = 0x99;
  q.rd = true;
  q.qtype = kTypeAAAA;
  q.qclass = kClassIN;
  q.question = {4, 'E', 'v', 'i', 'l', 4, 't', 'e', 's', 't', 0, 0, 28, 0, 1};
  q.edns = true;
  q.udp_size = 1232;
  Bytes r = address_reply(q, ip("2001:db8::e9d"), 10, 4096, kEdeBlocked, "egressd: why");
  ParseResult p = parse_message(r);
  ASSERT_EQ(p.status, ParseStatus::Ok) << p.error;
  EXPECT_EQ(p.message.header.id, 0x99);
  EXPECT_EQ(p.message.header.rcode, kRcodeNoError);
  ASSERT_EQ(p.message.answers.size(), 1u);
  EXPECT_EQ(p.message.answers[0].addr->to_string(), "2001:db8::e9d");
  EXPECT_EQ(p.message.answers[0].ttl, 10u);
  std::string s(r.begin(), r.end());
  EXPECT_NE(s.find("Evil"), std::string::npos) << "the client's spelling";
  EXPECT_NE(s.find("egressd: why"), std::string::npos);
  q.edns = false;  // RFC 8914: EDE only in answers to queries with OPT
  Bytes plain = address_reply(q, ip("2001:db8::e9d"), 10, 4096, kEdeBlocked, "egressd: why");
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("egressd"), std::string::npos);
}

}  // namespace
}  // namespace egressd::dns
