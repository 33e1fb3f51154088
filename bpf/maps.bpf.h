/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* maps.bpf.h: every map of the enforcer. Names carry the egd_ prefix; the
 * loader pins each one under the attachment's bpffs directory by that name. */
#ifndef EGRESSD_MAPS_BPF_H
#define EGRESSD_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "egressd_abi.h"

/* Generation the hooks read: egd_active[0]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} egd_active SEC(".maps");

/* Policy scalars, one slot per generation parity. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct egd_config);
} egd_config SEC(".maps");

#define EGD_LPM_MAP(name, keytype, valtype)              \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);     \
		__uint(map_flags, BPF_F_NO_PREALLOC);    \
		__uint(max_entries, EGD_LPM_MAX_ENTRIES);\
		__type(key, keytype);                    \
		__type(value, valtype);                  \
	} name SEC(".maps")

EGD_LPM_MAP(egd_allow4, struct egd_lpm4_key, struct egd_cidr_rule);
EGD_LPM_MAP(egd_allow6, struct egd_lpm6_key, struct egd_cidr_rule);
EGD_LPM_MAP(egd_deny4, struct egd_lpm4_key, __u32);
EGD_LPM_MAP(egd_deny6, struct egd_lpm6_key, __u32);

/* Description of the attachment for `egressd status`; never read by BPF. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct egd_meta);
} egd_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EGD_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} egd_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EGD_RINGBUF_BYTES);
} egd_events SEC(".maps");

/* Transparent proxy: its port, and the original destination of each
 * steered connection (by client socket cookie, then by the client's local
 * address once TCP_CONNECT_CB knows it). LRU so an abandoned entry can
 * never fill the map; sock_release and the proxy delete what they can. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct egd_proxy_conf);
} egd_proxy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGD_ORIG_MAX_ENTRIES);
	__type(key, __u64);
	__type(value, struct egd_orig);
} egd_orig_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, EGD_ORIG_MAX_ENTRIES);
	__type(key, struct egd_port_key);
	__type(value, struct egd_orig);
} egd_orig_by_port SEC(".maps");

/* The refused peer of a connected UDP socket (struct egd_udp_mark). Pinned
 * like the others, so a program swap keeps the marks of live sockets. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct egd_udp_mark);
} egd_udp_peer SEC(".maps");

#endif
