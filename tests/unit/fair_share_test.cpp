// The fair-share rule (common/fair_share.h): caps derived from the total or
// configured, the one decision, the per-client ledger and its log line;
// the rate limits refusals are reported under (common/token_bucket.h); and
// the proxy's total from the file limit (daemon/fd_limit.h).
#include <gtest/gtest.h>

#include "common/fair_share.h"
#include "common/token_bucket.h"
#include "daemon/fd_limit.h"

namespace egressd {
namespace {

ShareClient client(uint32_t tgid, uint32_t uid) { return ShareClient{tgid, uid, true}; }

TEST(ShareCaps, DefaultsAreAQuarterAndAHalfOfTheTotal) {
  ShareCaps c = share_caps(40000, 0, 0);
  EXPECT_EQ(c.total, 40000u);
  EXPECT_EQ(c.per_process, 10000u);
  EXPECT_EQ(c.per_uid, 20000u);
}

TEST(ShareCaps, ConfiguredCapsWinAndAreClampedToTheTotal) {
  ShareCaps c = share_caps(512, 8, 16);
  EXPECT_EQ(c.per_process, 8u);
  EXPECT_EQ(c.per_uid, 16u);
  c = share_caps(512, 100000, 100000);
  EXPECT_EQ(c.per_process, 512u);
  EXPECT_EQ(c.per_uid, 512u);
}

TEST(ShareCaps, TinyTotalsStillAdmitOne) {
  ShareCaps c = share_caps(0, 0, 0);
  EXPECT_EQ(c.total, 1u);
  EXPECT_EQ(c.per_process, 1u);
  EXPECT_EQ(c.per_uid, 1u);
  c = share_caps(3, 0, 0);
  EXPECT_EQ(c.per_process, 1u);
  EXPECT_EQ(c.per_uid, 1u);
}

TEST(ShareDecide, TheMostSpecificCapNamesTheRefusal) {
  ShareCaps c{10, 2, 5};
  EXPECT_EQ(share_decide(c, 0, 0, 0), ShareCap::None);
  EXPECT_EQ(share_decide(c, 1, 4, 9), ShareCap::None);
  EXPECT_EQ(share_decide(c, 2, 2, 2), ShareCap::Process);
  EXPECT_EQ(share_decide(c, 2, 5, 10), ShareCap::Process);  // over all three: its own share first
  EXPECT_EQ(share_decide(c, 1, 5, 5), ShareCap::User);
  EXPECT_EQ(share_decide(c, 1, 5, 10), ShareCap::User);
  EXPECT_EQ(share_decide(c, 0, 0, 10), ShareCap::Total);
  EXPECT_EQ(share_cap_name(ShareCap::Process), "per-process");
  EXPECT_EQ(share_cap_name(ShareCap::User), "per-user");
  EXPECT_EQ(share_cap_name(ShareCap::Total), "total");
}

TEST(ConnectionShares, AFloodingProcessIsRefusedWhileOthersAreServed) {
  ConnectionShares s;
  ShareCaps c = share_caps(100, 0, 0);  // 25 per process, 50 per user
  ShareClient flood = client(100, 1000), other = client(200, 1000), stranger = client(300, 2000);
  for (int i = 0; i < 25; ++i) ASSERT_EQ(s.admit(flood, c), ShareCap::None) << i;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.admit(flood, c), ShareCap::Process);
  EXPECT_EQ(s.held_by_process(flood), 25u);
  EXPECT_EQ(s.held(), 25u);  // refusals hold nothing
  EXPECT_EQ(s.admit(other, c), ShareCap::None);
  EXPECT_EQ(s.admit(stranger, c), ShareCap::None);
  EXPECT_EQ(s.held_by_uid(flood), 26u);
  EXPECT_EQ(s.held(), 27u);
  // One connection of the flood ends: it may open one more.
  s.release(flood);
  EXPECT_EQ(s.admit(flood, c), ShareCap::None);
  EXPECT_EQ(s.admit(flood, c), ShareCap::Process);
}

TEST(ConnectionShares, OneUsersProcessesTogetherAreCappedOtherUsersServed) {
  ConnectionShares s;
  ShareCaps c = share_caps(100, 0, 0);  // 25 per process, 50 per user
  for (uint32_t p = 1; p <= 2; ++p)
    for (int i = 0; i < 25; ++i) ASSERT_EQ(s.admit(client(p, 1000), c), ShareCap::None);
  EXPECT_EQ(s.admit(client(3, 1000), c), ShareCap::User);  // a third process of the same user
  EXPECT_EQ(s.admit(client(4, 2000), c), ShareCap::None);  // another user
  EXPECT_EQ(s.clients(), 3u);
}

TEST(ConnectionShares, TheTotalRefusesEveryoneOnceFull) {
  ConnectionShares s;
  ShareCaps c{4, 4, 4};
  for (uint32_t p = 1; p <= 4; ++p) ASSERT_EQ(s.admit(client(p, p), c), ShareCap::None);
  EXPECT_EQ(s.admit(client(5, 5), c), ShareCap::Total);
  s.release(client(2, 2));
  EXPECT_EQ(s.admit(client(5, 5), c), ShareCap::None);
}

TEST(ConnectionShares, UnknownClientsShareOneBucketNotRoots) {
  ConnectionShares s;
  ShareCaps c{10, 2, 5};
  ShareClient unknown;  // no identity
  ShareClient root = client(0, 0);
  EXPECT_EQ(s.admit(unknown, c), ShareCap::None);
  EXPECT_EQ(s.admit(unknown, c), ShareCap::None);
  EXPECT_EQ(s.admit(unknown, c), ShareCap::Process);
  EXPECT_EQ(s.held_by_uid(root), 0u);
  EXPECT_EQ(s.admit(root, c), ShareCap::None);
}

TEST(ConnectionShares, ReleasingWhatWasNeverAdmittedIsHarmless) {
  ConnectionShares s;
  s.release(client(1, 1));
  EXPECT_EQ(s.held(), 0u);
  ShareCaps c{10, 5, 5};
  ASSERT_EQ(s.admit(client(1, 1), c), ShareCap::None);
  s.release(client(2, 2));  // another client: not counted anywhere
  s.release(client(1, 1));
  EXPECT_EQ(s.held(), 0u);
  EXPECT_EQ(s.clients(), 0u);  // the maps hold only live clients
}

TEST(ShareRefusalLine, NamesTheClientTheCapAndTheCaps) {
  ConnectionShares s;
  ShareCaps c{100, 2, 50};
  ShareClient flood = client(4242, 1000);
  s.admit(flood, c);
  s.admit(flood, c);
  std::string line = share_refusal_line("proxy", flood, "python3", ShareCap::Process, c, s);
  EXPECT_EQ(line,
            "proxy: refused a connection of pid 4242 (python3, uid 1000), too-many-connections: it holds 2, "
            "the per-process cap (caps: 2 per process, 50 per user, 100 in total)");
  line = share_refusal_line("resolver (TCP)", ShareClient{}, "", ShareCap::Total, c, s);
  EXPECT_NE(line.find("an unknown client"), std::string::npos) << line;
  EXPECT_NE(line.find("all clients hold 2, the total cap"), std::string::npos) << line;
}

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b;
  auto t0 = TokenBucket::Clock::now();
  int taken = 0;
  for (int i = 0; i < 100; ++i) taken += b.take(10, 5, t0);
  EXPECT_EQ(taken, 5);
  EXPECT_TRUE(b.take(10, 5, t0 + std::chrono::milliseconds(100)));   // one token back
  EXPECT_FALSE(b.take(10, 5, t0 + std::chrono::milliseconds(100)));
  taken = 0;
  for (int i = 0; i < 100; ++i) taken += b.take(10, 5, t0 + std::chrono::seconds(60));
  EXPECT_EQ(taken, 5);  // never more than the burst
}

TEST(ThrottledLog, SaysHowManyLinesWereLeftOut) {
  ThrottledLog log(1, 2);
  std::vector<std::string> lines;
  ThrottledLog::Sink sink = [&](const std::string& l) { lines.push_back(l); };
  auto t0 = TokenBucket::Clock::now();
  int built = 0;
  for (int i = 0; i < 10; ++i) log.say(sink, t0, [&] { ++built; return std::string("refused"); });
  EXPECT_EQ(lines.size(), 2u);
  EXPECT_EQ(built, 2);  // lines left out are never built
  EXPECT_EQ(log.left_out(), 8u);
  log.say(sink, t0 + std::chrono::seconds(1), [] { return std::string("refused"); });
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2], "refused (8 similar lines left out before this one)");
  EXPECT_EQ(log.left_out(), 0u);
}

TEST(FdLimit, ProxySessionsFitTheLimitAfterTheReserve) {
  using daemon::proxy_sessions_for;
  EXPECT_EQ(proxy_sessions_for(1024, 512, 40000), (1024u - 128 - 512) / 2);
  EXPECT_EQ(proxy_sessions_for(524288, 512, 40000), 40000u);  // the ceiling
  EXPECT_EQ(proxy_sessions_for(20000, 512, 40000), (20000u - 640) / 2);
  EXPECT_EQ(proxy_sessions_for(256, 512, 40000), 64u);  // never below the floor
  EXPECT_EQ(proxy_sessions_for(UINT64_MAX, 512, 40000), 40000u);
}

TEST(FdLimit, RaisesTheSoftLimitToTheHardLimit) {
  daemon::FdLimit f = daemon::raise_fd_limit();
  ASSERT_FALSE(f.failed) << f.failed->message();
  EXPECT_EQ(f.soft, f.hard);
  EXPECT_GE(f.soft, f.before);
}

}  // namespace
}  // namespace egressd
