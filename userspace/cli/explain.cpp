// explain.cpp: `egressd explain --policy FILE URL`: the decision the proxy
// would make for URL, and the rule behind it, without touching the network.
#include <algorithm>
#include <cstdio>
#include <optional>

#include "attachment/policy_source.h"
#include "attachment/target.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "common/ip_addr.h"
#include "decide/host_rules.h"
#include "decide/l3_check.h"
#include "events/event.h"
#include "proxy/client_hello.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on
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
    // An IP literal is no name: only an [[allow_cidr]] can admit it (the
    // kernel then lets it through, uninspected), and only as the fence
    // judges the address (deny rules first, embedded IPv4 forms).
    auto addr = IpAddr::parse(url->host);
    decide::L3Verdict l3 = addr ? decide::L3Check(*p).tcp(*addr, url->port) : decide::L3Verdict{};
    if (l3.allowed && l3.reason == EGD_REASON_ALLOW_CIDR) {
      const policy::AllowCidr& rule = p->allow_cidrs.at(l3.rule_id - 1);
      std::printf("allow %s: IP literal admitted by [[allow_cidr]] #%u (%s) at L4, no inspection\n",
                  args.positional()[0].c_str(), rule.id, rule.cidr.text.c_str());
      return 0;
    }
    std::string reason(reason_name(url->tls ? EGD_REASON_NO_SNI : EGD_REASON_HOST_NOT_ALLOWED));
    std::printf("deny %s: reason %s: an IP literal names no host; only [[allow_cidr]] can admit it\n",
                args.positional()[0].c_str(), reason.c_str());
    return 0;
  }
  decide::L7Request req{url->host, url->port, url->tls, args.get("method", "GET"), url->path};
  decide::L7Decision d = decide::decide_l7(*p, req);
  if (d.allowed)
    std::printf("allow %s: %s\n", args.positional()[0].c_str(), d.detail.c_str());
  else
    std::printf("deny %s: reason %s: %s\n", args.positional()[0].c_str(), std::string(reason_name(d.reason)).c_str(),
                d.detail.c_str());
  return 0;
}

}  // namespace egressd::cli
