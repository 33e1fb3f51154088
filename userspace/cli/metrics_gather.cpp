#include "cli/metrics_gather.h"

#include <algorithm>
#include <cstring>

#include "dns/server.h"
#include "events/hub.h"
#include "proxy/proxy.h"

namespace egressd::cli {

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
  c.proxy_accepted = p.accepted;
  c.proxy_active = p.active;
  c.proxy_relayed = p.relayed;
  c.proxy_bytes_up = p.bytes_up;
  c.proxy_bytes_down = p.bytes_down;
  c.proxy_events_suppressed = p.events_suppressed;
  c.dns_udp = d.udp;
  c.dns_tcp = d.tcp;
  c.dns_cache_hits = d.cache_hits;
  c.dns_forwarded = d.forwarded;
  c.dns_coalesced = d.coalesced;
  c.dns_overloaded = d.overloaded;
  c.dns_upstream_failed = d.upstream_failed;
  c.dns_truncated = d.truncated;
  c.dns_malformed = d.malformed;
  c.dns_formerr = d.formerr;
  c.dns_rebind_removed = d.rebind_removed;
  c.dns_ech_stripped = d.ech_stripped;
  c.dns_family_dropped = d.family_dropped;
  c.dns_sinkholed = d.sinkholed;
  c.dns_tcp_accepted = d.tcp_accepted;
  c.dns_tcp_refused = d.tcp_refused;
  c.dns_tcp_active = d.tcp_active;
  c.dns_events_suppressed = d.events_suppressed;
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

}  // namespace egressd::cli
