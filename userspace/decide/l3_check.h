// l3_check.h: the kernel's address verdict, for addresses the proxy is
// about to dial, that a name resolved to (DNS rebinding), or that
// `egressd explain` is asked about. Same order as bpf/decide.bpf.h and the
// same classification code (bpf/addr_class.h); the CIDR lists are indexed per prefix length so a 100k-entry policy costs
// at most 33 (129) hash lookups per address.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/ip_addr.h"
#include "egressd_abi.h"
#include "policy/model.h"

namespace egressd::decide {

struct L3Verdict {
  bool allowed = false;
  uint16_t reason = EGD_REASON_NONE;  // egd_reason
  uint32_t rule_id = 0;               // the [[allow_cidr]] / [[deny_cidr]] that decided, else 0
};

class L3Check {
 public:
  explicit L3Check(const policy::Policy& policy);
  // `proto` (policy::kProtoTcp, kProtoUdp, 0 for any other) to
  // `addr`:`port` as the sock_addr hooks judge it with egd_decide: an
  // address that embeds an IPv4 one is judged as that IPv4 (translated
  // forms must then also pass as IPv6), then the port rules (TCP web and
  // host-rule ports, UDP 53). tests/unit/decide_diff_test.cpp holds the two
  // to the same answers.
  L3Verdict decide(const IpAddr& addr, uint16_t port, uint8_t proto) const;
  // TCP to `addr`:`port`, a port the hooks steered to the proxy: decide()
  // without the port rules (a public address is WEB_PORT).
  L3Verdict tcp(const IpAddr& addr, uint16_t port) const;
  // Whether the kernel lets anything (some port, TCP or UDP) reach `addr`:
  // false when a deny_cidr or a denied category blocks it and no
  // allow_cidr opens it. The resolver removes answers pointing at such
  // addresses (DNS rebinding); an allow_cidr for a LAN host keeps its name
  // resolvable.
  bool reachable(const IpAddr& addr) const;

 private:
  struct Index {
    // prefix length -> masked addresses (as 16 bytes) -> rule position
    std::vector<std::pair<uint8_t, std::unordered_map<IpAddr, size_t>>> by_len;
    const size_t* find(const IpAddr& a) const;  // most specific first
  };
  // egd_decide for one address (no embedded forms); `steered`: the port
  // rules passed already.
  L3Verdict judge(const IpAddr& addr, uint16_t port, uint8_t proto, bool steered) const;
  // judge() over the embedded IPv4 forms, as the hooks compose it.
  L3Verdict embedded(const IpAddr& addr, uint16_t port, uint8_t proto, bool steered) const;
  bool reachable_as(const IpAddr& addr) const;  // no embedded forms

  const policy::Policy& policy_;
  Index deny_, allow_;
  std::vector<bool> tcp_ports_;  // 65536 bits: kWebPorts and host-rule ports
};

}  // namespace egressd::decide
