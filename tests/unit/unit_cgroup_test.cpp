// How --cgroup/--user resolve to a cgroup2 directory, with a fake systemd
// (no bus): unit names through ControlGroup, starting inactive slices on
// attach only, user managers, and the naming rules without systemd.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "systemd/naming_resolver.h"
#include "systemd/unit_cgroup.h"

namespace egressd::systemd {
namespace {

const std::string kRoot = "/sys/fs/cgroup/unified";

// A systemd that knows a few units; start() makes a slice active at
// "/<name>", as systemd would for a top-level slice.
class FakeSystemd final : public UnitResolver {
 public:
  std::map<std::string, UnitState> units;
  std::vector<std::string> started;
  Status start_result;

  bool is_systemd() const override { return true; }
  Result<UnitState> state(const std::string& unit) override {
    auto it = units.find(unit);
    if (it == units.end()) return UnitState{"not-found", "inactive", ""};
    return it->second;
  }
  Status start(const std::string& unit, std::chrono::milliseconds) override {
    started.push_back(unit);
    if (!start_result) return start_result;
    units[unit] = UnitState{"loaded", "active", "/" + unit};
    return {};
  }
};

Result<ResolvedCgroup> resolve(UnitResolver& r, const std::string& cg, bool start = false,
                               std::optional<unsigned> uid = std::nullopt) {
  return resolve_cgroup(CgroupRequest{cg, uid}, kRoot, r, start);
}

std::string error_of(const Result<ResolvedCgroup>& r) { return r.ok() ? "(no error)" : r.error().message(); }

TEST(UnitType, BySuffix) {
  EXPECT_EQ(unit_type("claude.slice"), UnitType::kSlice);
  EXPECT_EQ(unit_type("run-r1.scope"), UnitType::kScope);
  EXPECT_EQ(unit_type("user@1000.service"), UnitType::kService);
  EXPECT_EQ(unit_type("agents/claude.slice"), UnitType::kNone);
  EXPECT_EQ(unit_type(".slice"), UnitType::kNone);
  EXPECT_EQ(unit_type("claude.socket"), UnitType::kNone);
}

TEST(ResolveUnit, ActiveSliceIsItsControlGroupBelowTheMount) {
  FakeSystemd sd;
  // Where systemd says, not where the naming rule would put it.
  sd.units["claude.slice"] = {"loaded", "active", "/elsewhere/claude.slice"};
  auto r = resolve(sd, "claude.slice", true);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/elsewhere/claude.slice");
  EXPECT_EQ(r->unit, "claude.slice");
  EXPECT_TRUE(r->made_by_systemd);
  EXPECT_TRUE(sd.started.empty());
}

TEST(ResolveUnit, AttachStartsAnInactiveSlice) {
  FakeSystemd sd;
  sd.units["claude.slice"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "claude.slice", true);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/claude.slice");
  EXPECT_EQ(sd.started, std::vector<std::string>{"claude.slice"});
}

TEST(ResolveUnit, SliceWithoutUnitFileIsStartedToo) {
  FakeSystemd sd;  // LoadUnit of a slice with no file: not-found, yet startable
  auto r = resolve(sd, "agents.slice", true);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/agents.slice");
}

TEST(ResolveUnit, OtherVerbsDoNotStartAnInactiveSlice) {
  FakeSystemd sd;
  sd.units["claude.slice"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "claude.slice", false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("claude.slice is not active"), std::string::npos) << error_of(r);
  EXPECT_TRUE(sd.started.empty());
}

TEST(ResolveUnit, FailedStartFailsClosed) {
  FakeSystemd sd;
  sd.start_result = logic_error("systemd: starting claude.slice ended with \"failed\"");
  auto r = resolve(sd, "claude.slice", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("ended with \"failed\""), std::string::npos) << error_of(r);
}

TEST(ResolveUnit, InactiveScopeOrServiceIsAnErrorNeverStarted) {
  FakeSystemd sd;
  sd.units["agent.service"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "agent.service", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("agent.service is not running (inactive)"), std::string::npos) << error_of(r);
  EXPECT_TRUE(sd.started.empty());
  r = resolve(sd, "nosuch.scope", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("systemd has no unit nosuch.scope"), std::string::npos) << error_of(r);
}

TEST(ResolveUnit, RunningScopeAndService) {
  FakeSystemd sd;
  sd.units["run-r1.scope"] = {"loaded", "active", "/claude.slice/run-r1.scope"};
  sd.units["agent.service"] = {"loaded", "active", "/system.slice/agent.service"};
  EXPECT_EQ(resolve(sd, "run-r1.scope")->path, kRoot + "/claude.slice/run-r1.scope");
  EXPECT_EQ(resolve(sd, "agent.service")->path, kRoot + "/system.slice/agent.service");
}

TEST(ResolveUnit, MaskedAndRootSliceAreRefused) {
  FakeSystemd sd;
  sd.units["claude.slice"] = {"masked", "inactive", ""};
  EXPECT_NE(error_of(resolve(sd, "claude.slice", true)).find("masked"), std::string::npos);
  EXPECT_TRUE(sd.started.empty());
  sd.units["-.slice"] = {"loaded", "active", "/"};
  EXPECT_NE(error_of(resolve(sd, "-.slice", true)).find("root cgroup"), std::string::npos);
}

TEST(ResolveUnit, ResolverErrorsPropagate) {
  struct Down final : UnitResolver {
    bool is_systemd() const override { return true; }
    Result<UnitState> state(const std::string&) override { return logic_error("systemd: load x.slice: boom"); }
    Status start(const std::string&, std::chrono::milliseconds) override { return {}; }
  } down;
  EXPECT_EQ(error_of(resolve(down, "x.slice", true)), "systemd: load x.slice: boom");
}

TEST(ResolveUser, ManagerCgroupPlusTheSlicePath) {
  FakeSystemd sd;
  sd.units["user@1000.service"] = {"loaded", "active", "/user.slice/user-1000.slice/user@1000.service"};
  auto r = resolve(sd, "claude.slice", true, 1000u);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/user.slice/user-1000.slice/user@1000.service/claude.slice");
  EXPECT_FALSE(r->made_by_systemd);  // root cannot start it in the user's manager: attach makes it
  EXPECT_TRUE(sd.started.empty());
  r = resolve(sd, "claude-web.slice", false, 1000u);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/user.slice/user-1000.slice/user@1000.service/claude.slice/claude-web.slice");
}

TEST(ResolveUser, ManagerNotRunningSaysHowToKeepItRunning) {
  FakeSystemd sd;
  sd.units["user@1001.service"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "claude.slice", true, 1001u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("user@1001.service is not running"), std::string::npos) << error_of(r);
  EXPECT_NE(error_of(r).find("loginctl enable-linger 1001"), std::string::npos) << error_of(r);
  EXPECT_TRUE(sd.started.empty());  // never starts another user's manager
}

TEST(ResolveUser, TakesOnlySliceNamesAndNeedsSystemd) {
  FakeSystemd sd;
  sd.units["user@1000.service"] = {"loaded", "active", "/user.slice/user-1000.slice/user@1000.service"};
  EXPECT_NE(error_of(resolve(sd, "/sys/fs/cgroup/unified/x", true, 1000u)).find("slice name"), std::string::npos);
  EXPECT_NE(error_of(resolve(sd, "app.scope", true, 1000u)).find("slice name"), std::string::npos);
  EXPECT_NE(error_of(resolve(sd, "-.slice", true, 1000u)).find("whole user manager"), std::string::npos);
  NamingRulesResolver none(false);
  EXPECT_NE(error_of(resolve(none, "claude.slice", true, 1000u)).find("--user needs systemd"), std::string::npos);
}

TEST(NamingRules, WithoutSystemdSlicesFollowTheNameAndOtherNamesArePaths) {
  NamingRulesResolver none(false);
  auto r = resolve(none, "a-b.slice", true);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/a.slice/a-b.slice");
  EXPECT_FALSE(r->made_by_systemd);
  EXPECT_EQ(r->unit, "");
  EXPECT_EQ(resolve(none, "agent.service")->path, kRoot + "/agent.service");
  EXPECT_FALSE(resolve(none, "a--b.slice").ok());
}

TEST(NamingRules, SystemdWithoutBusRefusesToGuessScopes) {
  NamingRulesResolver mute(true);
  EXPECT_EQ(resolve(mute, "claude.slice", true)->path, kRoot + "/claude.slice");
  auto r = resolve(mute, "run-r1.scope", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("only systemd knows where run-r1.scope lives"), std::string::npos) << error_of(r);
}

TEST(ResolvePaths, PlainPathsNeverAskSystemd) {
  struct Unreachable final : UnitResolver {
    bool is_systemd() const override { return true; }
    Result<UnitState> state(const std::string&) override {
      ADD_FAILURE() << "asked systemd about a path";
      return logic_error("unreachable");
    }
    Status start(const std::string&, std::chrono::milliseconds) override { return logic_error("unreachable"); }
  } sd;
  EXPECT_EQ(resolve(sd, kRoot + "/agents/one", true)->path, kRoot + "/agents/one");
  EXPECT_EQ(resolve(sd, "agents/one.slice", true)->path, kRoot + "/agents/one.slice");
  // The hybrid-host trap: /sys/fs/cgroup/X is no cgroup2 directory there.
  auto r = resolve(sd, "/sys/fs/cgroup/X", true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("not under the cgroup2 mount /sys/fs/cgroup/unified"), std::string::npos) << error_of(r);
}

}  // namespace
}  // namespace egressd::systemd
