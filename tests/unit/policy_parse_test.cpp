// Test the policy loader: the schema, its defaults, every error path (with
// its FILE:LINE:COLUMN and key path), and the shipped policies.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "policy/cidr.h"
#include "policy/compiler.h"
#include "policy/toml_loader.h"

namespace egressd::policy {
namespace {

const std::string kFile = "t.toml";

std::optional<PolicyError> error_of(const std::string& text) {
  try {
    parse_policy(text, kFile);
  } catch (const PolicyError& e) {
    return e;
  }
  return std::nullopt;
}

// Asserts that `text` fails at LINE:COL under KEY with a message containing
// `message`, and that what() is "t.toml:LINE:COL: KEY: ...".
void expect_error(const std::string& text, uint32_t line, uint32_t col, const std::string& key,
                  const std::string& message) {
  SCOPED_TRACE(text);
  auto e = error_of(text);
  ASSERT_TRUE(e.has_value()) << "parsed, expected: " << message;
  EXPECT_EQ(e->pos().file, kFile);
  EXPECT_EQ(e->pos().line, line) << e->what();
  EXPECT_EQ(e->pos().column, col) << e->what();
  EXPECT_EQ(e->key(), key) << e->what();
  std::string prefix = kFile + ":" + std::to_string(line) + ":" + std::to_string(col) + ": ";
  if (!key.empty()) prefix += key + ": ";
  std::string what = e->what();
  EXPECT_EQ(what.rfind(prefix, 0), 0u) << what;
  EXPECT_NE(what.find(message), std::string::npos) << what;
}

// One [[section]] with `body` after "version = 1": line 3 holds the body's
// first line.
std::string section(const std::string& name, const std::string& body) {
  return "version = 1\n[[" + name + "]]\n" + body;
}

Policy parse_ok(const std::string& text) {
  try {
    return parse_policy(text, kFile);
  } catch (const PolicyError& e) {
    ADD_FAILURE() << e.what();
    return {};
  }
}

// ---- defaults and a full policy ----------------------------------------------

TEST(PolicyParse, DefaultsFromTheSmallestPolicy) {
  Policy p = parse_ok("version = 1\n");
  EXPECT_EQ(p.version, 1u);
  EXPECT_EQ(p.source, kFile);
  EXPECT_EQ(p.events, EventsMode::Deny);
  EXPECT_EQ(p.network.loopback, Action::Allow);
  EXPECT_EQ(p.network.private_, Action::Deny);
  EXPECT_EQ(p.network.link_local, Action::Deny);
  EXPECT_EQ(p.network.multicast, Action::Deny);
  EXPECT_EQ(p.network.broadcast, Action::Deny);
  EXPECT_EQ(p.network.reserved, Action::Deny);
  EXPECT_TRUE(p.allow_cidrs.empty());
  EXPECT_TRUE(p.deny_cidrs.empty());
  EXPECT_TRUE(p.hosts.empty());
  Policy empty_network = parse_ok("version = 1\n[network]\n");
  EXPECT_EQ(empty_network.network.loopback, Action::Allow);
  EXPECT_EQ(empty_network.network.private_, Action::Deny);
}

TEST(PolicyParse, HashIsFnv1a64OfTheBytes) {
  const std::string text = "version = 1\n# a comment\n";
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  EXPECT_EQ(parse_ok(text).hash, h);
  EXPECT_NE(parse_ok("version = 1\n").hash, h);  // comments count: it is the file's hash
}

TEST(PolicyParse, FullPolicy) {
  Policy p = parse_ok(R"(version = 1
events = "all"
[network]
loopback = "deny"
private = "allow"
link_local = "allow"
multicast = "allow"
broadcast = "allow"
reserved = "allow"
[[allow_cidr]]
cidr = "203.0.113.7/32"
ports = [5432, "8000-8100"]
proto = "tcp"
[[allow_cidr]]
cidr = "2001:db8::/48"
[[allow_cidr]]
cidr = "10.0.0.1"
proto = "udp"
[[deny_cidr]]
cidr = "198.51.100.0/24"
[[allow]]
host = "*.Example.COM"
ports = [443, 8443]
methods = ["GET", "M-SEARCH"]
paths = ["/v1/", "/"]
[[allow]]
host = "api.anthropic.com."
)");
  EXPECT_EQ(p.events, EventsMode::All);
  EXPECT_EQ(p.network.loopback, Action::Deny);
  EXPECT_EQ(p.network.private_, Action::Allow);
  EXPECT_EQ(p.network.link_local, Action::Allow);
  EXPECT_EQ(p.network.multicast, Action::Allow);
  EXPECT_EQ(p.network.broadcast, Action::Allow);
  EXPECT_EQ(p.network.reserved, Action::Allow);

  ASSERT_EQ(p.allow_cidrs.size(), 3u);
  const auto& a = p.allow_cidrs[0];
  EXPECT_EQ(a.id, 1u);
  EXPECT_EQ(a.cidr.family, AF_INET);
  EXPECT_EQ(a.cidr.prefix, 32);
  EXPECT_EQ(a.cidr.text, "203.0.113.7/32");
  EXPECT_EQ(a.cidr.addr[0], 203);
  EXPECT_EQ(a.cidr.addr[3], 7);
  ASSERT_EQ(a.ports.size(), 2u);
  EXPECT_EQ(a.ports[0].lo, 5432);
  EXPECT_EQ(a.ports[0].hi, 5432);
  EXPECT_EQ(a.ports[1].lo, 8000);
  EXPECT_EQ(a.ports[1].hi, 8100);
  EXPECT_EQ(a.proto_mask, kProtoTcp);
  EXPECT_EQ(a.pos.file, kFile);
  EXPECT_EQ(a.pos.line, 10u);

  const auto& b = p.allow_cidrs[1];
  EXPECT_EQ(b.id, 2u);
  EXPECT_EQ(b.cidr.family, AF_INET6);
  EXPECT_EQ(b.cidr.prefix, 48);
  EXPECT_TRUE(b.ports.empty());
  EXPECT_EQ(b.proto_mask, kProtoTcp | kProtoUdp);
  EXPECT_EQ(p.allow_cidrs[2].cidr.prefix, 32);  // bare address: host route
  EXPECT_EQ(p.allow_cidrs[2].proto_mask, kProtoUdp);

  ASSERT_EQ(p.deny_cidrs.size(), 1u);
  EXPECT_EQ(p.deny_cidrs[0].id, 1u);
  EXPECT_EQ(p.deny_cidrs[0].cidr.prefix, 24);
  EXPECT_EQ(p.deny_cidrs[0].pos.line, 19u);

  ASSERT_EQ(p.hosts.size(), 2u);
  EXPECT_EQ(p.hosts[0].id, 1u);
  EXPECT_EQ(p.hosts[0].host, "*.example.com");  // lower-cased
  ASSERT_EQ(p.hosts[0].ports.size(), 2u);
  EXPECT_EQ(p.hosts[0].ports[1].lo, 8443);
  EXPECT_EQ(p.hosts[0].methods, (std::vector<std::string>{"GET", "M-SEARCH"}));
  EXPECT_EQ(p.hosts[0].paths, (std::vector<std::string>{"/v1/", "/"}));
  EXPECT_EQ(p.hosts[1].id, 2u);
  EXPECT_EQ(p.hosts[1].host, "api.anthropic.com");  // one trailing dot stripped
  EXPECT_TRUE(p.hosts[1].ports.empty());
  EXPECT_TRUE(p.hosts[1].methods.empty());
}

TEST(PolicyParse, InlineTablesAndEmptyArraysOfTables) {
  Policy p = parse_ok("version = 1\nallow_cidr = [{cidr = \"203.0.113.0/24\", ports = [22]}]\ndeny_cidr = []\n");
  ASSERT_EQ(p.allow_cidrs.size(), 1u);
  EXPECT_EQ(p.allow_cidrs[0].ports[0].lo, 22);
  EXPECT_TRUE(p.deny_cidrs.empty());
}

// ---- error format --------------------------------------------------------------

TEST(PolicyParseError, WhatIsFileLineColumnKeyMessage) {
  auto e = error_of(section("allow_cidr", "cidr = \"10.0.0.1/8\"\n"));
  ASSERT_TRUE(e);
  EXPECT_STREQ(e->what(), "t.toml:3:8: allow_cidr[1].cidr: host bits set: did you mean 10.0.0.0/8?");
}

TEST(PolicyParseError, TomlSyntaxHasPositionButNoKey) {
  expect_error("version = 1\nfoo = \n", 2, 7, "", "expected value");
  expect_error("version = 1\nversion = 1\n", 2, 11, "", "redefine");
  expect_error("version = 1\n[[allow]\n", 2, 9, "", "expected ']'");
}

TEST(PolicyParseError, Version) {
  expect_error("", 1, 1, "version", "missing required key");
  expect_error("events = \"all\"\n", 1, 1, "version", "missing required key");
  expect_error("version = 2\n", 1, 11, "version", "unsupported version 2");
  expect_error("version = 0\n", 1, 11, "version", "unsupported version 0");
  expect_error("version = \"1\"\n", 1, 11, "version", "expected an integer, got a string");
  expect_error("version = 1.0\n", 1, 11, "version", "expected an integer, got a float");
}

TEST(PolicyParseError, UnknownKeysAtEveryLevel) {
  expect_error("version = 1\nmodes = \"enforce\"\n", 2, 1, "modes", "unknown key");
  expect_error("version = 1\n[proxy]\nech = \"deny\"\ntimeout = 5\n", 4, 1, "proxy.timeout", "unknown key");
  expect_error("version = 1\n[dns]\nupstreams = [\"1.1.1.1\"]\n", 3, 1, "dns.upstreams", "unknown key");
  expect_error("version = 1\n[network]\nlan = \"deny\"\n", 3, 1, "network.lan", "unknown key");
  expect_error(section("allow_cidr", "cidr = \"203.0.113.1\"\nport = 22\n"), 4, 1, "allow_cidr[1].port", "unknown key");
  expect_error(section("deny_cidr", "cidr = \"203.0.113.1\"\nports = [22]\n"), 4, 1, "deny_cidr[1].ports",
               "unknown key");
  expect_error(section("allow", "host = \"example.com\"\nproto = \"tcp\"\n"), 4, 1, "allow[1].proto", "unknown key");
}

TEST(PolicyParseError, ModeAndProxy) {
  expect_error("version = 1\nmode = \"permissive\"\n", 2, 8, "mode", "expected \"enforce\" or \"audit\"");
  expect_error("version = 1\n[proxy]\nech = \"allow\"\n", 3, 7, "proxy.ech", "expected \"deny\" or \"outer-sni\"");
  expect_error("version = 1\nproxy = 1\n", 2, 9, "proxy", "expected a table");
  expect_error("version = 1\n[proxy]\nmax_connections_per_process = -1\n", 3, 31,
               "proxy.max_connections_per_process", "expected 1..1000000");
  expect_error("version = 1\n[proxy]\nmax_connections_per_uid = 1000001\n", 3, 27, "proxy.max_connections_per_uid",
               "expected 1..1000000");
  expect_error("version = 1\n[proxy]\nmax_connections_per_uid = 1.5\n", 3, 27, "proxy.max_connections_per_uid",
               "expected an integer, got a float");
}

// Test that the connection caps parse, and are unset (the default share of
// the daemon's total) when omitted.
TEST(PolicyParse, ConnectionShares) {
  Policy d = parse_ok("version = 1\n");
  EXPECT_EQ(d.proxy.connections.per_process, 0u);
  EXPECT_EQ(d.proxy.connections.per_uid, 0u);
  EXPECT_EQ(d.dns.tcp_connections.per_process, 0u);
  EXPECT_EQ(d.dns.tcp_connections.per_uid, 0u);
  Policy p = parse_ok("version = 1\n[proxy]\nmax_connections_per_process = 200\nmax_connections_per_uid = 1000\n"
                      "[dns]\nmax_tcp_connections_per_process = 8\nmax_tcp_connections_per_uid = 64\n");
  EXPECT_EQ(p.proxy.connections.per_process, 200u);
  EXPECT_EQ(p.proxy.connections.per_uid, 1000u);
  EXPECT_EQ(p.dns.tcp_connections.per_process, 8u);
  EXPECT_EQ(p.dns.tcp_connections.per_uid, 64u);
}

// Test that mode and [proxy] parse, with enforcing and ECH denied by default.
TEST(PolicyParse, ModeAndProxy) {
  auto d = parse_policy("version = 1\n", "t.toml");
  EXPECT_EQ(d.mode, Mode::Enforce);
  EXPECT_EQ(d.proxy.ech, EchMode::Deny);
  auto a = parse_policy("version = 1\nmode = \"audit\"\n[proxy]\nech = \"outer-sni\"\n", "t.toml");
  EXPECT_EQ(a.mode, Mode::Audit);
  EXPECT_EQ(a.proxy.ech, EchMode::OuterSni);
}

// Test [proxy] address_grace: 5 minutes by default; seconds or "Ns"/"Nm"/"Nh";
// 0 turns it off; at most an hour.
TEST(PolicyParse, AddressGrace) {
  EXPECT_EQ(parse_policy("version = 1\n", "t.toml").proxy.address_grace, std::chrono::seconds(300));
  auto g = [](const std::string& v) {
    return parse_policy("version = 1\n[proxy]\naddress_grace = " + v + "\n", "t.toml").proxy.address_grace.count();
  };
  EXPECT_EQ(g("90"), 90);
  EXPECT_EQ(g("0"), 0);
  EXPECT_EQ(g("\"45s\""), 45);
  EXPECT_EQ(g("\"5m\""), 300);
  EXPECT_EQ(g("\"1h\""), 3600);
}

TEST(PolicyParseError, AddressGrace) {
  const char* form = "expected seconds (an integer) or a duration string such as \"90s\", \"5m\" or \"1h\"";
  expect_error("version = 1\n[proxy]\naddress_grace = \"5 min\"\n", 3, 17, "proxy.address_grace", form);
  expect_error("version = 1\n[proxy]\naddress_grace = \"m\"\n", 3, 17, "proxy.address_grace", form);
  expect_error("version = 1\n[proxy]\naddress_grace = 1.5\n", 3, 17, "proxy.address_grace", form);
  expect_error("version = 1\n[proxy]\naddress_grace = -1\n", 3, 17, "proxy.address_grace", "out of range");
  expect_error("version = 1\n[proxy]\naddress_grace = \"2h\"\n", 3, 17, "proxy.address_grace",
               "out of range: 0 to 3600 seconds");
}

// Test that [dns] parses, with no upstreams (resolv.conf), NXDOMAIN and no
// extra names by default.
TEST(PolicyParse, Dns) {
  Policy d = parse_ok("version = 1\n");
  EXPECT_TRUE(d.dns.upstream.empty());
  EXPECT_EQ(d.dns.denied, DnsDenied::NxDomain);
  EXPECT_TRUE(d.dns.allow.empty());
  Policy p = parse_ok(R"(version = 1
[dns]
upstream = ["127.0.0.53", "2001:db8::53"]
denied = "refused"
allow = ["Cdn.Example.NET.", "*.edge.example.net", "_acme-challenge.example.com"]
)");
  EXPECT_EQ(p.dns.upstream, (std::vector<std::string>{"127.0.0.53", "2001:db8::53"}));
  EXPECT_EQ(p.dns.denied, DnsDenied::Refused);
  EXPECT_EQ(p.dns.allow,
            (std::vector<std::string>{"cdn.example.net", "*.edge.example.net", "_acme-challenge.example.com"}));
  EXPECT_EQ(parse_ok("version = 1\n[dns]\ndenied = \"nxdomain\"\n").dns.denied, DnsDenied::NxDomain);
  EXPECT_TRUE(d.dns.drop_unroutable_families);
  EXPECT_EQ(d.dns.sinkhole_ipv4, "203.0.113.254");
  EXPECT_EQ(d.dns.sinkhole_ipv6, "2001:db8::e9d");
  Policy s = parse_ok(R"(version = 1
[dns]
denied = "sinkhole"
drop_unroutable_families = false
sinkhole_ipv4 = "198.51.100.99"
sinkhole_ipv6 = "2001:db8:5::1"
)");
  EXPECT_EQ(s.dns.denied, DnsDenied::Sinkhole);
  EXPECT_FALSE(s.dns.drop_unroutable_families);
  EXPECT_EQ(s.dns.sinkhole_ipv4, "198.51.100.99");
  EXPECT_EQ(s.dns.sinkhole_ipv6, "2001:db8:5::1");
}

TEST(PolicyParseError, Dns) {
  auto dns = [](const std::string& line, uint32_t col, const std::string& key, const std::string& message) {
    expect_error("version = 1\n[dns]\n" + line + "\n", 3, col, key, message);
  };
  dns("upstream = \"1.1.1.1\"", 12, "dns.upstream", "expected an array, got a string");
  dns("upstream = []", 12, "dns.upstream", "empty array: omit the key for the nameservers of /etc/resolv.conf");
  dns("upstream = [\"dns.google\"]", 13, "dns.upstream[1]", "not an IP address");
  dns("upstream = [\"1.1.1.1\", 53]", 24, "dns.upstream[2]", "expected a string, got an integer");
  dns("upstream = [\"1.1.1.1:53\"]", 13, "dns.upstream[1]", "without brackets or port");
  dns("upstream = [\"[::1]\"]", 13, "dns.upstream[1]", "without brackets or port");
  dns("upstream = [\"10.0.0.0/8\"]", 13, "dns.upstream[1]", "not an IP address");
  dns("upstream = [\"1.1.1.1\", \"1.0.0.1\", \"1.1.1.2\", \"1.1.1.3\", \"1.1.1.4\", \"1.1.1.5\", \"1.1.1.6\", "
      "\"1.1.1.7\", \"1.1.1.8\"]",
      12, "dns.upstream", "at most 8 upstreams");
  dns("denied = \"drop\"", 10, "dns.denied", "expected \"nxdomain\", \"refused\" or \"sinkhole\"");
  dns("denied = \"NXDOMAIN\"", 10, "dns.denied", "expected \"nxdomain\", \"refused\" or \"sinkhole\"");
  dns("drop_unroutable_families = \"no\"", 28, "dns.drop_unroutable_families", "expected true or false, got a string");
  dns("sinkhole_ipv4 = \"2001:db8::1\"", 17, "dns.sinkhole_ipv4", "not an IPv4 address");
  dns("sinkhole_ipv6 = \"203.0.113.1\"", 17, "dns.sinkhole_ipv6", "not an IPv6 address");
  dns("allow = []", 9, "dns.allow", "empty array: omit the key");
  dns("allow = [\"example.com\", \"*.com\"]", 25, "dns.allow[2]", "at least two labels");
  dns("allow = [\"10.0.0.1\"]", 10, "dns.allow[1]", "IP literals are not host names");
  dns("allow = [\"a.*.example.com\"]", 10, "dns.allow[1]", "'*' is only allowed as a whole leading label");
  dns("allow = [\"exa mple.com\"]", 10, "dns.allow[1]", "invalid character ' '");
  dns("allow = [\"example.com:53\"]", 10, "dns.allow[1]", "no port in the host name");
  dns("ech = \"deny\"", 1, "dns.ech",
      "unknown key (allowed here: upstream, denied, allow, max_tcp_connections_per_process, "
      "max_tcp_connections_per_uid, drop_unroutable_families, sinkhole_ipv4, sinkhole_ipv6)");
  dns("max_tcp_connections_per_process = 0", 35, "dns.max_tcp_connections_per_process",
      "expected 1..1000000 (omit the key for the default share)");
  dns("max_tcp_connections_per_uid = \"8\"", 31, "dns.max_tcp_connections_per_uid",
      "expected an integer, got a string");
  // A sinkhole must be an address the fence steers to the proxy.
  expect_error("version = 1\n[dns]\ndenied = \"sinkhole\"\nsinkhole_ipv4 = \"10.0.0.1\"\n", 4, 17,
               "dns.sinkhole_ipv4", "not a public address");
  expect_error("version = 1\n[dns]\ndenied = \"sinkhole\"\nsinkhole_ipv6 = \"fd00::1\"\n", 4, 17,
               "dns.sinkhole_ipv6", "not a public address");
  expect_error("version = 1\n[dns]\ndenied = \"sinkhole\"\n[[allow_cidr]]\ncidr = \"203.0.113.0/24\"\n", 3, 10,
               "dns.sinkhole_ipv4", "inside [[allow_cidr]] 1");
  expect_error("version = 1\n[dns]\ndenied = \"sinkhole\"\n[[deny_cidr]]\ncidr = \"2001:db8::/32\"\n", 3, 10,
               "dns.sinkhole_ipv6", "inside [[deny_cidr]] 1");
  // Not sinkholing: the addresses are not used, so not judged.
  parse_ok("version = 1\n[dns]\nsinkhole_ipv4 = \"10.0.0.1\"\n");
  expect_error("version = 1\ndns = 1\n", 2, 7, "dns", "expected a table, got an integer");
  // The issue's `[[dns]]` rules became `[dns] allow`: say so.
  expect_error("version = 1\n[[dns]]\nhost = \"example.com\"\n", 2, 1, "dns",
               "expected a table ([dns]), got an array: write [dns] with allow");
  // '_' is for [dns] allow names only, never host rules.
  expect_error(section("allow", "host = \"_acme.example.com\"\n"), 3, 8, "allow[1].host", "invalid character '_'");
}

TEST(PolicyParseError, Events) {
  expect_error("version = 1\nevents = \"allow\"\n", 2, 10, "events", "expected \"deny\" or \"all\"");
  expect_error("version = 1\nevents = true\n", 2, 10, "events", "expected a string, got a boolean");
}

TEST(PolicyParseError, Network) {
  expect_error("version = 1\nnetwork = \"deny\"\n", 2, 11, "network", "expected a table, got a string");
  expect_error("version = 1\n[network]\nprivate = \"yes\"\n", 3, 11, "network.private",
               "expected \"allow\" or \"deny\"");
  expect_error("version = 1\n[network]\nloopback = 1\n", 3, 12, "network.loopback", "expected a string");
  for (const char* k : {"link_local", "multicast", "broadcast", "reserved"}) {
    std::string text = std::string("version = 1\n[network]\n") + k + " = \"Allow\"\n";
    expect_error(text, 3, static_cast<uint32_t>(strlen(k) + 4), std::string("network.") + k,
                 "expected \"allow\" or \"deny\"");
  }
}

TEST(PolicyParseError, SectionsMustBeArraysOfTables) {
  for (const char* name : {"allow_cidr", "deny_cidr", "allow"}) {
    std::string n = name;
    expect_error("version = 1\n" + n + " = \"x\"\n", 2, static_cast<uint32_t>(n.size() + 4), n,
                 "expected an array of tables ([[" + n + "]]), got a string");
    expect_error("version = 1\n[" + n + "]\n", 2, 1, n, "got a table");
    expect_error("version = 1\n" + n + " = [1]\n", 2, static_cast<uint32_t>(n.size() + 5), n + "[1]",
                 "got an array holding an integer");
  }
}

TEST(PolicyParseError, MissingRequiredKeysPointAtTheTable) {
  expect_error(section("allow_cidr", "ports = [22]\n"), 2, 1, "allow_cidr[1].cidr", "missing required key");
  expect_error(section("deny_cidr", ""), 2, 1, "deny_cidr[1].cidr", "missing required key");
  expect_error(section("allow", "ports = [443]\n"), 2, 1, "allow[1].host", "missing required key");
  // The index is the position within the array, 1-based.
  expect_error("version = 1\n[[deny_cidr]]\ncidr = \"203.0.113.0/24\"\n[[deny_cidr]]\n", 4, 1, "deny_cidr[2].cidr",
               "missing required key");
}

TEST(PolicyParseError, Cidrs) {
  auto cidr = [](const std::string& value, const std::string& message) {
    expect_error(section("allow_cidr", "cidr = \"" + value + "\"\n"), 3, 8, "allow_cidr[1].cidr", message);
    expect_error(section("deny_cidr", "cidr = \"" + value + "\"\n"), 3, 8, "deny_cidr[1].cidr", message);
  };
  cidr("", "empty CIDR");
  cidr("10.0.0.256", "not an IPv4 address");
  cidr("10.0.0", "not an IPv4 address");
  cidr("010.0.0.1", "not an IPv4 address");
  cidr("example.com", "not an IPv4 address");
  cidr(" 10.0.0.1", "not an IPv4 address");
  cidr("2001:db8::g", "not an IPv6 address");
  cidr("fe80::1%eth0", "not an IPv6 address");
  cidr("10.0.0.0/33", "prefix length 33 out of range 0..32");
  cidr("2001:db8::/129", "prefix length 129 out of range 0..128");
  cidr("10.0.0.0/", "bad prefix length");
  cidr("10.0.0.0/-1", "bad prefix length");
  cidr("10.0.0.0/08", "bad prefix length");
  cidr("10.0.0.0/8/8", "bad prefix length");
  cidr("10.0.0.0/8 ", "bad prefix length");
  cidr("10.0.0.1/8", "host bits set: did you mean 10.0.0.0/8?");
  cidr("192.168.1.1/16", "host bits set: did you mean 192.168.0.0/16?");
  cidr("2001:db8::1/32", "host bits set: did you mean 2001:db8::/32?");
  expect_error(section("allow_cidr", "cidr = 10\n"), 3, 8, "allow_cidr[1].cidr", "expected a string, got an integer");
}

TEST(PolicyParseError, Ipv6CidrsThatEmbedIpv4AskForTheIpv4Form) {
  auto embedded = [](const std::string& value, const std::string& v4) {
    expect_error(section("allow_cidr", "cidr = \"" + value + "\"\n"), 3, 8, "allow_cidr[1].cidr",
                 "write the IPv4 form \"" + v4 + "\"");
  };
  embedded("::ffff:0:0/96", "0.0.0.0/0");
  embedded("::ffff:10.0.0.0/104", "10.0.0.0/8");
  embedded("::ffff:10.0.0.1", "10.0.0.1/32");
  auto e = error_of(section("deny_cidr", "cidr = \"::ffff:10.0.0.1\"\n"));
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("never matches"), std::string::npos);
}

// Translated forms (NAT64, 6to4, v4-compatible, v4-translated) are IPv6 on
// the wire and judged as IPv6 too, so IPv6 rules over them are meaningful.
TEST(PolicyParse, Ipv6CidrsOutsideTheMappedSpaceAreFine) {
  for (const char* c : {"::ffff:0:10.0.0.0/104", "64:ff9b::a00:0/104", "2002::/16", "2002:a00::/24", "::/96",
                        "::10.0.0.1", "::/0", "::/128", "::1", "::/127", "::/64", "2000::/3", "64:ff9b::/64",
                        "64:ff9b:1::/48", "2001:db8::/32", "fe80::/10", "::fffe:0:0/96"}) {
    SCOPED_TRACE(c);
    Policy p = parse_ok(section("allow_cidr", std::string("cidr = \"") + c + "\"\n"));
    ASSERT_EQ(p.allow_cidrs.size(), 1u);
    EXPECT_EQ(p.allow_cidrs[0].cidr.family, AF_INET6);
  }
}

TEST(PolicyParseError, Ports) {
  auto ports = [](const std::string& value, uint32_t col, const std::string& key, const std::string& message) {
    expect_error(section("allow_cidr", "cidr = \"203.0.113.1\"\nports = " + value + "\n"), 4, col,
                 "allow_cidr[1].ports" + key, message);
  };
  ports("[]", 9, "", "empty array: omit the key for all ports");
  ports("22", 9, "", "expected an array, got an integer");
  ports("\"22\"", 9, "", "expected an array, got a string");
  ports("[0]", 10, "[1]", "port 0 out of range 1..65535");
  ports("[22, 65536]", 14, "[2]", "port 65536 out of range 1..65535");
  ports("[22, -1]", 14, "[2]", "port -1 out of range");
  ports("[\"0-10\"]", 10, "[1]", "port 0 out of range");
  ports("[\"10-70000\"]", 10, "[1]", "port 70000 out of range");
  ports("[\"90-80\"]", 10, "[1]", "LO > HI");
  ports("[\"80\"]", 10, "[1]", "a single port is written as an integer");
  ports("[\"80-\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[\"-80\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[\"a-b\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[\"80 - 90\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[\"80-90-100\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[\"+80-90\"]", 10, "[1]", "expected a port range \"LO-HI\"");
  ports("[80.0]", 10, "[1]", "expected a port number or a \"LO-HI\" string, got a float");
  ports("[true]", 10, "[1]", "got a boolean");
  ports("[[80]]", 10, "[1]", "got an array");
  // Second rule, third port: indices are 1-based positions.
  expect_error("version = 1\n[[allow_cidr]]\ncidr = \"203.0.113.1\"\n[[allow_cidr]]\ncidr = \"203.0.113.2\"\n"
               "ports = [1, 2, 0]\n",
               6, 16, "allow_cidr[2].ports[3]", "port 0 out of range");
}

TEST(PolicyParse, PortRangeEdges) {
  Policy p = parse_ok(section("allow_cidr", "cidr = \"203.0.113.1\"\nports = [1, 65535, \"1-65535\", \"80-80\"]\n"));
  const auto& ports = p.allow_cidrs.at(0).ports;
  ASSERT_EQ(ports.size(), 4u);
  EXPECT_EQ(ports[0].lo, 1);
  EXPECT_EQ(ports[1].hi, 65535);
  EXPECT_EQ(ports[2].lo, 1);
  EXPECT_EQ(ports[2].hi, 65535);
  EXPECT_EQ(ports[3].lo, 80);
  EXPECT_EQ(ports[3].hi, 80);
}

TEST(PolicyParseError, Proto) {
  auto proto = [](const std::string& value, const std::string& message) {
    expect_error(section("allow_cidr", "cidr = \"203.0.113.1\"\nproto = " + value + "\n"), 4, 9,
                 "allow_cidr[1].proto", message);
  };
  proto("\"icmp\"", "expected \"tcp\", \"udp\" or \"any\"");
  proto("\"TCP\"", "expected \"tcp\", \"udp\" or \"any\"");
  proto("6", "expected a string, got an integer");
  proto("[\"tcp\"]", "expected a string, got an array");
}

TEST(PolicyParseError, HostNames) {
  auto host = [](const std::string& value, const std::string& message) {
    expect_error(section("allow", "host = \"" + value + "\"\n"), 3, 8, "allow[1].host", message);
  };
  host("", "empty host name");
  host(".", "empty host name");
  host("example.com..", "empty label");
  host("a..example.com", "empty label");
  host(".example.com", "empty label");
  host("com", "at least two labels");
  host("*", "'*' is only allowed as a whole leading label");
  host("*.com", "at least two labels");
  host("a.*.example.com", "'*' is only allowed as a whole leading label");
  host("*example.com", "'*' is only allowed as a whole leading label");
  host("**.example.com", "'*' is only allowed as a whole leading label");
  host("-a.example.com", "starts or ends with '-'");
  host("a-.example.com", "starts or ends with '-'");
  host("exa_mple.com", "invalid character '_'");
  host("exa mple.com", "invalid character ' '");
  host("bücher.example", "invalid character");
  host(std::string(64, 'a') + ".com", "label longer than 63 characters");
  std::string long_name;
  while (long_name.size() < 251) long_name += std::string(9, 'a') + ".";
  host(long_name + "com", "longer than 253 characters");
  host("10.0.0.1", "IP literals are not host names");
  host("1.2.3", "top-level label is all digits");
  host("::1", "IP literals are not host names");
  host("[::1]", "IP literals are not host names");
  host("2001:db8::1", "IP literals are not host names");
  host("example.com:443", "no port in the host name");
  host("https://example.com", "not a URL");
  host("example.com/v1", "a host name has no path");
  expect_error(section("allow", "host = [\"a.com\"]\n"), 3, 8, "allow[1].host", "expected a string, got an array");
}

TEST(PolicyParse, HostNamesThatAreFine) {
  for (const char* h : {"example.com", "a.b.c.d.example.com", "xn--bcher-kva.example", "a-b.c0m", "1.example.com",
                        "*.githubusercontent.com", "x.io"}) {
    SCOPED_TRACE(h);
    Policy p = parse_ok(section("allow", std::string("host = \"") + h + "\"\n"));
    ASSERT_EQ(p.hosts.size(), 1u);
    EXPECT_EQ(p.hosts[0].host, h);
  }
  std::string label63(63, 'a');
  EXPECT_EQ(parse_ok(section("allow", "host = \"" + label63 + ".com\"\n")).hosts.at(0).host, label63 + ".com");
  EXPECT_EQ(parse_ok(section("allow", "host = \"WWW.Example.Com.\"\n")).hosts.at(0).host, "www.example.com");
}

TEST(PolicyParseError, HostRulePortsMethodsPaths) {
  auto rule = [](const std::string& line2, uint32_t col, const std::string& key, const std::string& message) {
    expect_error(section("allow", "host = \"example.com\"\n" + line2 + "\n"), 4, col, "allow[1]." + key, message);
  };
  rule("ports = []", 9, "ports", "empty array: omit the key for ports 80 and 443");
  rule("ports = [0]", 10, "ports[1]", "port 0 out of range");
  rule("ports = [443, \"9-8\"]", 15, "ports[2]", "LO > HI");
  rule("methods = []", 11, "methods", "empty array: omit the key for any method");
  rule("methods = \"GET\"", 11, "methods", "expected an array, got a string");
  rule("methods = [\"get\"]", 12, "methods[1]", "methods are upper case: did you mean \"GET\"?");
  rule("methods = [\"GET\", \"\"]", 19, "methods[2]", "empty method");
  rule("methods = [\"GE T\"]", 12, "methods[1]", "invalid character");
  rule("methods = [\"GET/\"]", 12, "methods[1]", "invalid character");
  rule("methods = [1]", 12, "methods[1]", "expected a string, got an integer");
  rule("paths = []", 9, "paths", "empty array: omit the key for any path");
  rule("paths = [\"v1/\"]", 10, "paths[1]", "path must start with \"/\"");
  rule("paths = [\"/\", \"\"]", 15, "paths[2]", "path must start with \"/\"");
  rule("paths = [\"/a b\"]", 10, "paths[1]", "percent-encode");
  rule("paths = [\"/a#b\"]", 10, "paths[1]", "fragment");
  rule("paths = [\"/caf\u00e9\"]", 10, "paths[1]", "non-ASCII");
}

// ---- files ---------------------------------------------------------------------

TEST(PolicyFile, UnreadableFileNamesPathAndErrno) {
  try {
    load_policy_file("/nonexistent/egressd/policy.toml");
    FAIL() << "loaded a missing file";
  } catch (const PolicyError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/egressd/policy.toml: cannot read: No such file or directory");
    EXPECT_EQ(e.pos().line, 0u);
    EXPECT_EQ(e.key(), "");
  }
  EXPECT_THROW(load_policy_file("/"), PolicyError);  // a directory
}

TEST(PolicyFile, ErrorsNameTheFilePath) {
  auto path = std::filesystem::path(testing::TempDir()) / "egressd_policy_parse_test.toml";
  {
    std::ofstream out(path);
    out << "version = 1\n\n[network]\nprivate = \"maybe\"\n";
  }
  try {
    load_policy_file(path.string());
    FAIL() << "accepted a bad policy";
  } catch (const PolicyError& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ":4:11: network.private: expected \"allow\" or \"deny\"");
    EXPECT_EQ(e.pos().file, path.string());
  }
  {
    std::ofstream out(path);
    out << "version = 1\n[[deny_cidr]]\ncidr = \"203.0.113.0/24\"\n";
  }
  Policy p = load_policy_file(path.string());
  EXPECT_EQ(p.source, path.string());
  EXPECT_EQ(p.deny_cidrs.at(0).pos.file, path.string());
  std::filesystem::remove(path);
}

// Every shipped policy parses and compiles.
TEST(ShippedPolicies, AllParseAndCompile) {
  std::filesystem::path dir = std::filesystem::path(EGRESSD_SOURCE_DIR) / "policies";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    ++n;
    try {
      Policy p = load_policy_file(entry.path().string());
      EXPECT_EQ(p.source, entry.path().string());
      (void)compile(p, 1);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_GE(n, 3);
}

TEST(ShippedPolicies, SayWhatTheirNamesPromise) {
  std::string dir = std::string(EGRESSD_SOURCE_DIR) + "/policies/";
  Policy def = load_policy_file(dir + "default.toml");
  EXPECT_EQ(def.network.loopback, Action::Allow);
  EXPECT_EQ(def.network.private_, Action::Deny);
  EXPECT_EQ(def.network.link_local, Action::Deny);
  EXPECT_EQ(def.events, EventsMode::Deny);
  EXPECT_TRUE(def.hosts.empty());
  EXPECT_TRUE(def.allow_cidrs.empty());

  Policy strict = load_policy_file(dir + "strict.toml");
  EXPECT_EQ(strict.network.loopback, Action::Deny);
  EXPECT_EQ(strict.events, EventsMode::All);
  EXPECT_EQ(strict.network.private_, Action::Deny);

  Policy cc = load_policy_file(dir + "claude-code.toml");
  EXPECT_EQ(cc.network.link_local, Action::Deny);
  std::vector<std::string> hosts;
  for (const auto& h : cc.hosts) hosts.push_back(h.host);
  for (const char* want : {"api.anthropic.com", "statsig.anthropic.com", "sentry.io", "github.com",
                           "api.github.com", "*.githubusercontent.com", "codeload.github.com",
                           "registry.npmjs.org"})
    EXPECT_NE(std::find(hosts.begin(), hosts.end(), want), hosts.end()) << want;
}

}  // namespace
}  // namespace egressd::policy
