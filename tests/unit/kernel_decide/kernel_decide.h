/* kernel_decide.h: bpf/decide.bpf.h's egd_decide, compiled for userspace
 * (kernel_decide.c), composed over an address as the sock_addr hooks do.
 * The C++ side provides the LPM lookups over the compiled map entries. */
#ifndef EGD_TEST_KERNEL_DECIDE_H
#define EGD_TEST_KERNEL_DECIDE_H

#include <linux/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct egd_config;

enum egd_test_map { EGD_TEST_ALLOW4, EGD_TEST_ALLOW6, EGD_TEST_DENY4, EGD_TEST_DENY6 };

/* The value of the longest prefix among `map`'s entries matching `key`
 * (an egd_lpm4_key / egd_lpm6_key), or null: the LPM trie's answer. */
const void *egd_test_lpm(enum egd_test_map map, const void *key);

/* The policy in force: egd_active[0] = gen, egd_config[gen & 1] = *config. */
void egd_test_set_config(__u32 gen, const struct egd_config *config);

struct egd_test_verdict {
	__u32 verdict, reason, rule_id;
};

/* `addr` as the hook's context holds it (network order; IPv4 in addr[0]). */
struct egd_test_verdict egd_test_decide(int v6, const __u32 addr[4], __u16 port, __u8 proto_bit);

#ifdef __cplusplus
}
#endif

#endif
