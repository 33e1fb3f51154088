// Test detach's record of a cgroup it left unfenced: it reads back as
// written, and a damaged one is refused rather than half-read (pure).
#include <gtest/gtest.h>

#include "attachment/detached_record.h"

namespace egressd::attachment {
namespace {

TEST(DetachedRecord, RoundTrip) {
  DetachedRecord r{"/sys/fs/cgroup/claude.slice", 4243, 1764524402000000000ull, "/etc/egressd/policy.toml"};
  std::string text = format_detached_record(r);
  EXPECT_EQ(text, "path=/sys/fs/cgroup/claude.slice\ncgroup_id=4243\ndetached_at_ns=1764524402000000000\n"
                  "policy=/etc/egressd/policy.toml\n");
  auto back = parse_detached_record(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->path, r.path);
  EXPECT_EQ(back->cgroup_id, r.cgroup_id);
  EXPECT_EQ(back->detached_unix_ns, r.detached_unix_ns);
  EXPECT_EQ(back->policy, r.policy);
  // A key from a later egressd is ignored; the policy may be unknown.
  back = parse_detached_record("path=/sys/fs/cgroup/a b\ncgroup_id=7\ndetached_at_ns=1\nlater=x\npolicy=\n");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->path, "/sys/fs/cgroup/a b");
  EXPECT_EQ(back->policy, "");
}

TEST(DetachedRecord, DamagedIsRefused) {
  for (const char* bad : {"", "path=/x\ncgroup_id=7\n", "path=x\ncgroup_id=7\ndetached_at_ns=1\n",
                          "path=/x\ncgroup_id=0\ndetached_at_ns=1\n", "path=/x\ncgroup_id=-7\ndetached_at_ns=1\n",
                          "path=/x\ncgroup_id=7x\ndetached_at_ns=1\n", "path=/x\ncgroup_id=7\ndetached_at_ns=1\njunk\n",
                          "path=/x\ncgroup_id=99999999999999999999999\ndetached_at_ns=1\n"}) {
    EXPECT_FALSE(parse_detached_record(bad)) << bad;
  }
}

}  // namespace
}  // namespace egressd::attachment
