/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * egressd.bpf.c: the hook entry points. Each is thin, as Cilium writes them:
 * read the context (egd_read_request), decide (egd_judge: egd_decide() on the
 * current policy), steer (egd_steer), emit (egd_count, egd_emit); refusals
 * egd_decide() does not make go through egd_refuse. Audit mode turns every
 * deny into a record: nothing is refused, nothing dropped.
 *
 * connect4/connect6 (TCP) and sendmsg4/sendmsg6 (UDP with an address):
 * return 0 makes connect()/sendto() fail with EPERM. A refused UDP connect
 * proceeds with the socket marked (egd_udp_peer); cgroup_skb/egress drops
 * what it then sends to that peer, so the send fails with EPERM.
 * sock_create: only TCP and UDP inet sockets may be created.
 * TCP connects to web ports are steered to the proxy (egd_steer); sockops,
 * getpeername4/6 and sock_release keep the original destination for it.
 * Reads egd_active, egd_config, the allow and deny tries, egd_proxy; writes
 * egd_stats, egd_events, egd_udp_peer and the egd_orig_* maps.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "decide.bpf.h"

#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline __u8 egd_proto_bit(__u32 protocol)
{
	if (protocol == IPPROTO_TCP)
		return EGD_PROTO_TCP;
	if (protocol == IPPROTO_UDP)
		return EGD_PROTO_UDP;
	return 0;
}

/* What a sock_addr hook was asked: the target egd_decide() judges, and the
 * address as the caller gave it (kept for the proxy and the event). */
struct egd_request {
	struct egd_target t;
	__u32 given[4]; /* network order; given[0] only for IPv4 */
	int v6;
	int embed;      /* egd_embed of given, IPv6 only */
};

/* The event's fields beyond the process's and the decision's. */
struct egd_flow {
	__u32 daddr[4];  /* as given, network order */
	__u32 judged4;   /* the IPv4 an IPv6 form was judged as, 0 if none */
	__u64 cookie;
	__u16 family;
	__u16 protocol;
	__u16 dport;
	__u8 sock_type;
};

static __always_inline void egd_set_ip6(struct bpf_sock_addr *ctx, __u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	ctx->user_ip6[0] = a0;
	ctx->user_ip6[1] = a1;
	ctx->user_ip6[2] = a2;
	ctx->user_ip6[3] = a3;
}

static __always_inline void egd_read_request(const struct bpf_sock_addr *ctx, int v6, struct egd_request *r)
{
	r->v6 = v6;
	r->t.port = bpf_ntohs((__u16)ctx->user_port);
	r->t.proto_bit = egd_proto_bit(ctx->protocol);
	if (v6) {
		r->given[0] = ctx->user_ip6[0];
		r->given[1] = ctx->user_ip6[1];
		r->given[2] = ctx->user_ip6[2];
		r->given[3] = ctx->user_ip6[3];
		r->embed = egd_embedded_v4(r->given, &r->t.v4);
		r->t.is_v4 = r->embed != EGD_EMBED_NONE;
		__builtin_memcpy(r->t.v6, r->given, 16);
	} else {
		r->given[0] = ctx->user_ip4;
		r->t.v4 = r->given[0];
		r->t.is_v4 = 1;
	}
}

/* egd_decide() on the current policy (none written yet: deny, internal).
 * Returns that policy, or 0. */
static __always_inline const struct egd_config *egd_judge(struct egd_request *r, struct egd_decision *d)
{
	__u32 gen = 0;
	const struct egd_config *cfg = egd_current_config(&gen);

	if (!cfg) {
		d->verdict = EGD_VERDICT_DENY;
		d->reason = EGD_REASON_INTERNAL;
		return 0;
	}
	egd_decide(cfg, gen, &r->t, d);
	if (r->embed == EGD_EMBED_TRANSLATED && d->verdict == EGD_VERDICT_ALLOW) {
		/* IPv6 on the wire that a translator turns into IPv4: allowed
		 * only if allowed as both. The IPv4 verdict above comes first
		 * as it names the real target. */
		struct egd_decision d6 = {};
		r->t.is_v4 = 0;
		egd_decide(cfg, gen, &r->t, &d6);
		if (d6.verdict == EGD_VERDICT_DENY)
			*d = d6;
	}
	return cfg;
}

/* Redirect a connect or send to a listener of the daemon: record the original
 * destination and who asked, under the socket's cookie, then rewrite the
 * destination to loopback:port (same family, so dual-stack and v6-only
 * sockets keep working). 0 if the record cannot be kept: the caller refuses. */
static __always_inline int egd_redirect(struct bpf_sock_addr *ctx, const struct egd_request *r, __u16 to_port)
{
	struct egd_orig o = {};
	__builtin_memcpy(o.daddr, r->given, 16);
	o.dport = r->t.port;
	o.family = r->v6 ? AF_INET6 : AF_INET;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	o.pid = (__u32)pid_tgid;
	o.tgid = pid_tgid >> 32;
	o.uid = (__u32)bpf_get_current_uid_gid();
	o.cgroup_id = bpf_get_current_cgroup_id();
	o.sock_cookie = bpf_get_socket_cookie(ctx);
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	if (bpf_map_update_elem(&egd_orig_by_cookie, &o.sock_cookie, &o, BPF_ANY))
		return 0;

	if (!r->v6)
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	else if (r->embed == EGD_EMBED_MAPPED) /* ::ffff:127.0.0.1 reaches the IPv4 listener */
		egd_set_ip6(ctx, 0, 0, bpf_htonl(0xffff), bpf_htonl(0x7f000001));
	else
		egd_set_ip6(ctx, 0, 0, 0, bpf_htonl(1));
	ctx->user_port = bpf_htons(to_port);
	return 1;
}

/* DNS (port 53, any address) goes to egressd's resolver; TCP connects the
 * policy allows to web ports go to the proxy. Rewrites the decision for
 * what was steered (no listener or no record: deny, no-proxy); returns 1
 * when the request was steered. */
static __always_inline int egd_steer(struct bpf_sock_addr *ctx, int is_connect, const struct egd_request *r,
				     struct egd_decision *d)
{
	__u32 zero = 0;
	struct egd_proxy_conf *pc = bpf_map_lookup_elem(&egd_proxy, &zero);

	if (r->t.port == 53 && r->t.proto_bit && pc && (pc->flags & EGD_PROXY_F_DNS)) {
		/* DNS to any address (a LAN resolver, 127.0.0.53, a public
		 * one, whatever the address rules say of it) goes to egressd's
		 * resolver, which answers only allowed names: no other
		 * resolver ever sees a query from the cgroup. */
		d->verdict = EGD_VERDICT_ALLOW;
		d->reason = EGD_REASON_DNS_STEERED;
		d->rule_id = 0;
		if (!pc->dns_port || !egd_redirect(ctx, r, pc->dns_port)) {
			d->verdict = EGD_VERDICT_DENY;
			d->reason = EGD_REASON_NO_PROXY;
		}
		return 1;
	}
	if (is_connect && r->t.proto_bit == EGD_PROTO_TCP && d->verdict == EGD_VERDICT_ALLOW &&
	    d->reason == EGD_REASON_WEB_PORT) {
		/* Web ports (80, 443, host-rule ports) are only ever reached
		 * through the proxy, which judges the name. */
		if (!pc || !pc->port || !egd_redirect(ctx, r, pc->port)) {
			d->verdict = EGD_VERDICT_DENY;
			d->reason = EGD_REASON_NO_PROXY;
		}
		return 1;
	}
	if (is_connect) {
		/* A socket whose earlier steered connect failed (or a UDP
		 * socket connected elsewhere) must not keep that record. */
		__u64 cookie = bpf_get_socket_cookie(ctx);
		if (bpf_map_lookup_elem(&egd_orig_by_cookie, &cookie))
			bpf_map_delete_elem(&egd_orig_by_cookie, &cookie);
	}
	return 0;
}

/* A UDP connect() sends nothing: glibc's getaddrinfo() connects a UDP socket
 * to each answer (RFC 6724 sorting) only to learn the route and the source
 * address. So a refused UDP connect proceeds (the kernel's route lookup then
 * answers, ENETUNREACH included) and the socket is marked with the decision
 * (egd_udp_peer); skb_egress drops what it sends to that peer. Every UDP
 * connect rewrites or deletes the mark, so it follows the current peer.
 * Returns 1 when the socket was marked; 0 when nothing was refused, or when
 * the mark cannot be kept: then the caller refuses the connect itself. */
static __always_inline int egd_udp_connect(struct bpf_sock_addr *ctx, const struct egd_decision *d, int refused,
					   const struct egd_request *r)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 0;
	if (!refused) {
		bpf_sk_storage_delete(&egd_udp_peer, sk);
		return 0;
	}
	struct egd_udp_mark *m = bpf_sk_storage_get(&egd_udp_peer, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!m)
		return 0;
	__builtin_memcpy(m->daddr, r->given, 16);
	m->dport = r->t.port;
	m->family = r->v6 ? AF_INET6 : AF_INET;
	m->reason = d->reason;
	m->verdict = d->verdict;
	m->category = d->category;
	m->rule_id = d->rule_id;
	m->judged_addr4 = r->embed != EGD_EMBED_NONE ? r->t.v4 : 0;
	m->reported = 0;
	return 1;
}

static __always_inline void egd_emit(__u8 hook, const struct egd_flow *f, const struct egd_decision *d)
{
	struct egd_event *e = egd_event_reserve();

	if (!e)
		return;
	e->hook = hook;
	e->family = f->family;
	e->protocol = f->protocol;
	e->sock_type = f->sock_type;
	e->dport = f->dport;
	e->verdict = d->verdict;
	e->reason = d->reason;
	e->rule_id = d->rule_id;
	e->category = d->category;
	e->sock_cookie = f->cookie;
	e->judged_addr4 = f->judged4;
	__builtin_memcpy(e->daddr, f->daddr, 16);
	egd_event_submit(e);
}

/* A refusal egd_decide() does not make (socket type, source routing): denied,
 * or in audit mode only recorded. Counts it and emits its event; returns the
 * hook's answer (0 refuses). */
static __always_inline int egd_refuse(__u8 hook, const struct egd_flow *f, __u32 reason)
{
	struct egd_decision d = {};

	d.verdict = egd_audit_mode() ? EGD_VERDICT_AUDIT : EGD_VERDICT_DENY;
	d.reason = reason;
	egd_count(d.verdict, d.reason);
	egd_emit(hook, f, &d);
	return d.verdict == EGD_VERDICT_AUDIT;
}

/* connect4/6 and sendmsg4/6: decide, steer, emit. */
static __always_inline int egd_sock_addr(struct bpf_sock_addr *ctx, __u8 hook, int v6)
{
	struct egd_request r = {};
	struct egd_decision d = {};
	int is_connect = hook == EGD_HOOK_CONNECT4 || hook == EGD_HOOK_CONNECT6;

	egd_read_request(ctx, v6, &r);
	const struct egd_config *cfg = egd_judge(&r, &d);
	int steered = egd_steer(ctx, is_connect, &r, &d);
	if (d.verdict == EGD_VERDICT_DENY && cfg && cfg->audit)
		d.verdict = EGD_VERDICT_AUDIT;
	if (is_connect && r.t.proto_bit == EGD_PROTO_UDP &&
	    egd_udp_connect(ctx, &d, !steered && d.verdict != EGD_VERDICT_ALLOW, &r))
		return 1; /* refused at the first datagram (skb_egress), not here */

	egd_count(d.verdict, d.reason);
	if (d.verdict != EGD_VERDICT_ALLOW || (cfg && cfg->events_all)) {
		struct egd_flow f = {};
		__builtin_memcpy(f.daddr, r.given, 16);
		f.judged4 = r.embed != EGD_EMBED_NONE ? r.t.v4 : 0;
		f.cookie = bpf_get_socket_cookie(ctx);
		f.family = v6 ? AF_INET6 : AF_INET;
		f.protocol = ctx->protocol;
		f.sock_type = ctx->type;
		f.dport = r.t.port;
		egd_emit(hook, &f, &d);
	}
	return d.verdict != EGD_VERDICT_DENY;
}

SEC("cgroup/connect4")
int egd_connect4(struct bpf_sock_addr *ctx)
{
	return egd_sock_addr(ctx, EGD_HOOK_CONNECT4, 0);
}

SEC("cgroup/connect6")
int egd_connect6(struct bpf_sock_addr *ctx)
{
	return egd_sock_addr(ctx, EGD_HOOK_CONNECT6, 1);
}

SEC("cgroup/sendmsg4")
int egd_sendmsg4(struct bpf_sock_addr *ctx)
{
	return egd_sock_addr(ctx, EGD_HOOK_SENDMSG4, 0);
}

SEC("cgroup/sendmsg6")
int egd_sendmsg6(struct bpf_sock_addr *ctx)
{
	return egd_sock_addr(ctx, EGD_HOOK_SENDMSG6, 1);
}

/* Only inet sockets reach this hook (inet_create/inet6_create). Raw, ICMP
 * ("ping"), MPTCP, UDP-Lite and SCTP sockets are refused: everything the
 * connect/sendmsg verdicts do not understand. */
SEC("cgroup/sock_create")
int egd_sock_create(struct bpf_sock *sk)
{
	struct egd_flow f = {};

	f.family = sk->family;
	f.protocol = sk->protocol;
	f.sock_type = sk->type;
	if ((f.sock_type == SOCK_STREAM && f.protocol == IPPROTO_TCP) ||
	    (f.sock_type == SOCK_DGRAM && f.protocol == IPPROTO_UDP))
		return 1;
	return egd_refuse(EGD_HOOK_SOCK_CREATE, &f, f.sock_type == SOCK_RAW ? EGD_REASON_RAW_SOCKET : EGD_REASON_PROTO);
}

#define SOL_IP 0
#define SOL_IPV6 41
#define IP_OPTIONS 4
#define IPV6_2292RTHDR 5
#define IPV6_RTHDR 57

/* Source routing sends a packet to a hop the connect/sendmsg verdict never
 * judged: IPv4 LSRR/SSRR (IP_OPTIONS) and the IPv6 routing header
 * (IPV6_RTHDR, the one extension header unprivileged sockets may set). */
SEC("cgroup/setsockopt")
int egd_setsockopt(struct bpf_sockopt *ctx)
{
	int level = ctx->level, name = ctx->optname;

	if (ctx->optlen <= 0)
		return 1; /* clearing options is fine */
	if ((level == SOL_IP && name == IP_OPTIONS) ||
	    (level == SOL_IPV6 && (name == IPV6_RTHDR || name == IPV6_2292RTHDR))) {
		struct bpf_sock *sk = ctx->sk;
		struct egd_flow f = {};
		f.family = sk ? sk->family : 0;
		f.protocol = sk ? sk->protocol : 0;
		return egd_refuse(EGD_HOOK_SETSOCKOPT, &f, EGD_REASON_SOURCE_ROUTE); /* 0: EPERM */
	}
	return 1;
}

/* Backstop for the per-message forms of the same options (IP_RETOPTS and
 * IPV6_RTHDR control messages), which no sockopt hook sees: IPv4 packets
 * carrying options and IPv6 packets whose first extension header is a
 * routing header. */
static __always_inline int egd_source_routed(struct __sk_buff *skb)
{
	__u8 b = 0;

	if (skb->protocol == bpf_htons(0x0800)) /* ETH_P_IP */
		return !bpf_skb_load_bytes(skb, 0, &b, 1) && (b & 0x0f) > 5;
	if (skb->protocol == bpf_htons(0x86dd)) /* ETH_P_IPV6 */
		return !bpf_skb_load_bytes(skb, 6, &b, 1) && b == 43; /* IPPROTO_ROUTING */
	return 0;
}

/* Whether a datagram of a marked UDP socket goes to the socket's connected
 * peer: what send(), write(), sendmsg() without an address, sendmmsg() and
 * io_uring send, none of which pass a sendmsg hook. A datagram with an
 * explicit address (sendto) was judged by sendmsg4/6 and goes elsewhere.
 * Compared with the socket's peer as the kernel keeps it (a connect to
 * 0.0.0.0 or :: reaches loopback). Fails closed: 1 when the packet cannot be
 * read, or is not plain UDP (IPv4 options were dropped above). */
static __always_inline int egd_to_connected_peer(struct __sk_buff *skb, const struct bpf_sock *sk)
{
	__u8 proto = 0;
	__be16 dport = 0;

	if (skb->protocol == bpf_htons(0x0800)) {
		__u32 daddr = 0;
		if (bpf_skb_load_bytes(skb, 9, &proto, 1) || bpf_skb_load_bytes(skb, 16, &daddr, 4) ||
		    bpf_skb_load_bytes(skb, 20 + 2, &dport, 2))
			return 1;
		return proto != IPPROTO_UDP || (daddr == sk->dst_ip4 && dport == sk->dst_port);
	}
	if (skb->protocol == bpf_htons(0x86dd)) {
		__u32 daddr[4] = {};
		if (bpf_skb_load_bytes(skb, 6, &proto, 1) || bpf_skb_load_bytes(skb, 24, daddr, 16) ||
		    bpf_skb_load_bytes(skb, 40 + 2, &dport, 2))
			return 1;
		return proto != IPPROTO_UDP ||
		       (daddr[0] == sk->dst_ip6[0] && daddr[1] == sk->dst_ip6[1] && daddr[2] == sk->dst_ip6[2] &&
			daddr[3] == sk->dst_ip6[3] && dport == sk->dst_port);
	}
	return 1;
}

/* The refusal of a UDP connect (egd_udp_connect), applied to each datagram
 * sent to that peer: dropped, so the send fails with EPERM, one event per
 * send. Audit mode lets it through and records the first one only. */
static __always_inline int egd_udp_peer_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return 1;
	struct egd_udp_mark *m = bpf_sk_storage_get(&egd_udp_peer, sk, 0, 0);
	if (!m || !egd_to_connected_peer(skb, sk))
		return 1;

	struct egd_decision d = {};
	/* The mode now, not at the connect: a reload to audit stops the drops. */
	d.verdict = egd_audit_mode() ? EGD_VERDICT_AUDIT : EGD_VERDICT_DENY;
	if (d.verdict == EGD_VERDICT_AUDIT) {
		if (m->reported)
			return 1;
		m->reported = 1;
	}
	d.reason = m->reason;
	d.rule_id = m->rule_id;
	d.category = m->category;
	egd_count(d.verdict, d.reason);

	struct egd_flow f = {};
	__builtin_memcpy(f.daddr, m->daddr, 16);
	f.judged4 = m->judged_addr4;
	f.cookie = bpf_get_socket_cookie(skb);
	f.family = m->family;
	f.protocol = IPPROTO_UDP;
	f.sock_type = SOCK_DGRAM;
	f.dport = m->dport;
	egd_emit(EGD_HOOK_SKB_EGRESS, &f, &d);
	return d.verdict == EGD_VERDICT_AUDIT;
}

/* Return 0 drops the packet: the send fails with EPERM (UDP) or the
 * connection stalls (TCP). Process fields of its events are those of the
 * task that sends, best effort. */
SEC("cgroup_skb/egress")
int egd_skb_egress(struct __sk_buff *skb)
{
	if (egd_source_routed(skb)) {
		struct egd_flow f = {};
		f.family = skb->family;
		return egd_refuse(EGD_HOOK_SKB_EGRESS, &f, EGD_REASON_SOURCE_ROUTE);
	}
	return egd_udp_peer_egress(skb);
}

/* Client side of a steered connection, when its local address is known
 * (TCP_CONNECT_CB runs in connect(), before the SYN, so the record exists
 * before the proxy can accept): re-key the record by that address so the
 * proxy finds it from accept()'s peer address. */
SEC("sockops")
int egd_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct egd_orig *o = bpf_map_lookup_elem(&egd_orig_by_cookie, &cookie);
	if (!o)
		return 1;

	struct egd_port_key k = {};
	k.netns_cookie = bpf_get_netns_cookie(skops);
	k.port = (__u16)skops->local_port;
	if (skops->family == AF_INET) {
		k.family = AF_INET;
		k.addr[0] = skops->local_ip4;
	} else {
		__u32 a0 = skops->local_ip6[0], a1 = skops->local_ip6[1];
		__u32 a2 = skops->local_ip6[2], a3 = skops->local_ip6[3];
		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
			k.family = AF_INET; /* the v4 listener sees a v4 peer */
			k.addr[0] = a3;
		} else {
			k.family = AF_INET6;
			k.addr[0] = a0;
			k.addr[1] = a1;
			k.addr[2] = a2;
			k.addr[3] = a3;
		}
	}
	bpf_map_update_elem(&egd_orig_by_port, &k, o, BPF_ANY);
	return 1;
}

/* The client sees the peer it asked for, not the proxy. */
static __always_inline int egd_getpeername(struct bpf_sock_addr *ctx, int v6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct egd_orig *o = bpf_map_lookup_elem(&egd_orig_by_cookie, &cookie);

	if (!o || o->family != (v6 ? AF_INET6 : AF_INET))
		return 1;
	if (v6) {
		__u32 a[4];
		__builtin_memcpy(a, o->daddr, 16);
		egd_set_ip6(ctx, a[0], a[1], a[2], a[3]);
	} else {
		__u32 a;
		__builtin_memcpy(&a, o->daddr, 4);
		ctx->user_ip4 = a;
	}
	ctx->user_port = bpf_htons(o->dport);
	return 1; /* these hooks must return 1 */
}

SEC("cgroup/getpeername4")
int egd_getpeername4(struct bpf_sock_addr *ctx)
{
	return egd_getpeername(ctx, 0);
}

SEC("cgroup/getpeername6")
int egd_getpeername6(struct bpf_sock_addr *ctx)
{
	return egd_getpeername(ctx, 1);
}

/* A steered DNS answer comes from the resolver on loopback: the client
 * sees it come from the server it asked (glibc, musl and dig drop answers
 * from any other address). Runs only when the caller asks for the source. */
static __always_inline int egd_recvmsg(struct bpf_sock_addr *ctx, int v6)
{
	__u32 zero = 0;
	struct egd_proxy_conf *pc = bpf_map_lookup_elem(&egd_proxy, &zero);
	if (!pc || !pc->dns_port || ctx->user_port != bpf_htons(pc->dns_port))
		return 1;
	if (v6) {
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
		int lo6 = a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1);
		int lo4 = a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff) && a3 == bpf_htonl(0x7f000001);
		if (!lo6 && !lo4)
			return 1;
	} else if (ctx->user_ip4 != bpf_htonl(0x7f000001)) {
		return 1;
	}
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct egd_orig *o = bpf_map_lookup_elem(&egd_orig_by_cookie, &cookie);
	if (!o)
		return 1;
	__u32 a[4];
	__builtin_memcpy(a, o->daddr, 16);
	if (!v6) {
		if (o->family != AF_INET)
			return 1;
		ctx->user_ip4 = a[0];
	} else if (o->family == AF_INET) {
		/* sendto(::ffff:a.b.c.d) on a dual-stack socket passes
		 * sendmsg4; its answer comes back through recvmsg6. */
		egd_set_ip6(ctx, 0, 0, bpf_htonl(0xffff), a[0]);
	} else {
		egd_set_ip6(ctx, a[0], a[1], a[2], a[3]);
	}
	ctx->user_port = bpf_htons(o->dport);
	return 1; /* recvmsg hooks must return 1 */
}

SEC("cgroup/recvmsg4")
int egd_recvmsg4(struct bpf_sock_addr *ctx)
{
	return egd_recvmsg(ctx, 0);
}

SEC("cgroup/recvmsg6")
int egd_recvmsg6(struct bpf_sock_addr *ctx)
{
	return egd_recvmsg(ctx, 1);
}

SEC("cgroup/sock_release")
int egd_sock_release(struct bpf_sock *sk)
{
	if (sk->protocol != IPPROTO_TCP && sk->protocol != IPPROTO_UDP)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(sk);
	bpf_map_delete_elem(&egd_orig_by_cookie, &cookie);
	return 1;
}

/* Never called: it puts struct egd_event into the object's BTF (ring buffer
 * records have no map value type), so tests/unit/abi_layout_test.cpp can
 * check its layout against the C++ side. */
__attribute__((noinline, used)) int egd_abi_anchor(struct egd_event *e)
{
	return e ? 0 : 1;
}
