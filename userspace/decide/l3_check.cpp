#include "decide/l3_check.h"

#include <algorithm>
#include <cstring>

#include "addr_class.h"
#include "decide/host_rules.h"

namespace egressd::decide {
namespace {

IpAddr masked(const IpAddr& a, uint8_t len) {
  IpAddr m = a;
  size_t n = a.family == AF_INET ? 4 : 16;
  for (size_t i = 0; i < n; ++i) {
    int keep = std::clamp(static_cast<int>(len) - static_cast<int>(i * 8), 0, 8);
    m.bytes[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  for (size_t i = n; i < 16; ++i) m.bytes[i] = 0;
  return m;
}

template <class Rule>
void build(std::vector<std::pair<uint8_t, std::unordered_map<IpAddr, size_t>>>& out, const std::vector<Rule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const policy::Cidr& c = rules[i].cidr;
    IpAddr a;
    a.family = c.family;
    std::memcpy(a.bytes.data(), c.addr.data(), 16);
    // A key per (family, length): lengths of both families share the list.
    auto it = std::find_if(out.begin(), out.end(), [&](auto& p) {
      return p.first == c.prefix && (p.second.empty() || p.second.begin()->first.family == c.family);
    });
    if (it == out.end()) {
      out.emplace_back(c.prefix, std::unordered_map<IpAddr, size_t>{});
      it = std::prev(out.end());
    }
    it->second.emplace(masked(a, c.prefix), i);  // first rule wins, as in the compiler
  }
  std::sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.first > y.first; });
}

// bpf/addr_class.h's classification of an address value.
__u32 category_of(const IpAddr& a) {
  if (a.family == AF_INET) {
    __u32 v4;
    std::memcpy(&v4, a.bytes.data(), 4);
    return egd_classify4(v4);
  }
  __u32 w[4];
  std::memcpy(w, a.bytes.data(), 16);
  return egd_classify6(w);
}

policy::Action category_action(const policy::Network& n, __u32 cat) {
  switch (cat) {
    case EGD_CAT_LOOPBACK: return n.loopback;
    case EGD_CAT_PRIVATE: return n.private_;
    case EGD_CAT_LINK_LOCAL: return n.link_local;
    case EGD_CAT_MULTICAST: return n.multicast;
    case EGD_CAT_BROADCAST: return n.broadcast;
    default: return n.reserved;
  }
}

}  // namespace

const size_t* L3Check::Index::find(const IpAddr& a) const {
  for (const auto& [len, set] : by_len) {
    if (set.empty() || set.begin()->first.family != a.family) continue;
    auto it = set.find(masked(a, len));
    if (it != set.end()) return &it->second;
  }
  return nullptr;
}

L3Check::L3Check(const policy::Policy& policy) : policy_(policy) {
  build(deny_.by_len, policy.deny_cidrs);
  build(allow_.by_len, policy.allow_cidrs);
  tcp_ports_.assign(65536, false);
  for (uint16_t port : policy::kWebPorts) tcp_ports_[port] = true;
  for (const policy::HostRule& h : policy.hosts)
    for (const policy::PortRange& r : h.ports)
      for (uint32_t port = r.lo; port <= r.hi; ++port) tcp_ports_[port] = true;
}

L3Verdict L3Check::judge(const IpAddr& a, uint16_t port, uint8_t proto, bool steered) const {
  if (const size_t* i = deny_.find(a)) return {false, EGD_REASON_DENY_CIDR, policy_.deny_cidrs[*i].id};
  // Folded allow rules: any containing rule that admits the port (the
  // kernel folds less specific rules into the most specific entry).
  for (const auto& [len, set] : allow_.by_len) {
    if (set.empty() || set.begin()->first.family != a.family) continue;
    auto it = set.find(masked(a, len));
    if (it == set.end()) continue;
    const policy::AllowCidr& r = policy_.allow_cidrs[it->second];
    if ((r.proto_mask & proto) && (r.ports.empty() || port_in(r.ports, port)))
      return {true, EGD_REASON_ALLOW_CIDR, r.id};
  }
  __u32 cat = category_of(a);
  if (cat != EGD_CAT_PUBLIC) {
    policy::Action act = category_action(policy_.network, cat);
    if (act == policy::Action::Deny || cat == EGD_CAT_LOOPBACK)
      return {act == policy::Action::Allow, static_cast<uint16_t>(egd_category_reason(cat))};
  }
  if (steered || (proto == policy::kProtoTcp && tcp_ports_[port])) return {true, EGD_REASON_WEB_PORT};
  if (proto == policy::kProtoUdp && port == policy::kDnsPort) return {true, EGD_REASON_DNS_PORT};
  return {false, proto ? uint16_t{EGD_REASON_PORT} : uint16_t{EGD_REASON_PROTO}};
}

L3Verdict L3Check::embedded(const IpAddr& addr, uint16_t port, uint8_t proto, bool steered) const {
  if (addr.family == AF_INET6) {
    __u32 w[4], v4 = 0;
    std::memcpy(w, addr.bytes.data(), 16);
    int embed = egd_embedded_v4(w, &v4);
    if (embed != EGD_EMBED_NONE) {
      // The IPv4 verdict names the real target; a translated form leaves
      // as IPv6, so it must also pass as IPv6 (its denial wins).
      L3Verdict as4 = judge(IpAddr::v4(&v4), port, proto, steered);
      if (embed == EGD_EMBED_MAPPED || !as4.allowed) return as4;
      L3Verdict as6 = judge(addr, port, proto, steered);
      return as6.allowed ? as4 : as6;
    }
  }
  return judge(addr, port, proto, steered);
}

L3Verdict L3Check::decide(const IpAddr& addr, uint16_t port, uint8_t proto) const {
  return embedded(addr, port, proto, /*steered=*/false);
}

L3Verdict L3Check::tcp(const IpAddr& addr, uint16_t port) const {
  return embedded(addr, port, policy::kProtoTcp, /*steered=*/true);
}

bool L3Check::reachable_as(const IpAddr& a) const {
  if (deny_.find(a)) return false;
  if (allow_.find(a)) return true;  // some port of some protocol is open there
  __u32 cat = category_of(a);
  if (cat == EGD_CAT_PUBLIC) return true;
  policy::Action act = category_action(policy_.network, cat);
  return act == policy::Action::Allow;
}

bool L3Check::reachable(const IpAddr& addr) const {
  if (addr.family == AF_INET6) {
    __u32 w[4], v4 = 0;
    std::memcpy(w, addr.bytes.data(), 16);
    int embed = egd_embedded_v4(w, &v4);
    if (embed != EGD_EMBED_NONE) {
      bool as4 = reachable_as(IpAddr::v4(&v4));
      if (embed == EGD_EMBED_MAPPED || !as4) return as4;
      return reachable_as(addr);  // translated forms leave as IPv6: both must pass
    }
  }
  return reachable_as(addr);
}

}  // namespace egressd::decide
