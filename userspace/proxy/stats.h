// stats.h: the proxy's counters, declared once for ProxyStats and the
// exporter (common/counters.h).
#pragma once

#include "common/counters.h"

#define EGD_PROXY_STATS(X, P)                                                                             \
  X(P##accepted, "egressd_proxy_connections_accepted_total", "", counter,                                \
    "Steered connections the proxy accepted; its verdicts are egressd_decisions_total{hook=\"proxy\"}") \
  X(P##active, "egressd_proxy_connections_active", "", gauge, "Connections the proxy holds now")         \
  X(P##relayed, "egressd_proxy_connections_relayed_total", "", counter,                                  \
    "Proxied connections that reached the origin and were relayed")                                      \
  X(P##bytes_up, "egressd_proxy_bytes_total", "direction=\"up\"", counter,                               \
    "Bytes the proxy relayed, up: client to origin, down: origin to client")                             \
  X(P##bytes_down, "egressd_proxy_bytes_total", "direction=\"down\"", counter, "")                       \
  X(P##events_suppressed, "egressd_proxy_events_suppressed_total", "", counter,                          \
    "Proxy refusals for too many connections not recorded as events (rate limit)")
