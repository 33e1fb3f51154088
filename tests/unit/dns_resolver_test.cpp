// Test host lookups (dns/host_resolver.h) through egressd's one DNS client
// (dns/upstream.h), as the daemon builds them, against fake upstreams on
// 127.0.0.1 / ::1 (UDP, and TCP on the same port) served by the same Loop:
// answers, NXDOMAIN, timeouts and failover, TC -> TCP, coalescing, the
// cache, spoofed answers, lifetime, and no fd left behind. Nothing leaves
// loopback; every wait is bounded.
#include "dns/host_resolver.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../support/fake_dns_upstream.h"
#include "dns/builder.h"
#include "dns/message.h"
#include "dns/upstream.h"

namespace {

using namespace std::chrono_literals;
using egressd::IpAddr;
using egressd::Loop;
using egressd::UniqueFd;
using namespace egressd::dns;
using Bytes = std::vector<uint8_t>;
using FakeDns = egressd::testing::FakeDnsUpstream;

// The client and the host resolver on it, with the options of both in one
// place (the client's upstreams and rounds, the lookups' timeout and cache).
struct HostStackOptions {
  std::vector<sockaddr_storage> upstreams;
  std::chrono::milliseconds try_timeout{1000};
  int attempts = 2;
  size_t cache_entries = 10000;
  std::chrono::seconds min_ttl{1}, max_ttl{300}, negative_ttl{5};
  size_t max_in_flight = 4096;
};

class HostStack {
 public:
  using Options = HostStackOptions;
  HostStack(Loop& loop, const Options& o) : client_(loop, client_options(o)), hosts_(loop, client_, host_options(o)) {}
  void resolve(const std::string& name, HostResolver::Done done) { hosts_.resolve(name, std::move(done)); }
  std::optional<Resolution> cached(const std::string& name) const { return hosts_.cached(name); }
  size_t in_flight() const { return hosts_.in_flight(); }
  size_t cache_size() const { return hosts_.cache_size(); }

 private:
  static UpstreamClient::Options client_options(const Options& o) {
    UpstreamClient::Options u;
    u.upstreams = o.upstreams;
    u.attempts = o.attempts;
    return u;
  }
  static HostResolver::Options host_options(const Options& o) {
    HostResolver::Options h;
    h.try_timeout = o.try_timeout;
    h.cache_entries = o.cache_entries;
    h.min_ttl = o.min_ttl;
    h.max_ttl = o.max_ttl;
    h.negative_ttl = o.negative_ttl;
    h.max_in_flight = o.max_in_flight;
    return h;
  }
  UpstreamClient client_;  // destroyed after the lookups on it
  HostResolver hosts_;
};

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

size_t count_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

struct Reply {
  uint16_t rcode = 0;
  std::vector<IpAddr> addrs;  // those of the query's family are answered
  uint32_t ttl = 60;
  bool tc = false;
  std::string cname;  // answer with qname CNAME cname, then the addresses for cname
};

// A response to `q` as a server would write it.
Bytes respond(const Message& q, const Reply& r) {
  Header h;
  h.id = q.header.id;
  h.qr = h.ra = true;
  h.rd = q.header.rd;
  h.tc = r.tc;
  h.rcode = r.rcode;
  MessageBuilder b(h);
  const Question& question = q.questions.at(0);
  b.question(question.name, question.type);
  std::string owner = question.name;
  if (!r.cname.empty()) {
    b.cname(Section::Answer, owner, r.ttl, r.cname);
    owner = r.cname;
  }
  int family = question.type == kTypeA ? AF_INET : AF_INET6;
  for (const IpAddr& a : r.addrs)
    if (a.family == family) b.address(Section::Answer, owner, r.ttl, a);
  if (q.edns) b.opt(1232);
  return b.bytes();
}

FakeDns::Handler answer_with(Reply r) {
  return [r](const Message& q, bool) { return std::vector<Bytes>{respond(q, r)}; };
}
std::vector<Bytes> silent(const Message&, bool) { return {}; }

class HostResolverTest : public ::testing::Test {
 protected:
  HostStack::Options options(std::vector<const FakeDns*> servers) {
    HostStack::Options o;
    for (const FakeDns* s : servers) o.upstreams.push_back(s->addr);
    o.try_timeout = 100ms;
    return o;
  }

  // Runs the loop until `cond` or `limit`; then one more turn so deferred work runs.
  bool run_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 3000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    bool met = cond();
    while (!met && std::chrono::steady_clock::now() < end) {
      EXPECT_TRUE(loop_.run_once(10).ok());
      met = cond();
    }
    (void)loop_.run_once(0);
    return met;
  }

  // Resolves one name to completion.
  Resolution resolve(HostStack& r, const std::string& name) {
    std::optional<Resolution> got;
    r.resolve(name, [&](const Resolution& res) { got = res; });
    EXPECT_FALSE(got.has_value()) << "done ran inside resolve()";
    EXPECT_TRUE(run_until([&] { return got.has_value(); })) << name;
    return got.value_or(Resolution{-1, {}, "never answered", false});
  }

  Loop loop_ = *Loop::create();
};

TEST_F(HostResolverTest, AnswersAAndAaaa) {
  FakeDns up(loop_, answer_with({0, {ip("10.1.1.1"), ip("10.1.1.2"), ip("fd00::1")}}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  Resolution res = resolve(r, "WWW.Example.COM.");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.rcode, 0);
  EXPECT_FALSE(res.from_cache);
  EXPECT_EQ(res.addrs, (std::vector<IpAddr>{ip("10.1.1.1"), ip("10.1.1.2"), ip("fd00::1")}));
  EXPECT_EQ(up.udp_queries, 2);
  EXPECT_EQ(up.edns_queries(), 2);
  ASSERT_EQ(up.seen.size(), 2u);
  for (const Message& q : up.seen) EXPECT_EQ(q.questions[0].name, "www.example.com");
  EXPECT_EQ(r.in_flight(), 0u);
}

TEST_F(HostResolverTest, FollowsCnames) {
  FakeDns up(loop_, answer_with({0, {ip("10.2.2.2")}, 60, false, "edge.cdn.example"}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  Resolution res = resolve(r, "www.example.com");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.2.2.2")});
}

TEST_F(HostResolverTest, NxdomainIsAnAnswerAndIsCachedNegatively) {
  FakeDns up(loop_, answer_with({kRcodeNxDomain, {}}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  Resolution res = resolve(r, "nothing.example");
  EXPECT_EQ(res.rcode, 3);
  EXPECT_EQ(res.error, "");
  EXPECT_TRUE(res.addrs.empty());
  auto cached = r.cached("nothing.example");
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->rcode, 3);
  EXPECT_TRUE(cached->from_cache);
  EXPECT_EQ(resolve(r, "Nothing.Example").rcode, 3);
  EXPECT_EQ(up.udp_queries, 2);
}

TEST_F(HostResolverTest, TimeoutThenSecondUpstream) {
  FakeDns dead(loop_, silent);
  FakeDns up(loop_, answer_with({0, {ip("10.3.3.3")}}));
  ASSERT_TRUE(dead.ok() && up.ok());
  HostStack r(loop_, options({&dead, &up}));
  auto start = std::chrono::steady_clock::now();
  Resolution res = resolve(r, "a.example");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.3.3.3")});
  EXPECT_EQ(dead.udp_queries, 2);
  EXPECT_EQ(up.udp_queries, 2);
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 1000ms);
}

TEST_F(HostResolverTest, AllUpstreamsSilentIsABoundedError) {
  FakeDns a(loop_, silent), b(loop_, silent);
  ASSERT_TRUE(a.ok() && b.ok());
  auto o = options({&a, &b});
  o.try_timeout = 50ms;
  HostStack r(loop_, o);
  auto start = std::chrono::steady_clock::now();
  Resolution res = resolve(r, "a.example");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(res.error.find("timeout"), std::string::npos) << res.error;
  EXPECT_TRUE(res.addrs.empty());
  // Two rounds over both upstreams, for A and for AAAA.
  EXPECT_EQ(a.udp_queries, 4);
  EXPECT_EQ(b.udp_queries, 4);
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_FALSE(r.cached("a.example").has_value()) << "failures are not cached";
}

TEST_F(HostResolverTest, ServfailMovesToTheNextUpstream) {
  FakeDns bad(loop_, answer_with({kRcodeServFail, {}}));
  FakeDns up(loop_, answer_with({0, {ip("10.4.4.4")}}));
  ASSERT_TRUE(bad.ok() && up.ok());
  auto o = options({&bad, &up});
  o.try_timeout = 2000ms;  // answers, not timeouts, drive this
  HostStack r(loop_, o);
  Resolution res = resolve(r, "a.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.4.4.4")});
  EXPECT_EQ(bad.udp_queries, 2);
}

TEST_F(HostResolverTest, EveryUpstreamFailingReportsTheRcode) {
  FakeDns bad(loop_, answer_with({kRcodeRefused, {}}));
  ASSERT_TRUE(bad.ok());
  HostStack r(loop_, options({&bad}));
  Resolution res = resolve(r, "a.example");
  EXPECT_EQ(res.rcode, kRcodeRefused);
  EXPECT_NE(res.error.find("REFUSED"), std::string::npos) << res.error;
  EXPECT_EQ(bad.udp_queries, 4);  // attempts = 2, per type
}

TEST_F(HostResolverTest, FormerrTurnsEdnsOff) {
  FakeDns old(loop_, [](const Message& q, bool) {
    return std::vector<Bytes>{respond(q, q.edns ? Reply{kRcodeFormErr, {}} : Reply{0, {ip("10.5.5.5")}})};
  });
  ASSERT_TRUE(old.ok());
  HostStack r(loop_, options({&old}));
  Resolution res = resolve(r, "a.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.5.5.5")});
  EXPECT_EQ(old.udp_queries, 4);
  EXPECT_EQ(old.edns_queries(), 2);
}

TEST_F(HostResolverTest, RefusedPortFailsOverWithoutWaiting) {
  // A port nobody listens on: the ICMP port unreachable comes back as
  // ECONNREFUSED on the connected socket.
  sockaddr_storage closed{};
  {
    UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    socklen_t len = ip("127.0.0.1").to_sockaddr(0, &closed);
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&closed), len), 0);
    getsockname(s.get(), reinterpret_cast<sockaddr*>(&closed), &len);
  }
  FakeDns up(loop_, answer_with({0, {ip("10.6.6.6")}}));
  ASSERT_TRUE(up.ok());
  HostStack::Options o;
  o.upstreams = {closed, up.addr};
  o.try_timeout = 2000ms;
  HostStack r(loop_, o);
  auto start = std::chrono::steady_clock::now();
  Resolution res = resolve(r, "a.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.6.6.6")});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
}

TEST_F(HostResolverTest, TruncatedAnswerIsAskedAgainOverTcp) {
  FakeDns up(loop_, [](const Message& q, bool tcp) {
    if (!tcp) return std::vector<Bytes>{respond(q, {0, {}, 60, true})};
    return std::vector<Bytes>{respond(q, {0, {ip("10.7.7.7"), ip("fd00::7")}})};
  });
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  Resolution res = resolve(r, "big.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, (std::vector<IpAddr>{ip("10.7.7.7"), ip("fd00::7")}));
  EXPECT_EQ(up.udp_queries, 2);
  EXPECT_EQ(up.tcp_queries, 2);
}

TEST_F(HostResolverTest, SilentTcpIsATimeout) {
  FakeDns up(loop_, [](const Message& q, bool tcp) {
    if (!tcp) return std::vector<Bytes>{respond(q, {0, {}, 60, true})};
    return std::vector<Bytes>{};
  });
  ASSERT_TRUE(up.ok());
  auto o = options({&up});
  o.attempts = 1;
  HostStack r(loop_, o);
  Resolution res = resolve(r, "big.example");
  EXPECT_NE(res.error.find("over TCP: timeout"), std::string::npos) << res.error;
}

TEST_F(HostResolverTest, ConcurrentResolvesShareOneQuery) {
  FakeDns up(loop_, answer_with({0, {ip("10.8.8.8")}}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  std::vector<Resolution> got;
  r.resolve("a.example", [&](const Resolution& res) { got.push_back(res); });
  r.resolve("A.example.", [&](const Resolution& res) { got.push_back(res); });
  EXPECT_EQ(r.in_flight(), 1u);
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(run_until([&] { return got.size() == 2; }));
  EXPECT_EQ(up.udp_queries, 2) << "one A and one AAAA for both";
  for (const Resolution& res : got) EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.8.8.8")});
}

TEST_F(HostResolverTest, CacheHitIsDeferredAndAsksNobody) {
  FakeDns up(loop_, answer_with({0, {ip("10.9.9.9")}}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  EXPECT_FALSE(r.cached("a.example").has_value());
  EXPECT_FALSE(resolve(r, "a.example").from_cache);
  ASSERT_TRUE(r.cached("a.example").has_value());
  EXPECT_EQ(r.cached("A.EXAMPLE")->addrs, std::vector<IpAddr>{ip("10.9.9.9")});
  Resolution again = resolve(r, "a.example");  // resolve() checks it was not synchronous
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.addrs, std::vector<IpAddr>{ip("10.9.9.9")});
  EXPECT_EQ(up.udp_queries, 2);
}

TEST_F(HostResolverTest, TtlsAreClampedAndExpire) {
  FakeDns up(loop_, answer_with({0, {ip("10.10.10.10")}, 300}));
  ASSERT_TRUE(up.ok());
  auto o = options({&up});
  o.max_ttl = 1s;
  HostStack r(loop_, o);
  resolve(r, "a.example");
  EXPECT_TRUE(r.cached("a.example").has_value());
  run_until([] { return false; }, 1100ms);
  EXPECT_FALSE(r.cached("a.example").has_value());
  EXPECT_FALSE(resolve(r, "a.example").from_cache);
  EXPECT_EQ(up.udp_queries, 4);
}

TEST_F(HostResolverTest, ZeroTtlIsKeptForTheMinimum) {
  FakeDns up(loop_, answer_with({0, {ip("10.11.11.11")}, 0}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  resolve(r, "a.example");
  EXPECT_TRUE(r.cached("a.example").has_value());
}

TEST_F(HostResolverTest, CacheIsBoundedLru) {
  FakeDns up(loop_, answer_with({0, {ip("10.12.12.12")}}));
  ASSERT_TRUE(up.ok());
  auto o = options({&up});
  o.cache_entries = 2;
  HostStack r(loop_, o);
  resolve(r, "a.example");
  resolve(r, "b.example");
  EXPECT_TRUE(resolve(r, "a.example").from_cache);  // a is now the most recent
  resolve(r, "c.example");
  EXPECT_EQ(r.cache_size(), 2u);
  EXPECT_TRUE(r.cached("a.example").has_value());
  EXPECT_FALSE(r.cached("b.example").has_value());
  EXPECT_TRUE(r.cached("c.example").has_value());
}

TEST_F(HostResolverTest, SpoofedAnswersAreIgnored) {
  FakeDns up(loop_, [](const Message& q, bool) {
    Message wrong_id = q;
    wrong_id.header.id ^= 0x5555;
    Message wrong_name = q;
    wrong_name.questions[0].name = "evil.example";
    Message wrong_type = q;
    wrong_type.questions[0].type = q.questions[0].type == kTypeA ? kTypeAAAA : kTypeA;
    Reply evil{0, {ip("10.66.66.66"), ip("fd00::66")}};
    return std::vector<Bytes>{respond(wrong_id, evil), respond(wrong_name, evil), respond(wrong_type, evil),
                              Bytes{1, 2, 3}, Bytes{}, build_query(q.header.id, "x.example", kTypeA),
                              respond(q, {0, {ip("10.13.13.13")}})};
  });
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  Resolution res = resolve(r, "a.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.13.13.13")});
}

TEST_F(HostResolverTest, OnlySpoofsMeansTimeout) {
  FakeDns up(loop_, [](const Message& q, bool) {
    Message wrong_id = q;
    wrong_id.header.id ^= 1;
    return std::vector<Bytes>{respond(wrong_id, {0, {ip("10.66.66.66")}})};
  });
  ASSERT_TRUE(up.ok());
  auto o = options({&up});
  o.attempts = 1;
  HostStack r(loop_, o);
  Resolution res = resolve(r, "a.example");
  EXPECT_NE(res.error.find("timeout"), std::string::npos) << res.error;
  EXPECT_TRUE(res.addrs.empty());
}

TEST_F(HostResolverTest, HalfAnAnswerIsAnAnswer) {
  FakeDns up(loop_, [](const Message& q, bool) {
    if (q.questions[0].type == kTypeAAAA) return std::vector<Bytes>{};
    return std::vector<Bytes>{respond(q, {0, {ip("10.14.14.14")}})};
  });
  ASSERT_TRUE(up.ok());
  auto o = options({&up});
  o.attempts = 1;
  HostStack r(loop_, o);
  Resolution res = resolve(r, "v4only.example");
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.rcode, 0);
  EXPECT_EQ(res.addrs, std::vector<IpAddr>{ip("10.14.14.14")});
}

TEST_F(HostResolverTest, Ipv6Upstream) {
  FakeDns up(loop_, answer_with({0, {ip("10.15.15.15")}}), AF_INET6);
  if (!up.ok()) GTEST_SKIP() << "no ::1";
  HostStack r(loop_, options({&up}));
  EXPECT_EQ(resolve(r, "a.example").addrs, std::vector<IpAddr>{ip("10.15.15.15")});
}

TEST_F(HostResolverTest, NamesThatNeedNoQuery) {
  HostStack::Options o;  // no upstreams at all
  HostStack r(loop_, o);
  Resolution lit = resolve(r, "10.16.16.16");
  EXPECT_EQ(lit.error, "");
  EXPECT_EQ(lit.addrs, std::vector<IpAddr>{ip("10.16.16.16")});
  EXPECT_EQ(resolve(r, "fd00::16").addrs, std::vector<IpAddr>{ip("fd00::16")});
  EXPECT_EQ(resolve(r, "bad..name").error, "invalid name");
  EXPECT_EQ(resolve(r, "").error, "invalid name");
  EXPECT_EQ(resolve(r, std::string(300, 'a')).error, "invalid name");
  EXPECT_EQ(resolve(r, "fine.example").error, "no DNS upstreams");
}

TEST_F(HostResolverTest, TooManyInFlight) {
  FakeDns dead(loop_, silent);
  ASSERT_TRUE(dead.ok());
  auto o = options({&dead});
  o.max_in_flight = 1;
  HostStack r(loop_, o);
  r.resolve("a.example", [](const Resolution&) {});
  EXPECT_NE(resolve(r, "b.example").error.find("too many"), std::string::npos);
}

TEST_F(HostResolverTest, DestructionCancelsWithoutCallbacks) {
  size_t before = count_fds();
  {
    FakeDns dead(loop_, silent);
    ASSERT_TRUE(dead.ok());
    auto r = std::make_unique<HostStack>(loop_, options({&dead}));
    bool called = false;
    r->resolve("a.example", [&](const Resolution&) { called = true; });
    run_until([&] { return dead.udp_queries == 2; });
    r->resolve("a.example", [&](const Resolution&) { called = true; });
    r->resolve("10.1.2.3", [&](const Resolution&) { called = true; });  // a pending deferred delivery
    r.reset();
    run_until([] { return false; }, 300ms);
    EXPECT_FALSE(called);
  }
  run_until([] { return false; }, 20ms);
  EXPECT_EQ(count_fds(), before);
}

TEST_F(HostResolverTest, ACallbackMayDestroyTheResolver) {
  FakeDns up(loop_, answer_with({0, {ip("10.17.17.17")}}));
  ASSERT_TRUE(up.ok());
  auto r = std::make_unique<HostStack>(loop_, options({&up}));
  int calls = 0;
  auto kill = [&](const Resolution&) {
    ++calls;
    r.reset();
  };
  r->resolve("a.example", kill);
  r->resolve("a.example", kill);
  run_until([&] { return r == nullptr; });
  run_until([] { return false; }, 50ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(HostResolverTest, ACallbackMayResolveAgain) {
  FakeDns up(loop_, answer_with({0, {ip("10.18.18.18")}}));
  ASSERT_TRUE(up.ok());
  HostStack r(loop_, options({&up}));
  std::optional<Resolution> second;
  r.resolve("a.example", [&](const Resolution&) {
    r.resolve("a.example", [&](const Resolution& res) { second = res; });
  });
  ASSERT_TRUE(run_until([&] { return second.has_value(); }));
  EXPECT_TRUE(second->from_cache);
}

TEST_F(HostResolverTest, NoFdLeaks) {
  size_t before = count_fds();
  {
    FakeDns up(loop_, [](const Message& q, bool tcp) {
      if (!tcp && q.questions[0].name == "big.example") return std::vector<Bytes>{respond(q, {0, {}, 60, true})};
      return std::vector<Bytes>{respond(q, {0, {ip("10.19.19.19")}})};
    });
    FakeDns dead(loop_, silent);
    ASSERT_TRUE(up.ok() && dead.ok());
    HostStack r(loop_, options({&dead, &up}));
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(resolve(r, "n" + std::to_string(i) + ".example").addrs.size(), 1u);
    }
    EXPECT_EQ(resolve(r, "big.example").addrs.size(), 1u);
    EXPECT_EQ(up.tcp_queries, 2);
    EXPECT_EQ(resolve(r, "bad..name").error, "invalid name");
    auto o = options({&dead});
    o.attempts = 1;
    HostStack lost(loop_, o);
    EXPECT_FALSE(resolve(lost, "gone.example").error.empty());
  }
  run_until([] { return false; }, 20ms);
  EXPECT_EQ(count_fds(), before);
}

}  // namespace
