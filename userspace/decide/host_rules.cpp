#include "decide/host_rules.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>

namespace egressd::decide {
namespace {

bool port_admitted(const policy::HostRule& r, uint16_t port) {
  return r.ports.empty() ? port == 80 || port == 443 : port_in(r.ports, port);
}

// A rule path with '*' or '?' is a glob over the whole path ('*' crosses
// '/'); otherwise it is a prefix.
bool path_admitted(const std::string& rule, const std::string& path) {
  if (rule.find_first_of("*?") != std::string::npos)
    return fnmatch(rule.c_str(), path.c_str(), FNM_NOESCAPE) == 0;
  if (path.compare(0, rule.size(), rule) != 0) return false;
  return path.size() == rule.size() || rule.back() == '/' || path[rule.size()] == '/';
}

std::string rule_name(const policy::HostRule& r) {
  std::string where = r.pos.file.empty() ? "" : " (" + r.pos.file + ":" + std::to_string(r.pos.line) + ")";
  return "[[allow]] #" + std::to_string(r.id) + " host \"" + r.host + "\"" + where;
}

}  // namespace

bool port_in(const std::vector<policy::PortRange>& ranges, uint16_t port) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const policy::PortRange& p) { return port >= p.lo && port <= p.hi; });
}

bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
  }
  return pattern == host;
}

bool path_is_plain(std::string_view path) {
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '\\') return false;
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    seg = seg.substr(0, seg.find(';'));  // "..;x" is ".." to servlet containers
    if (seg == "." || seg == "..") return false;
    start = end + 1;
  }
  std::string lower(path);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* bad : {"%2e", "%2f", "%5c", "%25", "%c0", "%c1", "%e0%80"})
    if (lower.find(bad) != std::string::npos) return false;
  return true;
}

L7Decision decide_l7(const policy::Policy& policy, const L7Request& req) {
  L7Decision d;
  d.detail = "no [[allow]] rule names " + req.host;
  int closeness = 0;  // how far the best failing rule got: port 1, inspection/method 2, path 3
  auto note = [&](int level, const policy::HostRule& r, uint16_t reason, std::string detail) {
    if (level <= closeness) return;
    closeness = level;
    d.rule = &r;
    d.reason = reason;
    d.detail = std::move(detail);
  };
  for (const policy::HostRule& r : policy.hosts) {
    if (!host_matches(r.host, req.host)) continue;
    if (!port_admitted(r, req.port)) {
      note(1, r, EGD_REASON_PORT_NOT_ALLOWED, rule_name(r) + " does not list port " + std::to_string(req.port));
      continue;
    }
    bool inspects = !r.methods.empty() || !r.paths.empty();
    if (inspects && (req.tls || req.rewrites)) {
      note(2, r, EGD_REASON_NEEDS_HTTP,
           rule_name(r) + " limits methods/paths, which " +
               (req.tls ? std::string("HTTPS does not show; add a rule without them for HTTPS")
                        : std::string("an upgrade or override header would change")));
      continue;
    }
    if (!r.methods.empty() && std::find(r.methods.begin(), r.methods.end(), req.method) == r.methods.end()) {
      note(2, r, EGD_REASON_METHOD_NOT_ALLOWED, rule_name(r) + " does not list method " + req.method);
      continue;
    }
    if (!r.paths.empty()) {
      bool ok = path_is_plain(req.path) &&
                std::any_of(r.paths.begin(), r.paths.end(), [&](const std::string& p) { return path_admitted(p, req.path); });
      if (!ok) {
        note(3, r, EGD_REASON_PATH_NOT_ALLOWED, rule_name(r) + " does not admit path " + req.path);
        continue;
      }
    }
    d.allowed = true;
    d.reason = EGD_REASON_HOST_RULE;
    d.rule = &r;
    d.detail = "allowed by " + rule_name(r);
    return d;
  }
  return d;
}

}  // namespace egressd::decide
