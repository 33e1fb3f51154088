/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * egressd_abi.h: every type that crosses the BPF/userspace line.
 *
 * Included by the BPF programs (clang -target bpf) and by the C++ daemon.
 * Rules: fixed-width __u8..__u64 only, explicit padding, no bool, no enum-typed
 * fields (enums name the values; fields hold them as integers). Byte order is
 * stated per field. tests/unit/abi_layout_test.cpp checks every struct here
 * against the BTF of the compiled object, so drift fails the build's tests.
 */
#ifndef EGRESSD_ABI_H
#define EGRESSD_ABI_H

#include <linux/types.h>

/* Bumped whenever a map or struct below changes shape; pinned maps carry it in
 * egd_meta so an `attach` of a newer egressd refuses to adopt stale pins. */
#define EGD_ABI_VERSION 3

#define EGD_COMM_LEN 16

/* ---- verdicts ---------------------------------------------------------- */
enum egd_verdict {
	EGD_VERDICT_ALLOW = 0,
	EGD_VERDICT_DENY = 1,
	EGD_VERDICT_AUDIT = 2, /* mode = "audit": would have been denied, let through */
	EGD_VERDICT__COUNT = 3,
};

/* ---- reasons (declared once; C++ derives its name table from this) ------ */
#define EGD_REASONS(X)                        \
	X(NONE, "none")                       \
	X(ALLOW_CIDR, "allow-cidr")           \
	X(DENY_CIDR, "deny-cidr")             \
	X(LOOPBACK, "loopback")               \
	X(PRIVATE, "private")                 \
	X(LINK_LOCAL, "link-local")           \
	X(MULTICAST, "multicast")             \
	X(BROADCAST, "broadcast")             \
	X(RESERVED, "reserved")               \
	X(PORT, "port")                       \
	X(WEB_PORT, "web-port")               \
	X(DNS_PORT, "dns-port")               \
	X(PROTO, "proto")                     \
	X(RAW_SOCKET, "raw-socket")           \
	X(SOURCE_ROUTE, "source-route")       \
	X(INTERNAL, "internal")               \
	X(NO_PROXY, "no-proxy")               \
	/* decided by the proxy (hook PROXY) */ \
	X(HOST_RULE, "host-rule")             \
	X(HOST_NOT_ALLOWED, "host-not-allowed") \
	X(PORT_NOT_ALLOWED, "port-not-allowed") \
	X(METHOD_NOT_ALLOWED, "method-not-allowed") \
	X(PATH_NOT_ALLOWED, "path-not-allowed") \
	X(NEEDS_HTTP, "inspection-needs-http") \
	X(SNI_IP_MISMATCH, "sni-ip-mismatch") \
	X(REBIND, "rebind")                   \
	X(NOT_TLS, "not-tls")                 \
	X(NOT_HTTP, "not-http")               \
	X(NO_SNI, "no-sni")                   \
	X(ECH, "ech")                         \
	X(TIMEOUT, "timeout")                 \
	X(SMUGGLING, "smuggling")             \
	X(MALFORMED, "malformed")             \
	X(NO_RECORD, "no-record")             \
	X(RESOLVE_FAILED, "resolve-failed")   \
	X(UPSTREAM_FAILED, "upstream-failed")   \
	X(HTTP2_CLEARTEXT, "http2-cleartext") \
	X(UPSTREAM_FALLBACK, "upstream-fallback") \
	/* decided by the resolver (hook DNS) */ \
	X(DNS_STEERED, "dns-steered")         \
	X(DNS_NAME_ALLOWED, "dns-name-allowed") \
	X(DNS_NAME_NOT_ALLOWED, "dns-name-not-allowed") \
	X(DNS_TYPE_NOT_ALLOWED, "dns-type-not-allowed") \
	X(DNS_MALFORMED, "dns-malformed")     \
	X(DNS_UPSTREAM_FAILED, "dns-upstream-failed") \
	/* decided by the proxy and the resolver (TCP): a client over its fair share */ \
	X(TOO_MANY_CONNECTIONS, "too-many-connections")

enum egd_reason {
#define EGD_REASON_ENUM(id, name) EGD_REASON_##id,
	EGD_REASONS(EGD_REASON_ENUM)
#undef EGD_REASON_ENUM
	EGD_REASON__COUNT,
};

/* ---- address categories (built-in blocked ranges) ---------------------- */
/* Each has an action in egd_config.category_action. PUBLIC is never blocked
 * by category; the port rules decide. */
enum egd_category {
	EGD_CAT_PUBLIC = 0,
	EGD_CAT_LOOPBACK = 1,   /* 127/8, 0.0.0.0, ::1, :: */
	EGD_CAT_PRIVATE = 2,    /* RFC1918, CGNAT 100.64/10, ULA fc00::/7, site-local fec0::/10 */
	EGD_CAT_LINK_LOCAL = 3, /* 169.254/16, fe80::/10, 168.63.129.16 (Azure host endpoint) */
	EGD_CAT_MULTICAST = 4,  /* 224/4, ff00::/8 */
	EGD_CAT_BROADCAST = 5,  /* 255.255.255.255 */
	EGD_CAT_RESERVED = 6,   /* 0/8 (but 0.0.0.0), 240/4, 192.0.0/24, 198.18/15, unroutable v6 forms */
	EGD_CAT__COUNT = 7,
};

enum egd_action {
	EGD_ACTION_DENY = 0, /* zero so a missing/zeroed config fails closed */
	EGD_ACTION_ALLOW = 1,
};

/* ---- hooks ------------------------------------------------------------- */
#define EGD_HOOKS(X)                   \
	X(CONNECT4, "connect4")        \
	X(CONNECT6, "connect6")        \
	X(SENDMSG4, "sendmsg4")        \
	X(SENDMSG6, "sendmsg6")        \
	X(SOCK_CREATE, "sock_create")  \
	X(SETSOCKOPT, "setsockopt")    \
	X(SKB_EGRESS, "skb_egress")    \
	X(PROXY, "proxy")              \
	X(DNS, "dns")

enum egd_hook {
#define EGD_HOOK_ENUM(id, name) EGD_HOOK_##id,
	EGD_HOOKS(EGD_HOOK_ENUM)
#undef EGD_HOOK_ENUM
	EGD_HOOK__COUNT,
};

/* ---- policy maps -------------------------------------------------------- */
/*
 * Policies are double-buffered by generation: every trie key starts with a
 * 32-bit generation, and egd_active[0] names the generation the hooks read.
 * A reload writes the other generation, flips egd_active with one 4-byte
 * store, then deletes the old one: there is no instant with no policy or a
 * half-written one.
 */
#define EGD_GEN_BITS 32

struct egd_lpm4_key {
	__u32 prefixlen; /* 32 (generation) + CIDR length */
	__u32 gen;       /* network order, so it is the leading bits of the match */
	__u32 addr;      /* network order */
};

struct egd_lpm6_key {
	__u32 prefixlen; /* 32 (generation) + CIDR length */
	__u32 gen;       /* network order */
	__u32 addr[4];   /* network order */
};

#define EGD_MAX_PORT_RANGES 16

/* proto_mask bits */
#define EGD_PROTO_TCP 0x1
#define EGD_PROTO_UDP 0x2

struct egd_port_range {
	__u16 lo;         /* host order, inclusive */
	__u16 hi;         /* host order, inclusive */
	__u8 proto_mask;  /* EGD_PROTO_* */
	__u8 _pad[3];
};

/* Value of the allow tries. The compiler folds every less specific allow rule
 * into each more specific entry, so a longest-prefix hit carries all the
 * ranges that apply to the address. */
struct egd_cidr_rule {
	__u32 rule_id;    /* index of the [[allow_cidr]]/[[deny_cidr]] in its file, 1-based */
	__u16 nranges;    /* 0 means: all ports, for proto_mask */
	__u8 proto_mask;  /* protocols for nranges == 0 */
	__u8 _pad;
	struct egd_port_range ranges[EGD_MAX_PORT_RANGES];
};

/* egd_config[gen & 1]: scalars of the active policy. */
struct egd_config {
	__u32 gen;                           /* the generation this slot belongs to */
	__u8 category_action[8];             /* indexed by egd_category, EGD_ACTION_* */
	__u8 events_all;                     /* 1: emit allow events too */
	__u8 audit;                          /* 1: mode = "audit": deny verdicts are recorded, not enforced */
	__u8 _pad[2];
	__u64 tcp_ports[1024];               /* bitmap: TCP ports allowed at L4 (80, 443, host-rule ports) */
	__u64 udp_ports[1024];               /* bitmap: UDP ports allowed at L4 (53) */
};

/* ---- transparent proxy and resolver steering ------------------------------ */
/* egd_proxy[0]: where connect4/6 and sendmsg4/6 steer. Written by the daemon
 * once its listeners are bound (127.0.0.1 and [::1] in the daemon's network
 * namespace): TCP web ports to `port`, DNS (UDP and TCP 53, any address) to
 * `dns_port`. A port of 0 means nobody listens: steered connects are
 * refused (reason no-proxy). Once a resolver has been registered
 * (EGD_PROXY_F_DNS, never cleared), DNS is never let through unsteered. */
#define EGD_PROXY_F_DNS 0x1

struct egd_proxy_conf {
	__u16 port;     /* host order; TCP web ports go here */
	__u16 dns_port; /* host order; UDP and TCP port 53 go here */
	__u32 flags;    /* EGD_PROXY_F_* */
};

/* What the proxy needs to know about a steered connection: written by
 * connect4/6 into egd_orig_by_cookie (client socket cookie), copied by the
 * sockops TCP_CONNECT_CB into egd_orig_by_port (key: the client's local
 * address as the proxy's accept() sees it). */
struct egd_orig {
	__u8 daddr[16];       /* as the client gave it, network order; 4 bytes for AF_INET */
	__u16 dport;          /* host order */
	__u16 family;         /* AF_INET / AF_INET6 of the client's socket call */
	__u32 pid;            /* thread id */
	__u32 tgid;
	__u32 uid;
	__u64 cgroup_id;
	__u64 sock_cookie;
	char comm[EGD_COMM_LEN];
};

struct egd_port_key {
	__u64 netns_cookie;   /* bpf_get_netns_cookie() == SO_NETNS_COOKIE */
	__u32 addr[4];        /* network order; IPv4 (also v4-mapped) in addr[0], rest zero */
	__u16 port;           /* host order */
	__u16 family;         /* AF_INET (also for v4-mapped) or AF_INET6 */
	__u32 _pad;
};

#define EGD_ORIG_MAX_ENTRIES 65536

/* ---- UDP sockets connected to a refused peer ------------------------------ */
/* egd_udp_peer (socket-local storage, BPF_MAP_TYPE_SK_STORAGE): a UDP
 * connect() the policy refuses is let through, so the kernel's own route
 * lookup answers getaddrinfo()'s RFC 6724 probe (ENETUNREACH included), and
 * the socket is marked with the decision. skb_egress drops every datagram of
 * a marked socket that goes to its connected peer (the sender gets EPERM) and
 * records the event then, with this reason and destination. Every UDP
 * connect4/6 rewrites or deletes the mark, so it follows the current peer. */
struct egd_udp_mark {
	__u8 daddr[16];       /* as the client gave it to connect(), network order; 4 bytes for AF_INET */
	__u16 dport;          /* host order */
	__u16 family;         /* AF_INET / AF_INET6 of the connect() */
	__u16 reason;         /* egd_reason of the refusal */
	__u8 verdict;         /* at the connect; skb_egress applies the mode current at each send */
	__u8 category;        /* egd_category of the judged address */
	__u32 rule_id;        /* CIDR rule that decided, 0 if none */
	__u32 judged_addr4;   /* as egd_event.judged_addr4 */
	__u8 reported;        /* audit mode: the one event of this mark was recorded */
	__u8 _pad[3];
};

/* egd_meta[0]: what userspace needs to describe an attachment; not read by BPF. */
#define EGD_PATH_MAX 256
struct egd_meta {
	__u32 abi_version;
	__u32 gen;
	__u64 cgroup_id;
	__u64 attached_at_unix_ns;   /* first attach */
	__u64 policy_loaded_unix_ns; /* last successful policy swap */
	__u64 policy_hash;           /* FNV-1a of the policy file's bytes */
	__u32 n_allow_cidrs;
	__u32 n_deny_cidrs;
	__u32 n_host_rules;
	__u32 reattached;            /* times moved to a recreated cgroup at cgroup_path */
	char cgroup_path[EGD_PATH_MAX];
	char policy_path[EGD_PATH_MAX];
};

/* ---- counters ------------------------------------------------------------ */
/* egd_stats is a per-CPU array: slot verdict * EGD_REASON__COUNT + reason,
 * then the ring-drop counter. */
#define EGD_STAT_RING_DROPS ((int)EGD_VERDICT__COUNT * (int)EGD_REASON__COUNT)
#define EGD_STAT__COUNT (EGD_STAT_RING_DROPS + 1)

/* ---- events ---------------------------------------------------------------- */

struct egd_event {
	__u64 boot_ns;        /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;      /* the task's cgroup (leaf), not the attach point */
	__u64 sock_cookie;
	__u32 pid;            /* thread id */
	__u32 tgid;           /* process id */
	__u32 uid;
	__u32 rule_id;        /* CIDR rule that decided, 0 if none */
	char comm[EGD_COMM_LEN];
	__u8 daddr[16];       /* as the program saw it: 4 bytes for AF_INET, 16 for AF_INET6; network order */
	__u16 dport;          /* host order */
	__u16 family;         /* AF_INET / AF_INET6 as the socket call gave it */
	__u16 reason;         /* egd_reason */
	__u16 protocol;       /* IPPROTO_*; 16 bits: IPPROTO_MPTCP is 262 */
	__u8 verdict;         /* egd_verdict */
	__u8 hook;            /* egd_hook */
	__u8 sock_type;       /* SOCK_* */
	__u8 category;        /* egd_category of the judged address */
	__u32 judged_addr4;   /* the IPv4 a v4-embedding v6 address was judged as; network order; 0 if none */
};

#define EGD_RINGBUF_BYTES (1u << 20)
/* Producers do not wake the consumer per event (a wakeup costs the denied
 * caller microseconds, and an agent may retry in a tight loop): they wake it
 * once this much is unread, and the consumer polls every EGD_EVENT_POLL_MS. */
#define EGD_RING_WAKEUP_BYTES (64u * 1024)
#define EGD_EVENT_POLL_MS 50
#define EGD_LPM_MAX_ENTRIES (1u << 20)

#endif /* EGRESSD_ABI_H */
