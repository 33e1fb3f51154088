// host_rules.h: the L7 decision the proxy makes for one request: does an
// [[allow]] rule admit this host (SNI or Host), port and, for plain HTTP,
// method and path? Pure; `egressd explain`, the proxy and the resolver
// (host_matches) share it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egressd_abi.h"
#include "policy/model.h"

namespace egressd::decide {

struct L7Request {
  std::string host;                   // canonical: lower-case, no trailing dot
  uint16_t port = 443;
  bool tls = true;                    // TLS: only host and port are visible
  std::string method;                 // plain HTTP only
  std::string path;                   // plain HTTP only: raw, without the query
  bool rewrites = false;              // plain HTTP: an upgrade or a method/URL override header is present
};

struct L7Decision {
  bool allowed = false;
  uint16_t reason = EGD_REASON_HOST_NOT_ALLOWED;  // HOST_RULE when allowed, else HOST_NOT_ALLOWED,
                                                 // PORT_NOT_ALLOWED, NEEDS_HTTP, METHOD_NOT_ALLOWED, PATH_NOT_ALLOWED
  const policy::HostRule* rule = nullptr;  // the rule that allowed, or the closest that did not
  std::string detail;                 // one sentence for logs and `explain`
};

// True if `port` lies in one of `ranges`.
bool port_in(const std::vector<policy::PortRange>& ranges, uint16_t port);

// `*.example.com` matches names below example.com (one label or more), not
// example.com itself; anything else matches exactly.
bool host_matches(std::string_view pattern, std::string_view host);

// A path a path rule can be trusted with: visible ASCII only, no '\\', no
// "." or ".." segments (also as ".;x" or "..;x", which servlet containers
// read as dot segments), no percent-encoded '.', '/', '\\', '%' (double
// decoding) or overlong UTF-8 (%c0, %c1, %e0%80).
bool path_is_plain(std::string_view path);

// First rule that admits the request. Rules with `methods` or `paths` never
// admit TLS (the proxy cannot see the request without decrypting it), nor a
// request with `rewrites`. A path rule without '*'/'?' is a prefix of whole
// segments: "/public" admits "/public" and "/public/x", not "/publicx".
L7Decision decide_l7(const policy::Policy& policy, const L7Request& req);

}  // namespace egressd::decide
