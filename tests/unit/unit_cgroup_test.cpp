// How --cgroup/--user resolve to a cgroup2 directory, with a fake systemd
// (no bus): unit names through ControlGroup, inactive slices where systemd
// will put them, user managers, and the naming rules without systemd.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "systemd/naming_resolver.h"
#include "systemd/unit_cgroup.h"

namespace egressd::systemd {
namespace {

const std::string kRoot = "/sys/fs/cgroup/unified";

// A systemd that knows a few units; the root slice is "/" unless a test
// says otherwise.
class FakeSystemd final : public UnitResolver {
 public:
  std::map<std::string, UnitState> units{{"-.slice", {"loaded", "active", "/"}}};
  std::vector<std::string> asked;

  bool is_systemd() const override { return true; }
  Result<UnitState> state(const std::string& unit) override {
    asked.push_back(unit);
    auto it = units.find(unit);
    if (it == units.end()) return UnitState{"not-found", "inactive", ""};
    return it->second;
  }
};

Result<ResolvedCgroup> resolve(UnitResolver& r, const std::string& cg, std::optional<unsigned> uid = std::nullopt) {
  return resolve_cgroup(CgroupRequest{cg, uid}, kRoot, r);
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
  auto r = resolve(sd, "claude.slice");
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/elsewhere/claude.slice");
  EXPECT_EQ(r->unit, "claude.slice");
  EXPECT_TRUE(r->made_by_systemd);  // attach must not create it
}

TEST(ResolveUnit, InactiveSliceIsWhereSystemdWillPutIt) {
  FakeSystemd sd;
  sd.units["claude.slice"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "claude.slice");
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/claude.slice");
  EXPECT_EQ(r->unit, "claude.slice");
  EXPECT_FALSE(r->made_by_systemd);  // attach creates it; systemd adopts it on start
  // Nested and escaped names follow systemd's rule; a slice without a unit file too.
  EXPECT_EQ(resolve(sd, "agents-web.slice")->path, kRoot + "/agents.slice/agents-web.slice");
  EXPECT_EQ(resolve(sd, "cpu.slice")->path, kRoot + "/_cpu.slice");
}

TEST(ResolveUnit, InactiveSliceBelowTheManagersRoot) {
  FakeSystemd sd;  // a manager whose root is not the hierarchy's (a container without cgroupns)
  sd.units["-.slice"] = {"loaded", "active", "/machine/payload"};
  EXPECT_EQ(resolve(sd, "claude.slice")->path, kRoot + "/machine/payload/claude.slice");
}

TEST(ResolveUnit, InactiveScopeOrServiceIsAnError) {
  FakeSystemd sd;
  sd.units["agent.service"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "agent.service");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("agent.service is not running (inactive)"), std::string::npos) << error_of(r);
  r = resolve(sd, "nosuch.scope");
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
  EXPECT_NE(error_of(resolve(sd, "claude.slice")).find("masked"), std::string::npos);
  EXPECT_NE(error_of(resolve(sd, "-.slice")).find("root cgroup"), std::string::npos);
}

TEST(ResolveUnit, ResolverErrorsPropagate) {
  struct Down final : UnitResolver {
    bool is_systemd() const override { return true; }
    Result<UnitState> state(const std::string&) override { return logic_error("systemd: load x.slice: boom"); }
  } down;
  EXPECT_EQ(error_of(resolve(down, "x.slice")), "systemd: load x.slice: boom");
  EXPECT_EQ(error_of(resolve(down, "x.slice", 1000u)), "systemd: load x.slice: boom");
}

TEST(ResolveUser, ManagerCgroupPlusTheSlicePath) {
  FakeSystemd sd;
  sd.units["user@1000.service"] = {"loaded", "active", "/user.slice/user-1000.slice/user@1000.service"};
  auto r = resolve(sd, "claude.slice", 1000u);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/user.slice/user-1000.slice/user@1000.service/claude.slice");
  EXPECT_FALSE(r->made_by_systemd);  // root cannot start it in the user's manager: attach makes it
  EXPECT_EQ(r->unit, "");             // not a unit of the system manager
  r = resolve(sd, "claude-web.slice", 1000u);
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/user.slice/user-1000.slice/user@1000.service/claude.slice/claude-web.slice");
}

TEST(ResolveUser, ManagerNotRunningSaysHowToKeepItRunning) {
  FakeSystemd sd;
  sd.units["user@1001.service"] = {"loaded", "inactive", ""};
  auto r = resolve(sd, "claude.slice", 1001u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("user@1001.service is not running"), std::string::npos) << error_of(r);
  EXPECT_NE(error_of(r).find("loginctl enable-linger 1001"), std::string::npos) << error_of(r);
}

TEST(ResolveUser, TakesOnlySliceNamesAndNeedsSystemd) {
  FakeSystemd sd;
  sd.units["user@1000.service"] = {"loaded", "active", "/user.slice/user-1000.slice/user@1000.service"};
  EXPECT_NE(error_of(resolve(sd, "/sys/fs/cgroup/unified/x", 1000u)).find("slice name"), std::string::npos);
  EXPECT_NE(error_of(resolve(sd, "app.scope", 1000u)).find("slice name"), std::string::npos);
  EXPECT_NE(error_of(resolve(sd, "-.slice", 1000u)).find("whole user manager"), std::string::npos);
  NamingRulesResolver none(false);
  EXPECT_NE(error_of(resolve(none, "claude.slice", 1000u)).find("--user needs systemd"), std::string::npos);
}

TEST(NamingRules, WithoutSystemdSlicesFollowTheNameAndOtherNamesArePaths) {
  NamingRulesResolver none(false);
  auto r = resolve(none, "a-b.slice");
  ASSERT_TRUE(r.ok()) << error_of(r);
  EXPECT_EQ(r->path, kRoot + "/a.slice/a-b.slice");
  EXPECT_FALSE(r->made_by_systemd);
  EXPECT_EQ(r->unit, "");
  EXPECT_EQ(resolve(none, "agent.service")->path, kRoot + "/agent.service");
  EXPECT_FALSE(resolve(none, "a--b.slice").ok());
}

TEST(NamingRules, SystemdWithoutBusRefusesToGuessScopes) {
  NamingRulesResolver mute(true);
  EXPECT_EQ(resolve(mute, "claude.slice")->path, kRoot + "/claude.slice");
  auto r = resolve(mute, "run-r1.scope");
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
  } sd;
  EXPECT_EQ(resolve(sd, kRoot + "/agents/one")->path, kRoot + "/agents/one");
  EXPECT_EQ(resolve(sd, "agents/one.slice")->path, kRoot + "/agents/one.slice");
  // The hybrid-host trap: /sys/fs/cgroup/X is no cgroup2 directory there.
  auto r = resolve(sd, "/sys/fs/cgroup/X");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(error_of(r).find("not under the cgroup2 mount /sys/fs/cgroup/unified"), std::string::npos) << error_of(r);
}

}  // namespace
}  // namespace egressd::systemd
