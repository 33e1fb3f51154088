/* bpf_helpers.h for userspace: found before libbpf's by the differential
 * test only, so bpf/decide.bpf.h compiles unchanged as C. Map definitions
 * become plain globals; bpf_map_lookup_elem is kernel_decide.c's, over the
 * entries the policy compiler produced. The event helpers are declared for
 * the compiler only: the test never calls them. */
#ifndef EGD_TEST_BPF_HELPERS_H
#define EGD_TEST_BPF_HELPERS_H

#include <linux/types.h>

#define SEC(name)
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htonl(x) __builtin_bswap32(x)
#define bpf_ntohs(x) __builtin_bswap16(x)
#else
#define bpf_htonl(x) (x)
#define bpf_ntohs(x) (x)
#endif

void *bpf_map_lookup_elem(void *map, const void *key);
void *bpf_ringbuf_reserve(void *ringbuf, __u64 size, __u64 flags);
void bpf_ringbuf_submit(void *data, __u64 flags);
__u64 bpf_ringbuf_query(void *ringbuf, __u64 flags);
__u64 bpf_get_current_pid_tgid(void);
__u64 bpf_ktime_get_boot_ns(void);
__u64 bpf_get_current_cgroup_id(void);
__u64 bpf_get_current_uid_gid(void);
long bpf_get_current_comm(void *buf, __u32 size);

#endif
