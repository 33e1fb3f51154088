// Test who owns a cgroup egressd makes (pure), and that hand_over_new_cgroup
// applies it with the exact mode, on an ordinary directory tree standing in
// for cgroup2 (the e2e tier covers real cgroups: test_reattach.py).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/cgroup.h"

namespace egressd {
namespace {

TEST(CgroupHandover, DelegatedParentHandsItsOwnerOn) {
  EXPECT_EQ(cgroup_handover(FileOwner{1000, 1000}), (FileOwner{1000, 1000}));
  EXPECT_EQ(cgroup_handover(FileOwner{1000, 100}), (FileOwner{1000, 100}));
}

TEST(CgroupHandover, RootKeepsWhatRootsParentHolds) {
  EXPECT_FALSE(cgroup_handover(FileOwner{0, 0}).has_value());
  // A root-owned cgroup.procs with another group is not a delegation.
  EXPECT_FALSE(cgroup_handover(FileOwner{0, 1000}).has_value());
  EXPECT_FALSE(cgroup_handover(std::nullopt).has_value());
}

class HandoverTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egd-handover-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    parent_ = tmpl;
    child_ = parent_ + "/claude.slice";
    old_umask_ = umask(0077);  // the unit's UMask=: must not shape the cgroup
  }
  void TearDown() override {
    umask(old_umask_);
    for (const char* f : {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.max"})
      unlink((child_ + "/" + f).c_str());
    rmdir(child_.c_str());
    unlink((parent_ + "/cgroup.procs").c_str());
    rmdir(parent_.c_str());
  }
  void touch(const std::string& p) { std::ofstream(p) << ""; }
  // What mkdir on cgroup2 makes: the directory with the kernel's files in it.
  void make_child() {
    ASSERT_EQ(mkdir(child_.c_str(), 0755), 0);
    for (const char* f : {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.max"})
      touch(child_ + "/" + f);
  }
  struct stat st(const std::string& p) {
    struct stat s {};
    EXPECT_EQ(stat(p.c_str(), &s), 0) << p;
    return s;
  }
  std::string parent_, child_;
  mode_t old_umask_ = 0;
};

TEST_F(HandoverTree, ExactModeAndRootKeepsIt) {
  touch(parent_ + "/cgroup.procs");
  make_child();
  ASSERT_TRUE(hand_over_new_cgroup(child_, 0755).ok());
  EXPECT_EQ(st(child_).st_mode & 07777, 0755u) << "the umask shaped the mode";
  EXPECT_EQ(st(child_).st_uid, geteuid());
}

TEST_F(HandoverTree, DelegatedParentOwnerGetsTheDirectoryAndTheDelegatedFiles) {
  // As root: a parent delegated to 65534; otherwise our own (non-root) uid
  // stands for the user, the one chown a non-root process may do.
  uid_t user = geteuid() == 0 ? 65534 : geteuid();
  gid_t group = geteuid() == 0 ? 65534 : getegid();
  touch(parent_ + "/cgroup.procs");
  ASSERT_EQ(chown((parent_ + "/cgroup.procs").c_str(), user, group), 0);
  make_child();
  auto s = hand_over_new_cgroup(child_, 0750);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(st(child_).st_mode & 07777, 0750u);
  for (const std::string& p : {child_, child_ + "/cgroup.procs", child_ + "/cgroup.threads",
                               child_ + "/cgroup.subtree_control"}) {
    EXPECT_EQ(st(p).st_uid, user) << p;
    EXPECT_EQ(st(p).st_gid, group) << p;
  }
  // Only what a delegation hands over: the rest stays the kernel's (root's).
  if (geteuid() == 0) EXPECT_EQ(st(child_ + "/memory.max").st_uid, 0u);
}

}  // namespace
}  // namespace egressd
