// Test the filtering resolver (dns/server.h) end to end on loopback: real
// UDP and TCP clients, a fake upstream on 127.0.0.1 that counts every
// query, the client identity faked. Allowed names are forwarded and
// cached, denied ones never reach the upstream (whatever the type, also in
// a burst of 500), ANY is refused, TC moves to TCP, TCP clients pipeline,
// malformed packets are dropped while the server keeps serving, answers
// lose blocked addresses, events name the client. UDP batches (one
// recvmmsg, one sendmmsg per wakeup) answer every kind of query in them as
// one at a time would. Every wait has a deadline.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../support/fake_dns_upstream.h"
#include "dns/builder.h"
#include "dns/filter.h"
#include "dns/host_resolver.h"
#include "dns/message.h"
#include "dns/reply.h"
#include "dns/server.h"
#include "policy/toml_loader.h"

namespace egressd::dns {
namespace {

using namespace std::chrono_literals;
using egressd::testing::Bytes;
using egressd::testing::FakeDnsUpstream;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

size_t count_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// ---- messages -------------------------------------------------------------------

struct Ask {
  std::string name;
  uint16_t type = kTypeA;
  uint16_t klass = kClassIN;
  uint16_t id = 0x1234;
  int edns = -1;  // -1: none; else the UDP size advertised
  bool dnssec_ok = false;
};

Bytes query(const Ask& a) {
  Header h;
  h.id = a.id;
  h.rd = true;
  MessageBuilder b(h, false);
  EXPECT_TRUE(b.question(a.name, a.type, a.klass));
  if (a.edns >= 0) b.opt(static_cast<uint16_t>(a.edns), 0, a.dnssec_ok);
  return b.bytes();
}

// What an upstream answers: `addrs` of the query's family (CNAME first if set).
Bytes respond(const Message& q, std::vector<IpAddr> addrs, uint16_t rcode = 0, bool tc = false, uint32_t ttl = 300,
              std::string cname = "") {
  Header h;
  h.id = q.header.id;
  h.qr = h.ra = true;
  h.rd = q.header.rd;
  h.tc = tc;
  h.rcode = rcode;
  MessageBuilder b(h);
  const Question& question = q.questions.at(0);
  b.question(question.name, question.type);
  std::string owner = question.name;
  if (!cname.empty()) {
    b.cname(Section::Answer, owner, ttl, cname);
    owner = cname;
  }
  for (const IpAddr& a : addrs)
    if ((question.type == kTypeA && a.family == AF_INET) || (question.type == kTypeAAAA && a.family == AF_INET6))
      b.address(Section::Answer, owner, ttl, a);
  if (rcode == kRcodeNxDomain)
    b.record(Section::Authority, "test", kTypeSOA, 60,
             Bytes{1, 'n', 0, 1, 'h', 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60});
  if (q.edns) b.opt(1232, 0, q.edns->dnssec_ok);
  return b.bytes();
}

// Answers by name: "rebind.test" gets a private address too, "big.test"
// more than 512 bytes, anything unknown NXDOMAIN.
FakeDnsUpstream::Handler world() {
  return [](const Message& q, bool) -> std::vector<Bytes> {
    const std::string& n = q.questions.at(0).name;
    if (n == "allowed.test" || n == "a.wild.test" || n == "other.allowed.test")
      return {respond(q, {ip("203.0.113.10"), ip("2001:db8::10")})};
    if (n == "rebind.test") return {respond(q, {ip("10.0.0.5"), ip("203.0.113.10"), ip("169.254.169.254")})};
    if (n == "alias.test") return {respond(q, {ip("203.0.113.10")}, 0, false, 300, "allowed.test")};
    if (n == "big.test") {
      std::vector<IpAddr> many;
      for (int i = 1; i <= 60; ++i) many.push_back(*IpAddr::parse("203.0.113." + std::to_string(i)));
      return {respond(q, many)};
    }
    return {respond(q, {}, kRcodeNxDomain)};
  };
}

Message parse_ok(const Bytes& wire) {
  ParseResult p = parse_message(wire);
  EXPECT_EQ(p.status, ParseStatus::Ok) << p.error;
  return p.message;
}

std::vector<std::string> addrs_of(const Message& m) {
  std::vector<std::string> out;
  for (const Record& r : m.answers)
    if (r.addr) out.push_back(r.addr->to_string());
  return out;
}

// ---- the fixture ------------------------------------------------------------------

class FakeIdentity final : public ClientIdentity {
 public:
  // TCP clients are pid 4242, uid 1000, unless `next_tcp` names the next
  // ones ({tgid, uid}; tgid 0: no identity recorded).
  std::optional<decide::SteeredFlow> tcp(int, const sockaddr_storage&) override {
    ++tcp_calls;
    decide::SteeredFlow o = who("dig-tcp");
    if (!next_tcp.empty()) {
      auto [tgid, uid] = next_tcp.front();
      next_tcp.erase(next_tcp.begin());
      if (!tgid) return std::nullopt;
      o.pid = o.tgid = tgid;
      o.uid = uid;
    }
    return o;
  }
  std::vector<std::pair<uint32_t, uint32_t>> next_tcp;
  std::optional<decide::SteeredFlow> udp(const sockaddr_storage& peer, const sockaddr_storage& local) override {
    ++udp_calls;
    EXPECT_EQ(peer.ss_family, local.ss_family);
    if (!udp_known) return std::nullopt;  // the sender's socket is gone, or was never steered
    return who("dig");
  }
  int tcp_calls = 0, udp_calls = 0;
  bool udp_known = true;

 private:
  static decide::SteeredFlow who(const char* comm) {
    decide::SteeredFlow o;
    o.identified = true;
    o.family = AF_INET;
    o.given = o.target = ip("198.51.100.53");
    o.port = 53;
    o.pid = o.tgid = 4242;
    o.uid = 1000;
    o.cgroup_id = 77;
    o.comm = comm;
    return o;
  }
};

const char* kPolicy = R"(version = 1
[[allow]]
host = "allowed.test"
[[allow]]
host = "*.wild.test"
[[allow]]
host = "rebind.test"
[[allow]]
host = "alias.test"
[[allow]]
host = "big.test"
[[allow]]
host = "missing.test"
)";

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(up_.ok()); }

  std::shared_ptr<const decide::ActivePolicy> policy(const std::string& text) {
    return std::make_shared<const decide::ActivePolicy>(policy::parse_policy(text, "t.toml"));
  }

  ServerOptions options() { return ServerOptions{}; }
  UpstreamClient::Options upstream_options() {
    UpstreamClient::Options o;
    o.upstreams = {up_.addr};
    o.try_timeout = 200ms;
    o.attempts = 1;
    return o;
  }

  void start(const std::string& text = kPolicy, std::optional<ServerOptions> o = std::nullopt,
             std::optional<UpstreamClient::Options> u = std::nullopt) {
    server_.reset();
    upstream_ = std::make_unique<UpstreamClient>(loop_, u ? *u : upstream_options());
    auto s = Server::start(
        loop_, *upstream_, identity_, [this](const Event& e) { events_.push_back(e); }, policy(text),
        o ? *o : options());
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
  }

  // Runs the loop until `cond` or `limit`; then one more turn so deferred work runs.
  bool run_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 3000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    bool met = cond();
    while (!met && std::chrono::steady_clock::now() < end) {
      EXPECT_TRUE(loop_.run_once(5).ok());
      met = cond();
    }
    (void)loop_.run_once(0);
    return met;
  }

  UniqueFd udp_client(int family = AF_INET) {
    UniqueFd fd(socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_storage ss;
    socklen_t len = (family == AF_INET ? ip("127.0.0.1") : ip("::1")).to_sockaddr(server_->port(), &ss);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
    return fd;
  }

  std::optional<Bytes> recv_one(int fd, std::chrono::milliseconds limit = 3000ms) {
    std::optional<Bytes> got;
    run_until(
        [&] {
          uint8_t buf[65536];
          ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
          if (n > 0) got = Bytes(buf, buf + n);
          return got.has_value();
        },
        limit);
    return got;
  }

  // One query over UDP; the reply, if any came within `limit`.
  std::optional<Bytes> ask_udp(const Bytes& q, int family = AF_INET, std::chrono::milliseconds limit = 3000ms) {
    UniqueFd fd = udp_client(family);
    EXPECT_EQ(send(fd.get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    return recv_one(fd.get(), limit);
  }

  UniqueFd tcp_client() {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss;
    socklen_t len = ip("127.0.0.1").to_sockaddr(server_->port(), &ss);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);  // the backlog takes it
    return fd;
  }

  static Bytes framed(const std::vector<Bytes>& messages) {
    Bytes out;
    for (const Bytes& m : messages) {
      out.push_back(static_cast<uint8_t>(m.size() >> 8));
      out.push_back(static_cast<uint8_t>(m.size()));
      out.insert(out.end(), m.begin(), m.end());
    }
    return out;
  }

  // Reads `n` framed replies from a TCP client (or fewer at EOF/deadline).
  std::vector<Bytes> tcp_replies(int fd, size_t n, bool* eof = nullptr) {
    Bytes in;
    std::vector<Bytes> out;
    run_until([&] {
      uint8_t buf[65536];
      ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (got == 0) {
        if (eof) *eof = true;
        return true;
      }
      if (got > 0) in.insert(in.end(), buf, buf + got);
      while (in.size() >= 2 && in.size() >= 2u + (in[0] << 8 | in[1])) {
        size_t len = static_cast<size_t>(in[0] << 8 | in[1]);
        out.emplace_back(in.begin() + 2, in.begin() + 2 + static_cast<std::ptrdiff_t>(len));
        in.erase(in.begin(), in.begin() + 2 + static_cast<std::ptrdiff_t>(len));
      }
      return out.size() >= n;
    });
    return out;
  }

  const Event* find_event(uint16_t reason, const std::string& host = "") {
    for (const Event& e : events_)
      if (e.reason == reason && (host.empty() || e.host == host)) return &e;
    return nullptr;
  }

  Loop loop_ = *Loop::create();
  FakeDnsUpstream up_{loop_, world()};
  FakeIdentity identity_;
  std::vector<Event> events_;
  std::unique_ptr<UpstreamClient> upstream_;  // outlives the server
  std::unique_ptr<Server> server_;
};

// ---- allowed names ---------------------------------------------------------------------

TEST_F(DnsServerTest, AllowedNameIsForwardedWithAFreshIdAndAnsweredInTheClientsSpelling) {
  start();
  Bytes q = query({.name = "AlLoWeD.TeSt", .id = 0xbeef});
  auto r = ask_udp(q);
  ASSERT_TRUE(r);
  Message m = parse_ok(*r);
  EXPECT_EQ(m.header.id, 0xbeef);
  EXPECT_TRUE(m.header.qr && m.header.rd && m.header.ra);
  EXPECT_FALSE(m.header.aa);
  EXPECT_EQ(m.header.rcode, kRcodeNoError);
  EXPECT_EQ(addrs_of(m), (std::vector<std::string>{"203.0.113.10"}));
  // The question comes back byte for byte (0x20 clients check the case).
  EXPECT_TRUE(std::equal(q.begin() + 12, q.end(), r->begin() + 12));
  EXPECT_FALSE(m.edns) << "no OPT for a client that sent none";
  ASSERT_EQ(up_.udp_queries, 1);
  const Message& sent = up_.seen.at(0);
  EXPECT_EQ(sent.questions.at(0).name, "allowed.test");
  EXPECT_TRUE(sent.header.rd);
  EXPECT_TRUE(sent.edns) << "upstream is always asked with EDNS (1232)";
  EXPECT_EQ(sent.edns->udp_size, 1232);
  EXPECT_TRUE(events_.empty()) << "allowed queries are events only with events = \"all\"";
  EXPECT_EQ(server_->stats().forwarded, 1u);
}

TEST_F(DnsServerTest, AnswersAreCachedAndGivenToEachClientWithItsOwnId) {
  start();
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test", .id = 1})));
  auto second = ask_udp(query({.name = "ALLOWED.test", .id = 2}));
  ASSERT_TRUE(second);
  Message m = parse_ok(*second);
  EXPECT_EQ(m.header.id, 2);
  EXPECT_EQ(m.questions.at(0).name, "allowed.test");
  EXPECT_EQ(addrs_of(m), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_LE(m.answers.at(0).ttl, 300u);
  EXPECT_EQ(up_.queries(), 1) << "the second came from the cache";
  EXPECT_EQ(server_->stats().cache_hits, 1u);
  // AAAA is another question.
  auto v6 = ask_udp(query({.name = "allowed.test", .type = kTypeAAAA}));
  ASSERT_TRUE(v6);
  EXPECT_EQ(addrs_of(parse_ok(*v6)), (std::vector<std::string>{"2001:db8::10"}));
  EXPECT_EQ(up_.queries(), 2);
  // The proxy sees what the clients were given.
  auto given = server_->cached_addresses("Allowed.Test.");
  ASSERT_TRUE(given);
  EXPECT_EQ(given->size(), 2u);
  EXPECT_FALSE(server_->cached_addresses("other.test"));
}

// Test that every forwarded answer is told to the observer (what feeds the
// proxy's memory of addresses that moved) as the client got it, filtered,
// and that cache hits are not told again.
TEST_F(DnsServerTest, ForwardedAnswersAreToldToTheObserverFiltered) {
  start();
  std::vector<std::pair<std::string, std::vector<std::string>>> told;
  server_->observe_answers([&](std::string_view qname, uint16_t qtype, const AddressAnswer& answer) {
    EXPECT_EQ(qtype, kTypeA);
    std::vector<std::string> addrs;
    for (const IpAddr& a : answer.addrs) addrs.push_back(a.to_string());
    told.emplace_back(std::string(qname), addrs);
  });
  ASSERT_TRUE(ask_udp(query({.name = "rebind.test"})));
  ASSERT_TRUE(ask_udp(query({.name = "rebind.test", .id = 7})));
  ASSERT_EQ(told.size(), 1u) << "the second came from the cache";
  EXPECT_EQ(told[0].first, "rebind.test");
  EXPECT_EQ(told[0].second, std::vector<std::string>{"203.0.113.10"}) << "10.0.0.5 was filtered out";
}

// Test that a name only [dns] allow admits is not told to the observer:
// the proxy never asks about it (it admits no connection by that name).
TEST_F(DnsServerTest, ObserverHearsOnlyOfHostRuleNames) {
  start(std::string(kPolicy) + "[dns]\nallow = [\"other.allowed.test\"]\n");
  std::vector<std::string> told;
  server_->observe_answers(
      [&](std::string_view qname, uint16_t, const AddressAnswer&) { told.emplace_back(qname); });
  auto dns_only = ask_udp(query({.name = "other.allowed.test"}));
  ASSERT_TRUE(dns_only);
  EXPECT_EQ(addrs_of(parse_ok(*dns_only)), (std::vector<std::string>{"203.0.113.10"}));
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test", .id = 2})));
  EXPECT_EQ(told, std::vector<std::string>{"allowed.test"});
}

// Test that the proxy's host lookups and the resolver's forwarding go
// through one client: its questions and sockets serve both.
TEST_F(DnsServerTest, HostLookupsShareTheResolversClient) {
  start();
  HostResolver hosts(loop_, *upstream_);
  std::optional<Resolution> got;
  hosts.resolve("allowed.test", [&](const Resolution& r) { got = r; });
  auto r = ask_udp(query({.name = "a.wild.test"}));
  ASSERT_TRUE(r);
  ASSERT_TRUE(run_until([&] { return got.has_value(); }));
  EXPECT_EQ(got->addrs, (std::vector<IpAddr>{ip("203.0.113.10"), ip("2001:db8::10")}));
  EXPECT_EQ(up_.queries(), 3) << "A+AAAA for the proxy, A for the client";
  EXPECT_EQ(upstream_->tries(), 3u);
  EXPECT_EQ(upstream_->in_flight(), 0u);
}

TEST_F(DnsServerTest, ConcurrentIdenticalQuestionsShareOneUpstreamQuery) {
  start();
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(udp_client());
    Bytes q = query({.name = "a.wild.test", .id = static_cast<uint16_t>(100 + i)});
    ASSERT_EQ(send(clients.back().get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
  }
  for (int i = 0; i < 5; ++i) {
    auto r = recv_one(clients[i].get());
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(parse_ok(*r).header.id, 100 + i);
  }
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_EQ(server_->stats().coalesced, 4u);
}

TEST_F(DnsServerTest, EdnsAndTheDoBitPassThrough) {
  start();
  auto r = ask_udp(query({.name = "allowed.test", .edns = 4096, .dnssec_ok = true}));
  ASSERT_TRUE(r);
  Message m = parse_ok(*r);
  ASSERT_TRUE(m.edns);
  EXPECT_TRUE(m.edns->dnssec_ok);
  ASSERT_EQ(up_.seen.size(), 1u);
  ASSERT_TRUE(up_.seen[0].edns);
  EXPECT_TRUE(up_.seen[0].edns->dnssec_ok);
  // DO=0 is another cache entry: asked again.
  auto plain = ask_udp(query({.name = "allowed.test", .edns = 1232}));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(parse_ok(*plain).edns->dnssec_ok);
  EXPECT_EQ(up_.queries(), 2);
  // EDNS version 1 is not spoken: BADVERS, nothing forwarded.
  Header h;
  h.id = 9;
  MessageBuilder b(h, false);
  b.question("allowed.test", kTypeA);
  b.opt(1232);
  Bytes v1 = b.bytes();
  v1[v1.size() - 5] = 1;  // the OPT TTL's version octet
  auto bad = ask_udp(v1);
  ASSERT_TRUE(bad);
  Message bm = parse_ok(*bad);
  EXPECT_EQ(bm.header.rcode, kRcodeBadVers);
  EXPECT_EQ(up_.queries(), 2);
}

TEST_F(DnsServerTest, CnamesAreAnsweredWholeAndTheProxySeesTheAddresses) {
  start();
  auto r = ask_udp(query({.name = "alias.test"}));
  ASSERT_TRUE(r);
  Message m = parse_ok(*r);
  ASSERT_EQ(m.answers.size(), 2u);
  EXPECT_EQ(m.answers[0].target, "allowed.test");
  auto given = server_->cached_addresses("alias.test");
  ASSERT_TRUE(given);
  EXPECT_EQ(*given, std::vector<IpAddr>{ip("203.0.113.10")});
}

// ---- denied names ------------------------------------------------------------------------

TEST_F(DnsServerTest, DeniedNamesGetNxdomainAndNeverReachTheUpstreamWhateverTheType) {
  start();
  for (uint16_t type : {kTypeA, kTypeAAAA, kTypeTXT, kTypeHTTPS, uint16_t{255}, uint16_t{252}, kTypePTR}) {
    auto r = ask_udp(query({.name = "secret-data.evil.test", .type = type, .id = type}));
    ASSERT_TRUE(r) << type;
    Message m = parse_ok(*r);
    EXPECT_EQ(m.header.rcode, kRcodeNxDomain) << type;
    EXPECT_EQ(m.header.id, type);
    EXPECT_TRUE(m.answers.empty());
  }
  EXPECT_EQ(up_.queries(), 0);
  const Event* e = find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "secret-data.evil.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->hook, EGD_HOOK_DNS);
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  EXPECT_EQ(e->qtype, kTypeA);
  EXPECT_EQ(e->l7, "dns");
  EXPECT_TRUE(e->sender_known);
  EXPECT_EQ(e->comm, "dig");
  EXPECT_EQ(e->pid, 4242u);
  EXPECT_EQ(e->uid, 1000u);
  EXPECT_EQ(e->cgroup_id, 77u);
  EXPECT_EQ(e->daddr, "198.51.100.53");
  EXPECT_EQ(e->dport, 53);
  EXPECT_EQ(e->protocol, IPPROTO_UDP);
  EXPECT_EQ(events_.size(), 7u);
  EXPECT_EQ(identity_.udp_calls, 7) << "the identity is looked up for events only";
}

TEST_F(DnsServerTest, DeniedAnswerCarriesAnExtendedErrorForEdnsClientsAndCanBeRefused) {
  start(std::string(kPolicy) + "[dns]\ndenied = \"refused\"\n");
  auto r = ask_udp(query({.name = "evil.test", .edns = 1232}));
  ASSERT_TRUE(r);
  Message m = parse_ok(*r);
  EXPECT_EQ(m.header.rcode, kRcodeRefused);
  ASSERT_TRUE(m.edns);
  const Record& opt = m.additional.at(0);
  ASSERT_GE(opt.rdata_length, 6);
  EXPECT_EQ((*r)[opt.rdata_offset + 1], kEdnsOptionEde);
  EXPECT_EQ((*r)[opt.rdata_offset + 5], kEdeBlocked);
  EXPECT_EQ(up_.queries(), 0);
}

TEST_F(DnsServerTest, AnyAndOtherTypesAreRefusedForAllowedNames) {
  start();
  for (uint16_t type : {uint16_t{255}, uint16_t{252}, uint16_t{10}}) {
    auto r = ask_udp(query({.name = "allowed.test", .type = type}));
    ASSERT_TRUE(r);
    EXPECT_EQ(parse_ok(*r).header.rcode, kRcodeRefused) << type;
  }
  EXPECT_EQ(up_.queries(), 0);
  const Event* e = find_event(EGD_REASON_DNS_TYPE_NOT_ALLOWED, "allowed.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->qtype, 255);
  EXPECT_EQ(e->qclass, kClassIN);
}

// version.bind CH TXT: refused, and the event carries its class and type.
TEST_F(DnsServerTest, ChaosQueriesAreRefusedAndRecordedWithTheirClass) {
  start();
  auto r = ask_udp(query({.name = "version.bind", .type = 16, .klass = 3}));
  ASSERT_TRUE(r);
  EXPECT_NE(parse_ok(*r).header.rcode, kRcodeNoError);
  EXPECT_EQ(up_.queries(), 0);
  ASSERT_FALSE(events_.empty());
  const Event& e = events_.back();
  EXPECT_EQ(e.host, "version.bind");
  EXPECT_EQ(e.qtype, 16);  // TXT
  EXPECT_EQ(e.qclass, 3);
}

TEST_F(DnsServerTest, TunnellingBurstUnderADeniedZoneSendsNothingUpstream) {
  start();
  UniqueFd fd = udp_client();
  std::mt19937 rng(5);
  const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::map<uint16_t, bool> waiting;
  for (uint16_t i = 1; i <= 500; ++i) {
    std::string label;
    for (int j = 0; j < 40; ++j) label.push_back(alphabet[rng() % 36]);
    Bytes q = query({.name = label + ".exfil.evil.test", .type = i % 2 ? kTypeA : kTypeTXT, .id = i});
    ASSERT_EQ(send(fd.get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    waiting[i] = true;
    if (i % 50 == 0) {  // a socket buffer holds a few hundred: let the server drain it
      ASSERT_TRUE(run_until([&] {
        uint8_t buf[4096];
        for (ssize_t n; (n = recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT)) > 0;) {
          Message m = parse_ok(Bytes(buf, buf + n));
          EXPECT_EQ(m.header.rcode, kRcodeNxDomain);
          waiting.erase(m.header.id);
        }
        return waiting.size() == 0;
      }));
    }
  }
  EXPECT_TRUE(waiting.empty());
  EXPECT_EQ(up_.queries(), 0);
  EXPECT_EQ(server_->decisions()[EGD_VERDICT_DENY * EGD_REASON__COUNT + EGD_REASON_DNS_NAME_NOT_ALLOWED], 500u);
}

// ---- rebinding -----------------------------------------------------------------------------

TEST_F(DnsServerTest, BlockedAddressesAreRemovedFromAnswers) {
  start();
  auto r = ask_udp(query({.name = "rebind.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(addrs_of(parse_ok(*r)), (std::vector<std::string>{"203.0.113.10"}));
  const Event* e = find_event(EGD_REASON_REBIND, "rebind.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  EXPECT_EQ(server_->stats().rebind_removed, 2u);
  EXPECT_EQ(*server_->cached_addresses("rebind.test"), std::vector<IpAddr>{ip("203.0.113.10")});
  // A new policy empties the cache: its answers were filtered by the old one.
  server_->set_policy(policy(std::string(kPolicy) + "[network]\nprivate = \"allow\"\n"));
  EXPECT_FALSE(server_->cached_addresses("rebind.test"));
  auto again = ask_udp(query({.name = "rebind.test"}));
  ASSERT_TRUE(again);
  EXPECT_EQ(addrs_of(parse_ok(*again)), (std::vector<std::string>{"10.0.0.5", "203.0.113.10"}));
}

// ---- truncation and TCP ---------------------------------------------------------------------

TEST_F(DnsServerTest, TruncatedUpstreamAnswerIsAskedAgainOverTcp) {
  up_.set_handler([](const Message& q, bool tcp) -> std::vector<Bytes> {
    if (!tcp) return {respond(q, {}, 0, /*tc=*/true)};
    return {respond(q, {ip("203.0.113.10")})};
  });
  start();
  auto r = ask_udp(query({.name = "allowed.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(addrs_of(parse_ok(*r)), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_EQ(up_.udp_queries, 1);
  EXPECT_EQ(up_.tcp_queries, 1);
}

TEST_F(DnsServerTest, AnswersTooBigForTheClientAreTruncatedAndWholeOverTcp) {
  start();
  auto r = ask_udp(query({.name = "big.test"}));  // no EDNS: 512 bytes at most
  ASSERT_TRUE(r);
  Message m = parse_ok(*r);
  EXPECT_TRUE(m.header.tc);
  EXPECT_TRUE(m.answers.empty());
  EXPECT_LE(r->size(), 512u);
  auto big = ask_udp(query({.name = "big.test", .edns = 4096}));
  ASSERT_TRUE(big);
  EXPECT_FALSE(parse_ok(*big).header.tc);
  EXPECT_EQ(addrs_of(parse_ok(*big)).size(), 60u);
  UniqueFd fd = tcp_client();
  Bytes out = framed({query({.name = "big.test", .id = 77})});
  ASSERT_EQ(send(fd.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  auto replies = tcp_replies(fd.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(addrs_of(parse_ok(replies[0])).size(), 60u);
  EXPECT_EQ(up_.queries(), 1) << "one upstream answer served all three";
}

TEST_F(DnsServerTest, TcpClientsPipelineAndAreAnsweredByAcceptIdentity) {
  start();
  UniqueFd fd = tcp_client();
  Bytes out = framed({query({.name = "allowed.test", .id = 1}), query({.name = "evil.test", .id = 2}),
                      query({.name = "a.wild.test", .type = kTypeAAAA, .id = 3}),
                      query({.name = "allowed.test", .type = 255, .id = 4})});
  // One byte at a time: framing must not care how the bytes arrive.
  for (uint8_t byte : out) ASSERT_EQ(send(fd.get(), &byte, 1, 0), 1);
  auto replies = tcp_replies(fd.get(), 4);
  ASSERT_EQ(replies.size(), 4u);
  std::map<uint16_t, Message> by_id;
  for (const Bytes& r : replies) {
    Message m = parse_ok(r);
    by_id[m.header.id] = m;
  }
  EXPECT_EQ(addrs_of(by_id[1]), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_EQ(by_id[2].header.rcode, kRcodeNxDomain);
  EXPECT_EQ(addrs_of(by_id[3]), (std::vector<std::string>{"2001:db8::10"}));
  EXPECT_EQ(by_id[4].header.rcode, kRcodeRefused);
  EXPECT_EQ(up_.queries(), 2);
  EXPECT_EQ(identity_.tcp_calls, 1);
  EXPECT_EQ(identity_.udp_calls, 0);
  const Event* e = find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "evil.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->comm, "dig-tcp");
  EXPECT_EQ(e->protocol, IPPROTO_TCP);
}

TEST_F(DnsServerTest, IdleTcpClientsAreClosedAndHalfClosedOnesAnsweredFirst) {
  ServerOptions o = options();
  o.tcp_idle_timeout = 100ms;
  start(kPolicy, o);
  UniqueFd idle = tcp_client();
  bool eof = false;
  tcp_replies(idle.get(), 1, &eof);
  EXPECT_TRUE(eof) << "an idle connection is closed";
  UniqueFd half = tcp_client();
  Bytes out = framed({query({.name = "allowed.test", .id = 5})});
  ASSERT_EQ(send(half.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  shutdown(half.get(), SHUT_WR);
  eof = false;
  auto replies = tcp_replies(half.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  tcp_replies(half.get(), 2, &eof);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(run_until([&] { return server_->stats().tcp_active == 0; }));
}

TEST_F(DnsServerTest, TcpConnectionsAreBounded) {
  ServerOptions o = options();
  o.max_tcp_clients = 2;
  start(kPolicy, o);
  identity_.next_tcp = {{1, 1}, {2, 2}, {3, 3}};  // three clients, each within its share
  UniqueFd a = tcp_client(), b = tcp_client(), c = tcp_client();
  ASSERT_TRUE(run_until([&] { return server_->stats().tcp_refused == 1; }));
  bool eof = false;
  tcp_replies(c.get(), 1, &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(server_->stats().tcp_active, 2u);
  EXPECT_EQ(identity_.tcp_calls, 3) << "the refused one's record is taken too";
  const Event* e = find_event(EGD_REASON_TOO_MANY_CONNECTIONS);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tgid, 3u);
}

// Test the fair share: one process over its cap is refused (an event and a
// log line naming it and the cap) while another process is served, and a
// connection it closes makes room for one more.
TEST_F(DnsServerTest, AProcessOverItsTcpShareIsRefusedOthersServed) {
  ServerOptions o = options();
  std::vector<std::string> warned;
  o.warn = [&](const std::string& line) { warned.push_back(line); };
  start(std::string(kPolicy) + "[dns]\nmax_tcp_connections_per_process = 2\n", o);
  EXPECT_EQ(server_->tcp_share_caps().per_process, 2u);
  identity_.next_tcp = {{4242, 1000}, {4242, 1000}, {4242, 1000}, {5151, 1000}};
  UniqueFd a = tcp_client(), b = tcp_client(), flood = tcp_client(), other = tcp_client();
  ASSERT_TRUE(run_until([&] { return server_->stats().tcp_accepted == 3; }));
  bool eof = false;
  tcp_replies(flood.get(), 1, &eof);
  EXPECT_TRUE(eof) << "the third connection of pid 4242 is closed";
  Bytes out = framed({query({.name = "allowed.test", .id = 7})});
  ASSERT_EQ(send(other.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  auto replies = tcp_replies(other.get(), 1);
  ASSERT_EQ(replies.size(), 1u) << "another process is served";
  EXPECT_EQ(parse_ok(replies[0]).header.rcode, kRcodeNoError);
  EXPECT_EQ(server_->stats().tcp_refused, 1u);
  const Event* e = find_event(EGD_REASON_TOO_MANY_CONNECTIONS);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tgid, 4242u);
  EXPECT_EQ(e->uid, 1000u);
  EXPECT_EQ(e->comm, "dig-tcp");
  EXPECT_EQ(e->hook, EGD_HOOK_DNS);
  EXPECT_EQ(e->protocol, IPPROTO_TCP);
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  EXPECT_EQ(server_->decisions()[size_t{EGD_VERDICT_DENY} * EGD_REASON__COUNT + EGD_REASON_TOO_MANY_CONNECTIONS], 1u);
  ASSERT_EQ(warned.size(), 1u);
  EXPECT_NE(warned[0].find("pid 4242 (dig-tcp, uid 1000)"), std::string::npos) << warned[0];
  EXPECT_NE(warned[0].find("the per-process cap"), std::string::npos) << warned[0];
  // One of its connections ends: room for one more.
  a.reset();
  ASSERT_TRUE(run_until([&] { return server_->stats().tcp_active == 2; }));
  identity_.next_tcp = {{4242, 1000}};
  UniqueFd again = tcp_client();
  out = framed({query({.name = "allowed.test", .id = 8})});
  ASSERT_EQ(send(again.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  EXPECT_EQ(tcp_replies(again.get(), 1).size(), 1u);
  EXPECT_EQ(server_->stats().tcp_refused, 1u);
}

// Test that running out of descriptors pauses accepting with a log line
// saying why, and that accepting resumes once descriptors are free.
TEST_F(DnsServerTest, OutOfDescriptorsIsLoggedAndAcceptingResumes) {
  ServerOptions o = options();
  std::vector<std::string> warned;
  o.warn = [&](const std::string& line) { warned.push_back(line); };
  start(kPolicy, o);
  // One connection accepted while descriptors are plenty: UBSan's vptr check
  // reads an object through a pipe the first time it sees its type, which
  // fails once no descriptor is left.
  UniqueFd first = tcp_client();
  ASSERT_TRUE(run_until([&] { return server_->stats().tcp_accepted == 1; }));
  UniqueFd waiting = tcp_client();
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int lowest_free = dup(0);
  ASSERT_GE(lowest_free, 0);
  close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no descriptor left for accept()
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  bool logged = run_until([&] { return !warned.empty(); }, 1000ms);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(logged);
  EXPECT_NE(warned[0].find("resolver (TCP): cannot accept: Too many open files"), std::string::npos) << warned[0];
  EXPECT_EQ(server_->stats().tcp_accepted, 1u);
  EXPECT_TRUE(run_until([&] { return server_->stats().tcp_accepted == 2; }));
}

// Test that clients without a recorded identity share one bucket and are
// never counted as root's.
TEST_F(DnsServerTest, UnknownTcpClientsShareOneShare) {
  start(std::string(kPolicy) + "[dns]\nmax_tcp_connections_per_process = 1\n");
  identity_.next_tcp = {{0, 0}, {0, 0}, {1, 0}};
  UniqueFd a = tcp_client(), b = tcp_client(), root = tcp_client();
  ASSERT_TRUE(run_until([&] { return server_->stats().tcp_accepted + server_->stats().tcp_refused == 3; }));
  EXPECT_EQ(server_->stats().tcp_accepted, 2u);
  EXPECT_EQ(server_->stats().tcp_refused, 1u);
  bool eof = false;
  tcp_replies(b.get(), 1, &eof);
  EXPECT_TRUE(eof);
}

// ---- malformed input -------------------------------------------------------------------------

TEST_F(DnsServerTest, MalformedPacketsAreDroppedAndTheServerKeepsServing) {
  start();
  Bytes loop_name = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};  // points at itself
  Bytes response = query({.name = "allowed.test"});
  response[2] |= 0x80;  // QR: a response sent to us (reflection)
  Bytes long_label = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64};
  long_label.resize(long_label.size() + 64, 'a');
  std::vector<Bytes> bad = {{}, {1, 2, 3}, Bytes(11, 0), loop_name, response, long_label, Bytes(600, 0xff)};
  UniqueFd fd = udp_client();
  for (const Bytes& b : bad) ASSERT_GE(send(fd.get(), b.data(), b.size(), 0), 0);
  // Two questions: FORMERR (a reply, but nothing forwarded).
  Bytes two = query({.name = "allowed.test", .id = 0x2222});
  two[5] = 2;
  two.insert(two.end(), two.begin() + 12, two.end());
  ASSERT_GE(send(fd.get(), two.data(), two.size(), 0), 0);
  auto formerr = recv_one(fd.get());
  ASSERT_TRUE(formerr);
  EXPECT_EQ((*formerr)[0], 0x22);
  EXPECT_EQ((*formerr)[3] & 0x0f, kRcodeFormErr);
  // Still serving.
  auto ok = ask_udp(query({.name = "allowed.test"}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(parse_ok(*ok).header.rcode, kRcodeNoError);
  uint8_t buf[512];
  EXPECT_LT(recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT), 0) << "nothing answered the garbage";
  EXPECT_EQ(server_->stats().malformed, bad.size() - 1 + 1) << "the empty datagram counts too";
  EXPECT_EQ(up_.queries(), 1);
  const Event* e = find_event(EGD_REASON_DNS_MALFORMED);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->comm, "dig");
  // A TCP frame shorter than a header loses the framing: closed.
  UniqueFd t = tcp_client();
  Bytes runt = {0, 3, 1, 2, 3};
  ASSERT_EQ(send(t.get(), runt.data(), runt.size(), 0), 5);
  bool eof = false;
  tcp_replies(t.get(), 1, &eof);
  EXPECT_TRUE(eof);
}

// Nobody could say who sent it: the event says so rather than pid 0, uid 0.
TEST_F(DnsServerTest, EventsFromAnUnknownSenderSayUnknown) {
  start();
  identity_.udp_known = false;
  UniqueFd fd = udp_client();
  ASSERT_EQ(send(fd.get(), "xx", 2, 0), 2);
  ASSERT_TRUE(run_until([&] { return find_event(EGD_REASON_DNS_MALFORMED) != nullptr; }));
  const Event* e = find_event(EGD_REASON_DNS_MALFORMED);
  EXPECT_FALSE(e->sender_known);
  EXPECT_EQ(e->comm, "");
  EXPECT_EQ(e->daddr, "") << "the address asked is unknown too";
}

TEST_F(DnsServerTest, MalformedFloodEventsAreRateLimited) {
  ServerOptions o = options();
  o.malformed_burst = 5;
  o.malformed_per_second = 0.001;
  start(kPolicy, o);
  UniqueFd fd = udp_client();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(send(fd.get(), "xx", 2, 0), 2);
  ASSERT_TRUE(run_until([&] { return server_->stats().malformed == 50; }));
  EXPECT_EQ(events_.size(), 5u);
  EXPECT_EQ(server_->stats().events_suppressed, 45u);
  EXPECT_EQ(identity_.udp_calls, 5) << "suppressed events cost no lookup";
}

// ---- upstream trouble ------------------------------------------------------------------------

TEST_F(DnsServerTest, SilentUpstreamGivesServfailAndAnEvent) {
  up_.set_handler([](const Message&, bool) { return std::vector<Bytes>{}; });
  start();
  auto r = ask_udp(query({.name = "allowed.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(parse_ok(*r).header.rcode, kRcodeServFail);
  ASSERT_NE(find_event(EGD_REASON_DNS_UPSTREAM_FAILED, "allowed.test"), nullptr);
  EXPECT_EQ(server_->stats().upstream_failed, 1u);
}

TEST_F(DnsServerTest, FailsOverToTheNextUpstreamAndIgnoresSpoofs) {
  FakeDnsUpstream good(loop_, [](const Message& q, bool) {
    Message spoof = q;
    spoof.header.id = static_cast<uint16_t>(q.header.id + 1);
    return std::vector<Bytes>{respond(spoof, {ip("203.0.113.66")}), respond(q, {ip("203.0.113.10")})};
  });
  ASSERT_TRUE(good.ok());
  up_.set_handler([](const Message&, bool) { return std::vector<Bytes>{}; });
  UpstreamClient::Options u = upstream_options();
  u.upstreams = {up_.addr, good.addr};
  u.try_timeout = 100ms;
  start(kPolicy, std::nullopt, u);
  auto r = ask_udp(query({.name = "allowed.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(addrs_of(parse_ok(*r)), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_EQ(good.queries(), 1);
}

TEST_F(DnsServerTest, UpstreamNxdomainIsPassedOnAndCached) {
  start();
  auto r = ask_udp(query({.name = "missing.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(parse_ok(*r).header.rcode, kRcodeNxDomain);
  ASSERT_TRUE(ask_udp(query({.name = "missing.test"})));
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_TRUE(server_->cached_addresses("missing.test")->empty());
}

// ---- audit mode and events = "all" -------------------------------------------------------------

TEST_F(DnsServerTest, AuditForwardsEverythingAndRecordsWhatWouldBeDenied) {
  start(std::string("mode = \"audit\"\n") + kPolicy);
  auto r = ask_udp(query({.name = "evil.test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(parse_ok(*r).header.rcode, kRcodeNxDomain);  // the upstream's answer
  EXPECT_EQ(up_.queries(), 1);
  const Event* e = find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "evil.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->verdict, EGD_VERDICT_AUDIT);
  auto rebind = ask_udp(query({.name = "rebind.test"}));
  ASSERT_TRUE(rebind);
  EXPECT_EQ(addrs_of(parse_ok(*rebind)).size(), 3u) << "audit filters nothing";
  const Event* re = find_event(EGD_REASON_REBIND, "rebind.test");
  ASSERT_NE(re, nullptr);
  EXPECT_EQ(re->verdict, EGD_VERDICT_AUDIT);
}

TEST_F(DnsServerTest, EventsAllRecordsAllowedQueries) {
  start(std::string("events = \"all\"\n") + kPolicy);
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test", .type = kTypeAAAA})));
  const Event* e = find_event(EGD_REASON_DNS_NAME_ALLOWED, "allowed.test");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->verdict, EGD_VERDICT_ALLOW);
  EXPECT_EQ(e->qtype, kTypeAAAA);
  EXPECT_EQ(e->rule_id, 1u);
}

// ---- batches: one recvmmsg and one sendmmsg per wakeup ------------------------------------------

TEST_F(DnsServerTest, QueuedDatagramsAreAnsweredABatchPerWakeup) {
  start();
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test"})));  // now cached
  ASSERT_EQ(up_.queries(), 1);
  constexpr int kClients = 4, kQueries = 100;  // well within the socket's receive buffer
  std::vector<UniqueFd> clients;
  std::vector<std::map<uint16_t, Bytes>> sent(kClients);
  for (int c = 0; c < kClients; ++c) clients.push_back(udp_client());
  for (int i = 0; i < kQueries; ++i) {
    int c = i % kClients;
    auto id = static_cast<uint16_t>(1000 + i);
    Bytes q = query({.name = i % 2 ? "ALLOWED.test" : "allowed.TEST", .id = id, .edns = i % 3 ? -1 : 1232});
    ASSERT_EQ(send(clients[c].get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    sent[c][id] = q;
  }
  uint64_t udp_before = server_->stats().udp;
  // One turn of the loop, one wakeup of the listener: 64 datagrams taken,
  // their 64 replies already sent when it returns.
  ASSERT_TRUE(loop_.run_once(1000).ok());
  EXPECT_EQ(server_->stats().udp - udp_before, 64u);
  auto drain = [&](std::vector<Bytes>* got) {
    for (int c = 0; c < kClients; ++c) {
      uint8_t buf[4096];
      for (ssize_t n; (n = recv(clients[c].get(), buf, sizeof(buf), MSG_DONTWAIT)) > 0;) {
        Bytes r(buf, buf + n);
        Message m = parse_ok(r);
        auto it = sent[c].find(m.header.id);
        EXPECT_NE(it, sent[c].end()) << "a reply to another client's query, id " << m.header.id;
        if (it == sent[c].end()) continue;
        const Bytes& q = it->second;
        // The client's question byte for byte, its EDNS or none, the cached address.
        EXPECT_TRUE(std::equal(q.begin() + 12, q.begin() + 12 + 18, r.begin() + 12));
        EXPECT_EQ(m.edns.has_value(), q.size() > 12 + 18) << m.header.id;
        EXPECT_EQ(addrs_of(m), (std::vector<std::string>{"203.0.113.10"}));
        sent[c].erase(it);
        got->push_back(r);
      }
    }
  };
  std::vector<Bytes> replies;
  drain(&replies);
  EXPECT_EQ(replies.size(), 64u);
  ASSERT_TRUE(run_until([&] {
    drain(&replies);
    return replies.size() == kQueries;
  }));
  EXPECT_EQ(up_.queries(), 1) << "every one from the cache";
  EXPECT_EQ(server_->stats().cache_hits, static_cast<uint64_t>(kQueries));
  EXPECT_TRUE(events_.empty());
}

TEST_F(DnsServerTest, MixedBatchCachedUncachedDeniedAndMalformed) {
  start();
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test"})));  // now cached
  ASSERT_EQ(up_.queries(), 1);
  Bytes two = query({.name = "allowed.test", .id = 6});
  two[5] = 2;
  two.insert(two.end(), two.begin() + 12, two.end());
  // In this order, each from its own socket, all queued before the server runs.
  std::vector<std::pair<std::string, Bytes>> batch = {
      {"cached", query({.name = "allowed.test", .id = 1})},
      {"denied", query({.name = "evil.test", .id = 2})},
      {"malformed", Bytes{1, 2, 3}},
      {"cached-edns", query({.name = "AlLoWeD.tEsT", .id = 4, .edns = 1232})},
      {"uncached", query({.name = "a.wild.test", .id = 5})},
      {"two questions", two},
      {"any", query({.name = "allowed.test", .type = 255, .id = 7})},
      {"garbage", Bytes(40, 0xff)},
      {"cached-again", query({.name = "allowed.test", .type = kTypeA, .id = 9})},
  };
  std::map<std::string, UniqueFd> fds;
  for (const auto& [what, q] : batch) {
    fds[what] = udp_client();
    ASSERT_EQ(send(fds[what].get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size())) << what;
  }
  std::map<std::string, Bytes> got;
  ASSERT_TRUE(run_until([&] {
    for (auto& [what, fd] : fds) {
      uint8_t buf[4096];
      ssize_t n = recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) got[what] = Bytes(buf, buf + n);
    }
    return got.size() == batch.size() - 2;
  }));
  EXPECT_FALSE(got.count("malformed"));
  EXPECT_FALSE(got.count("garbage"));
  auto msg = [&](const std::string& what) { return parse_ok(got.at(what)); };
  EXPECT_EQ(addrs_of(msg("cached")), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_EQ(msg("cached").header.id, 1);
  EXPECT_EQ(msg("denied").header.rcode, kRcodeNxDomain);
  Message edns = msg("cached-edns");
  EXPECT_EQ(edns.header.id, 4);
  ASSERT_TRUE(edns.edns);
  EXPECT_TRUE(std::equal(batch[3].second.begin() + 12, batch[3].second.begin() + 30, got.at("cached-edns").begin() + 12))
      << "the client's spelling (0x20)";
  EXPECT_EQ(addrs_of(msg("uncached")), (std::vector<std::string>{"203.0.113.10"}));
  EXPECT_EQ(got.at("two questions")[3] & 0x0f, kRcodeFormErr);
  EXPECT_EQ(msg("any").header.rcode, kRcodeRefused);
  EXPECT_EQ(msg("cached-again").header.id, 9);
  EXPECT_EQ(up_.queries(), 2) << "only the uncached name went upstream";
  EXPECT_EQ(server_->stats().cache_hits, 3u);
  EXPECT_EQ(server_->stats().malformed, 2u);
  EXPECT_EQ(server_->stats().formerr, 1u);
  // Events as one at a time: the denial, the refused type, the three malformed; nothing for the allowed.
  ASSERT_NE(find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "evil.test"), nullptr);
  ASSERT_NE(find_event(EGD_REASON_DNS_TYPE_NOT_ALLOWED, "allowed.test"), nullptr);
  size_t malformed_events = 0;
  for (const Event& e : events_) malformed_events += e.reason == EGD_REASON_DNS_MALFORMED;
  EXPECT_EQ(malformed_events, 3u);
  EXPECT_EQ(events_.size(), 5u);
  EXPECT_EQ(identity_.udp_calls, 5);
  // Still serving.
  auto ok = ask_udp(query({.name = "allowed.test", .id = 10}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(parse_ok(*ok).header.id, 10);
}

TEST_F(DnsServerTest, WaitersOnBothFamiliesGetTheUpstreamAnswer) {
  start();
  UniqueFd probe(socket(AF_INET6, SOCK_DGRAM, 0));
  sockaddr_storage ss;
  socklen_t len = ip("::1").to_sockaddr(0, &ss);
  if (bind(probe.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) GTEST_SKIP() << "no ::1 here";
  // Interleaved families: the replies go out on two sockets, in order.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(udp_client(i % 2 ? AF_INET6 : AF_INET));
    Bytes q = query({.name = "a.wild.test", .id = static_cast<uint16_t>(50 + i)});
    ASSERT_EQ(send(clients.back().get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
  }
  for (int i = 0; i < 6; ++i) {
    auto r = recv_one(clients[i].get());
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(parse_ok(*r).header.id, 50 + i);
    EXPECT_EQ(addrs_of(parse_ok(*r)), (std::vector<std::string>{"203.0.113.10"}));
  }
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_EQ(server_->stats().coalesced, 5u);
}

TEST_F(DnsServerTest, CacheHitsRecordTheDecisionOfTheirQuestion) {
  start(std::string("events = \"all\"\n") + kPolicy);
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test", .id = 1})));
  ASSERT_TRUE(ask_udp(query({.name = "Allowed.Test", .id = 2})));
  EXPECT_EQ(server_->stats().cache_hits, 1u);
  ASSERT_EQ(events_.size(), 2u);
  for (const Event& e : events_) {
    EXPECT_EQ(e.verdict, EGD_VERDICT_ALLOW);
    EXPECT_EQ(e.reason, EGD_REASON_DNS_NAME_ALLOWED);
    EXPECT_EQ(e.rule_id, 1u);
    EXPECT_EQ(e.host, "allowed.test");
    EXPECT_EQ(e.comm, "dig");
  }
}

TEST_F(DnsServerTest, AuditedNamesAnsweredFromTheCacheAreStillRecorded) {
  start(std::string("mode = \"audit\"\n") + kPolicy);
  for (uint16_t id : {1, 2, 3}) ASSERT_TRUE(ask_udp(query({.name = "evil.test", .id = id})));
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_EQ(server_->stats().cache_hits, 2u);
  size_t audits = 0;
  for (const Event& e : events_)
    audits += e.verdict == EGD_VERDICT_AUDIT && e.reason == EGD_REASON_DNS_NAME_NOT_ALLOWED && e.host == "evil.test";
  EXPECT_EQ(audits, 3u);
}

TEST_F(DnsServerTest, AnswerOfAnExchangeStartedUnderAnOlderPolicyIsNotCached) {
  // The upstream answers after the policy changed, and the new one denies the name.
  up_.set_handler([this](const Message& q, bool) -> std::vector<Bytes> {
    server_->set_policy(policy("version = 1\n[[allow]]\nhost = \"other.allowed.test\"\n"));
    return {respond(q, {ip("203.0.113.10")})};
  });
  start();
  auto first = ask_udp(query({.name = "allowed.test", .id = 1}));
  ASSERT_TRUE(first);
  EXPECT_EQ(parse_ok(*first).header.rcode, kRcodeNoError) << "the exchange in flight finishes";
  EXPECT_FALSE(server_->cached_addresses("allowed.test"));
  auto second = ask_udp(query({.name = "allowed.test", .id = 2}));
  ASSERT_TRUE(second);
  EXPECT_EQ(parse_ok(*second).header.rcode, kRcodeNxDomain) << "not served from a cache of the old policy";
  EXPECT_EQ(up_.queries(), 1);
  EXPECT_NE(find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "allowed.test"), nullptr);
}

// ---- families, lifetime ------------------------------------------------------------------------

TEST_F(DnsServerTest, ServesIpv6ClientsOnTheSamePort) {
  start();
  UniqueFd probe(socket(AF_INET6, SOCK_DGRAM, 0));
  sockaddr_storage ss;
  socklen_t len = ip("::1").to_sockaddr(0, &ss);
  if (bind(probe.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) GTEST_SKIP() << "no ::1 here";
  auto r = ask_udp(query({.name = "allowed.test"}), AF_INET6);
  ASSERT_TRUE(r);
  EXPECT_EQ(addrs_of(parse_ok(*r)), (std::vector<std::string>{"203.0.113.10"}));
}

TEST_F(DnsServerTest, DestroyedWithWorkInFlightLeavesNoFds) {
  up_.set_handler([](const Message&, bool) { return std::vector<Bytes>{}; });
  size_t before = count_fds();
  start();
  {
    UniqueFd udp = udp_client();
    UniqueFd tcp = tcp_client();
    Bytes q = query({.name = "allowed.test"});
    ASSERT_EQ(send(udp.get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    ASSERT_TRUE(run_until([&] { return up_.queries() == 1 && server_->stats().tcp_active == 1; }));
    server_.reset();
    (void)loop_.run_once(0);
  }
  EXPECT_EQ(count_fds(), before);
}

// ---- issue 13: families without a route, refusals that explain themselves, SRV ------------

class FakeRoutes final : public RouteSource {
 public:
  RouteFamilies families() const override { return now; }
  RouteFamilies now;
};

// The EXTRA-TEXT of the reply's Extended DNS Error; "" if none.
std::string ede_text(const Bytes& wire) {
  Message m = parse_ok(wire);
  for (const Record& r : m.additional) {
    if (r.type != kTypeOPT || r.rdata_length < 6) continue;
    size_t at = r.rdata_offset;
    if ((wire[at] << 8 | wire[at + 1]) != kEdnsOptionEde) continue;
    size_t len = static_cast<size_t>(wire[at + 2] << 8 | wire[at + 3]);
    return std::string(wire.begin() + static_cast<std::ptrdiff_t>(at + 6),
                       wire.begin() + static_cast<std::ptrdiff_t>(at + 4 + len));
  }
  return "";
}

TEST_F(DnsServerTest, FamilyWithoutARouteIsLeftOutAndTheCacheFollowsTheRoutes) {
  FakeRoutes routes;
  routes.now = {true, false};  // IPv4-only
  ServerOptions o = options();
  o.routes = &routes;
  start(kPolicy, o);
  auto aaaa = ask_udp(query({.name = "allowed.test", .type = kTypeAAAA}));
  ASSERT_TRUE(aaaa);
  Message m = parse_ok(*aaaa);
  EXPECT_EQ(m.header.rcode, kRcodeNoError);
  EXPECT_TRUE(m.answers.empty()) << "NODATA";
  EXPECT_EQ(server_->stats().family_dropped, 1u);
  EXPECT_EQ(server_->stats().rebind_removed, 0u);
  EXPECT_EQ(find_event(EGD_REASON_REBIND), nullptr) << "not a policy removal";
  auto a = ask_udp(query({.name = "allowed.test"}));
  ASSERT_TRUE(a);
  EXPECT_EQ(addrs_of(parse_ok(*a)), (std::vector<std::string>{"203.0.113.10"}));
  int asked = up_.queries();
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test"})));
  EXPECT_EQ(up_.queries(), asked) << "A cached under IPv4-only";
  // IPv6 gets a route: AAAA is offered; the A cached under the old state is asked again.
  routes.now = {true, true};
  auto again = ask_udp(query({.name = "allowed.test", .type = kTypeAAAA}));
  ASSERT_TRUE(again);
  EXPECT_EQ(addrs_of(parse_ok(*again)), (std::vector<std::string>{"2001:db8::10"}));
  EXPECT_EQ(up_.queries(), asked + 1);
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test"})));
  EXPECT_EQ(up_.queries(), asked + 2);
  ASSERT_TRUE(ask_udp(query({.name = "allowed.test", .type = kTypeAAAA})));
  EXPECT_EQ(up_.queries(), asked + 2) << "AAAA cached under both routes";
  // ... and the route vanishes: the cached AAAA is not served (TCP path too).
  routes.now = {true, false};
  UniqueFd fd = tcp_client();
  Bytes q = framed({query({.name = "allowed.test", .type = kTypeAAAA})});
  ASSERT_EQ(send(fd.get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
  auto replies = tcp_replies(fd.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(parse_ok(replies[0]).answers.empty());
  EXPECT_EQ(up_.queries(), asked + 3);
}

TEST_F(DnsServerTest, LeavingFamiliesOutCanBeTurnedOff) {
  FakeRoutes routes;
  routes.now = {true, false};
  ServerOptions o = options();
  o.routes = &routes;
  start(std::string(kPolicy) + "[dns]\ndrop_unroutable_families = false\n", o);
  auto aaaa = ask_udp(query({.name = "allowed.test", .type = kTypeAAAA}));
  ASSERT_TRUE(aaaa);
  EXPECT_EQ(addrs_of(parse_ok(*aaaa)), (std::vector<std::string>{"2001:db8::10"}));
  EXPECT_EQ(server_->stats().family_dropped, 0u);
}

TEST_F(DnsServerTest, DeniedNameExplainsWhoRefusedWhyAndWhichPolicy) {
  start();
  auto r = ask_udp(query({.name = "gitlab.com", .edns = 1232}));
  ASSERT_TRUE(r);
  EXPECT_EQ(parse_ok(*r).header.rcode, kRcodeNxDomain);
  EXPECT_EQ(ede_text(*r), "egressd: dns-name-not-allowed by policy t.toml");
  auto t = ask_udp(query({.name = "allowed.test", .type = 255, .edns = 1232}));
  ASSERT_TRUE(t);
  EXPECT_EQ(ede_text(*t), "egressd: dns-type-not-allowed by policy t.toml");
  // Without EDNS there is no OPT record to carry it (RFC 8914).
  auto plain = ask_udp(query({.name = "gitlab.com"}));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(parse_ok(*plain).edns);
  EXPECT_EQ(up_.queries(), 0);
}

TEST_F(DnsServerTest, SinkholeAnswersDeniedNamesLocallyAndNothingGoesUpstream) {
  FakeRoutes routes;
  ServerOptions o = options();
  o.routes = &routes;
  start(std::string(kPolicy) + "[dns]\ndenied = \"sinkhole\"\n", o);
  auto a = ask_udp(query({.name = "gitlab.com", .edns = 1232}));
  ASSERT_TRUE(a);
  Message m = parse_ok(*a);
  EXPECT_EQ(m.header.rcode, kRcodeNoError);
  EXPECT_EQ(addrs_of(m), (std::vector<std::string>{"203.0.113.254"}));
  EXPECT_EQ(m.answers.at(0).ttl, 10u);
  EXPECT_NE(ede_text(*a).find("egressd: dns-name-not-allowed by policy t.toml"), std::string::npos);
  auto aaaa = ask_udp(query({.name = "gitlab.com", .type = kTypeAAAA}));
  ASSERT_TRUE(aaaa);
  EXPECT_EQ(addrs_of(parse_ok(*aaaa)), (std::vector<std::string>{"2001:db8::e9d"}));
  auto txt = ask_udp(query({.name = "gitlab.com", .type = kTypeTXT}));
  ASSERT_TRUE(txt);
  EXPECT_EQ(parse_ok(*txt).header.rcode, kRcodeNoError);
  EXPECT_TRUE(parse_ok(*txt).answers.empty());
  // An IPv4-only host gets no sinkhole AAAA either.
  routes.now = {true, false};
  auto v6 = ask_udp(query({.name = "gitlab.com", .type = kTypeAAAA}));
  ASSERT_TRUE(v6);
  EXPECT_TRUE(parse_ok(*v6).answers.empty());
  EXPECT_EQ(server_->stats().sinkholed, 2u);
  EXPECT_EQ(up_.queries(), 0);
  ASSERT_NE(find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "gitlab.com"), nullptr);
}

TEST_F(DnsServerTest, SrvOfAnAllowedNameIsForwardedAndOfOthersNot) {
  start();
  auto r = ask_udp(query({.name = "_http._tcp.allowed.test", .type = kTypeSRV}));
  ASSERT_TRUE(r);
  EXPECT_EQ(up_.queries(), 1);
  const Event* e = find_event(EGD_REASON_DNS_NAME_NOT_ALLOWED, "_http._tcp.allowed.test");
  EXPECT_EQ(e, nullptr);
  auto denied = ask_udp(query({.name = "_http._tcp.evil.test", .type = kTypeSRV}));
  ASSERT_TRUE(denied);
  EXPECT_EQ(parse_ok(*denied).header.rcode, kRcodeNxDomain);
  auto a = ask_udp(query({.name = "_http._tcp.allowed.test", .type = kTypeA}));
  ASSERT_TRUE(a);
  EXPECT_EQ(parse_ok(*a).header.rcode, kRcodeNxDomain);
  EXPECT_EQ(up_.queries(), 1);
}

}  // namespace
}  // namespace egressd::dns
