// host_rules.h: the L7 decision the proxy makes for one request: does an
// [[allow]] rule admit this host (SNI or Host), port and, for plain HTTP,
// method and path? Pure; `egressd explain` and the proxy share it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/model.h"

namespace egressd::proxy {

struct L7Request {
  std::string host;                   // canonical: lower-case, no trailing dot
  uint16_t port = 443;
  bool tls = true;                    // TLS: only host and port are visible
  std::string method;                 // plain HTTP only
  std::string path;                   // plain HTTP only: raw, without the query
};

struct L7Decision {
  bool allowed = false;
  std::string reason;                 // "allowed", "host-not-allowed", "port-not-allowed",
                                      // "method-not-allowed", "path-not-allowed"
  const policy::HostRule* rule = nullptr;  // the rule that allowed, or the closest that did not
  std::string detail;                 // one sentence for logs and `explain`
};

// `*.example.com` matches names below example.com (one label or more), not
// example.com itself; anything else matches exactly.
bool host_matches(std::string_view pattern, std::string_view host);

// A path a prefix rule can be trusted with: no "." or ".." segments and no
// percent-encoded '.', '/' or '\' (which origins may decode into them).
bool path_is_plain(std::string_view path);

// First rule that admits the request. Rules with `methods` or `paths` never
// admit TLS: the proxy cannot see the request without decrypting it.
L7Decision decide_l7(const policy::Policy& policy, const L7Request& req);

}  // namespace egressd::proxy
