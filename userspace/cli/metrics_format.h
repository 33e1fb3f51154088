// metrics_format.h: the daemon's numbers as one value, and its rendering in
// the Prometheus text exposition format (version 0.0.4). Rendering is a pure
// function; metrics_gather.h fills the value, daemon/metrics_server.h serves it.
//
// The daemon's scalar metrics are declared once, in EGD_DAEMON_METRICS: the
// snapshot's fields, the metric names, their labels, types and help all come
// from that table (as Envoy declares its stats), so adding a counter is one
// line. Rows that share a metric name form one family (one HELP/TYPE), told
// apart by their fixed label; they must be adjacent and the first row's help
// is the family's.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "egressd_abi.h"

namespace egressd::cli {

// X(field, metric name, fixed label or "", counter|gauge, help)
#define EGD_DAEMON_METRICS(X)                                                                                    \
  X(subscriber_lines_dropped, "egressd_subscriber_lines_dropped_total", "", counter,                            \
    "Event lines dropped for live subscribers (egressd tail) too slow to read them")                            \
  X(subscribers, "egressd_subscribers", "", gauge, "Live event subscribers (egressd tail)")                     \
  X(proxy_accepted, "egressd_proxy_connections_accepted_total", "", counter,                                    \
    "Steered connections the proxy accepted; its verdicts are egressd_decisions_total{hook=\"proxy\"}")        \
  X(proxy_active, "egressd_proxy_connections_active", "", gauge, "Connections the proxy holds now")             \
  X(proxy_relayed, "egressd_proxy_connections_relayed_total", "", counter,                                      \
    "Proxied connections that reached the origin and were relayed")                                             \
  X(proxy_bytes_up, "egressd_proxy_bytes_total", "direction=\"up\"", counter,                                   \
    "Bytes the proxy relayed, up: client to origin, down: origin to client")                                    \
  X(proxy_bytes_down, "egressd_proxy_bytes_total", "direction=\"down\"", counter, "")                           \
  X(proxy_events_suppressed, "egressd_proxy_events_suppressed_total", "", counter,                              \
    "Proxy refusals for too many connections not recorded as events (rate limit)")                              \
  X(dns_udp, "egressd_dns_queries_total", "transport=\"udp\"", counter,                                         \
    "DNS queries the resolver received; its verdicts are egressd_decisions_total{hook=\"dns\"}")               \
  X(dns_tcp, "egressd_dns_queries_total", "transport=\"tcp\"", counter, "")                                     \
  X(dns_cache_hits, "egressd_dns_outcomes_total", "outcome=\"cache_hit\"", counter,                             \
    "What became of allowed DNS queries (upstream_failed and truncated count answers, not queries)")            \
  X(dns_forwarded, "egressd_dns_outcomes_total", "outcome=\"forwarded\"", counter, "")                          \
  X(dns_coalesced, "egressd_dns_outcomes_total", "outcome=\"coalesced\"", counter, "")                          \
  X(dns_overloaded, "egressd_dns_outcomes_total", "outcome=\"overloaded\"", counter, "")                        \
  X(dns_upstream_failed, "egressd_dns_outcomes_total", "outcome=\"upstream_failed\"", counter, "")              \
  X(dns_truncated, "egressd_dns_outcomes_total", "outcome=\"truncated\"", counter, "")                          \
  X(dns_malformed, "egressd_dns_outcomes_total", "outcome=\"malformed\"", counter, "")                          \
  X(dns_formerr, "egressd_dns_outcomes_total", "outcome=\"formerr\"", counter, "")                              \
  X(dns_rebind_removed, "egressd_dns_records_removed_total", "kind=\"rebind\"", counter,                        \
    "Records removed from upstream answers: blocked addresses (rebind), ECH configs, unrouted families")       \
  X(dns_ech_stripped, "egressd_dns_records_removed_total", "kind=\"ech\"", counter, "")                         \
  X(dns_family_dropped, "egressd_dns_records_removed_total", "kind=\"no_route\"", counter, "")                  \
  X(dns_sinkholed, "egressd_dns_sinkholed_total", "", counter,                                                  \
    "Denied A/AAAA questions answered with the sinkhole address ([dns] denied = \"sinkhole\")")               \
  X(dns_tcp_accepted, "egressd_dns_tcp_connections_total", "outcome=\"accepted\"", counter,                     \
    "TCP connections to the resolver, accepted or refused (too many)")                                          \
  X(dns_tcp_refused, "egressd_dns_tcp_connections_total", "outcome=\"refused\"", counter, "")                   \
  X(dns_tcp_active, "egressd_dns_tcp_connections_active", "", gauge, "TCP connections the resolver holds now")  \
  X(dns_events_suppressed, "egressd_dns_events_suppressed_total", "", counter,                                  \
    "Resolver decisions not recorded as events (rate limit)")

struct DaemonCounters {
#define EGD_DAEMON_FIELD(field, name, label, type, help) uint64_t field = 0;
  EGD_DAEMON_METRICS(EGD_DAEMON_FIELD)
#undef EGD_DAEMON_FIELD
};

// verdict * EGD_REASON__COUNT + reason, as in egd_stats and the proxy's and
// resolver's own stats.
using DecisionCounts = std::array<uint64_t, size_t{EGD_VERDICT__COUNT} * size_t{EGD_REASON__COUNT}>;

struct MetricsSnapshot {
  std::string cgroup;       // the label every series carries
  std::string policy_path;
  uint64_t policy_hash = 0;
  uint32_t policy_generation = 0;
  uint64_t policy_loaded_unix_ns = 0;
  uint64_t attached_unix_ns = 0;
  DecisionCounts kernel{};  // egd_stats, summed over CPUs
  uint64_t ring_drops = 0;  // egd_stats[EGD_STAT_RING_DROPS]
  DecisionCounts proxy{};
  DecisionCounts dns{};
  DaemonCounters daemon;
};

// The exposition, one family after another, each with HELP and TYPE.
// Decision series appear once nonzero (hook x verdict x reason is mostly
// impossible combinations).
std::string format_metrics(const MetricsSnapshot& s);

// A Prometheus label value: backslash, double quote and newline escaped.
std::string prometheus_label_escape(std::string_view v);

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace egressd::cli
