// The store of addresses the resolver answered, kept past their TTL for the
// proxy's grace window: what is kept, for how long, and its bounds. Time
// is injected.
#include <gtest/gtest.h>

#include "proxy/recent_answers.h"

namespace egressd::proxy {
namespace {

using std::chrono::seconds;
using Clock = RecentAnswers::Clock;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

std::vector<std::string> texts(const std::vector<IpAddr>& v) {
  std::vector<std::string> out;
  for (const IpAddr& a : v) out.push_back(a.to_string());
  return out;
}

const Clock::time_point t0{};

// Test that an address is kept through its TTL and the grace after it,
// and no longer; a grace of 0 keeps only the TTL.
TEST(RecentAnswers, KeptForTtlPlusGrace) {
  RecentAnswers r;
  r.note("moving.test", {ip("203.0.113.10")}, seconds(5), t0);
  EXPECT_EQ(texts(r.within("moving.test", seconds(300), t0 + seconds(3))), std::vector<std::string>{"203.0.113.10"});
  EXPECT_EQ(texts(r.within("moving.test", seconds(300), t0 + seconds(305))), std::vector<std::string>{"203.0.113.10"});
  EXPECT_TRUE(r.within("moving.test", seconds(300), t0 + seconds(306)).empty());
  EXPECT_EQ(r.within("moving.test", seconds(0), t0 + seconds(5)).size(), 1u);
  EXPECT_TRUE(r.within("moving.test", seconds(0), t0 + seconds(6)).empty());
  EXPECT_TRUE(r.within("other.test", seconds(300), t0).empty());
}

// Test that a name that moves keeps its old address (until its grace ends)
// beside the new one, and that answering an address again renews it.
TEST(RecentAnswers, MovedNameKeepsOldAddressUntilGraceEnds) {
  RecentAnswers r;
  r.note("moving.test", {ip("203.0.113.10")}, seconds(5), t0);
  r.note("moving.test", {ip("203.0.113.7")}, seconds(5), t0 + seconds(10));
  auto now = t0 + seconds(20);
  EXPECT_EQ(texts(r.within("moving.test", seconds(60), now)),
            (std::vector<std::string>{"203.0.113.10", "203.0.113.7"}));
  EXPECT_EQ(texts(r.within("moving.test", seconds(60), t0 + seconds(66))), std::vector<std::string>{"203.0.113.7"});
  r.note("moving.test", {ip("203.0.113.10")}, seconds(5), t0 + seconds(100));
  EXPECT_EQ(texts(r.within("moving.test", seconds(10), t0 + seconds(110))),
            std::vector<std::string>{"203.0.113.10"});
}

// Test that v4-mapped answers are kept as the IPv4 they name.
TEST(RecentAnswers, MappedKeptAsIpv4) {
  RecentAnswers r;
  r.note("a.test", {ip("::ffff:203.0.113.10"), ip("2001:db8::10")}, seconds(5), t0);
  EXPECT_EQ(texts(r.within("a.test", seconds(1), t0)), (std::vector<std::string>{"203.0.113.10", "2001:db8::10"}));
}

// Test the bounds: the grace asked for is capped by max_grace, TTLs by
// max_ttl, names by max_names (least recently answered out first) and
// addresses per name by max_addrs (the one whose TTL ended first out).
TEST(RecentAnswers, Bounded) {
  RecentAnswers::Options o;
  o.max_names = 2;
  o.max_addrs = 2;
  o.max_grace = seconds(100);
  o.max_ttl = seconds(50);
  RecentAnswers r(o);
  r.note("a.test", {ip("203.0.113.1")}, seconds(1000000), t0);
  EXPECT_EQ(r.within("a.test", seconds(100000), t0 + seconds(150)).size(), 1u);   // 50 + 100
  EXPECT_TRUE(r.within("a.test", seconds(100000), t0 + seconds(151)).empty());

  r.note("b.test", {ip("203.0.113.2")}, seconds(5), t0 + seconds(1));
  r.note("a.test", {ip("203.0.113.1")}, seconds(5), t0 + seconds(2));  // a is the most recent now
  r.note("c.test", {ip("203.0.113.3")}, seconds(5), t0 + seconds(3));  // b leaves
  EXPECT_EQ(r.names(), 2u);
  EXPECT_TRUE(r.within("b.test", seconds(10), t0 + seconds(3)).empty());
  EXPECT_EQ(r.within("a.test", seconds(10), t0 + seconds(3)).size(), 1u);

  r.note("c.test", {ip("203.0.113.4")}, seconds(20), t0 + seconds(4));
  r.note("c.test", {ip("203.0.113.5")}, seconds(30), t0 + seconds(4));  // .3 (TTL ended first) leaves
  EXPECT_EQ(texts(r.within("c.test", seconds(10), t0 + seconds(4))),
            (std::vector<std::string>{"203.0.113.4", "203.0.113.5"}));
}

// Test that names whose every address is past TTL + max_grace are dropped
// as new answers come in, so a busy resolver does not keep dead names.
TEST(RecentAnswers, StaleNamesPruned) {
  RecentAnswers::Options o;
  o.max_grace = seconds(10);
  RecentAnswers r(o);
  for (int i = 0; i < 5; ++i) r.note("n" + std::to_string(i) + ".test", {ip("203.0.113.1")}, seconds(1), t0);
  EXPECT_EQ(r.names(), 5u);
  r.note("fresh.test", {ip("203.0.113.9")}, seconds(1), t0 + seconds(60));
  EXPECT_EQ(r.names(), 1u);
}

// Test that an empty answer stores nothing.
TEST(RecentAnswers, EmptyAnswerStoresNothing) {
  RecentAnswers r;
  r.note("a.test", {}, seconds(5), t0);
  EXPECT_EQ(r.names(), 0u);
}

}  // namespace
}  // namespace egressd::proxy
