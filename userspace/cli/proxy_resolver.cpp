#include "cli/proxy_resolver.h"

#include <cstring>

#include "dns/stub_resolver.h"

namespace egressd::cli {
namespace {

proxy::ResolveResult convert(const dns::Resolution& r) {
  proxy::ResolveResult out;
  out.addrs = r.addrs;
  out.error = r.error;
  if (out.error.empty() && r.rcode == 3) out.error = "NXDOMAIN";
  return out;
}

class DnsResolver final : public proxy::Resolver {
 public:
  DnsResolver(Loop& loop, dns::StubResolver::Options o) : stub_(loop, std::move(o)) {}
  void resolve(const std::string& name, proxy::ResolveDone done) override {
    stub_.resolve(name, [done = std::move(done)](const dns::Resolution& r) { done(convert(r)); });
  }
  std::optional<proxy::ResolveResult> cached(const std::string& name) const override {
    auto r = stub_.cached(name);
    if (!r) return std::nullopt;
    return convert(*r);
  }

 private:
  dns::StubResolver stub_;
};

Result<std::vector<sockaddr_storage>> parse_upstreams(const std::string& list) {
  std::vector<sockaddr_storage> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (item.empty()) continue;
    auto addr = IpAddr::parse(item);
    if (!addr) return logic_error("--dns-upstream: not an IP address: " + item);
    sockaddr_storage ss;
    addr->to_sockaddr(53, &ss);
    out.push_back(ss);
  }
  if (out.empty()) return logic_error("--dns-upstream names no address");
  return out;
}

}  // namespace

Result<std::unique_ptr<proxy::Resolver>> make_proxy_resolver(Loop& loop, const std::string& upstreams) {
  dns::StubResolver::Options o;
  auto ups = upstreams.empty() ? dns::read_resolv_conf() : parse_upstreams(upstreams);
  if (!ups) {
    return logic_error("no DNS upstream for the proxy's name checks: " + ups.error().message() +
                       " (pass --dns-upstream IP)");
  }
  o.upstreams = std::move(*ups);
  return std::unique_ptr<proxy::Resolver>(new DnsResolver(loop, std::move(o)));
}

}  // namespace egressd::cli
