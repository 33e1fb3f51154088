// The mode of a cgroup egressd creates does not depend on its umask (the
// unit's UMask=0077): sessions running as a user read their cgroup's files
// below it. Exercised on a plain directory tree, which ensure_cgroup_dir
// creates the same way.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/cgroup.h"

namespace egressd {
namespace {

class CgroupMode : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egd-cgmode-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    old_umask_ = umask(0077);
  }
  void TearDown() override {
    umask(old_umask_);
    rmdir((dir_ + "/a.slice/a-b.slice").c_str());
    rmdir((dir_ + "/a.slice").c_str());
    rmdir(dir_.c_str());
  }
  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
  }
  std::string dir_;
  mode_t old_umask_ = 0;
};

TEST_F(CgroupMode, CreatedDirectoriesAre0755UnderUmask0077) {
  ASSERT_TRUE(ensure_cgroup_dir(dir_ + "/a.slice/a-b.slice"));
  EXPECT_EQ(mode_of(dir_ + "/a.slice"), 0755u);
  EXPECT_EQ(mode_of(dir_ + "/a.slice/a-b.slice"), 0755u);
}

TEST_F(CgroupMode, AnExistingDirectoryKeepsItsMode) {
  ASSERT_EQ(mkdir((dir_ + "/a.slice").c_str(), 0700), 0);
  ASSERT_TRUE(ensure_cgroup_dir(dir_ + "/a.slice"));
  EXPECT_EQ(mode_of(dir_ + "/a.slice"), 0700u);  // not ours to change
}

}  // namespace
}  // namespace egressd
