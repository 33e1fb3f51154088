// dns_check.h: which queries the resolver forwards. A name is resolvable
// if an [[allow]] host rule names it (any port: the agent needs the
// address before the proxy sees the port) or [dns] allow does; any other
// name is answered locally and never leaves the machine, whatever its type.
// Allowed names may ask only for the types web clients and tools use
// (kAllowedTypes); ANY and the rest are refused. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "egressd_abi.h"
#include "policy/model.h"

namespace egressd::decide {

struct QueryCheck {
  bool forward = false;                               // ask the upstreams (also every query in audit mode)
  uint8_t verdict = EGD_VERDICT_DENY;                 // ALLOW, DENY, or AUDIT (would have been denied)
  uint16_t reason = EGD_REASON_DNS_NAME_NOT_ALLOWED;  // DNS_NAME_ALLOWED, DNS_NAME_NOT_ALLOWED, DNS_TYPE_NOT_ALLOWED
  uint16_t rcode = 3;  // the local answer when not forwarded: NXDOMAIN, REFUSED, NOERROR (sinkhole)
  uint32_t rule_id = 0;                               // the [[allow]] rule that names it; 0 for [dns] allow or none
};

// A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, SVCB, HTTPS, CAA.
bool type_allowed(uint16_t qtype);

// A name the policy could ever name: labels of a-z, 0-9, '-' and '_' only
// (`qname` as parse_message gives it: lower case, escaped, no trailing dot).
// Anything else (escaped octets, dots inside labels, the root) is never
// forwarded, even under an allowed wildcard.
bool plain_name(std::string_view qname);

// True if an [[allow]] rule or [dns] allow entry matches `qname`; sets
// `rule_id` to the host rule's id (0 for [dns] allow).
bool name_allowed(const policy::Policy& policy, std::string_view qname, uint32_t* rule_id = nullptr);

// The name an SRV question is about: `_service._proto.<name>` (apt's
// `_http._tcp.deb.example.org`) -> `<name>`; nullopt when the first two
// labels are not both `_`-led (and at least two bytes long) or no name follows.
std::optional<std::string_view> srv_base_name(std::string_view qname);

// The decision for one question. The name is judged first: a name no rule
// allows gets the policy's denied answer (NXDOMAIN, REFUSED, or NOERROR for
// sinkhole: the server answers A/AAAA with the sinkhole address) for every
// type, ANY included. An SRV question (class IN) for `_service._proto.<name>`
// is judged as `<name>` (and takes its rule) when the full name is not
// itself allowed. An allowed name asking ANY, a type outside
// kAllowedTypes or a class other than IN gets REFUSED.
QueryCheck check_query(const policy::Policy& policy, std::string_view qname, uint16_t qtype, uint16_t qclass);

}  // namespace egressd::decide
