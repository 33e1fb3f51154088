// Test the host-rule decision (the proxy's and explain's): names, wildcards, ports, and the
// method/path limits that only plain HTTP can satisfy.
#include <gtest/gtest.h>

#include "decide/host_rules.h"
#include "policy/toml_loader.h"

namespace egressd::decide {
namespace {

policy::Policy policy_of(const std::string& rules) { return policy::parse_policy("version = 1\n" + rules, "t.toml"); }

L7Decision https(const policy::Policy& p, const std::string& host, uint16_t port = 443) {
  return decide_l7(p, L7Request{host, port, true, "", ""});
}

L7Decision http(const policy::Policy& p, const std::string& host, const std::string& method, const std::string& path) {
  return decide_l7(p, L7Request{host, 80, false, method, path});
}

TEST(HostMatches, WildcardCoversNamesBelowNotTheNameItself) {
  EXPECT_TRUE(host_matches("*.example.com", "a.example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(host_matches("*.example.com", "example.com"));
  EXPECT_FALSE(host_matches("*.example.com", "badexample.com"));
  EXPECT_FALSE(host_matches("*.example.com", "example.com.evil.net"));
  EXPECT_TRUE(host_matches("example.com", "example.com"));
  EXPECT_FALSE(host_matches("example.com", "a.example.com"));
}

TEST(DecideL7, NoRuleMeansDeny) {
  auto d = https(policy_of(""), "api.anthropic.com");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, EGD_REASON_HOST_NOT_ALLOWED);
  EXPECT_EQ(d.rule, nullptr);
}

TEST(DecideL7, DefaultPortsAreWebPorts) {
  auto p = policy_of("[[allow]]\nhost = \"api.anthropic.com\"\n");
  EXPECT_TRUE(https(p, "api.anthropic.com").allowed);
  EXPECT_EQ(https(p, "api.anthropic.com").reason, EGD_REASON_HOST_RULE);
  EXPECT_TRUE(decide_l7(p, {"api.anthropic.com", 80, false, "GET", "/"}).allowed);
  auto d = https(p, "api.anthropic.com", 8443);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, EGD_REASON_PORT_NOT_ALLOWED);
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->id, 1u);
}

TEST(DecideL7, MethodAndPathLimitsNeedPlainHttp) {
  auto p = policy_of("[[allow]]\nhost = \"registry.example.com\"\nmethods = [\"GET\"]\npaths = [\"/pkg/\", \"/v*/meta\"]\n");
  EXPECT_TRUE(http(p, "registry.example.com", "GET", "/pkg/left-pad").allowed);
  EXPECT_TRUE(http(p, "registry.example.com", "GET", "/v2/x/meta").allowed);
  EXPECT_EQ(http(p, "registry.example.com", "POST", "/pkg/x").reason, EGD_REASON_METHOD_NOT_ALLOWED);
  EXPECT_EQ(http(p, "registry.example.com", "GET", "/admin").reason, EGD_REASON_PATH_NOT_ALLOWED);
  // Traversal and encoded separators never pass a prefix rule.
  EXPECT_EQ(http(p, "registry.example.com", "GET", "/pkg/../admin").reason, EGD_REASON_PATH_NOT_ALLOWED);
  EXPECT_EQ(http(p, "registry.example.com", "GET", "/pkg/%2e%2e/admin").reason, EGD_REASON_PATH_NOT_ALLOWED);
  EXPECT_EQ(http(p, "registry.example.com", "GET", "/pkg/..%2Fadmin").reason, EGD_REASON_PATH_NOT_ALLOWED);
  // HTTPS shows no method or path: such a rule cannot admit it.
  auto d = https(p, "registry.example.com");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, EGD_REASON_NEEDS_HTTP);
  // Nor can it admit a request an override header or upgrade would change.
  EXPECT_EQ(decide_l7(p, {"registry.example.com", 80, false, "GET", "/pkg/x", true}).reason, EGD_REASON_NEEDS_HTTP);
}

// Test that a path prefix covers whole segments only.
TEST(DecideL7, PrefixEndsAtASegmentBoundary) {
  auto p = policy_of("[[allow]]\nhost = \"api.github.com\"\npaths = [\"/repos/acme\"]\n");
  EXPECT_TRUE(http(p, "api.github.com", "GET", "/repos/acme").allowed);
  EXPECT_TRUE(http(p, "api.github.com", "GET", "/repos/acme/tool/issues").allowed);
  EXPECT_FALSE(http(p, "api.github.com", "POST", "/repos/acme-exfil/x").allowed);
}

// Test the traversal spellings origins decode into dot segments.
TEST(PathIsPlain, ServletAndDoubleDecodingForms) {
  for (const char* bad : {"/p/..;/admin", "/p/.;/admin", "/p/%252e%252e/admin", "/p/%c0%ae%c0%ae/admin",
                          "/p\\..\\admin", "/p/\x01", "/p/\xc3\xa9"}) {
    EXPECT_FALSE(path_is_plain(bad)) << bad;
  }
  EXPECT_TRUE(path_is_plain("/p/a;b/c"));
}

TEST(DecideL7, LaterRuleCanAdmitWhatAnEarlierOneLimits) {
  auto p = policy_of("[[allow]]\nhost = \"x.example.com\"\npaths = [\"/a/\"]\n[[allow]]\nhost = \"*.example.com\"\n");
  auto d = https(p, "x.example.com");
  EXPECT_TRUE(d.allowed);
  ASSERT_NE(d.rule, nullptr);
  EXPECT_EQ(d.rule->id, 2u);
}

TEST(PathIsPlain, DotSegmentsAndEncodedSeparators) {
  EXPECT_TRUE(path_is_plain("/a/b.c/d..e"));
  EXPECT_FALSE(path_is_plain("/a/./b"));
  EXPECT_FALSE(path_is_plain("/a/.."));
  EXPECT_FALSE(path_is_plain("/a%5cb"));
  EXPECT_TRUE(path_is_plain("/a%20b"));
}

}  // namespace
}  // namespace egressd::decide
