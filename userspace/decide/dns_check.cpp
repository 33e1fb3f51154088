#include "decide/dns_check.h"

#include "common/dns_types.h"
#include "decide/host_rules.h"

namespace egressd::decide {

bool type_allowed(uint16_t qtype) {
  switch (qtype) {
    case dns::kTypeA:
    case dns::kTypeNS:
    case dns::kTypeCNAME:
    case dns::kTypeSOA:
    case dns::kTypePTR:
    case dns::kTypeMX:
    case dns::kTypeTXT:
    case dns::kTypeAAAA:
    case dns::kTypeSRV:
    case dns::kTypeSVCB:
    case dns::kTypeHTTPS:
    case dns::kTypeCAA: return true;
    default: return false;
  }
}

bool plain_name(std::string_view qname) {
  if (qname.empty() || qname.size() > 253) return false;
  size_t label = 0;
  for (char c : qname) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > dns::kMaxLabelBytes) return false;
  }
  return label > 0;
}

bool name_allowed(const policy::Policy& policy, std::string_view qname, uint32_t* rule_id) {
  if (!plain_name(qname)) return false;
  for (const policy::HostRule& r : policy.hosts) {  // first rule naming it, as `explain` would say
    if (host_matches(r.host, qname)) {
      if (rule_id) *rule_id = r.id;
      return true;
    }
  }
  for (const std::string& pattern : policy.dns.allow) {
    if (host_matches(pattern, qname)) {
      if (rule_id) *rule_id = 0;
      return true;
    }
  }
  return false;
}

std::optional<std::string_view> srv_base_name(std::string_view qname) {
  size_t first = qname.find('.');
  if (first == std::string_view::npos || first < 2 || qname[0] != '_') return std::nullopt;
  size_t second = qname.find('.', first + 1);
  if (second == std::string_view::npos || second - first - 1 < 2 || qname[first + 1] != '_') return std::nullopt;
  std::string_view base = qname.substr(second + 1);
  if (base.empty()) return std::nullopt;
  return base;
}

QueryCheck check_query(const policy::Policy& policy, std::string_view qname, uint16_t qtype, uint16_t qclass) {
  QueryCheck c;
  bool allowed = name_allowed(policy, qname, &c.rule_id);
  if (!allowed && qtype == dns::kTypeSRV && qclass == dns::kClassIN) {
    auto base = srv_base_name(qname);
    allowed = base && plain_name(qname) && name_allowed(policy, *base, &c.rule_id);
  }
  if (!allowed) {
    c.reason = EGD_REASON_DNS_NAME_NOT_ALLOWED;
    c.rcode = policy.dns.denied == policy::DnsDenied::Refused    ? dns::kRcodeRefused
              : policy.dns.denied == policy::DnsDenied::Sinkhole ? dns::kRcodeNoError
                                                                 : dns::kRcodeNxDomain;
  } else if (qclass != dns::kClassIN || !type_allowed(qtype)) {
    c.reason = EGD_REASON_DNS_TYPE_NOT_ALLOWED;
    c.rcode = dns::kRcodeRefused;
  } else {
    c.forward = true;
    c.verdict = EGD_VERDICT_ALLOW;
    c.reason = EGD_REASON_DNS_NAME_ALLOWED;
    c.rcode = dns::kRcodeNoError;
    return c;
  }
  if (policy.mode == policy::Mode::Audit) {
    c.forward = true;
    c.verdict = EGD_VERDICT_AUDIT;
  }
  return c;
}

}  // namespace egressd::decide
