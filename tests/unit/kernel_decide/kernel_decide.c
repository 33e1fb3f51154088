/* kernel_decide.c: the kernel's decision, compiled from bpf/decide.bpf.h
 * unchanged, with bpf/bpf_helpers.h replaced (see there). */
#include "decide.bpf.h"
#include "kernel_decide.h"

static __u32 active_gen;
static const struct egd_config *active_config;

void egd_test_set_config(__u32 gen, const struct egd_config *config)
{
	active_gen = gen;
	active_config = config;
}

void *bpf_map_lookup_elem(void *map, const void *key)
{
	if (map == &egd_active)
		return *(const __u32 *)key == 0 ? &active_gen : 0;
	if (map == &egd_config)
		return *(const __u32 *)key == (active_gen & 1) ? (void *)active_config : 0;
	if (map == &egd_allow4)
		return (void *)egd_test_lpm(EGD_TEST_ALLOW4, key);
	if (map == &egd_allow6)
		return (void *)egd_test_lpm(EGD_TEST_ALLOW6, key);
	if (map == &egd_deny4)
		return (void *)egd_test_lpm(EGD_TEST_DENY4, key);
	if (map == &egd_deny6)
		return (void *)egd_test_lpm(EGD_TEST_DENY6, key);
	return 0;
}

/* What egd_sock_addr (bpf/egressd.bpf.c) passes to egd_decide: an IPv6
 * address that embeds an IPv4 one (v4-mapped, v4-compatible, NAT64, 6to4)
 * is judged as that IPv4; a translated form (all but v4-mapped) that is
 * allowed so is judged again as IPv6, whose denial wins. */
struct egd_test_verdict egd_test_decide(int v6, const __u32 addr[4], __u16 port, __u8 proto_bit)
{
	struct egd_target t = {};
	struct egd_decision d = {};
	struct egd_test_verdict out;
	__u32 gen = 0;
	int embed = EGD_EMBED_NONE;

	t.port = port;
	t.proto_bit = proto_bit;
	if (v6) {
		__u32 given[4] = {addr[0], addr[1], addr[2], addr[3]};
		embed = egd_embedded_v4(given, &t.v4);
		t.is_v4 = embed != EGD_EMBED_NONE;
		for (int i = 0; i < 4; i++)
			t.v6[i] = given[i];
	} else {
		t.v4 = addr[0];
		t.is_v4 = 1;
	}
	const struct egd_config *cfg = egd_current_config(&gen);
	if (!cfg) {
		d.verdict = EGD_VERDICT_DENY;
		d.reason = EGD_REASON_INTERNAL;
	} else {
		egd_decide(cfg, gen, &t, &d);
		if (embed == EGD_EMBED_TRANSLATED && d.verdict == EGD_VERDICT_ALLOW) {
			struct egd_decision d6 = {};
			t.is_v4 = 0;
			egd_decide(cfg, gen, &t, &d6);
			if (d6.verdict == EGD_VERDICT_DENY)
				d = d6;
		}
	}
	out.verdict = d.verdict;
	out.reason = d.reason;
	out.rule_id = d.rule_id;
	return out;
}
