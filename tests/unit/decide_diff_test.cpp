// The kernel's egd_decide (bpf/decide.bpf.h, compiled here unchanged; see
// kernel_decide/) and the userspace L3 check (decide/l3_check.h) give the
// same verdict, reason and rule over a generated table: policies (category
// switches, loopback allow/deny, allow/deny CIDRs with ports and
// protocols, folded and nested rules) x addresses (every category, IPv6
// embedded and translated forms of each IPv4 one) x protocol and port.
// Kernel side: policy -> compiler -> map entries -> egd_decide; userspace
// side: policy -> L3Check::decide. Addresses are only classified: nothing
// is sent.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "decide/l3_check.h"
#include "events/event.h"
#include "kernel_decide/kernel_decide.h"
#include "policy/cidr.h"
#include "policy/compiler.h"
#include "policy/toml_loader.h"

namespace egressd::decide {
namespace {

const policy::CompiledPolicy* g_compiled = nullptr;

// True if the first `bits` bits of a and b agree.
bool prefix_equal(const uint8_t* a, const uint8_t* b, uint32_t bits) {
  for (uint32_t i = 0; i < bits; ++i)
    if (((a[i / 8] ^ b[i / 8]) >> (7 - i % 8)) & 1) return false;
  return true;
}

// The LPM trie: the entry with the longest prefix covering the key's data.
template <class Key, class Value>
const void* longest(const std::vector<std::pair<Key, Value>>& entries, const void* raw) {
  Key key;
  std::memcpy(&key, raw, sizeof(key));
  const auto* want = reinterpret_cast<const uint8_t*>(&key) + sizeof(key.prefixlen);
  const Value* best = nullptr;
  uint32_t best_len = 0;
  for (const auto& [k, v] : entries) {
    const auto* have = reinterpret_cast<const uint8_t*>(&k) + sizeof(k.prefixlen);
    if (k.prefixlen <= key.prefixlen && (!best || k.prefixlen > best_len) && prefix_equal(have, want, k.prefixlen)) {
      best = &v;
      best_len = k.prefixlen;
    }
  }
  return best;
}

}  // namespace
}  // namespace egressd::decide

extern "C" const void* egd_test_lpm(enum egd_test_map map, const void* key) {
  using egressd::decide::g_compiled;
  using egressd::decide::longest;
  switch (map) {
    case EGD_TEST_ALLOW4: return longest(g_compiled->allow4, key);
    case EGD_TEST_ALLOW6: return longest(g_compiled->allow6, key);
    case EGD_TEST_DENY4: return longest(g_compiled->deny4, key);
    case EGD_TEST_DENY6: return longest(g_compiled->deny6, key);
  }
  return nullptr;
}

namespace egressd::decide {
namespace {

const char* const kPolicies[] = {
    // The defaults: loopback allowed, every other category denied.
    "",
    // Every category switched the other way.
    "[network]\nloopback = \"deny\"\nprivate = \"allow\"\nlink_local = \"allow\"\nmulticast = \"allow\"\n"
    "broadcast = \"allow\"\nreserved = \"allow\"\n",
    // Allow and deny CIDRs, nested (folding), with ports and protocols, and
    // a host rule opening a TCP port.
    "[[allow_cidr]]\ncidr = \"10.0.0.0/8\"\nports = [22]\nproto = \"tcp\"\n"
    "[[allow_cidr]]\ncidr = \"10.1.0.0/16\"\nports = [\"5000-5100\"]\n"
    "[[deny_cidr]]\ncidr = \"10.1.2.0/24\"\n"
    "[[allow_cidr]]\ncidr = \"10.1.2.3/32\"\n"
    "[[allow_cidr]]\ncidr = \"192.168.1.5/32\"\nports = [\"1000-2000\", 5432]\nproto = \"udp\"\n"
    "[[allow_cidr]]\ncidr = \"203.0.113.0/24\"\nports = [8443]\nproto = \"udp\"\n"
    "[[deny_cidr]]\ncidr = \"203.0.113.128/25\"\n"
    "[[allow_cidr]]\ncidr = \"169.254.169.254/32\"\nports = [80]\nproto = \"tcp\"\n"
    "[[allow_cidr]]\ncidr = \"fd00::/8\"\nports = [5432]\n"
    "[[deny_cidr]]\ncidr = \"2001:db8:bad::/48\"\n"
    "[[allow_cidr]]\ncidr = \"2001:db8::/32\"\nports = [22]\nproto = \"tcp\"\n"
    "[[allow_cidr]]\ncidr = \"64:ff9b::/96\"\nports = [8443]\n"
    "[[allow]]\nhost = \"api.example.com\"\nports = [8080, \"9000-9001\"]\n",
    // Loopback denied but one loopback address opened; everything else
    // denied by CIDR except one public range.
    "[network]\nloopback = \"deny\"\n"
    "[[allow_cidr]]\ncidr = \"127.0.0.2/32\"\nports = [5432]\nproto = \"tcp\"\n"
    "[[deny_cidr]]\ncidr = \"0.0.0.0/0\"\n"
    "[[deny_cidr]]\ncidr = \"::/0\"\n"
    "[[allow_cidr]]\ncidr = \"198.51.100.0/24\"\n",
    // Categories allowed, CIDRs punching holes both ways.
    "[network]\nprivate = \"allow\"\nreserved = \"allow\"\n"
    "[[deny_cidr]]\ncidr = \"172.16.0.0/12\"\n"
    "[[allow_cidr]]\ncidr = \"172.16.5.0/24\"\nports = [443, 8443]\n"
    "[[deny_cidr]]\ncidr = \"fc00::/7\"\n"
    "[[allow_cidr]]\ncidr = \"::/0\"\nports = [25]\nproto = \"tcp\"\n"
    "[[allow_cidr]]\ncidr = \"0.0.0.0/0\"\nports = [123]\nproto = \"udp\"\n",
};

const char* const kV4[] = {
    "0.0.0.0",       "127.0.0.1",      "127.0.0.2",       "127.255.255.254", "0.1.2.3",        "10.0.0.1",
    "10.1.2.3",      "10.1.2.4",       "10.1.3.3",        "10.255.255.255",  "172.16.0.1",     "172.16.5.9",
    "172.31.255.255", "172.32.0.1",    "192.168.1.5",     "192.168.1.6",     "100.64.0.1",     "100.127.255.255",
    "100.128.0.1",   "169.254.169.254", "169.254.0.1",    "168.63.129.16",   "224.0.0.1",      "239.255.255.250",
    "255.255.255.255", "240.0.0.1",    "192.0.0.9",       "198.18.0.1",      "198.19.255.255", "203.0.113.1",
    "203.0.113.200", "198.51.100.7",   "8.8.8.8",         "1.1.1.1",
};

const char* const kV6[] = {
    "::",           "::1",          "fe80::1",         "febf::1",        "fec0::1",        "fc00::1",
    "fd00::1",      "fd12:3456::1", "ff02::1",         "ff0e::1",        "2001:db8::1",    "2001:db8:bad::1",
    "2606:4700::1111", "2a00:1450::200e", "64:ff9b:1::a00:1", "100::1",   "::ffff:0:a00:1", "2001::1",
    "::2",          "1::",
};

struct Port {
  uint8_t proto;
  uint16_t port;
};
const Port kPorts[] = {{EGD_PROTO_TCP, 80},   {EGD_PROTO_TCP, 443},  {EGD_PROTO_TCP, 22},   {EGD_PROTO_TCP, 25},
                       {EGD_PROTO_TCP, 5432}, {EGD_PROTO_TCP, 5050}, {EGD_PROTO_TCP, 8080}, {EGD_PROTO_TCP, 9001},
                       {EGD_PROTO_TCP, 8443}, {EGD_PROTO_TCP, 1500}, {EGD_PROTO_UDP, 53},   {EGD_PROTO_UDP, 123},
                       {EGD_PROTO_UDP, 443},  {EGD_PROTO_UDP, 1500}, {EGD_PROTO_UDP, 5432}, {EGD_PROTO_UDP, 8443},
                       {0, 0},                {0, 443}};

// Every address of the table: the IPv6 ones, and each IPv4 one as IPv4,
// v4-mapped, v4-compatible, NAT64 (64:ff9b::/96) and 6to4.
std::vector<IpAddr> addresses() {
  std::vector<IpAddr> out;
  for (const char* t : kV6) out.push_back(*IpAddr::parse(t));
  for (const char* t : kV4) {
    in_addr a{};
    EXPECT_EQ(inet_pton(AF_INET, t, &a), 1) << t;
    out.push_back(IpAddr::v4(&a));
    auto b = reinterpret_cast<const uint8_t*>(&a);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "::ffff:%s", t);
    out.push_back(*IpAddr::parse(buf));
    std::snprintf(buf, sizeof(buf), "::%s", t);
    out.push_back(*IpAddr::parse(buf));
    std::snprintf(buf, sizeof(buf), "64:ff9b::%s", t);
    out.push_back(*IpAddr::parse(buf));
    std::snprintf(buf, sizeof(buf), "2002:%02x%02x:%02x%02x::1", b[0], b[1], b[2], b[3]);
    out.push_back(*IpAddr::parse(buf));
  }
  return out;
}

// The one known difference: an address admitted through a port range the
// compiler folded in from a less specific [[allow_cidr]] is reported by the
// kernel with the most specific entry's rule (an egd_port_range has no room
// for its rule's id), by userspace with the rule that holds the range.
bool folded(const policy::Policy& p, const egd_test_verdict& k, const L3Verdict& u) {
  if (k.reason != EGD_REASON_ALLOW_CIDR || !k.rule_id || !u.rule_id) return false;
  const policy::Cidr& kernel = p.allow_cidrs.at(k.rule_id - 1).cidr;
  const policy::Cidr& user = p.allow_cidrs.at(u.rule_id - 1).cidr;
  return kernel.family == user.family && kernel.prefix > user.prefix && policy::cidr_contains(user, kernel);
}

const char* proto_name(uint8_t proto) {
  return proto == EGD_PROTO_TCP ? "tcp" : proto == EGD_PROTO_UDP ? "udp" : "other";
}

TEST(DecideDiff, KernelAndUserspaceAgree) {
  auto addrs = addresses();
  size_t cases = 0, mismatches = 0;
  for (size_t pi = 0; pi < std::size(kPolicies); ++pi) {
    policy::Policy p = policy::parse_policy(std::string("version = 1\n") + kPolicies[pi], "diff.toml");
    policy::CompiledPolicy compiled = policy::compile(p, /*gen=*/7);
    g_compiled = &compiled;
    egd_test_set_config(compiled.gen, &compiled.config);
    L3Check l3(p);
    for (const IpAddr& a : addrs) {
      __u32 words[4] = {};
      std::memcpy(words, a.bytes.data(), a.family == AF_INET ? 4 : 16);
      for (const Port& port : kPorts) {
        ++cases;
        egd_test_verdict k = egd_test_decide(a.family == AF_INET6, words, port.port, port.proto);
        L3Verdict u = l3.decide(a, port.port, port.proto);
        bool same = (k.verdict == EGD_VERDICT_ALLOW) == u.allowed && k.reason == u.reason &&
                    (k.rule_id == u.rule_id || folded(p, k, u));
        if (!same && ++mismatches <= 20)
          ADD_FAILURE() << "policy #" << pi << ", " << a.to_string() << " " << proto_name(port.proto) << "/"
                        << port.port << ": kernel " << (k.verdict == EGD_VERDICT_ALLOW ? "allow" : "deny") << " "
                        << reason_name(k.reason) << " rule " << k.rule_id << ", userspace "
                        << (u.allowed ? "allow" : "deny") << " " << reason_name(u.reason) << " rule " << u.rule_id;
      }
    }
  }
  g_compiled = nullptr;
  EXPECT_EQ(mismatches, 0u) << "of " << cases << " cases";
  EXPECT_GT(cases, 10000u);
}

}  // namespace
}  // namespace egressd::decide
