#include "policy/toml_loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <toml++/toml.h>

#include "addr_class.h"
#include "policy/cidr.h"

namespace egressd::policy {
namespace {

std::string format_error(const SourcePos& pos, const std::string& key, const std::string& message) {
  std::string out = pos.file;
  if (pos.line > 0) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// Dotted key paths with 1-based array indices: "allow_cidr[2].ports[1]".
std::string child(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}
std::string at_index(const std::string& parent, size_t i) { return parent + "[" + std::to_string(i + 1) + "]"; }

std::string join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// bpf/addr_class.h's category of a host address (a /32 or /128).
bool sinkhole_public(const Cidr& c) {
  __u32 w[4];
  std::memcpy(w, c.addr.data(), 16);
  return (c.family == AF_INET ? egd_classify4(w[0]) : egd_classify6(w)) == EGD_CAT_PUBLIC;
}

// Validation over one parsed TOML document. Every failure throws
// PolicyError carrying the node's position and its key path.
class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  Policy load(const toml::table& root, uint64_t hash) {
    Policy p;
    p.source = source_;
    p.hash = hash;
    check_keys(root, "",
               {"version", "mode", "events", "network", "proxy", "dns", "allow_cidr", "deny_cidr", "allow"});
    p.version = load_version(root);
    if (auto* n = root.get("mode")) p.mode = load_mode(*n, "mode");
    if (auto* n = root.get("proxy")) p.proxy = load_proxy(*n, "proxy");
    if (auto* n = root.get("dns")) p.dns = load_dns(*n, "dns");
    if (auto* n = root.get("events")) p.events = load_events(*n, "events");
    if (auto* n = root.get("network")) p.network = load_network(*n, "network");
    each_table(root, "allow_cidr", [&](const toml::table& t, const std::string& key, uint32_t id) {
      p.allow_cidrs.push_back(load_allow_cidr(t, key, id));
    });
    each_table(root, "deny_cidr", [&](const toml::table& t, const std::string& key, uint32_t id) {
      p.deny_cidrs.push_back(load_deny_cidr(t, key, id));
    });
    each_table(root, "allow", [&](const toml::table& t, const std::string& key, uint32_t id) {
      p.hosts.push_back(load_host(t, key, id));
    });
    if (auto* n = root.get("dns")) check_sinkholes(*n, p);
    return p;
  }

 private:
  std::string source_;

  SourcePos pos(const toml::source_region& r) const {
    SourcePos p;
    p.file = r.path ? *r.path : source_;
    p.line = r.begin.line;
    p.column = r.begin.column;
    if (p.line == 0) p.line = p.column = 1;  // nodes without a region: the top of the file
    return p;
  }

  [[noreturn]] void fail(const toml::node& n, const std::string& key, const std::string& msg) const {
    throw PolicyError(pos(n.source()), key, msg);
  }
  [[noreturn]] void fail(const toml::key& k, const std::string& key, const std::string& msg) const {
    throw PolicyError(pos(k.source()), key, msg);
  }

  // ---- typed accessors ----------------------------------------------------

  const std::string& want_string(const toml::node& n, const std::string& key) const {
    if (!n.is_string()) fail(n, key, std::string("expected a string, got ") + type_name(n));
    return n.as_string()->get();
  }

  int64_t want_integer(const toml::node& n, const std::string& key) const {
    if (!n.is_integer()) fail(n, key, std::string("expected an integer, got ") + type_name(n));
    return n.as_integer()->get();
  }

  const toml::table& want_table(const toml::node& n, const std::string& key) const {
    if (!n.is_table()) fail(n, key, std::string("expected a table, got ") + type_name(n));
    return *n.as_table();
  }

  // A non-empty array; `empty_hint` says what omitting the key means.
  const toml::array& want_list(const toml::node& n, const std::string& key, const char* empty_hint) const {
    if (!n.is_array()) fail(n, key, std::string("expected an array, got ") + type_name(n));
    const auto& a = *n.as_array();
    if (a.empty()) fail(n, key, std::string("empty array: omit the key for ") + empty_hint);
    return a;
  }

  const toml::node& require(const toml::table& t, std::string_view name, const std::string& key) const {
    if (auto* n = t.get(name)) return *n;
    fail(t, child(key, name), "missing required key");
  }

  void check_keys(const toml::table& t, const std::string& key, std::initializer_list<std::string_view> known) const {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if (!ok) fail(k, child(key, k.str()), "unknown key (allowed here: " + join(known) + ")");
    }
  }

  // Calls fn(table, "name[i]", i + 1) for each entry of an array of tables.
  template <class Fn>
  void each_table(const toml::table& root, std::string_view name, Fn fn) const {
    const toml::node* n = root.get(name);
    if (!n) return;
    std::string key(name);
    std::string what = "expected an array of tables ([[" + key + "]]), got ";
    if (!n->is_array()) fail(*n, key, what + type_name(*n));
    const auto& arr = *n->as_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      if (!arr[i].is_table()) fail(arr[i], at_index(key, i), what + "an array holding " + type_name(arr[i]));
      fn(*arr[i].as_table(), at_index(key, i), static_cast<uint32_t>(i + 1));
    }
  }

  // ---- scalars --------------------------------------------------------------

  uint32_t load_version(const toml::table& root) const {
    const toml::node* n = root.get("version");
    if (!n) throw PolicyError(SourcePos{source_, 1, 1}, "version", "missing required key (write version = 1)");
    int64_t v = want_integer(*n, "version");
    if (v != 1) fail(*n, "version", "unsupported version " + std::to_string(v) + " (this egressd reads version 1)");
    return 1;
  }

  EventsMode load_events(const toml::node& n, const std::string& key) const {
    const auto& s = want_string(n, key);
    if (s == "deny") return EventsMode::Deny;
    if (s == "all") return EventsMode::All;
    fail(n, key, "expected \"deny\" or \"all\"");
  }

  Mode load_mode(const toml::node& n, const std::string& key) const {
    const auto& s = want_string(n, key);
    if (s == "enforce") return Mode::Enforce;
    if (s == "audit") return Mode::Audit;
    fail(n, key, "expected \"enforce\" or \"audit\"");
  }

  // Seconds as an integer, or a string "90s", "5m", "1h"; 0 .. kMaxAddressGrace.
  std::chrono::seconds load_duration(const toml::node& n, const std::string& key) const {
    constexpr const char* kForm = "expected seconds (an integer) or a duration string such as \"90s\", \"5m\" or \"1h\"";
    int64_t secs = 0;
    if (n.is_integer()) {
      secs = *n.value<int64_t>();
    } else if (n.is_string()) {
      std::string s = *n.value<std::string>();  // value<>() returns a copy
      size_t digits = 0;
      while (digits < s.size() && digits < 7 && s[digits] >= '0' && s[digits] <= '9') ++digits;
      if (digits == 0 || s.size() != digits + 1) fail(n, key, kForm);
      int64_t v = std::stoll(s.substr(0, digits));
      switch (s[digits]) {
        case 's': secs = v; break;
        case 'm': secs = v * 60; break;
        case 'h': secs = v * 3600; break;
        default: fail(n, key, kForm);
      }
    } else {
      fail(n, key, std::string(kForm) + ", got " + type_name(n));
    }
    if (secs < 0 || secs > kMaxAddressGrace.count())
      fail(n, key, "out of range: 0 to " + std::to_string(kMaxAddressGrace.count()) + " seconds (\"1h\")");
    return std::chrono::seconds(secs);
  }

  ProxySettings load_proxy(const toml::node& n, const std::string& key) const {
    const auto& t = want_table(n, key);
    check_keys(t, key, {"ech", "max_connections_per_process", "max_connections_per_uid", "address_grace"});
    ProxySettings ps;
    load_share(t, key, "max_connections_per_process", &ps.connections.per_process);
    load_share(t, key, "max_connections_per_uid", &ps.connections.per_uid);
    if (auto* g = t.get("address_grace")) ps.address_grace = load_duration(*g, child(key, "address_grace"));
    if (auto* e = t.get("ech")) {
      std::string k = child(key, "ech");
      const auto& s = want_string(*e, k);
      if (s == "deny") ps.ech = EchMode::Deny;
      else if (s == "outer-sni") ps.ech = EchMode::OuterSni;
      else fail(*e, k, "expected \"deny\" or \"outer-sni\"");
    }
    return ps;
  }

  // [dns]. A `[[dns]]` array (the first sketch) cannot coexist with
  // the table in TOML, so its allow rules are the table's `allow` list.
  DnsSettings load_dns(const toml::node& n, const std::string& key) const {
    if (n.is_array()) fail(n, key, "expected a table ([dns]), got an array: write [dns] with allow = [\"name\", ...]");
    const auto& t = want_table(n, key);
    check_keys(t, key, {"upstream", "denied", "allow", "max_tcp_connections_per_process", "max_tcp_connections_per_uid",
                        "drop_unroutable_families", "sinkhole_ipv4", "sinkhole_ipv6"});
    DnsSettings d;
    load_share(t, key, "max_tcp_connections_per_process", &d.tcp_connections.per_process);
    load_share(t, key, "max_tcp_connections_per_uid", &d.tcp_connections.per_uid);
    if (auto* u = t.get("upstream")) {
      d.upstream = load_strings(*u, child(key, "upstream"), "the nameservers of /etc/resolv.conf", check_upstream);
      if (d.upstream.size() > kMaxDnsUpstreams)
        fail(*u, child(key, "upstream"), "at most " + std::to_string(kMaxDnsUpstreams) + " upstreams");
    }
    if (auto* v = t.get("denied")) {
      std::string k = child(key, "denied");
      const auto& s = want_string(*v, k);
      if (s == "nxdomain") d.denied = DnsDenied::NxDomain;
      else if (s == "refused") d.denied = DnsDenied::Refused;
      else if (s == "sinkhole") d.denied = DnsDenied::Sinkhole;
      else fail(*v, k, "expected \"nxdomain\", \"refused\" or \"sinkhole\"");
    }
    if (auto* v = t.get("drop_unroutable_families")) {
      std::string k = child(key, "drop_unroutable_families");
      if (!v->is_boolean()) fail(*v, k, std::string("expected true or false, got ") + type_name(*v));
      d.drop_unroutable_families = v->as_boolean()->get();
    }
    for (int family : {AF_INET, AF_INET6}) {
      const char* name = family == AF_INET ? "sinkhole_ipv4" : "sinkhole_ipv6";
      auto* v = t.get(name);
      if (!v) continue;
      std::string k = child(key, name);
      const auto& s = want_string(*v, k);
      unsigned char buf[16];
      if (inet_pton(family, s.c_str(), buf) != 1)
        fail(*v, k, std::string("not an ") + (family == AF_INET ? "IPv4" : "IPv6") + " address: \"" + s + "\"");
      (family == AF_INET ? d.sinkhole_ipv4 : d.sinkhole_ipv6) = s;
    }
    if (auto* a = t.get("allow")) {
      const auto& arr = want_list(*a, child(key, "allow"), "no names beyond the [[allow]] hosts");
      for (size_t i = 0; i < arr.size(); ++i) {
        std::string k = at_index(child(key, "allow"), i);
        std::string name = want_string(arr[i], k);
        if (auto err = check_host(name, /*dns_name=*/true)) fail(arr[i], k, *err);
        d.allow.push_back(std::move(name));
      }
    }
    return d;
  }

  // A sinkhole address must be one the fence steers to the proxy (TCP 80,
  // 443): a public address no [[allow_cidr]] or [[deny_cidr]] covers.
  // Otherwise a denied name would lead somewhere real, or to a bare EPERM.
  void check_sinkholes(const toml::node& n, const Policy& p) const {
    if (p.dns.denied != DnsDenied::Sinkhole) return;
    const auto& t = *n.as_table();
    for (const std::string* s : {&p.dns.sinkhole_ipv4, &p.dns.sinkhole_ipv6}) {
      const char* name = s == &p.dns.sinkhole_ipv4 ? "sinkhole_ipv4" : "sinkhole_ipv6";
      const toml::node* at = t.get(name);
      std::string k = child("dns", name);
      const toml::node& where = at ? *at : *t.get("denied");
      CidrResult c = parse_cidr(*s);
      if (!c.cidr) fail(where, k, c.error);
      if (!sinkhole_public(*c.cidr))
        fail(where, k, "\"" + *s + "\" is not a public address: the fence would not steer it to the proxy");
      for (const auto& r : p.allow_cidrs)
        if (cidr_contains(r.cidr, *c.cidr))
          fail(where, k, "\"" + *s + "\" is inside [[allow_cidr]] " + std::to_string(r.id) +
                             ": connections to it would not reach the proxy");
      for (const auto& r : p.deny_cidrs)
        if (cidr_contains(r.cidr, *c.cidr))
          fail(where, k, "\"" + *s + "\" is inside [[deny_cidr]] " + std::to_string(r.id) +
                             ": connections to it would be refused before the proxy could explain");
    }
  }

  static constexpr size_t kMaxDnsUpstreams = 8;
  static constexpr int64_t kMaxConnectionShare = 1000000;

  // A connection cap of one client: a positive integer (omitted: the
  // default share of the total).
  void load_share(const toml::table& t, const std::string& key, std::string_view name, uint32_t* out) const {
    const toml::node* n = t.get(name);
    if (!n) return;
    std::string k = child(key, name);
    int64_t v = want_integer(*n, k);
    if (v < 1 || v > kMaxConnectionShare)
      fail(*n, k, "expected 1.." + std::to_string(kMaxConnectionShare) + " (omit the key for the default share)");
    *out = static_cast<uint32_t>(v);
  }

  // An upstream is an address: names would need a resolver to find the resolver.
  static std::optional<std::string> check_upstream(const std::string& s) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1) return std::nullopt;
    if (s.starts_with('[') || (s.find(':') != std::string::npos && s.find(':') == s.rfind(':')))
      return "write the bare address, without brackets or port: upstreams are asked on port 53";
    return "not an IP address: \"" + s + "\" (upstreams are addresses, asked on port 53)";
  }

  Action load_action(const toml::node& n, const std::string& key) const {
    const auto& s = want_string(n, key);
    if (s == "allow") return Action::Allow;
    if (s == "deny") return Action::Deny;
    fail(n, key, "expected \"allow\" or \"deny\"");
  }

  Network load_network(const toml::node& n, const std::string& key) const {
    const auto& t = want_table(n, key);
    check_keys(t, key, {"loopback", "private", "link_local", "multicast", "broadcast", "reserved"});
    Network net;
    auto set = [&](std::string_view name, Action& out) {
      if (auto* v = t.get(name)) out = load_action(*v, child(key, name));
    };
    set("loopback", net.loopback);
    set("private", net.private_);
    set("link_local", net.link_local);
    set("multicast", net.multicast);
    set("broadcast", net.broadcast);
    set("reserved", net.reserved);
    return net;
  }

  // ---- ports ------------------------------------------------------------------

  // 1..65535 from decimal digits (no sign, no spaces), or nullopt.
  static std::optional<long> port_number(std::string_view s) {
    if (s.empty() || s.size() > 5) return std::nullopt;
    long v = 0;
    for (char c : s) {
      if (!is_digit(c)) return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  PortRange load_port(const toml::node& n, const std::string& key) const {
    auto in_range = [&](int64_t v) {
      if (v < 1 || v > 65535) fail(n, key, "port " + std::to_string(v) + " out of range 1..65535");
      return static_cast<uint16_t>(v);
    };
    if (n.is_integer()) {
      uint16_t p = in_range(n.as_integer()->get());
      return {p, p};
    }
    if (!n.is_string())
      fail(n, key, std::string("expected a port number or a \"LO-HI\" string, got ") + type_name(n));
    std::string_view s = n.as_string()->get();
    auto dash = s.find('-');
    if (dash == std::string_view::npos) {
      if (port_number(s)) fail(n, key, "a single port is written as an integer: " + std::string(s));
      fail(n, key, "expected a port range \"LO-HI\", got \"" + std::string(s) + "\"");
    }
    auto lo = port_number(s.substr(0, dash)), hi = port_number(s.substr(dash + 1));
    if (!lo || !hi) fail(n, key, "expected a port range \"LO-HI\", got \"" + std::string(s) + "\"");
    PortRange r{in_range(*lo), in_range(*hi)};
    if (r.lo > r.hi) fail(n, key, "port range " + std::string(s) + " has LO > HI");
    return r;
  }

  std::vector<PortRange> load_ports(const toml::node& n, const std::string& key, const char* empty_hint) const {
    const auto& arr = want_list(n, key, empty_hint);
    std::vector<PortRange> out;
    for (size_t i = 0; i < arr.size(); ++i) out.push_back(load_port(arr[i], at_index(key, i)));
    return out;
  }

  // ---- [[allow_cidr]] / [[deny_cidr]] -----------------------------------------

  Cidr load_cidr(const toml::table& t, const std::string& key) const {
    std::string k = child(key, "cidr");
    const auto& n = require(t, "cidr", key);
    auto r = parse_cidr(want_string(n, k));
    if (!r.cidr) fail(n, k, r.error);
    return *r.cidr;
  }

  uint8_t load_proto(const toml::node& n, const std::string& key) const {
    const auto& s = want_string(n, key);
    if (s == "tcp") return kProtoTcp;
    if (s == "udp") return kProtoUdp;
    if (s == "any") return kProtoTcp | kProtoUdp;
    fail(n, key, "expected \"tcp\", \"udp\" or \"any\"");
  }

  AllowCidr load_allow_cidr(const toml::table& t, const std::string& key, uint32_t id) const {
    check_keys(t, key, {"cidr", "ports", "proto"});
    AllowCidr r;
    r.id = id;
    r.pos = pos(t.source());
    r.cidr = load_cidr(t, key);
    if (auto* n = t.get("ports")) r.ports = load_ports(*n, child(key, "ports"), "all ports");
    if (auto* n = t.get("proto")) r.proto_mask = load_proto(*n, child(key, "proto"));
    return r;
  }

  DenyCidr load_deny_cidr(const toml::table& t, const std::string& key, uint32_t id) const {
    check_keys(t, key, {"cidr"});
    DenyCidr r;
    r.id = id;
    r.pos = pos(t.source());
    r.cidr = load_cidr(t, key);
    return r;
  }

  // ---- [[allow]] host rules ------------------------------------------------------

  // Normalises `host` (lower case, one trailing dot stripped); returns an
  // error message if it is not a DNS name or a "*." wildcard over one.
  // `dns_name`: a [dns] allow entry, where '_' may start labels of service
  // names ("_acme-challenge.example.com", "_https._tcp.example.com").
  static std::optional<std::string> check_host(std::string& host, bool dns_name = false) {
    for (auto& c : host)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (host.find("://") != std::string::npos) return "not a URL: write the bare host name";
    if (host.find('[') != std::string::npos || host.find(':') != host.rfind(':'))
      return "IP literals are not host names: use [[allow_cidr]] for addresses";
    if (host.find(':') != std::string::npos) return "no port in the host name: use ports = [...]";
    if (host.find('/') != std::string::npos) return "a host name has no path: use paths = [...]";
    if (!host.empty() && host.back() == '.') host.pop_back();  // the FQDN form names the same host
    if (host.empty()) return "empty host name";
    if (host.size() > 253) return "host name longer than 253 characters";
    unsigned char v4[4];
    if (inet_pton(AF_INET, host.c_str(), v4) == 1)
      return "IP literals are not host names: use [[allow_cidr]] for addresses";

    std::string_view name = host;
    if (name.starts_with("*.")) name.remove_prefix(2);
    if (name.find('*') != std::string_view::npos)
      return "'*' is only allowed as a whole leading label (\"*.example.com\")";

    size_t labels = 0;
    std::string_view last;
    while (true) {
      auto dot = name.find('.');
      std::string_view label = name.substr(0, dot);
      if (label.empty()) return "empty label in host name";
      if (label.size() > 63) return "label longer than 63 characters: " + std::string(label);
      for (char c : label)
        if (!is_lower_alnum(c) && c != '-' && !(dns_name && c == '_'))
          return "invalid character '" + std::string(1, c) + "' in host name";
      if (label.front() == '-' || label.back() == '-') return "label starts or ends with '-': " + std::string(label);
      ++labels;
      last = label;
      if (dot == std::string_view::npos) break;
      name.remove_prefix(dot + 1);
    }
    if (labels < 2) return "host name needs at least two labels (\"example.com\")";
    bool numeric = true;
    for (char c : last) numeric = numeric && is_digit(c);
    if (numeric) return "top-level label is all digits: IP literals are not host names; use [[allow_cidr]]";
    return std::nullopt;
  }

  // HTTP methods: upper-case tokens (RFC 9110 tchar without lower case).
  static std::optional<std::string> check_method(const std::string& m) {
    if (m.empty()) return "empty method";
    if (m.size() > 32) return "method longer than 32 characters";
    bool lower = false;
    for (char c : m) {
      if (c >= 'a' && c <= 'z') {
        lower = true;
        continue;
      }
      bool tchar = (c >= 'A' && c <= 'Z') || is_digit(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
      if (!tchar || c == '\0') return "invalid character in method \"" + m + "\"";
    }
    if (lower) {
      std::string up = m;
      for (auto& c : up)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      return "methods are upper case: did you mean \"" + up + "\"?";
    }
    return std::nullopt;
  }

  // URL path prefixes: start with '/', visible ASCII only (percent-encode
  // the rest), no query or fragment.
  static std::optional<std::string> check_path(const std::string& p) {
    if (p.empty() || p.front() != '/') return "path must start with \"/\"";
    for (unsigned char c : p) {
      if (c <= 0x20 || c >= 0x7f) return "path has a space, control or non-ASCII character (percent-encode it)";
      if (c == '#') return "path has a fragment ('#'); the server never sees it";
    }
    return std::nullopt;
  }

  template <class Check>
  std::vector<std::string> load_strings(const toml::node& n, const std::string& key, const char* empty_hint,
                                        Check check) const {
    const auto& arr = want_list(n, key, empty_hint);
    std::vector<std::string> out;
    for (size_t i = 0; i < arr.size(); ++i) {
      std::string k = at_index(key, i);
      const auto& s = want_string(arr[i], k);
      if (auto err = check(s)) fail(arr[i], k, *err);
      out.push_back(s);
    }
    return out;
  }

  HostRule load_host(const toml::table& t, const std::string& key, uint32_t id) const {
    check_keys(t, key, {"host", "ports", "methods", "paths"});
    HostRule r;
    r.id = id;
    r.pos = pos(t.source());
    std::string hk = child(key, "host");
    const auto& hn = require(t, "host", key);
    r.host = want_string(hn, hk);
    if (auto err = check_host(r.host)) fail(hn, hk, *err);
    if (auto* n = t.get("ports")) r.ports = load_ports(*n, child(key, "ports"), "ports 80 and 443");
    if (auto* n = t.get("methods")) r.methods = load_strings(*n, child(key, "methods"), "any method", check_method);
    if (auto* n = t.get("paths")) r.paths = load_strings(*n, child(key, "paths"), "any path", check_path);
    return r;
  }
};

}  // namespace

PolicyError::PolicyError(SourcePos pos, std::string key, const std::string& message)
    : std::runtime_error(format_error(pos, key, message)), pos_(std::move(pos)), key_(std::move(key)) {}

Policy parse_policy(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& r = e.source();
    SourcePos p{r.path ? *r.path : source, r.begin.line, r.begin.column};
    throw PolicyError(std::move(p), "", std::string(e.description()));
  }
  return Loader(source).load(root, fnv1a64(text));
}

Policy load_policy_file(const std::string& path) {
  auto cannot_read = [&](int err) {
    return PolicyError(SourcePos{path, 0, 0}, "", std::string("cannot read: ") + std::strerror(err));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw cannot_read(errno);
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw cannot_read(err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return parse_policy(text, path);
}

}  // namespace egressd::policy
