/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * decide.bpf.h: the one decision every hook makes, and the event it emits.
 *
 * Order (issue #3): policy deny CIDRs; policy allow CIDRs (ports, protocol);
 * loopback (policy allow|deny); built-in blocked categories, each switchable;
 * then ports: TCP 80/443 and host-rule ports, UDP 53; everything else denied.
 * An IPv6 address that embeds an IPv4 one is judged wholly as that IPv4.
 */
#ifndef EGRESSD_DECIDE_BPF_H
#define EGRESSD_DECIDE_BPF_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "egressd_abi.h"
#include "addr_class.h"
#include "maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10

struct egd_target {
	__u32 v4;         /* network order, when is_v4 */
	__u32 v6[4];      /* network order, when !is_v4 */
	__u16 port;       /* host order */
	__u8 proto_bit;   /* EGD_PROTO_*, 0 for anything else */
	__u8 is_v4;
};

struct egd_decision {
	__u32 verdict;
	__u32 reason;
	__u32 rule_id;
	__u32 category;
};

static __always_inline const struct egd_config *egd_current_config(__u32 *gen)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&egd_active, &zero);

	if (!active)
		return 0;
	*gen = *active;
	__u32 slot = *gen & 1;
	const struct egd_config *cfg = bpf_map_lookup_elem(&egd_config, &slot);
	if (!cfg || cfg->gen != *gen)
		return 0; /* no policy written yet: fail closed */
	return cfg;
}

/* mode = "audit": record what would be denied, enforce nothing. */
static __always_inline int egd_audit_mode(void)
{
	__u32 gen = 0;
	const struct egd_config *cfg = egd_current_config(&gen);
	return cfg && cfg->audit;
}

static __always_inline int egd_port_set(const __u64 *bitmap, __u16 port)
{
	return (bitmap[(port >> 6) & 1023] >> (port & 63)) & 1;
}

/* A global (non-static) function is verified once on its own, not once per
 * path through every caller: the port-range loop then costs the verifier
 * ~16 iterations instead of multiplying the callers' states. */
__attribute__((noinline)) int egd_allow_admits(const struct egd_cidr_rule *r, __u32 port, __u32 proto_bit)
{
	if (!r)
		return 0;
	return egd_rule_admits(r, (__u16)port, (__u8)proto_bit);
}

static __always_inline void egd_decide(const struct egd_config *cfg, __u32 gen,
				       const struct egd_target *t, struct egd_decision *d)
{
	const struct egd_cidr_rule *allow;
	__u32 *deny;

	d->rule_id = 0;
	if (t->is_v4) {
		struct egd_lpm4_key k = {};
		k.prefixlen = EGD_GEN_BITS + 32;
		k.gen = bpf_htonl(gen);
		k.addr = t->v4;
		deny = bpf_map_lookup_elem(&egd_deny4, &k);
		allow = deny ? 0 : bpf_map_lookup_elem(&egd_allow4, &k);
		d->category = egd_classify4(t->v4);
	} else {
		struct egd_lpm6_key k = {};
		k.prefixlen = EGD_GEN_BITS + 128;
		k.gen = bpf_htonl(gen);
		k.addr[0] = t->v6[0];
		k.addr[1] = t->v6[1];
		k.addr[2] = t->v6[2];
		k.addr[3] = t->v6[3];
		deny = bpf_map_lookup_elem(&egd_deny6, &k);
		allow = deny ? 0 : bpf_map_lookup_elem(&egd_allow6, &k);
		d->category = egd_classify6(t->v6);
	}

	if (deny) {
		d->verdict = EGD_VERDICT_DENY;
		d->reason = EGD_REASON_DENY_CIDR;
		d->rule_id = *deny;
		return;
	}
	if (allow && egd_allow_admits(allow, t->port, t->proto_bit)) {
		d->verdict = EGD_VERDICT_ALLOW;
		d->reason = EGD_REASON_ALLOW_CIDR;
		d->rule_id = allow->rule_id;
		return;
	}
	if (d->category != EGD_CAT_PUBLIC) {
		__u32 cat = d->category & 7;
		int allowed = cfg->category_action[cat] == EGD_ACTION_ALLOW;
		if (!allowed || d->category == EGD_CAT_LOOPBACK) {
			/* loopback is all-or-nothing; other switched-off
			 * categories fall through to the port rules */
			d->verdict = allowed ? EGD_VERDICT_ALLOW : EGD_VERDICT_DENY;
			d->reason = egd_category_reason(d->category);
			return;
		}
	}
	if (t->proto_bit == EGD_PROTO_TCP && egd_port_set(cfg->tcp_ports, t->port)) {
		d->verdict = EGD_VERDICT_ALLOW;
		d->reason = EGD_REASON_WEB_PORT;
		return;
	}
	if (t->proto_bit == EGD_PROTO_UDP && egd_port_set(cfg->udp_ports, t->port)) {
		d->verdict = EGD_VERDICT_ALLOW;
		d->reason = EGD_REASON_DNS_PORT;
		return;
	}
	d->verdict = EGD_VERDICT_DENY;
	d->reason = t->proto_bit ? EGD_REASON_PORT : EGD_REASON_PROTO;
}

static __always_inline void egd_count(__u32 verdict, __u32 reason)
{
	__u32 slot = (verdict < EGD_VERDICT__COUNT ? verdict : EGD_VERDICT_DENY) * EGD_REASON__COUNT + (reason < EGD_REASON__COUNT ? reason : EGD_REASON_INTERNAL);
	__u64 *c = bpf_map_lookup_elem(&egd_stats, &slot);
	if (c)
		*c += 1;
}

/* Fill the process fields of an event; the caller fills the rest. */
static __always_inline struct egd_event *egd_event_reserve(void)
{
	struct egd_event *e = bpf_ringbuf_reserve(&egd_events, sizeof(*e), 0);
	if (!e) {
		__u32 slot = EGD_STAT_RING_DROPS;
		__u64 *c = bpf_map_lookup_elem(&egd_stats, &slot);
		if (c)
			*c += 1;
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = (__u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

static __always_inline void egd_event_submit(struct egd_event *e)
{
	__u64 unread = bpf_ringbuf_query(&egd_events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, unread >= EGD_RING_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

#endif
