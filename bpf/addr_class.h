/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * addr_class.h: pure address classification, shared by the hooks and the
 * unit tests. It calls no BPF helper, so GoogleTest compiles the very code
 * the kernel runs (tests/unit/addr_class_test.cpp).
 *
 * All addresses are in network byte order, as the sock_addr context holds
 * them.
 */
#ifndef EGRESSD_ADDR_CLASS_H
#define EGRESSD_ADDR_CLASS_H

#include <linux/types.h>
#include "egressd_abi.h"

#ifndef EGD_INLINE
#define EGD_INLINE static inline __attribute__((always_inline))
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define egd_ntohl(x) __builtin_bswap32(x)
#define egd_htonl(x) __builtin_bswap32(x)
#else
#define egd_ntohl(x) (x)
#define egd_htonl(x) (x)
#endif

/* Category of an IPv4 address (network order). */
EGD_INLINE __u32 egd_classify4(__u32 addr_be)
{
	__u32 a = egd_ntohl(addr_be);

	if (a == 0)                          /* 0.0.0.0 connects to the local host */
		return EGD_CAT_LOOPBACK;
	if ((a >> 24) == 127)
		return EGD_CAT_LOOPBACK;
	if ((a >> 24) == 0)                  /* 0/8 "this network" */
		return EGD_CAT_RESERVED;
	if ((a >> 24) == 10 ||               /* 10/8 */
	    (a >> 20) == 0xac1 ||            /* 172.16/12 */
	    (a >> 16) == 0xc0a8 ||           /* 192.168/16 */
	    (a >> 22) == (0x6440 >> 6))      /* 100.64/10 CGNAT */
		return EGD_CAT_PRIVATE;
	if ((a >> 16) == 0xa9fe ||           /* 169.254/16 */
	    a == 0xa83f8110u)                /* 168.63.129.16: Azure's host endpoint (WireServer, metadata) */
		return EGD_CAT_LINK_LOCAL;
	if (a == 0xffffffffu)
		return EGD_CAT_BROADCAST;
	if ((a >> 28) == 0xe)                /* 224/4 */
		return EGD_CAT_MULTICAST;
	if ((a >> 28) == 0xf ||              /* 240/4 */
	    (a >> 8) == 0xc00000 ||          /* 192.0.0/24: IETF protocol assignments (DS-Lite, NAT64 discovery) */
	    (a >> 17) == (0xc612 >> 1))      /* 198.18/15: benchmarking, often host-internal */
		return EGD_CAT_RESERVED;
	return EGD_CAT_PUBLIC;
}

/*
 * If an IPv6 address (network order) reaches an IPv4 host, store that IPv4
 * (network order) in *v4 and say how:
 *  EGD_EMBED_MAPPED      ::ffff:a.b.c.d: the kernel sends IPv4; judged as IPv4 only.
 *  EGD_EMBED_TRANSLATED  v4-translated ::ffff:0:a.b.c.d, v4-compatible ::a.b.c.d,
 *                        NAT64 64:ff9b::/96, 6to4 2002:AABB:CCDD::/48: IPv6 on the
 *                        wire that a translator or relay turns into IPv4. Judged
 *                        both as that IPv4 and as the IPv6 it is, stricter wins.
 * :: and ::1 are not v4-compatible: they are the v6 unspecified and loopback
 * addresses and egd_classify6 handles them.
 */
enum egd_embed { EGD_EMBED_NONE = 0, EGD_EMBED_MAPPED = 1, EGD_EMBED_TRANSLATED = 2 };

EGD_INLINE int egd_embedded_v4(const __u32 a_be[4], __u32 *v4)
{
	__u32 w0 = egd_ntohl(a_be[0]), w1 = egd_ntohl(a_be[1]);
	__u32 w2 = egd_ntohl(a_be[2]), w3 = egd_ntohl(a_be[3]);

	if (w0 == 0 && w1 == 0) {
		if (w2 == 0xffff) {                       /* v4-mapped */
			*v4 = a_be[3];
			return EGD_EMBED_MAPPED;
		}
		if (w2 == 0xffff0000u || (w2 == 0 && w3 > 1)) { /* translated, compatible */
			*v4 = a_be[3];
			return EGD_EMBED_TRANSLATED;
		}
		return EGD_EMBED_NONE;
	}
	if (w0 == 0x0064ff9b && w1 == 0 && w2 == 0) {     /* NAT64 well-known prefix */
		*v4 = a_be[3];
		return EGD_EMBED_TRANSLATED;
	}
	if ((w0 >> 16) == 0x2002) {                       /* 6to4 */
		*v4 = egd_htonl((w0 << 16) | (w1 >> 16));
		return EGD_EMBED_TRANSLATED;
	}
	return EGD_EMBED_NONE;
}

/* Category of an IPv6 address that embeds no IPv4 (see egd_embedded_v4). */
EGD_INLINE __u32 egd_classify6(const __u32 a_be[4])
{
	__u32 w0 = egd_ntohl(a_be[0]), w1 = egd_ntohl(a_be[1]);
	__u32 w2 = egd_ntohl(a_be[2]), w3 = egd_ntohl(a_be[3]);

	if (w0 == 0 && w1 == 0 && w2 == 0 && w3 <= 1)     /* :: and ::1 */
		return EGD_CAT_LOOPBACK;
	if ((w0 >> 25) == (0xfc00 >> 9))                  /* fc00::/7 ULA */
		return EGD_CAT_PRIVATE;
	if ((w0 >> 22) == (0xfec0 >> 6))                  /* fec0::/10 site-local */
		return EGD_CAT_PRIVATE;
	if ((w0 >> 22) == (0xfe80 >> 6))                  /* fe80::/10 */
		return EGD_CAT_LINK_LOCAL;
	if ((w0 >> 24) == 0xff)                           /* ff00::/8 */
		return EGD_CAT_MULTICAST;
	/* Unroutable or translation forms we do not decode: local-use NAT64
	 * 64:ff9b:1::/48 (RFC 8215, any embedding) and the rest of ::/8
	 * (IPv4-compatible leftovers, ::ffff:0:0:0/96 variants). Judging them as
	 * reserved keeps them from being an IPv4 side door. */
	if (w0 == 0x0064ff9b && (w1 >> 16) == 0x0001)
		return EGD_CAT_RESERVED;
	/* The NAT64 prefix itself routes to a translator like any public
	 * address; what it embeds is judged as IPv4 (EGD_EMBED_TRANSLATED). */
	if (w0 == 0x0064ff9b && w1 == 0 && w2 == 0)
		return EGD_CAT_PUBLIC;
	if ((w0 >> 24) == 0)
		return EGD_CAT_RESERVED;
	return EGD_CAT_PUBLIC;
}

/* Reason code for denying an address of this category. */
EGD_INLINE __u32 egd_category_reason(__u32 cat)
{
	switch (cat) {
	case EGD_CAT_LOOPBACK: return EGD_REASON_LOOPBACK;
	case EGD_CAT_PRIVATE: return EGD_REASON_PRIVATE;
	case EGD_CAT_LINK_LOCAL: return EGD_REASON_LINK_LOCAL;
	case EGD_CAT_MULTICAST: return EGD_REASON_MULTICAST;
	case EGD_CAT_BROADCAST: return EGD_REASON_BROADCAST;
	case EGD_CAT_RESERVED: return EGD_REASON_RESERVED;
	default: return EGD_REASON_NONE;
	}
}

/* Does a CIDR rule admit this port/protocol? proto_bit is EGD_PROTO_*. */
EGD_INLINE int egd_rule_admits(const struct egd_cidr_rule *r, __u16 port, __u8 proto_bit)
{
	if (r->nranges == 0)
		return (r->proto_mask & proto_bit) != 0;
	for (int i = 0; i < EGD_MAX_PORT_RANGES; i++) {
		if (i >= r->nranges)
			break;
		if ((r->ranges[i].proto_mask & proto_bit) && port >= r->ranges[i].lo &&
		    port <= r->ranges[i].hi)
			return 1;
	}
	return 0;
}

#endif /* EGRESSD_ADDR_CLASS_H */
