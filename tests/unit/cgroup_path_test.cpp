// Test how --cgroup arguments and mountinfo are resolved (pure functions).
#include <gtest/gtest.h>

#include "common/cgroup.h"

namespace egressd {
namespace {

const std::string kRoot = "/sys/fs/cgroup";

TEST(SlicePath, NestedSlicesFollowSystemdNaming) {
  EXPECT_EQ(*slice_path("claude.slice"), "claude.slice");
  EXPECT_EQ(*slice_path("a-b.slice"), "a.slice/a-b.slice");
  EXPECT_EQ(*slice_path("a-b-c.slice"), "a.slice/a-b.slice/a-b-c.slice");
  EXPECT_EQ(*slice_path("-.slice"), "");
}

TEST(SlicePath, EscapesLikeSystemd) {
  // What systemd 252 reported as ControlGroup for these slices.
  EXPECT_EQ(*slice_path("cpu.slice"), "_cpu.slice");
  EXPECT_EQ(*slice_path("io-x.slice"), "_io.slice/io-x.slice");
  EXPECT_EQ(*slice_path("cgroup.slice"), "_cgroup.slice");
  EXPECT_EQ(*slice_path("cpuset.slice"), "_cpuset.slice");
  EXPECT_EQ(*slice_path("bpf-firewall.slice"), "bpf.slice/_bpf-firewall.slice");
  EXPECT_EQ(*slice_path("tasks.slice"), "tasks.slice");
  EXPECT_EQ(*slice_path("pidsx.slice"), "pidsx.slice");
  EXPECT_EQ(cgroup_escape("tasks"), "_tasks");
  EXPECT_EQ(cgroup_escape("_x"), "__x");
}

TEST(SlicePath, RejectsInvalidNames) {
  EXPECT_FALSE(slice_path("a--b.slice").ok());
  EXPECT_FALSE(slice_path("-a.slice").ok());
  EXPECT_FALSE(slice_path("a-.slice").ok());
  EXPECT_FALSE(slice_path("claude.service").ok());
}

TEST(ResolveCgroup, AcceptsTheThreeForms) {
  EXPECT_EQ(*resolve_cgroup_arg("/sys/fs/cgroup/claude.slice", kRoot), "/sys/fs/cgroup/claude.slice");
  EXPECT_EQ(*resolve_cgroup_arg("claude.slice", kRoot), "/sys/fs/cgroup/claude.slice");
  EXPECT_EQ(*resolve_cgroup_arg("user-agents.slice", kRoot), "/sys/fs/cgroup/user.slice/user-agents.slice");
  EXPECT_EQ(*resolve_cgroup_arg("agents/session1", kRoot), "/sys/fs/cgroup/agents/session1");
  EXPECT_EQ(*resolve_cgroup_arg("agents//session1/", kRoot), "/sys/fs/cgroup/agents/session1");
  EXPECT_EQ(*resolve_cgroup_arg("/sys/fs/cgroup//agents/./session1/", kRoot), "/sys/fs/cgroup/agents/session1");
}

TEST(ResolveCgroup, RefusesAbsolutePathsOutsideTheMount) {
  // Hybrid host: cgroup2 at /sys/fs/cgroup/unified. /sys/fs/cgroup/X is a
  // directory of the tmpfs (or a v1 hierarchy): processes there would run
  // unfenced, so it must not be taken as relative to the mount.
  const std::string hybrid = "/sys/fs/cgroup/unified";
  auto r = resolve_cgroup_arg("/sys/fs/cgroup/X", hybrid);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not under the cgroup2 mount /sys/fs/cgroup/unified"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(resolve_cgroup_arg("/sys/fs/cgroup/unifiedX/a", hybrid).ok());
  EXPECT_FALSE(resolve_cgroup_arg("/agents/session1", kRoot).ok());  // a leading '/' means absolute
  EXPECT_EQ(*resolve_cgroup_arg("/sys/fs/cgroup/unified/X", hybrid), "/sys/fs/cgroup/unified/X");
  EXPECT_EQ(*resolve_cgroup_arg("X", hybrid), "/sys/fs/cgroup/unified/X");
}

TEST(CgroupBelow, JoinsControlGroupsAndRefusesTheRoot) {
  EXPECT_EQ(*cgroup_below(kRoot, "/claude.slice/run-r1.scope", "u"), "/sys/fs/cgroup/claude.slice/run-r1.scope");
  EXPECT_FALSE(cgroup_below(kRoot, "/", "u").ok());
  EXPECT_FALSE(cgroup_below(kRoot, "", "u").ok());
  EXPECT_FALSE(cgroup_below(kRoot, "/a/../b", "u").ok());
}

TEST(ResolveCgroup, RejectsRootAndEscapes) {
  EXPECT_FALSE(resolve_cgroup_arg("", kRoot).ok());
  EXPECT_FALSE(resolve_cgroup_arg("/", kRoot).ok());
  EXPECT_NE(resolve_cgroup_arg("//", kRoot).error().message().find("root cgroup"), std::string::npos);
  EXPECT_FALSE(resolve_cgroup_arg("/sys/fs/cgroup", kRoot).ok());
  EXPECT_FALSE(resolve_cgroup_arg("-.slice", kRoot).ok());
  EXPECT_FALSE(resolve_cgroup_arg("a/../../etc", kRoot).ok());
  auto r = resolve_cgroup_arg("/sys/fs/cgroup/../cgroup/x", kRoot);
  EXPECT_FALSE(r.ok());
}

TEST(PathWithin, ComponentBoundaries) {
  EXPECT_TRUE(path_within("/a/b", "/a"));
  EXPECT_TRUE(path_within("/a", "/a"));
  EXPECT_FALSE(path_within("/ab", "/a"));
  EXPECT_TRUE(path_within("/a/b", "/"));
}

TEST(Cgroup2Mount, FindsTheUnifiedHierarchy) {
  const char* hybrid =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(*cgroup2_mount_from(hybrid), "/sys/fs/cgroup/unified");
  const char* unified = "36 25 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
  EXPECT_EQ(*cgroup2_mount_from(unified), "/sys/fs/cgroup");
}

TEST(Cgroup2Mount, IgnoresSubtreeBindMountsAndReportsAbsence) {
  const char* bind = "50 25 0:30 /machine.slice /mnt/cg rw - cgroup2 cgroup2 rw\n";
  auto r = cgroup2_mount_from(bind);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("cgroup2 is not mounted"), std::string::npos);
  EXPECT_EQ(*cgroup2_mount_from("60 25 0:40 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"), "/mnt/my cg");
}

}  // namespace
}  // namespace egressd
