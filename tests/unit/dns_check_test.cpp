// Test the resolver's decision per question (dns/policy_check.h): which
// names are resolvable (host rules on any port, [dns] allow, wildcards,
// plain names only), which types allowed names may ask for, the denied
// answer, audit mode; and which addresses the answer filter treats as
// blocked (decide::L3Check::reachable).
#include <gtest/gtest.h>

#include <string>

#include "decide/dns_check.h"
#include "decide/l3_check.h"
#include "dns/filter.h"
#include "dns/message.h"
#include "policy/toml_loader.h"

namespace egressd::dns {
namespace {

policy::Policy parse(const std::string& text) { return policy::parse_policy(text, "t.toml"); }

const char* kPolicy = R"(version = 1
[[allow]]
host = "api.example.com"
[[allow]]
host = "*.cdn.example.net"
ports = [8443]
[dns]
allow = ["edge.example.org", "*.svc.example.org"]
)";

TEST(DnsPolicyCheck, NamesFromHostRulesOnAnyPortAndDnsAllow) {
  policy::Policy p = parse(kPolicy);
  uint32_t rule = 99;
  EXPECT_TRUE(decide::name_allowed(p, "api.example.com", &rule));
  EXPECT_EQ(rule, 1u);
  EXPECT_TRUE(decide::name_allowed(p, "a.cdn.example.net", &rule));  // the rule's port does not matter to DNS
  EXPECT_EQ(rule, 2u);
  EXPECT_TRUE(decide::name_allowed(p, "x.y.cdn.example.net"));
  EXPECT_TRUE(decide::name_allowed(p, "edge.example.org", &rule));
  EXPECT_EQ(rule, 0u);  // [dns] allow names no host rule
  EXPECT_TRUE(decide::name_allowed(p, "_dmarc.svc.example.org"));
  for (const char* no : {"example.com", "www.example.com", "xapi.example.com", "cdn.example.net", "example.org",
                         "svc.example.org", "api.example.com.evil.test", "evil.test", ""})
    EXPECT_FALSE(decide::name_allowed(p, no)) << no;
}

// Labels that only escapes can spell (NUL, '.', spaces) never pass, even
// under an allowed wildcard: nothing a policy names looks like that.
TEST(DnsPolicyCheck, OnlyPlainNamesPass) {
  policy::Policy p = parse(kPolicy);
  EXPECT_TRUE(decide::plain_name("a-b_c.example.com"));
  for (const char* odd :
       {"a\\.b.cdn.example.net", "a\\000b.cdn.example.net", "a\\032b.cdn.example.net", "A.cdn.example.net",
        "a..cdn.example.net", ".cdn.example.net", "a.cdn.example.net.", "*.cdn.example.net"}) {
    EXPECT_FALSE(decide::plain_name(odd)) << odd;
    EXPECT_FALSE(decide::name_allowed(p, odd)) << odd;
  }
  EXPECT_FALSE(decide::plain_name(std::string(64, 'a') + ".cdn.example.net"));
  EXPECT_FALSE(decide::plain_name(""));
}

TEST(DnsPolicyCheck, AllowedTypes) {
  for (uint16_t t : {1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65, 257}) EXPECT_TRUE(decide::type_allowed(t)) << t;
  for (uint16_t t : {0, 10, 13, 41, 43, 46, 48, 99, 251, 252, 255, 65280}) EXPECT_FALSE(decide::type_allowed(t)) << t;
}

TEST(DnsPolicyCheck, DeniedNamesGetTheDeniedAnswerWhateverTheType) {
  policy::Policy p = parse(kPolicy);
  for (uint16_t t : {kTypeA, kTypeAAAA, kTypeTXT, uint16_t{255}, uint16_t{252}, kTypePTR}) {
    decide::QueryCheck c = decide::check_query(p, "secret.evil.test", t, kClassIN);
    EXPECT_FALSE(c.forward) << t;
    EXPECT_EQ(c.verdict, EGD_VERDICT_DENY);
    EXPECT_EQ(c.reason, EGD_REASON_DNS_NAME_NOT_ALLOWED);
    EXPECT_EQ(c.rcode, kRcodeNxDomain);
  }
  EXPECT_EQ(decide::check_query(p, "evil.test", kTypeA, 3).reason, EGD_REASON_DNS_NAME_NOT_ALLOWED);  // CHAOS too
  policy::Policy refused = parse(std::string(kPolicy) + "denied = \"refused\"\n");
  EXPECT_EQ(decide::check_query(refused, "evil.test", kTypeA, kClassIN).rcode, kRcodeRefused);
  // PTR for an address nobody allowed is just a name nobody allowed.
  EXPECT_EQ(decide::check_query(p, "5.0.0.10.in-addr.arpa", kTypePTR, kClassIN).reason,
            EGD_REASON_DNS_NAME_NOT_ALLOWED);
}

TEST(DnsPolicyCheck, AllowedNamesAskOnlyAllowedTypes) {
  policy::Policy p = parse(kPolicy);
  decide::QueryCheck a = decide::check_query(p, "api.example.com", kTypeAAAA, kClassIN);
  EXPECT_TRUE(a.forward);
  EXPECT_EQ(a.verdict, EGD_VERDICT_ALLOW);
  EXPECT_EQ(a.reason, EGD_REASON_DNS_NAME_ALLOWED);
  EXPECT_EQ(a.rule_id, 1u);
  EXPECT_TRUE(decide::check_query(p, "x.cdn.example.net", kTypeHTTPS, kClassIN).forward);
  for (uint16_t t : {uint16_t{255}, uint16_t{252}, uint16_t{10}, uint16_t{48}}) {
    decide::QueryCheck c = decide::check_query(p, "api.example.com", t, kClassIN);
    EXPECT_FALSE(c.forward) << t;
    EXPECT_EQ(c.reason, EGD_REASON_DNS_TYPE_NOT_ALLOWED) << t;
    EXPECT_EQ(c.rcode, kRcodeRefused) << t;
  }
  decide::QueryCheck chaos = decide::check_query(p, "api.example.com", kTypeTXT, 3);
  EXPECT_FALSE(chaos.forward);
  EXPECT_EQ(chaos.reason, EGD_REASON_DNS_TYPE_NOT_ALLOWED);
}

TEST(DnsPolicyCheck, AuditForwardsWhatWouldBeDenied) {
  policy::Policy p = parse(std::string("mode = \"audit\"\n") + kPolicy);
  decide::QueryCheck name = decide::check_query(p, "evil.test", kTypeA, kClassIN);
  EXPECT_TRUE(name.forward);
  EXPECT_EQ(name.verdict, EGD_VERDICT_AUDIT);
  EXPECT_EQ(name.reason, EGD_REASON_DNS_NAME_NOT_ALLOWED);
  decide::QueryCheck any = decide::check_query(p, "api.example.com", 255, kClassIN);
  EXPECT_TRUE(any.forward);
  EXPECT_EQ(any.verdict, EGD_VERDICT_AUDIT);
  EXPECT_EQ(any.reason, EGD_REASON_DNS_TYPE_NOT_ALLOWED);
  EXPECT_EQ(decide::check_query(p, "api.example.com", kTypeA, kClassIN).verdict, EGD_VERDICT_ALLOW);
}

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// The filter's notion of a blocked address follows the kernel's verdict for
// every port: categories and deny_cidr block, an allow_cidr on any port
// opens, loopback follows network.loopback.
TEST(L3Reachable, FollowsThePolicy) {
  policy::Policy def = parse("version = 1\n");
  decide::L3Check l3(def);
  for (const char* yes : {"203.0.113.10", "2001:db8::10", "127.0.0.1", "::1", "::ffff:203.0.113.10"})
    EXPECT_TRUE(l3.reachable(ip(yes))) << yes;
  for (const char* no :
       {"10.0.0.5", "192.168.1.1", "172.16.0.1", "100.64.0.1", "169.254.169.254", "fe80::1", "fd00::10", "224.0.0.1",
        "255.255.255.255", "0.1.2.3", "::ffff:10.0.0.5", "64:ff9b::a00:5", "2002:a00:5::1", "168.63.129.16"})
    EXPECT_FALSE(l3.reachable(ip(no))) << no;

  policy::Policy p = parse(R"(version = 1
[network]
loopback = "deny"
[[allow_cidr]]
cidr = "10.20.0.5"
ports = [5432]
proto = "tcp"
[[deny_cidr]]
cidr = "203.0.113.0/24"
)");
  decide::L3Check strict(p);
  EXPECT_FALSE(strict.reachable(ip("127.0.0.1")));
  EXPECT_FALSE(strict.reachable(ip("::1")));
  EXPECT_TRUE(strict.reachable(ip("10.20.0.5")));  // its name stays resolvable
  EXPECT_FALSE(strict.reachable(ip("10.20.0.6")));
  EXPECT_FALSE(strict.reachable(ip("203.0.113.10")));
  EXPECT_TRUE(strict.reachable(ip("198.51.100.7")));
}

}  // namespace
}  // namespace egressd::dns
