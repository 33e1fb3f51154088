// Test the decisions that keep a fence on a cgroup path (pure), and the
// inotify watch that triggers them, on an ordinary temporary directory tree
// (inotify behaves the same on cgroup2; the e2e tier covers the real thing).
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/cgroup_watch.h"

namespace egressd {
namespace {

CgroupObservation obs(bool parent, std::optional<uint64_t> current, uint64_t fenced) {
  CgroupObservation o;
  o.parent_exists = parent;
  o.current_id = current;
  o.fenced_id = fenced;
  return o;
}

TEST(DecideRefence, FencedCgroupInPlaceNeedsNothing) {
  EXPECT_EQ(decide_refence(obs(true, 42, 42)), RefenceAction::kNone);
}

TEST(DecideRefence, RemovedDirectoryIsMadeAgain) {
  EXPECT_EQ(decide_refence(obs(true, std::nullopt, 42)), RefenceAction::kRecreate);
}

TEST(DecideRefence, SomeoneElsesNewCgroupIsAttachedAtOnce) {
  EXPECT_EQ(decide_refence(obs(true, 43, 42)), RefenceAction::kAttach);
}

CgroupObservation no_parent(std::string nearest, std::string delegated_top) {
  CgroupObservation o = obs(false, std::nullopt, 42);
  o.nearest_ancestor = std::move(nearest);
  o.delegated_top = std::move(delegated_top);
  return o;
}

TEST(DecideRefence, WithoutParentMakesTheChainAgain) {
  // systemctl stop team.slice removed team.slice/team-a.slice too: made
  // again at once, before a session can make systemd create it unfenced.
  EXPECT_EQ(decide_refence(no_parent("/sys/fs/cgroup", "")), RefenceAction::kRecreateChain);
  // Inside a user's delegated subtree that still exists: made again (handed over).
  const std::string user = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
  EXPECT_EQ(decide_refence(no_parent(user, user)), RefenceAction::kRecreateChain);
  EXPECT_EQ(decide_refence(no_parent(user + "/app.slice", user)), RefenceAction::kRecreateChain);
}

TEST(DecideRefence, WaitsWhenTheDelegatedSubtreeItselfIsGone) {
  // The user logged out: user@1000.service is its manager's to make again.
  const std::string user = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service";
  EXPECT_EQ(decide_refence(no_parent("/sys/fs/cgroup/user.slice/user-1000.slice", user)),
            RefenceAction::kWaitParent);
  EXPECT_EQ(decide_refence(no_parent("/sys/fs/cgroup", user)), RefenceAction::kWaitParent);
  // A sibling whose name starts alike is not inside it.
  EXPECT_EQ(decide_refence(no_parent(user + "x", user)), RefenceAction::kWaitParent);
}

TEST(InotifyEventMatters, OnlyTheNextComponentOrTheWatchItself) {
  EXPECT_TRUE(inotify_event_matters(IN_DELETE | IN_ISDIR, "claude.slice", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_CREATE | IN_ISDIR, "claude.slice", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_MOVED_FROM | IN_ISDIR, "claude.slice", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_MOVED_TO | IN_ISDIR, "claude.slice", "claude.slice"));
  EXPECT_FALSE(inotify_event_matters(IN_CREATE | IN_ISDIR, "other.slice", "claude.slice"));
  EXPECT_FALSE(inotify_event_matters(IN_DELETE | IN_ISDIR, "claude.slice2", "claude.slice"));
  EXPECT_FALSE(inotify_event_matters(IN_CREATE, "claude.slice", ""));
  // The watched directory itself went, or events were lost: look again.
  EXPECT_TRUE(inotify_event_matters(IN_DELETE_SELF, "", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_IGNORED, "", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_MOVE_SELF, "", "claude.slice"));
  EXPECT_TRUE(inotify_event_matters(IN_Q_OVERFLOW, "", "claude.slice"));
  EXPECT_FALSE(inotify_event_matters(IN_ATTRIB, "claude.slice", "claude.slice"));
}

TEST(Paths, ParentAndNextComponent) {
  EXPECT_EQ(parent_dir("/sys/fs/cgroup/a.slice/a-b.slice"), "/sys/fs/cgroup/a.slice");
  EXPECT_EQ(parent_dir("/sys/fs/cgroup/a.slice/"), "/sys/fs/cgroup");
  EXPECT_EQ(parent_dir("/top"), "/");
  EXPECT_EQ(next_component("/sys/fs/cgroup", "/sys/fs/cgroup/a.slice/a-b.slice"), "a.slice");
  EXPECT_EQ(next_component("/sys/fs/cgroup/a.slice", "/sys/fs/cgroup/a.slice/a-b.slice"), "a-b.slice");
  EXPECT_EQ(next_component("/", "/top/x"), "top");
  EXPECT_EQ(next_component("/sys/fs/cgroup/a.sl", "/sys/fs/cgroup/a.slice"), "");
  EXPECT_EQ(next_component("/sys/fs/cgroup/a.slice", "/sys/fs/cgroup/a.slice"), "");
}

class WatchTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egd-watch-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_EQ(mkdir((root_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/a/b").c_str(), 0755), 0);
  }
  void TearDown() override {
    for (const char* d : {"/a/b/target", "/a/b/other", "/a/b", "/a"}) rmdir((root_ + d).c_str());
    rmdir(root_.c_str());
  }
  std::string target() const { return root_ + "/a/b/target"; }
  std::string root_;
};

TEST_F(WatchTree, SeesTheTargetGoAndComeBackButNotItsSiblings) {
  ASSERT_EQ(mkdir(target().c_str(), 0755), 0);
  auto w = CgroupWatch::create(target(), root_);
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ(w->watched(), root_ + "/a/b");
  EXPECT_FALSE(w->drain());
  ASSERT_EQ(mkdir((root_ + "/a/b/other").c_str(), 0755), 0);
  EXPECT_FALSE(w->drain()) << "a sibling is not the fenced cgroup";
  ASSERT_EQ(rmdir(target().c_str()), 0);
  EXPECT_TRUE(w->drain());
  ASSERT_EQ(mkdir(target().c_str(), 0755), 0);
  EXPECT_TRUE(w->drain());
}

TEST_F(WatchTree, ClimbsWhenTheParentGoesAndComesBackDown) {
  auto w = CgroupWatch::create(target(), root_);
  ASSERT_TRUE(w.ok()) << w.error().message();
  ASSERT_EQ(rmdir((root_ + "/a/b").c_str()), 0);
  EXPECT_TRUE(w->drain());
  ASSERT_TRUE(w->aim().ok());
  EXPECT_EQ(w->watched(), root_ + "/a");
  ASSERT_EQ(rmdir((root_ + "/a").c_str()), 0);
  EXPECT_TRUE(w->drain());
  ASSERT_TRUE(w->aim().ok());
  EXPECT_EQ(w->watched(), root_) << "never above stop_at";
  ASSERT_EQ(mkdir((root_ + "/a").c_str(), 0755), 0);
  EXPECT_TRUE(w->drain());
  ASSERT_TRUE(w->aim().ok());
  EXPECT_EQ(w->watched(), root_ + "/a");
  ASSERT_EQ(mkdir((root_ + "/a/b").c_str(), 0755), 0);
  EXPECT_TRUE(w->drain());
  ASSERT_TRUE(w->aim().ok());
  EXPECT_EQ(w->watched(), root_ + "/a/b");
  ASSERT_EQ(mkdir(target().c_str(), 0755), 0);
  EXPECT_TRUE(w->drain());
}

// The re-fencer may make the parent again itself (the whole chain) and aim
// before it has read the removal: the path is the same, the directory is
// not. A watch left on the removed one would never report again.
TEST_F(WatchTree, FollowsAParentMadeAgainBeforeTheRemovalWasRead) {
  auto w = CgroupWatch::create(target(), root_);
  ASSERT_TRUE(w.ok()) << w.error().message();
  ASSERT_EQ(rmdir((root_ + "/a/b").c_str()), 0);
  ASSERT_EQ(mkdir((root_ + "/a/b").c_str(), 0755), 0);
  ASSERT_TRUE(w->aim().ok());
  EXPECT_EQ(w->watched(), root_ + "/a/b");
  w->drain();  // the old directory's removal, whatever it says now
  ASSERT_EQ(mkdir(target().c_str(), 0755), 0);
  EXPECT_TRUE(w->drain()) << "the watch stayed on the removed directory";
  ASSERT_EQ(rmdir(target().c_str()), 0);
  EXPECT_TRUE(w->drain());
}

TEST_F(WatchTree, RefusesATargetOutsideStopAt) {
  EXPECT_FALSE(CgroupWatch::create("/elsewhere/x", root_).ok());
  EXPECT_FALSE(CgroupWatch::create(root_, root_).ok());
}

}  // namespace
}  // namespace egressd
