// Test that every struct in bpf/egressd_abi.h has the same size and member
// offsets in the compiled BPF object (its BTF) as in C++: the two sides
// include one header, but they are different compilers and targets.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "egressd_abi.h"

namespace {

struct Member {
  const char* name;
  size_t offset;
};

struct Layout {
  const char* type;
  size_t size;
  std::vector<Member> members;
};

#define M(type, field) Member{#field, offsetof(type, field)}
#define LAYOUT(type, ...) Layout{#type, sizeof(type), {__VA_ARGS__}}

// Every struct the object shares with userspace, as C++ sees it.
const std::vector<Layout>& layouts() {
  static const std::vector<Layout> all = {
      LAYOUT(egd_event, M(egd_event, boot_ns), M(egd_event, cgroup_id), M(egd_event, sock_cookie), M(egd_event, pid),
             M(egd_event, tgid), M(egd_event, uid), M(egd_event, rule_id), M(egd_event, comm), M(egd_event, daddr),
             M(egd_event, dport), M(egd_event, family), M(egd_event, reason), M(egd_event, protocol),
             M(egd_event, verdict), M(egd_event, hook), M(egd_event, sock_type), M(egd_event, category),
             M(egd_event, judged_addr4)),
      LAYOUT(egd_lpm4_key, M(egd_lpm4_key, prefixlen), M(egd_lpm4_key, gen), M(egd_lpm4_key, addr)),
      LAYOUT(egd_lpm6_key, M(egd_lpm6_key, prefixlen), M(egd_lpm6_key, gen), M(egd_lpm6_key, addr)),
      LAYOUT(egd_port_range, M(egd_port_range, lo), M(egd_port_range, hi), M(egd_port_range, proto_mask),
             M(egd_port_range, _pad)),
      LAYOUT(egd_cidr_rule, M(egd_cidr_rule, rule_id), M(egd_cidr_rule, nranges), M(egd_cidr_rule, proto_mask),
             M(egd_cidr_rule, _pad), M(egd_cidr_rule, ranges)),
      LAYOUT(egd_config, M(egd_config, gen), M(egd_config, category_action), M(egd_config, events_all),
             M(egd_config, audit), M(egd_config, _pad), M(egd_config, tcp_ports), M(egd_config, udp_ports)),
      LAYOUT(egd_meta, M(egd_meta, abi_version), M(egd_meta, gen), M(egd_meta, cgroup_id),
             M(egd_meta, attached_at_unix_ns), M(egd_meta, policy_loaded_unix_ns), M(egd_meta, policy_hash),
             M(egd_meta, n_allow_cidrs), M(egd_meta, n_deny_cidrs), M(egd_meta, n_host_rules), M(egd_meta, reattached),
             M(egd_meta, cgroup_path), M(egd_meta, policy_path)),
      LAYOUT(egd_proxy_conf, M(egd_proxy_conf, port), M(egd_proxy_conf, dns_port), M(egd_proxy_conf, flags)),
      LAYOUT(egd_orig, M(egd_orig, daddr), M(egd_orig, dport), M(egd_orig, family), M(egd_orig, pid),
             M(egd_orig, tgid), M(egd_orig, uid), M(egd_orig, cgroup_id), M(egd_orig, sock_cookie), M(egd_orig, comm)),
      LAYOUT(egd_udp_mark, M(egd_udp_mark, daddr), M(egd_udp_mark, dport), M(egd_udp_mark, family),
             M(egd_udp_mark, reason), M(egd_udp_mark, verdict), M(egd_udp_mark, category), M(egd_udp_mark, rule_id),
             M(egd_udp_mark, judged_addr4), M(egd_udp_mark, reported), M(egd_udp_mark, _pad)),
      LAYOUT(egd_port_key, M(egd_port_key, netns_cookie), M(egd_port_key, addr), M(egd_port_key, port),
             M(egd_port_key, family), M(egd_port_key, _pad)),
  };
  return all;
}

class AbiLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    btf_ = btf__parse_elf(EGRESSD_BPF_OBJECT, nullptr);
    ASSERT_NE(btf_, nullptr) << "cannot read BTF of " << EGRESSD_BPF_OBJECT;
  }
  void TearDown() override { btf__free(btf_); }

  btf* btf_ = nullptr;
};

TEST_F(AbiLayout, EveryStructMatchesTheObject) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(l.type);
    int id = btf__find_by_name_kind(btf_, l.type, BTF_KIND_STRUCT);
    ASSERT_GT(id, 0) << "struct " << l.type << " is not in the BPF object's BTF";
    const btf_type* t = btf__type_by_id(btf_, id);
    EXPECT_EQ(static_cast<size_t>(t->size), l.size) << "sizeof(struct " << l.type << ")";
    ASSERT_EQ(btf_vlen(t), l.members.size()) << "member count of struct " << l.type;
    const btf_member* m = btf_members(t);
    for (size_t i = 0; i < l.members.size(); ++i) {
      EXPECT_STREQ(btf__name_by_offset(btf_, m[i].name_off), l.members[i].name);
      EXPECT_EQ(btf_member_bit_offset(t, static_cast<__u32>(i)) / 8, l.members[i].offset) << l.members[i].name;
    }
  }
}

// Test that no struct of the ABI goes unchecked: every egd_* struct in the
// object's BTF has a layout above.
TEST_F(AbiLayout, EveryStructOfTheObjectIsChecked) {
  std::set<std::string> in_object, checked;
  for (__u32 id = 1; id < btf__type_cnt(btf_); ++id) {
    const btf_type* t = btf__type_by_id(btf_, id);
    std::string name = btf__name_by_offset(btf_, t->name_off);
    if (btf_is_struct(t) && name.rfind("egd_", 0) == 0) in_object.insert(name);
  }
  for (const Layout& l : layouts()) checked.insert(l.type);
  EXPECT_EQ(in_object, checked);
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
