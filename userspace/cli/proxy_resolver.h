// proxy_resolver.h: the resolver the proxy checks names with. The filtering
// DNS server's cache comes first: a client that resolved through egressd is
// checked against the very answer it was given (CDNs rotate addresses, so a
// fresh lookup may disagree). Otherwise egressd's own asynchronous DNS
// client asks the upstreams: --dns-upstream, else the policy's [dns]
// upstream, else the nameservers of /etc/resolv.conf.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/result.h"
#include "dns/stub_resolver.h"
#include "policy/model.h"
#include "proxy/proxy.h"
#include "proxy/recent_answers.h"

namespace egressd::cli {

class ProxyResolver final : public proxy::Resolver {
 public:
  // The addresses a client was given for a name, if known (dns::Server::cached_addresses).
  using Answers = std::function<std::optional<std::vector<IpAddr>>(const std::string& name)>;

  ProxyResolver(Loop& loop, dns::StubResolver::Options o) : loop_(loop), stub_(loop, std::move(o)) {}
  // Consulted first from now on (the DNS server starts after the proxy).
  void answers_first(Answers answers) { answers_ = std::move(answers); }

  void resolve(const std::string& name, proxy::ResolveDone done) override;
  std::optional<proxy::ResolveResult> cached(const std::string& name) const override;
  std::vector<IpAddr> answered_within(const std::string& name, std::chrono::seconds grace) const override;
  // An answer the DNS server gave clients (dns::Server::observe_answers):
  // its A/AAAA addresses are remembered past their TTL.
  void remember(std::string_view qname, uint16_t qtype, std::span<const uint8_t> message);

 private:
  std::optional<proxy::ResolveResult> given(const std::string& name) const;

  Loop& loop_;
  dns::StubResolver stub_;
  Answers answers_;
  proxy::RecentAnswers recent_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // deferred answers hold a weak_ptr
};

// The DNS upstreams: `flag` ("IP[,IP...]", port 53) if given, else the
// policy's [dns] upstream, else /etc/resolv.conf's nameservers.
Result<std::vector<sockaddr_storage>> dns_upstreams(const std::string& flag, const policy::Policy& policy);

Result<std::unique_ptr<ProxyResolver>> make_proxy_resolver(Loop& loop, std::vector<sockaddr_storage> upstreams);

}  // namespace egressd::cli
