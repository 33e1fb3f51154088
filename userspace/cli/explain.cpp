// explain.cpp: `egressd explain --policy FILE URL`: the decision the proxy
// would make for URL, and the rule behind it, without touching the network.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/policy_source.h"
#include "cli/target.h"
#include "policy/cidr.h"
#include "proxy/client_hello.h"
#include "proxy/host_rules.h"

namespace egressd::cli {
namespace {

struct Url {
  bool tls = true;
  std::string host;
  uint16_t port = 443;
  std::string path = "/";
};

std::optional<Url> parse_url(const std::string& text, std::string& why) {
  Url u;
  size_t sep = text.find("://");
  if (sep == std::string::npos) {
    why = "expected http://HOST[:PORT][/PATH] or https://...";
    return std::nullopt;
  }
  std::string scheme = text.substr(0, sep);
  if (scheme == "http") {
    u.tls = false;
    u.port = 80;
  } else if (scheme != "https") {
    why = "scheme must be http or https";
    return std::nullopt;
  }
  std::string rest = text.substr(sep + 3);
  rest = rest.substr(0, rest.find('#'));  // a fragment never leaves the client
  size_t slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) u.path = rest[slash] == '/' ? rest.substr(slash) : "/" + rest.substr(slash);
  u.path = u.path.substr(0, u.path.find('?'));
  std::string host = authority, port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) {
      why = "unterminated [IPv6] literal";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') {
      why = "junk after ]";
      return std::nullopt;
    }
    if (!after.empty()) port = after.substr(1);
    auto canon = proxy::canonical_host(host, /*allow_ipv6=*/true);
    if (!canon || !canon->is_ip) {
      why = "only IP literals go in brackets";
      return std::nullopt;
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (!port.empty()) {
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      why = "bad port " + port;
      return std::nullopt;
    }
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end || p < 1 || p > 65535) {
      why = "bad port " + port;
      return std::nullopt;
    }
    u.port = static_cast<uint16_t>(p);
  }
  auto canon = proxy::canonical_host(host, /*allow_ipv6=*/true);
  if (!canon) {
    why = "bad host name " + host;
    return std::nullopt;
  }
  u.host = canon->name;
  return u;
}

// An IP literal is no name: only an [[allow_cidr]] can admit it, and only
// if no [[deny_cidr]] covers it (deny rules come first). The built-in
// categories are the kernel's business; `explain` speaks for the proxy.
std::optional<const policy::AllowCidr*> ip_rule(const policy::Policy& p, const std::string& ip, uint16_t port) {
  auto addr = policy::parse_cidr(ip);
  if (!addr.cidr) return std::nullopt;
  for (const policy::DenyCidr& r : p.deny_cidrs)
    if (policy::cidr_contains(r.cidr, *addr.cidr)) return nullptr;
  for (const policy::AllowCidr& r : p.allow_cidrs) {
    if (!(r.proto_mask & policy::kProtoTcp) || !policy::cidr_contains(r.cidr, *addr.cidr)) continue;
    if (r.ports.empty() || proxy::port_in(r.ports, port)) return &r;
  }
  return nullptr;
}

}  // namespace

int cmd_explain(const std::vector<std::string>& argv) {
  Args args(argv, {"policy", "method"}, {});
  if (args.positional().size() != 1) throw UsageError("explain takes one URL");
  auto p = load_policy(args.get("policy"));
  if (!p) return fail("explain", p.error().message());
  std::string why;
  auto url = parse_url(args.positional()[0], why);
  if (!url) return fail("explain", args.positional()[0] + ": " + why);

  if (auto canon = proxy::canonical_host(url->host, true); canon && canon->is_ip) {
    auto rule = ip_rule(*p, url->host, url->port);
    if (rule && *rule) {
      std::printf("allow %s: IP literal admitted by [[allow_cidr]] #%u (%s) at L4, no inspection\n",
                  args.positional()[0].c_str(), (*rule)->id, (*rule)->cidr.text.c_str());
      return 0;
    }
    std::printf("deny %s: reason %s: an IP literal names no host; only [[allow_cidr]] can admit it\n",
                args.positional()[0].c_str(), url->tls ? "no-sni" : "host-not-allowed");
    return 0;
  }
  proxy::L7Request req{url->host, url->port, url->tls, args.get("method", "GET"), url->path};
  proxy::L7Decision d = proxy::decide_l7(*p, req);
  std::printf("%s %s: %s%s%s\n", d.allowed ? "allow" : "deny", args.positional()[0].c_str(),
              d.allowed ? "" : "reason ", d.allowed ? "" : (d.reason + ": ").c_str(), d.detail.c_str());
  return 0;
}

}  // namespace egressd::cli
