// Test the policy compiler: config scalars and port bitmaps, map key layout,
// the folding of less specific allow rules into more specific entries (the
// kernel's LPM lookup returns only the longest match), deduplication, the
// port-range limit, and scale.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <string>

#include "addr_class.h"
#include "policy/cidr.h"
#include "policy/compiler.h"
#include "policy/toml_loader.h"

namespace egressd::policy {
namespace {

Policy parse(const std::string& text) { return parse_policy(text, "c.toml"); }

Cidr cidr(const std::string& text) {
  auto r = parse_cidr(text);
  EXPECT_TRUE(r.cidr.has_value()) << text << ": " << r.error;
  return r.cidr.value_or(Cidr{});
}

bool tcp_port(const egd_config& c, uint16_t p) { return (c.tcp_ports[p >> 6] >> (p & 63)) & 1; }
bool udp_port(const egd_config& c, uint16_t p) { return (c.udp_ports[p >> 6] >> (p & 63)) & 1; }

size_t count_bits(const __u64* bitmap) {
  size_t n = 0;
  for (int i = 0; i < 1024; ++i) n += static_cast<size_t>(__builtin_popcountll(bitmap[i]));
  return n;
}

// The entry whose key is exactly this CIDR.
const egd_cidr_rule* find4(const CompiledPolicy& c, const std::string& text) {
  Cidr want = cidr(text);
  for (const auto& [k, v] : c.allow4)
    if (k.prefixlen == EGD_GEN_BITS + static_cast<__u32>(want.prefix) && std::memcmp(&k.addr, want.addr.data(), 4) == 0) return &v;
  return nullptr;
}

const egd_cidr_rule* find6(const CompiledPolicy& c, const std::string& text) {
  Cidr want = cidr(text);
  for (const auto& [k, v] : c.allow6)
    if (k.prefixlen == EGD_GEN_BITS + static_cast<__u32>(want.prefix) && std::memcmp(k.addr, want.addr.data(), 16) == 0) return &v;
  return nullptr;
}

bool admits(const egd_cidr_rule* r, uint16_t port, uint8_t proto) {
  return r != nullptr && egd_rule_admits(r, port, proto);
}

std::string allow_rule(const std::string& c, const std::string& extra = "") {
  return "[[allow_cidr]]\ncidr = \"" + c + "\"\n" + extra;
}

// ---- config -----------------------------------------------------------------

TEST(CompileConfig, DefaultPolicy) {
  CompiledPolicy c = compile(parse("version = 1\n"), 7);
  EXPECT_EQ(c.gen, 7u);
  EXPECT_EQ(c.config.gen, 7u);
  EXPECT_EQ(c.config.category_action[EGD_CAT_PUBLIC], EGD_ACTION_ALLOW);
  EXPECT_EQ(c.config.category_action[EGD_CAT_LOOPBACK], EGD_ACTION_ALLOW);
  EXPECT_EQ(c.config.category_action[EGD_CAT_PRIVATE], EGD_ACTION_DENY);
  EXPECT_EQ(c.config.category_action[EGD_CAT_LINK_LOCAL], EGD_ACTION_DENY);
  EXPECT_EQ(c.config.category_action[EGD_CAT_MULTICAST], EGD_ACTION_DENY);
  EXPECT_EQ(c.config.category_action[EGD_CAT_BROADCAST], EGD_ACTION_DENY);
  EXPECT_EQ(c.config.category_action[EGD_CAT_RESERVED], EGD_ACTION_DENY);
  EXPECT_EQ(c.config.category_action[7], 0);
  EXPECT_EQ(c.config.events_all, 0);
  EXPECT_TRUE(tcp_port(c.config, 80));
  EXPECT_TRUE(tcp_port(c.config, 443));
  EXPECT_EQ(count_bits(c.config.tcp_ports), 2u);
  EXPECT_TRUE(udp_port(c.config, 53));
  EXPECT_EQ(count_bits(c.config.udp_ports), 1u);
  EXPECT_FALSE(tcp_port(c.config, 53));
  EXPECT_FALSE(udp_port(c.config, 443));  // no QUIC at L4
  EXPECT_TRUE(c.allow4.empty() && c.allow6.empty() && c.deny4.empty() && c.deny6.empty());
}

TEST(CompileConfig, CategoriesAndEventsFollowThePolicy) {
  CompiledPolicy c = compile(parse(R"(version = 1
events = "all"
[network]
loopback = "deny"
private = "allow"
link_local = "allow"
multicast = "allow"
broadcast = "allow"
reserved = "allow"
)"),
                             1);
  EXPECT_EQ(c.config.events_all, 1);
  EXPECT_EQ(c.config.category_action[EGD_CAT_LOOPBACK], EGD_ACTION_DENY);
  for (int cat : {EGD_CAT_PRIVATE, EGD_CAT_LINK_LOCAL, EGD_CAT_MULTICAST, EGD_CAT_BROADCAST, EGD_CAT_RESERVED})
    EXPECT_EQ(c.config.category_action[cat], EGD_ACTION_ALLOW) << cat;
}

// Test that audit mode reaches the kernel config and records every decision.
TEST(CompileConfig, AuditModeSetsAuditAndAllEvents) {
  CompiledPolicy c = compile(parse("version = 1\nmode = \"audit\"\n"), 1);
  EXPECT_EQ(c.config.audit, 1);
  EXPECT_EQ(c.config.events_all, 1);
  EXPECT_EQ(compile(parse("version = 1\n"), 1).config.audit, 0);
}

TEST(CompileConfig, HostRulePortsOpenTcpAtL4) {
  CompiledPolicy c = compile(parse(R"(version = 1
[[allow]]
host = "example.com"
ports = [8443, "9000-9002", 65535]
[[allow]]
host = "example.org"
ports = [1]
[[allow_cidr]]
cidr = "203.0.113.1"
ports = [5432]
)"),
                             1);
  for (uint16_t p : {80, 443, 8443, 9000, 9001, 9002, 65535, 1}) EXPECT_TRUE(tcp_port(c.config, p)) << p;
  EXPECT_EQ(count_bits(c.config.tcp_ports), 8u);
  EXPECT_FALSE(tcp_port(c.config, 9003));
  EXPECT_FALSE(tcp_port(c.config, 5432));  // allow_cidr ports live in the allow trie only
  EXPECT_FALSE(udp_port(c.config, 8443));  // host rules are HTTP(S): TCP only
  EXPECT_EQ(count_bits(c.config.udp_ports), 1u);
}

TEST(CompileConfig, WideHostPortRangesFillTheBitmapExactly) {
  CompiledPolicy c = compile(parse("version = 1\n[[allow]]\nhost = \"example.com\"\nports = [\"60-130\"]\n"), 1);
  for (uint32_t p = 0; p < 200; ++p) EXPECT_EQ(tcp_port(c.config, p), (p >= 60 && p <= 130)) << p;
  EXPECT_EQ(count_bits(c.config.tcp_ports), 71u + 1);  // + 443
  CompiledPolicy all = compile(parse("version = 1\n[[allow]]\nhost = \"example.com\"\nports = [\"1-65535\"]\n"), 1);
  EXPECT_EQ(count_bits(all.config.tcp_ports), 65535u);
  EXPECT_FALSE(tcp_port(all.config, 0));
  EXPECT_TRUE(tcp_port(all.config, 65535));
}

// ---- key layout -----------------------------------------------------------------

TEST(CompileKeys, Ipv4Layout) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("10.1.0.0/16") +
                                   "[[deny_cidr]]\ncidr = \"203.0.113.128/25\"\n"),
                             0x01020304);
  ASSERT_EQ(c.allow4.size(), 1u);
  egd_lpm4_key want;
  std::memset(&want, 0, sizeof(want));
  want.prefixlen = 32 + 16;
  const uint8_t gen_be[4] = {1, 2, 3, 4};
  std::memcpy(&want.gen, gen_be, 4);  // network order: the generation leads the match
  const uint8_t addr[4] = {10, 1, 0, 0};
  std::memcpy(&want.addr, addr, 4);
  EXPECT_EQ(std::memcmp(&c.allow4[0].first, &want, sizeof(want)), 0);
  EXPECT_EQ(c.allow4[0].first.gen, htonl(0x01020304));

  ASSERT_EQ(c.deny4.size(), 1u);
  EXPECT_EQ(c.deny4[0].first.prefixlen, 32u + 25);
  const uint8_t deny_addr[4] = {203, 0, 113, 128};
  EXPECT_EQ(std::memcmp(&c.deny4[0].first.addr, deny_addr, 4), 0);
  EXPECT_EQ(c.deny4[0].second, 1u);
}

TEST(CompileKeys, Ipv6Layout) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("2001:db8:1::/48") +
                                   "[[deny_cidr]]\ncidr = \"2001:db8::1\"\n"),
                             0xa0b0c0d0);
  ASSERT_EQ(c.allow6.size(), 1u);
  egd_lpm6_key want;
  std::memset(&want, 0, sizeof(want));
  want.prefixlen = 32 + 48;
  want.gen = htonl(0xa0b0c0d0);
  const uint8_t addr[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01};
  std::memcpy(want.addr, addr, 16);
  EXPECT_EQ(std::memcmp(&c.allow6[0].first, &want, sizeof(want)), 0);
  ASSERT_EQ(c.deny6.size(), 1u);
  EXPECT_EQ(c.deny6[0].first.prefixlen, 32u + 128);
  EXPECT_EQ(c.deny6[0].first.gen, htonl(0xa0b0c0d0));
}

TEST(CompileKeys, AddressesAreMaskedEvenWhenBuiltByHand) {
  Policy p;
  AllowCidr a;
  a.id = 1;
  a.cidr = cidr("10.0.0.0/8");
  a.cidr.addr[3] = 99;  // host bits the parser would have rejected
  p.allow_cidrs.push_back(a);
  DenyCidr d;
  d.id = 1;
  d.cidr = cidr("2001:db8::/32");
  d.cidr.addr[15] = 1;
  p.deny_cidrs.push_back(d);
  CompiledPolicy c = compile(p, 1);
  ASSERT_EQ(c.allow4.size(), 1u);
  EXPECT_EQ(c.allow4[0].first.addr, htonl(0x0a000000));
  ASSERT_EQ(c.deny6.size(), 1u);
  EXPECT_EQ(c.deny6[0].first.addr[3], 0u);
}

TEST(CompileKeys, HandBuiltNonsenseIsACompileError) {
  Policy p;
  AllowCidr a;
  a.id = 1;
  a.cidr.family = 12345;
  p.allow_cidrs.push_back(a);
  EXPECT_THROW(compile(p, 1), CompileError);
  Policy q;
  DenyCidr d;
  d.id = 1;
  d.cidr = cidr("10.0.0.0/8");
  d.cidr.prefix = 33;
  q.deny_cidrs.push_back(d);
  EXPECT_THROW(compile(q, 1), CompileError);
}

// ---- allow values ---------------------------------------------------------------

TEST(CompileAllow, RuleWithoutPortsAdmitsEveryPortOfItsProtocols) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("203.0.113.0/24") +
                                   allow_rule("198.51.100.0/24", "proto = \"udp\"\n")),
                             1);
  const egd_cidr_rule* any = find4(c, "203.0.113.0/24");
  ASSERT_NE(any, nullptr);
  EXPECT_EQ(any->rule_id, 1u);
  ASSERT_EQ(any->nranges, 1);  // explicit, never the nranges == 0 form
  EXPECT_EQ(any->ranges[0].lo, 0);
  EXPECT_EQ(any->ranges[0].hi, 65535);
  EXPECT_EQ(any->ranges[0].proto_mask, EGD_PROTO_TCP | EGD_PROTO_UDP);
  EXPECT_TRUE(admits(any, 0, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(any, 65535, EGD_PROTO_UDP));

  const egd_cidr_rule* udp = find4(c, "198.51.100.0/24");
  ASSERT_NE(udp, nullptr);
  EXPECT_EQ(udp->rule_id, 2u);
  EXPECT_TRUE(admits(udp, 123, EGD_PROTO_UDP));
  EXPECT_FALSE(admits(udp, 123, EGD_PROTO_TCP));
}

TEST(CompileAllow, RangesAreMergedAndSorted) {
  CompiledPolicy c = compile(parse("version = 1\n" +
                                   allow_rule("203.0.113.1", "ports = [100, 82, \"83-90\", 80, 81, \"85-86\"]\n"
                                                           "proto = \"tcp\"\n")),
                             1);
  const egd_cidr_rule* r = find4(c, "203.0.113.1/32");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->nranges, 2);
  EXPECT_EQ(r->ranges[0].lo, 80);
  EXPECT_EQ(r->ranges[0].hi, 90);
  EXPECT_EQ(r->ranges[0].proto_mask, EGD_PROTO_TCP);
  EXPECT_EQ(r->ranges[1].lo, 100);
  EXPECT_EQ(r->ranges[1].hi, 100);
}

TEST(CompileAllow, SamePrefixRulesShareOneEntryAndTheFirstId) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("10.0.0.0/8", "ports = [22]\nproto = \"tcp\"\n") +
                                   allow_rule("10.0.0.0/8", "ports = [22]\nproto = \"udp\"\n") +
                                   allow_rule("10.0.0.0/8", "ports = [5000]\nproto = \"udp\"\n")),
                             1);
  ASSERT_EQ(c.allow4.size(), 1u);
  const egd_cidr_rule* r = find4(c, "10.0.0.0/8");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->rule_id, 1u);
  // TCP 22 and UDP 22 are the same interval: one range with both bits.
  ASSERT_EQ(r->nranges, 2);
  EXPECT_EQ(r->ranges[0].lo, 22);
  EXPECT_EQ(r->ranges[0].proto_mask, EGD_PROTO_TCP | EGD_PROTO_UDP);
  EXPECT_EQ(r->ranges[1].lo, 5000);
  EXPECT_EQ(r->ranges[1].proto_mask, EGD_PROTO_UDP);
  EXPECT_FALSE(admits(r, 5000, EGD_PROTO_TCP));
}

TEST(CompileAllow, LessSpecificRulesFoldIntoMoreSpecificEntries) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("10.0.0.0/8", "ports = [5432]\nproto = \"tcp\"\n") +
                                   allow_rule("10.1.0.0/16", "ports = [22]\n") +
                                   allow_rule("11.0.0.0/8", "ports = [25]\n")),
                             1);
  ASSERT_EQ(c.allow4.size(), 3u);
  const egd_cidr_rule* wide = find4(c, "10.0.0.0/8");
  const egd_cidr_rule* narrow = find4(c, "10.1.0.0/16");
  const egd_cidr_rule* other = find4(c, "11.0.0.0/8");
  // An address in 10.1/16 hits only the /16 entry: it must admit both.
  EXPECT_TRUE(admits(narrow, 22, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(narrow, 22, EGD_PROTO_UDP));
  EXPECT_TRUE(admits(narrow, 5432, EGD_PROTO_TCP));
  EXPECT_FALSE(admits(narrow, 5432, EGD_PROTO_UDP));
  EXPECT_FALSE(admits(narrow, 25, EGD_PROTO_TCP));
  EXPECT_EQ(narrow->rule_id, 2u);
  // Folding goes down only, and only into contained prefixes.
  EXPECT_TRUE(admits(wide, 5432, EGD_PROTO_TCP));
  EXPECT_FALSE(admits(wide, 22, EGD_PROTO_TCP));
  EXPECT_EQ(wide->rule_id, 1u);
  EXPECT_TRUE(admits(other, 25, EGD_PROTO_TCP));
  EXPECT_FALSE(admits(other, 5432, EGD_PROTO_TCP));
}

TEST(CompileAllow, FoldingAcrossManyLevelsAndTheDefaultRoute) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("0.0.0.0/0", "ports = [53]\nproto = \"tcp\"\n") +
                                   allow_rule("10.0.0.0/8", "ports = [1]\n") +
                                   allow_rule("10.1.2.3", "proto = \"udp\"\n") +
                                   allow_rule("10.1.0.0/16", "ports = [2]\n")),
                             1);
  const egd_cidr_rule* host = find4(c, "10.1.2.3/32");
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(host->rule_id, 3u);
  EXPECT_TRUE(admits(host, 53, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(host, 1, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(host, 2, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(host, 40000, EGD_PROTO_UDP));
  EXPECT_FALSE(admits(host, 40000, EGD_PROTO_TCP));
  const egd_cidr_rule* mid = find4(c, "10.1.0.0/16");
  EXPECT_TRUE(admits(mid, 53, EGD_PROTO_TCP));
  EXPECT_TRUE(admits(mid, 1, EGD_PROTO_UDP));
  EXPECT_FALSE(admits(mid, 40000, EGD_PROTO_UDP));
}

TEST(CompileAllow, Ipv6FoldsToo) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("2001:db8::/32", "ports = [443]\n") +
                                   allow_rule("2001:db8:1::/48", "ports = [22]\nproto = \"tcp\"\n") +
                                   allow_rule("10.0.0.0/8", "ports = [9]\n")),
                             1);
  ASSERT_EQ(c.allow6.size(), 2u);
  ASSERT_EQ(c.allow4.size(), 1u);
  const egd_cidr_rule* narrow = find6(c, "2001:db8:1::/48");
  EXPECT_TRUE(admits(narrow, 443, EGD_PROTO_UDP));
  EXPECT_TRUE(admits(narrow, 22, EGD_PROTO_TCP));
  EXPECT_FALSE(admits(narrow, 9, EGD_PROTO_TCP));  // families never fold into each other
  EXPECT_EQ(narrow->rule_id, 2u);
  EXPECT_FALSE(admits(find6(c, "2001:db8::/32"), 22, EGD_PROTO_TCP));
}

// ---- deny ---------------------------------------------------------------------

TEST(CompileDeny, IdenticalPrefixesKeepTheFirstId) {
  CompiledPolicy c = compile(parse(R"(version = 1
[[deny_cidr]]
cidr = "10.0.0.0/8"
[[deny_cidr]]
cidr = "10.0.0.0/8"
[[deny_cidr]]
cidr = "10.0.0.0/16"
[[deny_cidr]]
cidr = "0.0.0.0/0"
[[deny_cidr]]
cidr = "::/0"
[[deny_cidr]]
cidr = "::/0"
)"),
                             1);
  ASSERT_EQ(c.deny4.size(), 3u);
  EXPECT_EQ(c.deny4[0].second, 1u);
  EXPECT_EQ(c.deny4[0].first.prefixlen, 40u);
  EXPECT_EQ(c.deny4[1].second, 3u);
  EXPECT_EQ(c.deny4[1].first.prefixlen, 48u);
  EXPECT_EQ(c.deny4[2].second, 4u);
  EXPECT_EQ(c.deny4[2].first.prefixlen, 32u);
  ASSERT_EQ(c.deny6.size(), 1u);  // ::/0 and 0.0.0.0/0 live in different families
  EXPECT_EQ(c.deny6[0].second, 5u);
}

// ---- limits -----------------------------------------------------------------------

std::string ports_list(int n, int first, int step) {
  std::string s = "ports = [";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(first + i * step);
  return s + "]\n";
}

TEST(CompileLimits, SixteenRangesFit) {
  CompiledPolicy c = compile(parse("version = 1\n" + allow_rule("203.0.113.1", ports_list(16, 1000, 2))), 1);
  EXPECT_EQ(c.allow4.at(0).second.nranges, EGD_MAX_PORT_RANGES);
  // Adjacent ports merge, so many ports can still be one range.
  CompiledPolicy d = compile(parse("version = 1\n" + allow_rule("203.0.113.1", ports_list(500, 1000, 1))), 1);
  EXPECT_EQ(d.allow4.at(0).second.nranges, 1);
}

TEST(CompileLimits, TooManyRangesNameTheRule) {
  try {
    compile(parse("version = 1\n" + allow_rule("203.0.113.1", ports_list(17, 1000, 2))), 1);
    FAIL() << "compiled 17 ranges";
  } catch (const CompileError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("c.toml:2:"), std::string::npos) << what;
    EXPECT_NE(what.find("allow_cidr[1]"), std::string::npos) << what;
    EXPECT_NE(what.find("203.0.113.1/32"), std::string::npos) << what;
    EXPECT_NE(what.find("17"), std::string::npos) << what;
  }
}

TEST(CompileLimits, FoldedRangesCountToo) {
  // 10 + 7 ranges: each rule fits alone, the /16 entry holds both.
  std::string text = "version = 1\n" + allow_rule("10.0.0.0/8", ports_list(10, 1000, 2)) +
                     allow_rule("10.1.0.0/16", ports_list(7, 2000, 2));
  try {
    compile(parse(text), 1);
    FAIL() << "compiled 17 folded ranges";
  } catch (const CompileError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("c.toml:5:"), std::string::npos) << what;
    EXPECT_NE(what.find("allow_cidr[2] (10.1.0.0/16)"), std::string::npos) << what;
  }
  // Different protocols over the same ports count once per distinct range.
  std::string split = "version = 1\n" + allow_rule("10.0.0.0/8", ports_list(10, 1000, 2) + "proto = \"tcp\"\n") +
                      allow_rule("10.1.0.0/16", ports_list(10, 1000, 2) + "proto = \"udp\"\n");
  CompiledPolicy c = compile(parse(split), 1);
  EXPECT_EQ(find4(c, "10.1.0.0/16")->nranges, 10);
}

// ---- scale and purity ---------------------------------------------------------------

Policy big_policy() {
  Policy p;
  p.source = "big.toml";
  p.allow_cidrs.reserve(110001);
  uint32_t id = 0;
  AllowCidr wide;
  wide.id = ++id;
  wide.cidr = cidr("10.0.0.0/8");
  wide.ports = {{5432, 5432}};
  p.allow_cidrs.push_back(wide);
  for (uint32_t i = 0; i < 100000; ++i) {
    AllowCidr a;
    a.id = ++id;
    a.cidr.family = AF_INET;
    a.cidr.prefix = 32;
    uint32_t addr = htonl(0x0a000000u + i);  // all inside 10/8: each folds the /8
    std::memcpy(a.cidr.addr.data(), &addr, 4);
    a.ports = {{443, 443}, {static_cast<uint16_t>(1000 + i % 1000), static_cast<uint16_t>(1000 + i % 1000)}};
    p.allow_cidrs.push_back(a);
  }
  for (uint32_t i = 0; i < 10000; ++i) {
    AllowCidr a;
    a.id = ++id;
    a.cidr = cidr("2001:db8::/128");
    a.cidr.addr[14] = static_cast<uint8_t>(i >> 8);
    a.cidr.addr[15] = static_cast<uint8_t>(i);
    p.allow_cidrs.push_back(a);
  }
  return p;
}

TEST(CompileScale, HundredThousandV4AndTenThousandV6) {
  Policy p = big_policy();
  auto t0 = std::chrono::steady_clock::now();
  CompiledPolicy c = compile(p, 3);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(c.allow4.size(), 100001u);
  EXPECT_EQ(c.allow6.size(), 10000u);
  const egd_cidr_rule& last = c.allow4.back().second;
  EXPECT_EQ(last.rule_id, 100001u);
  EXPECT_TRUE(egd_rule_admits(&last, 5432, EGD_PROTO_TCP));  // folded from the /8
  EXPECT_TRUE(egd_rule_admits(&last, 443, EGD_PROTO_UDP));
  EXPECT_FALSE(egd_rule_admits(&last, 22, EGD_PROTO_TCP));
  // Well under a second optimised; generous for sanitizer and debug builds.
  EXPECT_LT(ms, 5000.0);
  RecordProperty("compile_ms", static_cast<int>(ms));
  std::printf("compile of %zu entries: %.1f ms\n", c.allow4.size() + c.allow6.size(), ms);
}

TEST(CompilePurity, SameInputSameBytes) {
  Policy p = parse("version = 1\n" + allow_rule("10.0.0.0/8", "ports = [1, \"5-9\"]\n") +
                   allow_rule("10.1.0.0/16") + "[[deny_cidr]]\ncidr = \"fd00::/8\"\n");
  CompiledPolicy a = compile(p, 9), b = compile(p, 9);
  EXPECT_EQ(std::memcmp(&a.config, &b.config, sizeof(a.config)), 0);
  ASSERT_EQ(a.allow4.size(), b.allow4.size());
  for (size_t i = 0; i < a.allow4.size(); ++i) {
    EXPECT_EQ(std::memcmp(&a.allow4[i].first, &b.allow4[i].first, sizeof(egd_lpm4_key)), 0);
    EXPECT_EQ(std::memcmp(&a.allow4[i].second, &b.allow4[i].second, sizeof(egd_cidr_rule)), 0);
  }
  // Unused range slots are zero: values are compared byte-wise by tests and tools.
  const egd_cidr_rule& v = a.allow4[0].second;
  for (int i = v.nranges; i < EGD_MAX_PORT_RANGES; ++i) {
    EXPECT_EQ(v.ranges[i].lo, 0);
    EXPECT_EQ(v.ranges[i].proto_mask, 0);
  }
  CompiledPolicy other = compile(p, 10);
  EXPECT_EQ(other.allow4[0].first.gen, htonl(10));
}

// ---- summary ---------------------------------------------------------------------

TEST(Summarize, CountsAndActions) {
  Policy p = parse(R"(version = 1
events = "all"
[network]
loopback = "deny"
private = "allow"
[[allow_cidr]]
cidr = "203.0.113.0/24"
[[allow_cidr]]
cidr = "2001:db8::/32"
[[allow_cidr]]
cidr = "198.51.100.7"
[[deny_cidr]]
cidr = "203.0.113.0/24"
[[allow]]
host = "example.com"
ports = [443, "8000-8002"]
)");
  std::string s = summarize(p);
  EXPECT_NE(s.find("version:    1"), std::string::npos) << s;
  EXPECT_NE(s.find("allow_cidr: 3 (2 IPv4, 1 IPv6)"), std::string::npos) << s;
  EXPECT_NE(s.find("deny_cidr:  1 (1 IPv4, 0 IPv6)"), std::string::npos) << s;
  EXPECT_NE(s.find("host rules: 1"), std::string::npos) << s;
  EXPECT_NE(s.find("loopback deny, private allow, link_local deny, multicast deny, broadcast deny, reserved deny"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("tcp 80, 443, 8000-8002; udp 53"), std::string::npos) << s;
  EXPECT_NE(s.find("events:     all"), std::string::npos) << s;
  EXPECT_NE(s.find("dns:        resolves host-rule names; others NXDOMAIN; upstream /etc/resolv.conf"),
            std::string::npos)
      << s;
  EXPECT_EQ(s.back(), '\n');
  Policy d = parse_policy("version = 1\n[dns]\nupstream = [\"127.0.0.53\"]\ndenied = \"refused\"\nallow = [\"a.example\"]\n",
                          "t.toml");
  EXPECT_NE(summarize(d).find("dns:        resolves host-rule names and 1 [dns] allow names; others REFUSED; upstream "
                              "127.0.0.53"),
            std::string::npos)
      << summarize(d);
}

}  // namespace
}  // namespace egressd::policy
