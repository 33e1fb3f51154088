// Test what `egressd detach` says when the cgroup outlives its fence (pure).
#include <gtest/gtest.h>

#include "cli/fence_removal.h"

namespace egressd::cli {
namespace {

TEST(DetachWarning, ActiveSliceSaysNewSessionsRunUnfencedAndHowToStopIt) {
  std::string w = unfenced_after_removal("/sys/fs/cgroup/claude.slice", 0, false);
  EXPECT_EQ(w, "/sys/fs/cgroup/claude.slice still exists and is no longer fenced: every new session started in "
               "claude.slice runs unfenced. `systemctl stop claude.slice` stops the slice and its sessions; "
               "`egressd attach` fences it again");
}

TEST(DetachWarning, ProcessesInsideAreCounted) {
  std::string w = unfenced_after_removal("/sys/fs/cgroup/a.slice/a-b.slice", 3, true);
  EXPECT_NE(w.find("the 3 processes in it now connect unfenced, and every new session started in a-b.slice"),
            std::string::npos) << w;
  EXPECT_NE(w.find("`systemctl --user stop a-b.slice`"), std::string::npos) << w;
  w = unfenced_after_removal("/sys/fs/cgroup/agents", 2, false);
  EXPECT_EQ(w, "/sys/fs/cgroup/agents still exists and is no longer fenced: the 2 processes in it now connect "
               "unfenced");
}

TEST(DetachWarning, AnEmptyPlainCgroupIsNothingToWarnAbout) {
  EXPECT_EQ(unfenced_after_removal("/sys/fs/cgroup/agents", 0, false), "");
  EXPECT_EQ(unfenced_after_removal("/sys/fs/cgroup/.slice", 0, false), "");
}

}  // namespace
}  // namespace egressd::cli
