// Test the recorder the proxy and the resolver share: the per-verdict and
// per-reason counts (with the kernel's clamp), the policy's `events`
// filter, and the Event built from a steered flow.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <vector>

#include "decide/recorder.h"

namespace egressd::decide {
namespace {

size_t slot(unsigned verdict, unsigned reason) { return size_t{verdict} * EGD_REASON__COUNT + reason; }

TEST(Recorder, CountsClampLikeTheKernel) {
  Recorder r(EGD_HOOK_PROXY, [](const Event&) {});
  r.count(EGD_VERDICT_DENY, EGD_REASON_HOST_NOT_ALLOWED, policy::EventsMode::Deny);
  r.count(EGD_VERDICT_DENY, EGD_REASON_HOST_NOT_ALLOWED, policy::EventsMode::Deny);
  r.count(200, EGD_REASON_HOST_RULE, policy::EventsMode::Deny);      // verdict out of range: deny
  r.count(EGD_VERDICT_ALLOW, 60000, policy::EventsMode::Deny);       // reason out of range: internal
  EXPECT_EQ(r.decisions()[slot(EGD_VERDICT_DENY, EGD_REASON_HOST_NOT_ALLOWED)], 2u);
  EXPECT_EQ(r.decisions()[slot(EGD_VERDICT_DENY, EGD_REASON_HOST_RULE)], 1u);
  EXPECT_EQ(r.decisions()[slot(EGD_VERDICT_ALLOW, EGD_REASON_INTERNAL)], 1u);
}

TEST(Recorder, EventsFilter) {
  Recorder r(EGD_HOOK_DNS, [](const Event&) {});
  EXPECT_TRUE(r.count(EGD_VERDICT_DENY, EGD_REASON_DNS_NAME_NOT_ALLOWED, policy::EventsMode::Deny));
  EXPECT_TRUE(r.count(EGD_VERDICT_AUDIT, EGD_REASON_DNS_NAME_NOT_ALLOWED, policy::EventsMode::Deny));
  EXPECT_FALSE(r.count(EGD_VERDICT_ALLOW, EGD_REASON_DNS_NAME_ALLOWED, policy::EventsMode::Deny));
  EXPECT_TRUE(r.count(EGD_VERDICT_ALLOW, EGD_REASON_DNS_NAME_ALLOWED, policy::EventsMode::All));
  // A fallback is always told: an address of an allowed name is dead.
  EXPECT_TRUE(r.count(EGD_VERDICT_ALLOW, EGD_REASON_UPSTREAM_FALLBACK, policy::EventsMode::Deny));
  Recorder silent(EGD_HOOK_DNS, nullptr);  // no sink: counted, never an event
  EXPECT_FALSE(silent.count(EGD_VERDICT_DENY, EGD_REASON_DNS_NAME_NOT_ALLOWED, policy::EventsMode::All));
  EXPECT_EQ(silent.decisions()[slot(EGD_VERDICT_DENY, EGD_REASON_DNS_NAME_NOT_ALLOWED)], 1u);
}

TEST(Recorder, EventFromTheSteeredFlow) {
  std::vector<Event> seen;
  Recorder r(EGD_HOOK_PROXY, [&](const Event& e) { seen.push_back(e); });
  SteeredFlow f;
  f.family = AF_INET6;
  f.given = *IpAddr::parse("::ffff:203.0.113.10");
  f.target = f.given.unmapped();
  f.port = 443;
  f.identified = true;
  f.pid = 7;
  f.tgid = 6;
  f.uid = 1000;
  f.cgroup_id = 42;
  f.sock_cookie = 99;
  f.comm = "curl";
  Event e = r.event(EGD_VERDICT_DENY, EGD_REASON_HOST_NOT_ALLOWED, 3, &f, IPPROTO_TCP);
  r.emit(e);
  ASSERT_EQ(seen.size(), 1u);
  const Event& got = seen[0];
  EXPECT_EQ(got.hook, EGD_HOOK_PROXY);
  EXPECT_EQ(got.protocol, IPPROTO_TCP);
  EXPECT_EQ(got.sock_type, SOCK_STREAM);
  EXPECT_EQ(got.reason, EGD_REASON_HOST_NOT_ALLOWED);
  EXPECT_EQ(got.rule_id, 3u);
  EXPECT_EQ(got.daddr, "::ffff:203.0.113.10");
  EXPECT_EQ(got.judged.value_or(""), "203.0.113.10");  // v4-mapped: judged as the IPv4 inside
  EXPECT_EQ(got.dport, 443);
  EXPECT_TRUE(got.sender_known);
  EXPECT_EQ(got.pid, 7u);
  EXPECT_EQ(got.tgid, 6u);
  EXPECT_EQ(got.uid, 1000u);
  EXPECT_EQ(got.cgroup_id, 42u);
  EXPECT_EQ(got.sock_cookie, 99u);
  EXPECT_EQ(got.comm, "curl");
  EXPECT_GT(got.unix_ns, 0u);

  Event unknown = r.event(EGD_VERDICT_DENY, EGD_REASON_DNS_MALFORMED, 0, nullptr, IPPROTO_UDP);
  EXPECT_EQ(unknown.sock_type, SOCK_DGRAM);
  EXPECT_FALSE(unknown.sender_known);
  EXPECT_EQ(unknown.family, 0);
  EXPECT_EQ(unknown.daddr, "");
}

}  // namespace
}  // namespace egressd::decide
