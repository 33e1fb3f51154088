// Test the address classification the hooks run (bpf/addr_class.h, compiled
// here unchanged): every category boundary, and the IPv6 forms that embed an
// IPv4 address.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "addr_class.h"

namespace {

__u32 v4(const char* text) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, text, &a), 1) << text;
  return a.s_addr;  // network order, as the sock_addr context holds it
}

struct V6 {
  __u32 w[4];
};

V6 v6(const char* text) {
  V6 out{};
  in6_addr a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, &a), 1) << text;
  std::memcpy(out.w, &a, 16);
  return out;
}

__u32 classify4(const char* text) { return egd_classify4(v4(text)); }
__u32 classify6(const char* text) { return egd_classify6(v6(text).w); }

// The IPv4 an IPv6 address embeds, as text, or "" if none.
std::string embedded(const char* text) {
  V6 a = v6(text);
  __u32 out = 0xdeadbeef;
  if (!egd_embedded_v4(a.w, &out)) {
    EXPECT_EQ(out, 0xdeadbeefu) << text << ": written without an embedding";
    return "";
  }
  char buf[INET_ADDRSTRLEN];
  in_addr ia{};
  ia.s_addr = out;
  inet_ntop(AF_INET, &ia, buf, sizeof(buf));
  return buf;
}

struct Case4 {
  const char* addr;
  __u32 cat;
};

void expect4(std::initializer_list<Case4> cases) {
  for (const auto& c : cases) EXPECT_EQ(classify4(c.addr), c.cat) << c.addr;
}

TEST(Classify4, Loopback) {
  expect4({{"127.0.0.1", EGD_CAT_LOOPBACK},
           {"127.0.0.0", EGD_CAT_LOOPBACK},
           {"127.255.255.255", EGD_CAT_LOOPBACK},
           {"0.0.0.0", EGD_CAT_LOOPBACK},  // connect() to 0.0.0.0 reaches the local host
           {"126.255.255.255", EGD_CAT_PUBLIC},
           {"128.0.0.0", EGD_CAT_PUBLIC}});
}

TEST(Classify4, ThisNetworkIsReserved) {
  expect4({{"0.1.2.3", EGD_CAT_RESERVED}, {"0.0.0.1", EGD_CAT_RESERVED}, {"0.255.255.255", EGD_CAT_RESERVED},
           {"1.0.0.0", EGD_CAT_PUBLIC}});
}

TEST(Classify4, Private) {
  expect4({{"10.0.0.0", EGD_CAT_PRIVATE},
           {"10.0.0.1", EGD_CAT_PRIVATE},
           {"10.255.255.255", EGD_CAT_PRIVATE},
           {"9.255.255.255", EGD_CAT_PUBLIC},
           {"11.0.0.0", EGD_CAT_PUBLIC},
           {"172.15.255.255", EGD_CAT_PUBLIC},
           {"172.16.0.0", EGD_CAT_PRIVATE},
           {"172.31.255.255", EGD_CAT_PRIVATE},
           {"172.32.0.0", EGD_CAT_PUBLIC},
           {"192.167.255.255", EGD_CAT_PUBLIC},
           {"192.168.0.0", EGD_CAT_PRIVATE},
           {"192.168.1.1", EGD_CAT_PRIVATE},
           {"192.168.255.255", EGD_CAT_PRIVATE},
           {"192.169.0.0", EGD_CAT_PUBLIC}});
}

TEST(Classify4, Cgnat) {
  expect4({{"100.63.255.255", EGD_CAT_PUBLIC},
           {"100.64.0.0", EGD_CAT_PRIVATE},
           {"100.100.100.200", EGD_CAT_PRIVATE},  // Alibaba's metadata endpoint
           {"100.127.255.255", EGD_CAT_PRIVATE},
           {"100.128.0.0", EGD_CAT_PUBLIC}});
}

TEST(Classify4, LinkLocal) {
  expect4({{"169.253.255.255", EGD_CAT_PUBLIC},
           {"169.254.0.0", EGD_CAT_LINK_LOCAL},
           {"169.254.169.254", EGD_CAT_LINK_LOCAL},  // cloud metadata
           {"169.254.255.255", EGD_CAT_LINK_LOCAL},
           {"169.255.0.0", EGD_CAT_PUBLIC}});
}

TEST(Classify4, MulticastReservedBroadcast) {
  expect4({{"223.255.255.255", EGD_CAT_PUBLIC},
           {"224.0.0.0", EGD_CAT_MULTICAST},
           {"224.0.0.251", EGD_CAT_MULTICAST},
           {"239.255.255.255", EGD_CAT_MULTICAST},
           {"240.0.0.0", EGD_CAT_RESERVED},
           {"255.255.255.254", EGD_CAT_RESERVED},
           {"255.255.255.255", EGD_CAT_BROADCAST}});
}

TEST(Classify4, Public) {
  expect4({{"203.0.113.10", EGD_CAT_PUBLIC}, {"8.8.8.8", EGD_CAT_PUBLIC}, {"1.1.1.1", EGD_CAT_PUBLIC}});
}

TEST(EmbeddedV4, FormsThatReachAnIpv4Host) {
  EXPECT_EQ(embedded("::ffff:10.0.0.1"), "10.0.0.1");          // v4-mapped
  EXPECT_EQ(embedded("::ffff:0:10.0.0.1"), "10.0.0.1");        // v4-translated
  EXPECT_EQ(embedded("::10.0.0.1"), "10.0.0.1");               // v4-compatible
  EXPECT_EQ(embedded("::0.0.0.2"), "0.0.0.2");                 // the smallest v4-compatible
  EXPECT_EQ(embedded("64:ff9b::a00:1"), "10.0.0.1");           // NAT64
  EXPECT_EQ(embedded("64:ff9b::a9fe:a9fe"), "169.254.169.254");
  EXPECT_EQ(embedded("2002:0a00:0001::1"), "10.0.0.1");        // 6to4
  EXPECT_EQ(embedded("2002:cb00:710a::"), "203.0.113.10");     // 6to4 of a public address
  EXPECT_EQ(embedded("::ffff:127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(embedded("::ffff:0.0.0.0"), "0.0.0.0");
}

TEST(EmbeddedV4, TheEmbeddedAddressIsClassifiedAsIpv4) {
  V6 a = v6("2002:cb00:710a::");
  __u32 out = 0;
  ASSERT_TRUE(egd_embedded_v4(a.w, &out));
  EXPECT_EQ(egd_classify4(out), EGD_CAT_PUBLIC);
  a = v6("::ffff:169.254.169.254");
  ASSERT_TRUE(egd_embedded_v4(a.w, &out));
  EXPECT_EQ(egd_classify4(out), EGD_CAT_LINK_LOCAL);
  a = v6("64:ff9b::c0a8:101");
  ASSERT_TRUE(egd_embedded_v4(a.w, &out));
  EXPECT_EQ(egd_classify4(out), EGD_CAT_PRIVATE);
}

TEST(EmbeddedV4, FormsThatDoNot) {
  EXPECT_EQ(embedded("2001:db8::10"), "");
  EXPECT_EQ(embedded("::1"), "");  // the v6 loopback, not v4-compatible 0.0.0.1
  EXPECT_EQ(embedded("::"), "");
  EXPECT_EQ(embedded("64:ff9b:1::a00:1"), "");  // local-use NAT64: not decoded, judged reserved
  EXPECT_EQ(embedded("64:ff9b::1:a00:1"), "");  // not in the /96
  EXPECT_EQ(embedded("::fffe:10.0.0.1"), "");
  EXPECT_EQ(embedded("2003::1"), "");
  EXPECT_EQ(embedded("fe80::1"), "");
}

TEST(Classify6, Categories) {
  struct Case6 {
    const char* addr;
    __u32 cat;
  };
  for (const auto& c : std::initializer_list<Case6>{
           {"::1", EGD_CAT_LOOPBACK},
           {"::", EGD_CAT_LOOPBACK},
           {"fc00::1", EGD_CAT_PRIVATE},
           {"fd00::10", EGD_CAT_PRIVATE},
           {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGD_CAT_PRIVATE},
           {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", EGD_CAT_PUBLIC},
           {"fe00::1", EGD_CAT_PUBLIC},
           {"fe80::1", EGD_CAT_LINK_LOCAL},
           {"febf:ffff::1", EGD_CAT_LINK_LOCAL},
           {"fec0::1", EGD_CAT_PRIVATE},
           {"feff:ffff::1", EGD_CAT_PRIVATE},
           {"ff02::1", EGD_CAT_MULTICAST},
           {"ff05::1:3", EGD_CAT_MULTICAST},
           {"64:ff9b:1::1", EGD_CAT_RESERVED},
           {"64:ff9b:1:ffff::1", EGD_CAT_RESERVED},
           {"::2:0:0:1", EGD_CAT_RESERVED},  // leftover ::/8
           {"100::1", EGD_CAT_PUBLIC},        // just past ::/8 (discard-only; not blocked here)
           {"2001:db8::10", EGD_CAT_PUBLIC},
           {"2606:4700:4700::1111", EGD_CAT_PUBLIC},
       })
    EXPECT_EQ(classify6(c.addr), c.cat) << c.addr;
}

TEST(CategoryReason, EveryBlockedCategoryHasItsReason) {
  EXPECT_EQ(egd_category_reason(EGD_CAT_LOOPBACK), EGD_REASON_LOOPBACK);
  EXPECT_EQ(egd_category_reason(EGD_CAT_PRIVATE), EGD_REASON_PRIVATE);
  EXPECT_EQ(egd_category_reason(EGD_CAT_LINK_LOCAL), EGD_REASON_LINK_LOCAL);
  EXPECT_EQ(egd_category_reason(EGD_CAT_MULTICAST), EGD_REASON_MULTICAST);
  EXPECT_EQ(egd_category_reason(EGD_CAT_BROADCAST), EGD_REASON_BROADCAST);
  EXPECT_EQ(egd_category_reason(EGD_CAT_RESERVED), EGD_REASON_RESERVED);
  EXPECT_EQ(egd_category_reason(EGD_CAT_PUBLIC), EGD_REASON_NONE);
}

TEST(RuleAdmits, RangesAndTheAllPortsForm) {
  egd_cidr_rule r;
  std::memset(&r, 0, sizeof(r));
  r.proto_mask = EGD_PROTO_TCP;  // nranges == 0: every port, for these protocols
  EXPECT_TRUE(egd_rule_admits(&r, 1, EGD_PROTO_TCP));
  EXPECT_FALSE(egd_rule_admits(&r, 1, EGD_PROTO_UDP));
  r.nranges = 2;
  r.ranges[0] = {100, 200, EGD_PROTO_UDP, {}};
  r.ranges[1] = {443, 443, EGD_PROTO_TCP | EGD_PROTO_UDP, {}};
  EXPECT_TRUE(egd_rule_admits(&r, 100, EGD_PROTO_UDP));
  EXPECT_TRUE(egd_rule_admits(&r, 200, EGD_PROTO_UDP));
  EXPECT_FALSE(egd_rule_admits(&r, 201, EGD_PROTO_UDP));
  EXPECT_FALSE(egd_rule_admits(&r, 150, EGD_PROTO_TCP));
  EXPECT_TRUE(egd_rule_admits(&r, 443, EGD_PROTO_TCP));
  EXPECT_FALSE(egd_rule_admits(&r, 443, 0));
  r.ranges[2] = {1, 65535, EGD_PROTO_TCP, {}};  // beyond nranges: ignored
  EXPECT_FALSE(egd_rule_admits(&r, 22, EGD_PROTO_TCP));
}

}  // namespace

namespace {

// Test that only v4-mapped addresses count as IPv4 on the wire; every other
// embedding is IPv6 that a translator turns into IPv4, judged as both.
TEST(EmbeddedV4, KindSaysWhatLeavesTheHost) {
  __u32 out = 0;
  EXPECT_EQ(egd_embedded_v4(v6("::ffff:10.0.0.1").w, &out), EGD_EMBED_MAPPED);
  for (const char* t : {"::ffff:0:10.0.0.1", "::10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1"}) {
    EXPECT_EQ(egd_embedded_v4(v6(t).w, &out), EGD_EMBED_TRANSLATED) << t;
  }
  EXPECT_EQ(egd_embedded_v4(v6("2001:db8::10").w, &out), EGD_EMBED_NONE);
}

// Test that the NAT64 prefix itself is routable (public) as IPv6, while the
// local-use NAT64 prefix stays reserved.
TEST(Classify6, Nat64PrefixIsPublicAsIpv6) {
  EXPECT_EQ(classify6("64:ff9b::a00:1"), EGD_CAT_PUBLIC);
  EXPECT_EQ(classify6("64:ff9b:1::a00:1"), EGD_CAT_RESERVED);
}

// Test the host-internal IPv4 addresses that look public.
TEST(Classify4, HostInternalRanges) {
  expect4({{"168.63.129.16", EGD_CAT_LINK_LOCAL},  // Azure host endpoint
           {"168.63.129.17", EGD_CAT_PUBLIC},
           {"192.0.0.8", EGD_CAT_RESERVED},
           {"192.0.1.1", EGD_CAT_PUBLIC},
           {"198.18.0.1", EGD_CAT_RESERVED},
           {"198.19.255.255", EGD_CAT_RESERVED},
           {"198.17.255.255", EGD_CAT_PUBLIC},
           {"198.20.0.0", EGD_CAT_PUBLIC}});
}

}  // namespace
