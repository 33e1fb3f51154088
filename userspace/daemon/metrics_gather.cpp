#include "daemon/metrics_gather.h"

#include <algorithm>
#include <cstring>

#include "dns/server.h"
#include "events/hub.h"
#include "proxy/proxy.h"

namespace egressd::daemon {

Result<MetricsSnapshot> gather_metrics(const MapFds& maps, const proxy::Proxy& proxy, const dns::Server& dns,
                                       const Hub& hub) {
  auto meta = read_meta(maps);
  if (!meta) return meta.error();
  auto counters = read_counters(maps);
  if (!counters) return counters.error();
  MetricsSnapshot s;
  s.cgroup.assign(meta->cgroup_path, strnlen(meta->cgroup_path, sizeof(meta->cgroup_path)));
  s.policy_path.assign(meta->policy_path, strnlen(meta->policy_path, sizeof(meta->policy_path)));
  s.policy_hash = meta->policy_hash;
  s.policy_generation = meta->gen;
  s.policy_loaded_unix_ns = meta->policy_loaded_unix_ns;
  s.attached_unix_ns = meta->attached_at_unix_ns;
  std::copy_n(counters->begin(), s.kernel.size(), s.kernel.begin());
  s.ring_drops = (*counters)[EGD_STAT_RING_DROPS];

  const proxy::ProxyStats& p = proxy.stats();
  s.proxy = proxy.decisions();
  const dns::ServerStats& d = dns.stats();
  s.dns = dns.decisions();
  DaemonCounters& c = s.daemon;
  c.subscriber_lines_dropped = hub.dropped_lines();
  c.subscribers = hub.subscribers();
#define EGD_GATHER_PROXY(field, name, label, type, help) c.proxy_##field = p.field;
  EGD_PROXY_STATS(EGD_GATHER_PROXY, )
#undef EGD_GATHER_PROXY
#define EGD_GATHER_DNS(field, name, label, type, help) c.dns_##field = d.field;
  EGD_DNS_STATS(EGD_GATHER_DNS, )
#undef EGD_GATHER_DNS
  return s;
}

std::function<Result<std::string>()> metrics_source(const MapFds& maps, const proxy::Proxy& proxy,
                                                    const dns::Server& dns, const Hub& hub) {
  return [&maps, &proxy, &dns, &hub]() -> Result<std::string> {
    auto s = gather_metrics(maps, proxy, dns, hub);
    if (!s) return s.error();
    return format_metrics(*s);
  };
}

}  // namespace egressd::daemon
