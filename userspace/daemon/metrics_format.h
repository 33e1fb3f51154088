// metrics_format.h: the daemon's numbers as one value, and its rendering in
// the Prometheus text exposition format (version 0.0.4). Rendering is a pure
// function; metrics_gather.h fills the value, daemon/metrics_server.h serves it.
//
// The daemon's scalar metrics are the components' counters, each declared
// once beside its component (common/counters.h: proxy/stats.h, dns/stats.h):
// the components' stats structs, the snapshot's fields, the gathering, the
// metric names, labels, types and help all come from those lists, so adding
// a counter is one line.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "dns/stats.h"
#include "egressd_abi.h"
#include "proxy/stats.h"

namespace egressd::daemon {

// The event hub's two numbers, read from its accessors.
#define EGD_HUB_METRICS(X, P)                                                          \
  X(P##subscriber_lines_dropped, "egressd_subscriber_lines_dropped_total", "", counter, \
    "Event lines dropped for live subscribers (egressd tail) too slow to read them")    \
  X(P##subscribers, "egressd_subscribers", "", gauge, "Live event subscribers (egressd tail)")

// X(field, metric name, fixed label or "", counter|gauge, help): every
// component's list, its fields prefixed with the component's name.
#define EGD_DAEMON_METRICS(X) EGD_HUB_METRICS(X, ) EGD_PROXY_STATS(X, proxy_) EGD_DNS_STATS(X, dns_)

struct DaemonCounters {
  EGD_DAEMON_METRICS(EGD_COUNTER_FIELD)
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

}  // namespace egressd::daemon
