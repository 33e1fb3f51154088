// model.h: the policy as an immutable value. toml_loader builds it, compiler
// turns it into map entries; nothing else mutates it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace egressd::policy {

enum class Action : uint8_t { Deny = 0, Allow = 1 };  // values match egd_action
enum class EventsMode : uint8_t { Deny, All };
enum class Mode : uint8_t { Enforce, Audit };          // audit: record what would be denied, deny nothing
enum class EchMode : uint8_t { Deny, OuterSni };       // ClientHellos with Encrypted Client Hello

// Where a value came from, for error messages and `explain`.
struct SourcePos {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
};

struct Cidr {
  int family = 0;                    // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};    // network order; first 4 bytes for AF_INET
  uint8_t prefix = 0;                // 0..32 or 0..128
  std::string text;                  // as written
};

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 0;
};

inline constexpr uint8_t kProtoTcp = 0x1;  // == EGD_PROTO_TCP
inline constexpr uint8_t kProtoUdp = 0x2;  // == EGD_PROTO_UDP

// Open at L4 whatever the policy says: TCP to the web ports (and the ports
// host rules name; the proxy judges them) and UDP to DNS.
inline constexpr uint16_t kWebPorts[] = {80, 443};
inline constexpr uint16_t kDnsPort = 53;

struct AllowCidr {
  uint32_t id = 0;                   // 1-based position among [[allow_cidr]]
  Cidr cidr;
  std::vector<PortRange> ports;      // empty: all ports
  uint8_t proto_mask = kProtoTcp | kProtoUdp;
  SourcePos pos;
};

struct DenyCidr {
  uint32_t id = 0;                   // 1-based position among [[deny_cidr]]
  Cidr cidr;
  SourcePos pos;
};

struct HostRule {
  uint32_t id = 0;                   // 1-based position among [[allow]]
  std::string host;                  // lower-case; "*.example.com" allowed
  std::vector<PortRange> ports;      // empty: 80 and 443
  std::vector<std::string> methods;  // plain HTTP only; empty: any
  std::vector<std::string> paths;    // plain HTTP only; empty: any
  SourcePos pos;
};

struct Network {
  Action loopback = Action::Allow;
  Action private_ = Action::Deny;    // RFC1918, CGNAT, ULA, site-local
  Action link_local = Action::Deny;
  Action multicast = Action::Deny;
  Action broadcast = Action::Deny;
  Action reserved = Action::Deny;
};

// Connections one client may hold at once (common/fair_share.h); 0: the
// default share of the total (a quarter per process, a half per user).
struct ConnectionShare {
  uint32_t per_process = 0;
  uint32_t per_uid = 0;
};

struct ProxySettings {
  EchMode ech = EchMode::Deny;
  ConnectionShare connections;  // max_connections_per_process / _per_uid
  // An address the resolver answered for a name stays that name's this long
  // after its TTL (clients keep addresses past it); 0: only current answers.
  std::chrono::seconds address_grace{300};
};

inline constexpr std::chrono::seconds kMaxAddressGrace{3600};

// The answer to a name no rule allows. Sinkhole: its A/AAAA questions get
// the sinkhole address of the family (one the fence steers to the proxy,
// which refuses the name with a message), other types an empty NOERROR.
enum class DnsDenied : uint8_t { NxDomain, Refused, Sinkhole };

// [dns]: the resolver the cgroup's DNS is steered to.
struct DnsSettings {
  std::vector<std::string> upstream;  // IP literals (port 53); empty: /etc/resolv.conf. --dns-upstream wins over both
  DnsDenied denied = DnsDenied::NxDomain;
  std::vector<std::string> allow;     // names ("*." wildcards) that may be resolved without a host rule
  ConnectionShare tcp_connections;    // max_tcp_connections_per_process / _per_uid
  // Leave out A (AAAA) records when the daemon's netns has no IPv4 (IPv6)
  // default route, so clients never try a family that cannot connect.
  bool drop_unroutable_families = true;
  std::string sinkhole_ipv4 = "203.0.113.254";  // documentation ranges: never routed if they escaped
  std::string sinkhole_ipv6 = "2001:db8::e9d";
};

struct Policy {
  uint32_t version = 1;
  Mode mode = Mode::Enforce;
  std::string source;                // file path (or a name for in-memory text)
  uint64_t hash = 0;                 // FNV-1a 64 of the source bytes
  EventsMode events = EventsMode::Deny;
  Network network;
  ProxySettings proxy;
  DnsSettings dns;
  std::vector<AllowCidr> allow_cidrs;
  std::vector<DenyCidr> deny_cidrs;
  std::vector<HostRule> hosts;
};

}  // namespace egressd::policy
