// Test the event renderings: decoding from the ring record, JSON escaping
// of arbitrary comm bytes, and the human line.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "events/event.h"
#include "events/format.h"

namespace egressd {
namespace {

egd_event mapped_private_connect() {
  egd_event raw{};
  raw.boot_ns = 1'000'000'000;
  raw.pid = 42;
  raw.tgid = 41;
  raw.uid = 1000;
  std::strcpy(raw.comm, "cu\"rl\n");
  raw.family = AF_INET6;
  raw.hook = EGD_HOOK_CONNECT6;
  raw.protocol = IPPROTO_TCP;
  raw.dport = 80;
  raw.verdict = EGD_VERDICT_DENY;
  raw.reason = EGD_REASON_PRIVATE;
  inet_pton(AF_INET6, "::ffff:10.0.0.5", raw.daddr);
  inet_pton(AF_INET, "10.0.0.5", &raw.judged_addr4);
  return raw;
}

TEST(EventFormat, JsonCarriesEveryFieldEscaped) {
  Event e = decode_event(mapped_private_connect(), 1'700'000'000'000'000'000 - 1'000'000'000);
  std::string j = to_json(e);
  EXPECT_NE(j.find("\"time\":\"2023-11-14T22:13:20.000000Z\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"comm\":\"cu\\\"rl\\n\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"daddr\":\"::ffff:10.0.0.5\",\"dport\":80"), std::string::npos) << j;
  EXPECT_NE(j.find("\"judged\":\"10.0.0.5\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"verdict\":\"deny\",\"reason\":\"private\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"hook\":\"connect6\""), std::string::npos) << j;
  EXPECT_EQ(j.find("\"rule\""), std::string::npos) << "no rule decided this";
}

TEST(EventFormat, TextLineNamesWhoWhatWhy) {
  Event e = decode_event(mapped_private_connect(), 0);
  std::string t = to_text(e);
  EXPECT_NE(t.find("[41] deny tcp [::ffff:10.0.0.5]:80 (as 10.0.0.5) private via connect6 uid 1000"),
            std::string::npos)
      << t;
}

// Test that a proxy fallback names the address that failed, how, the one
// that served and how many were dialed, in JSON and in the text line.
TEST(EventFormat, FallbackNamesFailedAndServedAddress) {
  Event e;
  e.hook = EGD_HOOK_PROXY;
  e.family = AF_INET;
  e.protocol = IPPROTO_TCP;
  e.daddr = "203.0.113.66";
  e.dport = 443;
  e.l7 = "tls";
  e.host = "fallback.test";
  e.verdict = EGD_VERDICT_ALLOW;
  e.reason = EGD_REASON_UPSTREAM_FALLBACK;
  e.dial_error = DialError::REFUSED;
  e.upstream = "203.0.113.10";
  e.dials = 2;
  std::string j = to_json(e);
  EXPECT_NE(j.find("\"dial_error\":\"refused\",\"upstream\":\"203.0.113.10\",\"dials\":2"), std::string::npos) << j;
  EXPECT_NE(j.find("\"reason\":\"upstream-fallback\""), std::string::npos) << j;
  std::string t = to_text(e);
  EXPECT_NE(t.find("203.0.113.66:443 tls fallback.test upstream-fallback (dial refused, served by 203.0.113.10, 2 "
                   "addresses dialed)"),
            std::string::npos)
      << t;
  Event plain;
  EXPECT_EQ(to_json(plain).find("dial"), std::string::npos);
}

TEST(EventFormat, SockCreateHasNoDestination) {
  egd_event raw{};
  raw.hook = EGD_HOOK_SOCK_CREATE;
  raw.family = AF_INET;
  raw.protocol = IPPROTO_ICMP;
  raw.reason = EGD_REASON_RAW_SOCKET;
  raw.verdict = EGD_VERDICT_DENY;
  std::string j = to_json(decode_event(raw, 0));
  EXPECT_EQ(j.find("daddr"), std::string::npos) << j;
  EXPECT_NE(j.find("\"proto\":\"icmp\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"reason\":\"raw-socket\""), std::string::npos) << j;
}

// A resolver decision names the question: its name and type.
TEST(EventFormat, DnsEventsCarryNameAndType) {
  Event e;
  e.unix_ns = 1'700'000'000'000'000'000;
  e.sender_known = true;
  e.pid = e.tgid = 7;
  e.uid = 1000;
  e.comm = "dig";
  e.family = AF_INET;
  e.protocol = IPPROTO_UDP;
  e.hook = EGD_HOOK_DNS;
  e.verdict = EGD_VERDICT_DENY;
  e.reason = EGD_REASON_DNS_NAME_NOT_ALLOWED;
  e.daddr = "198.51.100.53";
  e.dport = 53;
  e.l7 = "dns";
  e.host = "secret.evil.test";
  e.qtype = 16;
  std::string j = to_json(e);
  EXPECT_NE(j.find("\"l7\":\"dns\",\"host\":\"secret.evil.test\",\"qtype\":\"TXT\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"hook\":\"dns\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"reason\":\"dns-name-not-allowed\""), std::string::npos) << j;
  std::string t = to_text(e);
  EXPECT_NE(t.find("dig[7] deny udp 198.51.100.53:53 dns secret.evil.test TXT dns-name-not-allowed via dns uid 1000"),
            std::string::npos)
      << t;
  e.qtype = 65280;
  EXPECT_NE(to_json(e).find("\"qtype\":\"TYPE65280\""), std::string::npos);
  e.qtype = 0;  // a packet without a question: no type
  EXPECT_EQ(to_json(e).find("qtype"), std::string::npos);
}

// CHAOS and other classes are named; IN, the usual one, only in JSON.
TEST(EventFormat, DnsEventsNameAClassOtherThanIn) {
  Event e;
  e.sender_known = true;
  e.comm = "dig";
  e.hook = EGD_HOOK_DNS;
  e.protocol = IPPROTO_UDP;
  e.reason = EGD_REASON_DNS_TYPE_NOT_ALLOWED;
  e.l7 = "dns";
  e.host = "version.bind";
  e.qtype = 16;
  e.qclass = 3;
  EXPECT_NE(to_json(e).find("\"qtype\":\"TXT\",\"qclass\":\"CH\""), std::string::npos) << to_json(e);
  EXPECT_NE(to_text(e).find(" dns version.bind CH TXT dns-type-not-allowed "), std::string::npos) << to_text(e);
  e.qclass = 1;
  EXPECT_NE(to_json(e).find("\"qclass\":\"IN\""), std::string::npos) << to_json(e);
  EXPECT_NE(to_text(e).find(" dns version.bind TXT dns-type-not-allowed "), std::string::npos) << to_text(e);
  e.qclass = 65000;
  EXPECT_NE(to_json(e).find("\"qclass\":\"CLASS65000\""), std::string::npos) << to_json(e);
}

// An event nobody could attribute reads as unknown, never as pid 0 / root.
TEST(EventFormat, UnknownSenderReadsAsUnknown) {
  Event e;
  e.unix_ns = 1'700'000'000'000'000'000;
  e.hook = EGD_HOOK_DNS;
  e.protocol = IPPROTO_UDP;
  e.verdict = EGD_VERDICT_DENY;
  e.reason = EGD_REASON_DNS_MALFORMED;
  e.l7 = "dns";
  std::string j = to_json(e);
  EXPECT_NE(j.find("\"pid\":null,\"tgid\":null,\"uid\":null,\"comm\":null"), std::string::npos) << j;
  std::string t = to_text(e);
  EXPECT_NE(t.find("Z ?[?] deny udp - dns - dns-malformed via dns uid ?"), std::string::npos) << t;
  e.sender_known = true;  // pid 0 and uid 0 are then what they say
  EXPECT_NE(to_json(e).find("\"pid\":0,\"tgid\":0,\"uid\":0,\"comm\":\"\""), std::string::npos);
  EXPECT_NE(to_text(e).find("Z [0] deny"), std::string::npos) << to_text(e);
}

TEST(EventFormat, EveryReasonHasAName) {
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) EXPECT_NE(reason_name(r), "unknown") << r;
  EXPECT_EQ(reason_name(EGD_REASON__COUNT), "unknown");
}

}  // namespace
}  // namespace egressd
