// gtest_main.cpp: the main of every gtest binary. Under CI=true a skipped
// test fails: GTEST_SKIP() (a host without ::1, without BPF) must never pass
// a CI run silently.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace {

class FailSkipsUnderCi : public testing::EmptyTestEventListener {
  // OnTestEnd runs while the test is still current, before the printer's
  // (end events run in reverse order), so the test is reported as failed.
  void OnTestEnd(const testing::TestInfo& info) override {
    if (info.result()->Skipped()) ADD_FAILURE() << "skipped under CI=true";
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const char* ci = std::getenv("CI");
  if (ci && std::strcmp(ci, "true") == 0) testing::UnitTest::GetInstance()->listeners().Append(new FailSkipsUnderCi);
  return RUN_ALL_TESTS();
}
