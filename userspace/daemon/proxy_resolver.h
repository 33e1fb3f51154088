// proxy_resolver.h: the resolver the proxy checks names with. The filtering
// DNS server's cache comes first: a client that resolved through egressd is
// checked against the very answer it was given (CDNs rotate addresses, so a
// fresh lookup may disagree). Otherwise egressd's one DNS client (the
// resolver's, dns/upstream.h) asks the upstreams for the host
// (dns/host_resolver.h): --dns-upstream, else the policy's [dns] upstream,
// else the nameservers of /etc/resolv.conf.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/result.h"
#include "dns/host_resolver.h"
#include "dns/message.h"
#include "dns/upstream.h"
#include "policy/model.h"
#include "proxy/proxy.h"
#include "proxy/recent_answers.h"

namespace egressd::daemon {

class ProxyResolver final : public proxy::Resolver {
 public:
  // The addresses a client was given for a name, if known (dns::Server::cached_addresses).
  using Answers = std::function<std::optional<std::vector<IpAddr>>(const std::string& name)>;

  // `upstream` must outlive the resolver.
  ProxyResolver(Loop& loop, dns::UpstreamClient& upstream) : loop_(loop), hosts_(loop, upstream) {}
  // Consulted first from now on (the DNS server starts after the proxy).
  void answers_first(Answers answers) { answers_ = std::move(answers); }

  void resolve(const std::string& name, proxy::ResolveDone done) override;
  std::optional<proxy::ResolveResult> cached(const std::string& name) const override;
  std::vector<IpAddr> answered_within(const std::string& name, std::chrono::seconds grace) const override;
  // An A/AAAA answer the DNS server gave clients (dns::Server::observe_answers,
  // `qname` canonical): its addresses are remembered past their TTL.
  void remember(std::string_view qname, const dns::AddressAnswer& answer);

 private:
  std::optional<proxy::ResolveResult> given(const std::string& name) const;

  Loop& loop_;
  dns::HostResolver hosts_;
  Answers answers_;
  proxy::RecentAnswers recent_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // deferred answers hold a weak_ptr
};

// The DNS upstreams: `flag` ("IP[,IP...]", port 53) if given, else the
// policy's [dns] upstream, else /etc/resolv.conf's nameservers.
Result<std::vector<sockaddr_storage>> dns_upstreams(const std::string& flag, const policy::Policy& policy);

}  // namespace egressd::daemon
