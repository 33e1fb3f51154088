#include "policy/compiler.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <unordered_map>

#include "policy/cidr.h"

namespace egressd::policy {
namespace {

// ---- prefixes as hash keys ------------------------------------------------

struct PrefixKey {
  uint8_t len = 0;
  std::array<uint8_t, 16> addr{};  // masked to len
  bool operator==(const PrefixKey&) const = default;
};

struct PrefixHash {
  size_t operator()(const PrefixKey& k) const {
    uint64_t h = 0xcbf29ce484222325ull ^ k.len;
    for (uint8_t b : k.addr) h = (h ^ b) * 0x100000001b3ull;
    return static_cast<size_t>(h);
  }
};

PrefixKey masked(const std::array<uint8_t, 16>& addr, int len) {
  PrefixKey k;
  k.len = static_cast<uint8_t>(len);
  k.addr = addr;
  mask_addr(k.addr, len);
  return k;
}

// A hand-built Policy may hold anything; a parsed one never trips this.
// `what` names the rule, built only on failure.
template <class What>
void check_cidr(const Cidr& c, What what) {
  if (c.family != AF_INET && c.family != AF_INET6) throw CompileError(what() + ": unsupported address family");
  if (c.prefix > addr_bits(c.family))
    throw CompileError(what() + ": prefix length " + std::to_string(c.prefix) + " out of range");
}

std::string describe(const AllowCidr& r) {
  std::string where = r.pos.file.empty() ? "" : r.pos.file + ":" + std::to_string(r.pos.line) + ": ";
  return where + "allow_cidr[" + std::to_string(r.id) + "] (" + format_cidr(r.cidr) + ")";
}

// ---- port ranges ------------------------------------------------------------

struct Range {
  uint16_t lo = 0, hi = 0;
  uint8_t mask = 0;
  auto tie() const { return std::tie(lo, hi, mask); }
};

// Sorts and merges overlapping or adjacent intervals.
std::vector<Range> merge(std::vector<Range> v, uint8_t mask) {
  std::sort(v.begin(), v.end(), [](const Range& a, const Range& b) { return a.tie() < b.tie(); });
  std::vector<Range> out;
  for (const auto& r : v) {
    if (!out.empty() && static_cast<int>(r.lo) <= static_cast<int>(out.back().hi) + 1)
      out.back().hi = std::max(out.back().hi, r.hi);
    else
      out.push_back({r.lo, r.hi, mask});
  }
  return out;
}

// The fewest ranges that admit exactly the same (port, protocol) pairs: each
// protocol's ports merged into maximal intervals, and an interval both
// protocols share exactly written once with both bits.
std::vector<Range> normalize(const std::vector<Range>& in) {
  std::vector<Range> tcp, udp;
  for (const auto& r : in) {
    if (r.mask & kProtoTcp) tcp.push_back(r);
    if (r.mask & kProtoUdp) udp.push_back(r);
  }
  tcp = merge(std::move(tcp), kProtoTcp);
  udp = merge(std::move(udp), kProtoUdp);

  std::vector<Range> out;
  size_t i = 0, j = 0;
  while (i < tcp.size() || j < udp.size()) {
    if (i < tcp.size() && j < udp.size() && tcp[i].lo == udp[j].lo && tcp[i].hi == udp[j].hi) {
      out.push_back({tcp[i].lo, tcp[i].hi, kProtoTcp | kProtoUdp});
      ++i, ++j;
    } else if (j == udp.size() || (i < tcp.size() && tcp[i].tie() < udp[j].tie())) {
      out.push_back(tcp[i++]);
    } else {
      out.push_back(udp[j++]);
    }
  }
  return out;
}

// The (port, protocol) pairs one rule admits on its own.
void add_own_ranges(const AllowCidr& r, std::vector<Range>& out) {
  if (r.ports.empty()) {
    out.push_back({0, 65535, r.proto_mask});
    return;
  }
  for (const auto& p : r.ports) out.push_back({p.lo, p.hi, r.proto_mask});
}

// ---- map keys ---------------------------------------------------------------

egd_lpm4_key key4(const PrefixKey& p, uint32_t gen) {
  egd_lpm4_key k;
  std::memset(&k, 0, sizeof(k));  // the kernel compares raw key bytes
  k.prefixlen = EGD_GEN_BITS + p.len;
  k.gen = htonl(gen);
  std::memcpy(&k.addr, p.addr.data(), 4);
  return k;
}

egd_lpm6_key key6(const PrefixKey& p, uint32_t gen) {
  egd_lpm6_key k;
  std::memset(&k, 0, sizeof(k));
  k.prefixlen = EGD_GEN_BITS + p.len;
  k.gen = htonl(gen);
  std::memcpy(k.addr, p.addr.data(), 16);
  return k;
}

// ---- allow folding ------------------------------------------------------------

// The allow rules of one family, grouped by exact prefix. The kernel's LPM
// lookup returns only the longest match, so each prefix's entry must carry
// the ranges of every rule whose CIDR contains it.
class AllowFolder {
 public:
  void add(const AllowCidr& r) {
    PrefixKey k = masked(r.cidr.addr, r.cidr.prefix);
    auto [it, fresh] = index_.try_emplace(k, groups_.size());
    if (fresh) groups_.push_back({k, &r, {}});
    add_own_ranges(r, groups_[it->second].own);
    present_[k.len] = true;
  }

  // Calls emit(prefix, value) for each distinct prefix, in first-seen order.
  template <class Emit>
  void fold(Emit emit) const {
    std::vector<int> lens;
    for (int l = 0; l <= 128; ++l)
      if (present_[l]) lens.push_back(l);
    std::vector<Range> all;
    for (const auto& g : groups_) {
      all.clear();
      for (int l : lens) {
        if (l > g.key.len) break;
        auto it = index_.find(masked(g.key.addr, l));
        if (it != index_.end()) {
          const auto& own = groups_[it->second].own;
          all.insert(all.end(), own.begin(), own.end());
        }
      }
      emit(g.key, value(g, normalize(all)));
    }
  }

  void reserve(size_t n) {
    index_.reserve(n);
    groups_.reserve(n);
  }

 private:
  struct Group {
    PrefixKey key;
    const AllowCidr* first;  // the rule named by the entry's rule_id
    std::vector<Range> own;  // ranges of the rules at exactly this prefix
  };

  static egd_cidr_rule value(const Group& g, const std::vector<Range>& ranges) {
    if (ranges.size() > EGD_MAX_PORT_RANGES)
      throw CompileError(describe(*g.first) + ": " + std::to_string(ranges.size()) +
                         " distinct port ranges apply to this prefix (its own and those of the allow_cidr rules "
                         "containing it); an entry holds at most " +
                         std::to_string(EGD_MAX_PORT_RANGES) + ": merge ports into ranges");
    egd_cidr_rule v;
    std::memset(&v, 0, sizeof(v));
    v.rule_id = g.first->id;
    v.nranges = static_cast<__u16>(ranges.size());
    for (size_t i = 0; i < ranges.size(); ++i) {
      v.ranges[i].lo = ranges[i].lo;
      v.ranges[i].hi = ranges[i].hi;
      v.ranges[i].proto_mask = ranges[i].mask;
      v.proto_mask |= ranges[i].mask;  // read only when nranges == 0; the union, for tools
    }
    return v;
  }

  std::unordered_map<PrefixKey, size_t, PrefixHash> index_;
  std::vector<Group> groups_;
  std::array<bool, 129> present_{};
};

// ---- config -----------------------------------------------------------------

// Sets bits lo..hi (inclusive) of a port bitmap, a word at a time, so that
// wide ranges cost 1024 steps at most.
void set_ports(__u64* bitmap, uint32_t lo, uint32_t hi) {
  while (lo <= hi) {
    uint32_t word = lo >> 6, first = lo & 63, last = std::min<uint32_t>(63, hi - (lo - first));
    __u64 bits = ~0ull >> (63 - last);  // bits 0..last
    bitmap[word] |= bits & (~0ull << first);
    lo = (word + 1) << 6;
  }
}

void fill_config(const Policy& p, uint32_t gen, egd_config& c) {
  std::memset(&c, 0, sizeof(c));
  c.gen = gen;
  c.category_action[EGD_CAT_PUBLIC] = EGD_ACTION_ALLOW;  // not read: public goes to the port rules
  c.category_action[EGD_CAT_LOOPBACK] = static_cast<__u8>(p.network.loopback);
  c.category_action[EGD_CAT_PRIVATE] = static_cast<__u8>(p.network.private_);
  c.category_action[EGD_CAT_LINK_LOCAL] = static_cast<__u8>(p.network.link_local);
  c.category_action[EGD_CAT_MULTICAST] = static_cast<__u8>(p.network.multicast);
  c.category_action[EGD_CAT_BROADCAST] = static_cast<__u8>(p.network.broadcast);
  c.category_action[EGD_CAT_RESERVED] = static_cast<__u8>(p.network.reserved);
  c.events_all = p.events == EventsMode::All || p.mode == Mode::Audit ? 1 : 0;
  c.audit = p.mode == Mode::Audit ? 1 : 0;

  // Host rules are enforced by the proxy; at L4 their ports must be open.
  for (uint16_t port : kWebPorts) set_ports(c.tcp_ports, port, port);
  for (const auto& h : p.hosts)
    for (const auto& r : h.ports) set_ports(c.tcp_ports, r.lo, r.hi);
  set_ports(c.udp_ports, kDnsPort, kDnsPort);
}

void compile_deny(const Policy& p, uint32_t gen, CompiledPolicy& out) {
  // One set per family: 0.0.0.0/0 and ::/0 have the same PrefixKey.
  std::unordered_map<PrefixKey, bool, PrefixHash> seen4, seen6;
  for (const auto& r : p.deny_cidrs) {
    check_cidr(r.cidr, [&] { return "deny_cidr[" + std::to_string(r.id) + "]"; });
    PrefixKey k = masked(r.cidr.addr, r.cidr.prefix);
    bool v6 = r.cidr.family == AF_INET6;
    if (!(v6 ? seen6 : seen4).try_emplace(k, true).second) continue;  // the first id wins
    if (v6)
      out.deny6.emplace_back(key6(k, gen), r.id);
    else
      out.deny4.emplace_back(key4(k, gen), r.id);
  }
}

}  // namespace

CompiledPolicy compile(const Policy& policy, uint32_t gen) {
  CompiledPolicy out;
  out.gen = gen;
  fill_config(policy, gen, out.config);
  compile_deny(policy, gen, out);

  AllowFolder v4, v6;
  v4.reserve(policy.allow_cidrs.size());  // v4 usually dominates; v6 grows as needed
  for (const auto& r : policy.allow_cidrs) {
    check_cidr(r.cidr, [&] { return describe(r); });
    (r.cidr.family == AF_INET ? v4 : v6).add(r);
  }
  v4.fold([&](const PrefixKey& k, const egd_cidr_rule& v) { out.allow4.emplace_back(key4(k, gen), v); });
  v6.fold([&](const PrefixKey& k, const egd_cidr_rule& v) { out.allow6.emplace_back(key6(k, gen), v); });
  return out;
}

namespace {

const char* action_name(Action a) { return a == Action::Allow ? "allow" : "deny"; }

template <class Rule>
std::string family_counts(const std::vector<Rule>& rules) {
  size_t v4 = 0;
  for (const auto& r : rules) v4 += r.cidr.family == AF_INET;
  return std::to_string(rules.size()) + " (" + std::to_string(v4) + " IPv4, " + std::to_string(rules.size() - v4) +
         " IPv6)";
}

// "80, 443, 8000-8100": the TCP ports open at L4 for public addresses.
std::string tcp_ports_text(const Policy& p) {
  std::vector<Range> ports;
  for (uint16_t port : kWebPorts) ports.push_back({port, port, kProtoTcp});
  for (const auto& h : p.hosts)
    for (const auto& r : h.ports) ports.push_back({r.lo, r.hi, kProtoTcp});
  std::string out;
  for (const auto& r : merge(std::move(ports), kProtoTcp)) {
    if (!out.empty()) out += ", ";
    out += std::to_string(r.lo);
    if (r.hi != r.lo) out += "-" + std::to_string(r.hi);
  }
  return out;
}

}  // namespace

// "; at most 20 TCP connections per process, 40 per user" when the policy
// sets caps; nothing for the defaults (a share of the daemon's total).
static std::string share_text(const ConnectionShare& c, const char* what) {
  if (!c.per_process && !c.per_uid) return "";
  std::string s = std::string("; at most ");
  if (c.per_process) s += std::to_string(c.per_process) + " " + what + " per process";
  if (c.per_process && c.per_uid) s += ", ";
  if (c.per_uid) s += std::to_string(c.per_uid) + (c.per_process ? "" : std::string(" ") + what) + " per user";
  return s;
}

std::string summarize(const Policy& p) {
  const Network& n = p.network;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(p.hash));
  std::string s;
  s += "  version:    " + std::to_string(p.version) + " (hash " + hash + ")\n";
  s += std::string("  mode:       ") +
       (p.mode == Mode::Audit ? "audit (nothing is denied; would-be denials are recorded)" : "enforce") + "\n";
  s += "  allow_cidr: " + family_counts(p.allow_cidrs) + "\n";
  s += "  deny_cidr:  " + family_counts(p.deny_cidrs) + "\n";
  s += "  host rules: " + std::to_string(p.hosts.size()) +
       (p.hosts.empty() ? " (no web host is reachable: TCP 80/443 go to the proxy, which refuses every name)"
                       : " (TCP to their ports goes through the proxy, which admits only these names)") + "\n";
  s += std::string("  network:    loopback ") + action_name(n.loopback) + ", private " + action_name(n.private_) +
       ", link_local " + action_name(n.link_local) + ", multicast " + action_name(n.multicast) + ", broadcast " +
       action_name(n.broadcast) + ", reserved " + action_name(n.reserved) + "\n";
  s += "  ports:      tcp " + tcp_ports_text(p) + "; udp " + std::to_string(kDnsPort) + "\n";
  s += std::string("  proxy:      ech ") + (p.proxy.ech == EchMode::Deny ? "deny" : "outer-sni") +
       share_text(p.proxy.connections, "connections") + "\n";
  std::string upstream;
  for (const std::string& u : p.dns.upstream) upstream += (upstream.empty() ? "" : ", ") + u;
  s += "  dns:        resolves host-rule names" +
       (p.dns.allow.empty() ? std::string() : " and " + std::to_string(p.dns.allow.size()) + " [dns] allow names") +
       "; others " + (p.dns.denied == DnsDenied::Refused ? "REFUSED" : "NXDOMAIN") + "; upstream " +
       (upstream.empty() ? "/etc/resolv.conf" : upstream) + share_text(p.dns.tcp_connections, "TCP connections") + "\n";
  s += std::string("  events:     ") + (p.events == EventsMode::All ? "all" : "deny") + "\n";
  return s;
}

}  // namespace egressd::policy
