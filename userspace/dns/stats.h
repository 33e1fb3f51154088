// stats.h: the resolver's counters, declared once for ServerStats and the
// exporter (common/counters.h).
#pragma once

#include "common/counters.h"

#define EGD_DNS_STATS(X, P)                                                                                 \
  X(P##udp, "egressd_dns_queries_total", "transport=\"udp\"", counter,                                     \
    "DNS queries the resolver received; its verdicts are egressd_decisions_total{hook=\"dns\"}")          \
  X(P##tcp, "egressd_dns_queries_total", "transport=\"tcp\"", counter, "")                                 \
  X(P##cache_hits, "egressd_dns_outcomes_total", "outcome=\"cache_hit\"", counter,                         \
    "What became of allowed DNS queries (upstream_failed and truncated count answers, not queries)")       \
  X(P##forwarded, "egressd_dns_outcomes_total", "outcome=\"forwarded\"", counter, "")                      \
  X(P##coalesced, "egressd_dns_outcomes_total", "outcome=\"coalesced\"", counter, "")                      \
  X(P##overloaded, "egressd_dns_outcomes_total", "outcome=\"overloaded\"", counter, "")                    \
  X(P##upstream_failed, "egressd_dns_outcomes_total", "outcome=\"upstream_failed\"", counter, "")          \
  X(P##truncated, "egressd_dns_outcomes_total", "outcome=\"truncated\"", counter, "")                      \
  X(P##malformed, "egressd_dns_outcomes_total", "outcome=\"malformed\"", counter, "")                      \
  X(P##formerr, "egressd_dns_outcomes_total", "outcome=\"formerr\"", counter, "")                          \
  X(P##rebind_removed, "egressd_dns_records_removed_total", "kind=\"rebind\"", counter,                    \
    "Records removed from upstream answers: blocked addresses (rebind), ECH configs, unrouted families")  \
  X(P##ech_stripped, "egressd_dns_records_removed_total", "kind=\"ech\"", counter, "")                     \
  X(P##family_dropped, "egressd_dns_records_removed_total", "kind=\"no_route\"", counter, "")              \
  X(P##sinkholed, "egressd_dns_sinkholed_total", "", counter,                                              \
    "Denied A/AAAA questions answered with the sinkhole address ([dns] denied = \"sinkhole\")")          \
  X(P##tcp_accepted, "egressd_dns_tcp_connections_total", "outcome=\"accepted\"", counter,                 \
    "TCP connections to the resolver, accepted or refused (too many)")                                     \
  X(P##tcp_refused, "egressd_dns_tcp_connections_total", "outcome=\"refused\"", counter, "")               \
  X(P##tcp_active, "egressd_dns_tcp_connections_active", "", gauge, "TCP connections the resolver holds now") \
  X(P##events_suppressed, "egressd_dns_events_suppressed_total", "", counter,                              \
    "Resolver decisions not recorded as events (rate limit)")
