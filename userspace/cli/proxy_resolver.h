// proxy_resolver.h: the resolver the proxy checks names with: egressd's own
// asynchronous DNS client, asking the upstreams given on the command line
// (--dns-upstream) or, by default, the nameservers of /etc/resolv.conf.
#pragma once

#include <memory>
#include <string>

#include "common/loop.h"
#include "common/result.h"
#include "proxy/proxy.h"

namespace egressd::cli {

// `upstreams`: "IP[,IP...]" (port 53), empty for /etc/resolv.conf.
Result<std::unique_ptr<proxy::Resolver>> make_proxy_resolver(Loop& loop, const std::string& upstreams);

}  // namespace egressd::cli
