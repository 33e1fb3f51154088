// Test that every struct in bpf/egressd_abi.h has the same size and member
// offsets in the compiled BPF object (its BTF) as in C++: the two sides
// include one header, but they are different compilers and targets.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "egressd_abi.h"

namespace {

struct Member {
  const char* name;
  size_t offset;
};

class AbiLayout : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { btf_ = btf__parse_elf(EGRESSD_BPF_OBJECT, nullptr); }
  static void TearDownTestSuite() { btf__free(btf_); }

  void expect_layout(const char* type, size_t size, const std::vector<Member>& members) {
    ASSERT_NE(btf_, nullptr) << "cannot read BTF of " << EGRESSD_BPF_OBJECT;
    int id = btf__find_by_name_kind(btf_, type, BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << "struct " << type << " is not in the BPF object's BTF";
    const btf_type* t = btf__type_by_id(btf_, id);
    EXPECT_EQ(static_cast<size_t>(t->size), size) << "sizeof(struct " << type << ")";
    ASSERT_EQ(btf_vlen(t), members.size()) << "member count of struct " << type;
    const btf_member* m = btf_members(t);
    for (size_t i = 0; i < members.size(); ++i) {
      EXPECT_STREQ(btf__name_by_offset(btf_, m[i].name_off), members[i].name) << type;
      EXPECT_EQ(btf_member_bit_offset(t, static_cast<__u32>(i)) / 8, members[i].offset)
          << type << "." << members[i].name;
    }
  }

  static btf* btf_;
};

btf* AbiLayout::btf_ = nullptr;

#define M(type, field) Member{#field, offsetof(type, field)}

TEST_F(AbiLayout, Event) {
  expect_layout("egd_event", sizeof(egd_event),
                {M(egd_event, boot_ns), M(egd_event, cgroup_id), M(egd_event, sock_cookie), M(egd_event, pid),
                 M(egd_event, tgid), M(egd_event, uid), M(egd_event, rule_id), M(egd_event, comm),
                 M(egd_event, daddr), M(egd_event, dport), M(egd_event, family), M(egd_event, reason),
                 M(egd_event, protocol), M(egd_event, verdict), M(egd_event, hook), M(egd_event, sock_type),
                 M(egd_event, category), M(egd_event, judged_addr4)});
}

TEST_F(AbiLayout, LpmKeys) {
  expect_layout("egd_lpm4_key", sizeof(egd_lpm4_key),
                {M(egd_lpm4_key, prefixlen), M(egd_lpm4_key, gen), M(egd_lpm4_key, addr)});
  expect_layout("egd_lpm6_key", sizeof(egd_lpm6_key),
                {M(egd_lpm6_key, prefixlen), M(egd_lpm6_key, gen), M(egd_lpm6_key, addr)});
}

TEST_F(AbiLayout, CidrRule) {
  expect_layout("egd_port_range", sizeof(egd_port_range),
                {M(egd_port_range, lo), M(egd_port_range, hi), M(egd_port_range, proto_mask),
                 M(egd_port_range, _pad)});
  expect_layout("egd_cidr_rule", sizeof(egd_cidr_rule),
                {M(egd_cidr_rule, rule_id), M(egd_cidr_rule, nranges), M(egd_cidr_rule, proto_mask),
                 M(egd_cidr_rule, _pad), M(egd_cidr_rule, ranges)});
}

TEST_F(AbiLayout, Config) {
  expect_layout("egd_config", sizeof(egd_config),
                {M(egd_config, gen), M(egd_config, category_action), M(egd_config, events_all), M(egd_config, audit),
                 M(egd_config, _pad),
                 M(egd_config, tcp_ports), M(egd_config, udp_ports)});
}

TEST_F(AbiLayout, Meta) {
  expect_layout("egd_meta", sizeof(egd_meta),
                {M(egd_meta, abi_version), M(egd_meta, gen), M(egd_meta, cgroup_id), M(egd_meta, attached_at_unix_ns),
                 M(egd_meta, policy_loaded_unix_ns), M(egd_meta, policy_hash), M(egd_meta, n_allow_cidrs),
                 M(egd_meta, n_deny_cidrs), M(egd_meta, n_host_rules), M(egd_meta, reattached), M(egd_meta, cgroup_path),
                 M(egd_meta, policy_path)});
}

TEST_F(AbiLayout, ProxySteering) {
  expect_layout("egd_proxy_conf", sizeof(egd_proxy_conf),
                {M(egd_proxy_conf, port), M(egd_proxy_conf, dns_port), M(egd_proxy_conf, flags)});
  expect_layout("egd_orig", sizeof(egd_orig),
                {M(egd_orig, daddr), M(egd_orig, dport), M(egd_orig, family), M(egd_orig, pid), M(egd_orig, tgid),
                 M(egd_orig, uid), M(egd_orig, cgroup_id), M(egd_orig, sock_cookie), M(egd_orig, comm)});
  expect_layout("egd_udp_mark", sizeof(egd_udp_mark),
                {M(egd_udp_mark, daddr), M(egd_udp_mark, dport), M(egd_udp_mark, family), M(egd_udp_mark, reason),
                 M(egd_udp_mark, verdict), M(egd_udp_mark, category), M(egd_udp_mark, rule_id),
                 M(egd_udp_mark, judged_addr4), M(egd_udp_mark, reported), M(egd_udp_mark, _pad)});
  expect_layout("egd_port_key", sizeof(egd_port_key),
                {M(egd_port_key, netns_cookie), M(egd_port_key, addr), M(egd_port_key, port),
                 M(egd_port_key, family), M(egd_port_key, _pad)});
}

// The sizes are part of the pinned-map contract: changing one needs an
// EGD_ABI_VERSION bump, which this test makes a conscious edit.
TEST(AbiVersion, SizesMatchVersion) {
  static_assert(EGD_ABI_VERSION == 3);
  // egd_stats has a slot per verdict and reason: a new reason changes its shape.
  EXPECT_EQ(static_cast<int>(EGD_REASON__COUNT), 44);
  EXPECT_EQ(sizeof(egd_event), 88u);
  EXPECT_EQ(sizeof(egd_cidr_rule), 136u);
  EXPECT_EQ(sizeof(egd_config), 16400u);
  EXPECT_EQ(sizeof(egd_meta), 568u);
  EXPECT_EQ(sizeof(egd_proxy_conf), 8u);
  EXPECT_EQ(sizeof(egd_orig), 64u);
  EXPECT_EQ(sizeof(egd_port_key), 32u);
  EXPECT_EQ(sizeof(egd_udp_mark), 36u);
}

}  // namespace
