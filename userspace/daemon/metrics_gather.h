// metrics_gather.h: what `attach --metrics` serves, collected from the
// daemon's parts: the attachment's pinned maps (meta, kernel counters), the
// proxy's, the resolver's and the event hub's own counters.
#pragma once

#include <functional>
#include <string>

#include "bpf/policy_maps.h"
#include "common/result.h"
#include "daemon/metrics_format.h"

namespace egressd {
class Hub;
namespace proxy {
class Proxy;
}
namespace dns {
class Server;
}
}  // namespace egressd

namespace egressd::daemon {

Result<MetricsSnapshot> gather_metrics(const MapFds& maps, const proxy::Proxy& proxy, const dns::Server& dns,
                                       const Hub& hub);

// What the metrics server calls per scrape: gather, then format. The parts
// must outlive the returned function.
std::function<Result<std::string>()> metrics_source(const MapFds& maps, const proxy::Proxy& proxy,
                                                    const dns::Server& dns, const Hub& hub);

}  // namespace egressd::daemon
