// counters.h: a component's counters, declared once (as Envoy declares its
// stats). The component lists them,
//
//   #define EGD_<COMPONENT>_STATS(X, P) \
//     X(P##field, "metric_name", "fixed label" or "", counter|gauge, "help") ...
//
// its stats struct takes its fields from the list (EGD_COUNTER_FIELD), and
// the exporter its rows (daemon/metrics_format.h, where P prefixes the field
// with the component's name): adding a counter is one line. Rows that share
// a metric name form one family, told apart by their fixed label; they must
// be adjacent and the first row's help is the family's.
#pragma once

#include <cstdint>

#define EGD_COUNTER_FIELD(field, name, label, type, help) uint64_t field = 0;
