#include "daemon/proxy_resolver.h"

#include <cstring>

#include "dns/message.h"
#include "dns/resolv_conf.h"

namespace egressd::daemon {
namespace {

proxy::ResolveResult convert(const dns::Resolution& r) {
  proxy::ResolveResult out;
  out.addrs = r.addrs;
  out.error = r.error;
  if (out.error.empty() && r.rcode == 3) out.error = "NXDOMAIN";
  return out;
}

Result<std::vector<sockaddr_storage>> parse_upstreams(const std::string& list, const std::string& what) {
  std::vector<sockaddr_storage> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (item.empty()) continue;
    auto addr = IpAddr::parse(item);
    if (!addr) return logic_error(what + ": not an IP address: " + item);
    sockaddr_storage ss;
    addr->to_sockaddr(53, &ss);
    out.push_back(ss);
  }
  if (out.empty()) return logic_error(what + " names no address");
  return out;
}

}  // namespace

// Only an answer with addresses is taken from the DNS server's cache: for
// a cached NXDOMAIN or an answer emptied by the rebinding filter the host
// resolver asks, so the proxy's reasons (resolve-failed, rebind) stay what they were.
std::optional<proxy::ResolveResult> ProxyResolver::given(const std::string& name) const {
  if (!answers_) return std::nullopt;
  auto addrs = answers_(name);
  if (!addrs || addrs->empty()) return std::nullopt;
  proxy::ResolveResult r;
  r.addrs = std::move(*addrs);
  return r;
}

void ProxyResolver::resolve(const std::string& name, proxy::ResolveDone done) {
  if (auto r = given(name)) {
    // `done` never runs inside resolve().
    loop_.defer([alive = std::weak_ptr<int>(alive_), done = std::move(done), r = std::move(*r)] {
      if (!alive.expired()) done(r);
    });
    return;
  }
  hosts_.resolve(name, [done = std::move(done)](const dns::Resolution& r) { done(convert(r)); });
}

std::optional<proxy::ResolveResult> ProxyResolver::cached(const std::string& name) const {
  if (auto r = given(name)) return r;
  auto r = hosts_.cached(name);
  if (!r) return std::nullopt;
  return convert(*r);
}

std::vector<IpAddr> ProxyResolver::answered_within(const std::string& name, std::chrono::seconds grace) const {
  return recent_.within(dns::canonical_name(name), grace, Loop::Clock::now());
}

void ProxyResolver::remember(std::string_view qname, const dns::AddressAnswer& a) {
  recent_.note(qname, a.addrs, std::chrono::seconds(a.ttl), Loop::Clock::now());
}

Result<std::vector<sockaddr_storage>> dns_upstreams(const std::string& flag, const policy::Policy& policy) {
  if (!flag.empty()) return parse_upstreams(flag, "--dns-upstream");
  if (!policy.dns.upstream.empty()) {
    std::string list;
    for (const std::string& u : policy.dns.upstream) list += u + ",";
    return parse_upstreams(list, policy.source + ": dns.upstream");
  }
  auto ups = dns::read_resolv_conf();
  if (!ups)
    return logic_error("no DNS upstream: " + ups.error().message() + " (pass --dns-upstream IP or set [dns] upstream)");
  return ups;
}

}  // namespace egressd::daemon
