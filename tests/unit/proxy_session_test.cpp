// The proxy's sessions over real loopback sockets, with the BPF map and the
// DNS client replaced by tables: decisions, refusals, relaying (bytes
// intact, half-close), pipelined HTTP, timeouts. The e2e tier runs the same
// code behind the real hooks.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "../support/client_hello_builder.h"
#include "common/loop.h"
#include "policy/toml_loader.h"
#include "proxy/proxy.h"

namespace egressd::proxy {
namespace {

// Every accepted connection gets the same original destination; the
// client is `orig`'s, or the next of `clients` ({tgid, uid}, in accept order).
class FixedOrig final : public decide::SteeredTable {
 public:
  std::optional<decide::SteeredFlow> take(int, const sockaddr_storage&) override {
    std::lock_guard<std::mutex> g(mu);
    if (!present) return std::nullopt;
    decide::SteeredFlow o = orig;
    if (!clients.empty()) {
      o.pid = o.tgid = clients.front().first;
      o.uid = clients.front().second;
      clients.pop_front();
    }
    return o;
  }
  std::mutex mu;
  bool present = true;
  decide::SteeredFlow orig;
  std::deque<std::pair<uint32_t, uint32_t>> clients;
};

class TableResolver final : public Resolver {
 public:
  explicit TableResolver(Loop& loop) : loop_(loop) {}
  void resolve(const std::string& name, ResolveDone done) override {
    ++asked[name];
    ResolveResult r = lookup(name);
    loop_.defer([r, done = std::move(done)] { done(r); });
  }
  std::optional<ResolveResult> cached(const std::string& name) const override {
    if (!names.count(name)) return std::nullopt;
    return lookup(name);
  }
  ResolveResult lookup(const std::string& name) const {
    auto it = names.find(name);
    if (it == names.end()) return ResolveResult{{}, "NXDOMAIN"};
    ResolveResult r;
    for (auto& a : it->second) r.addrs.push_back(*IpAddr::parse(a));
    return r;
  }
  std::vector<IpAddr> answered_within(const std::string& name, std::chrono::seconds grace) const override {
    last_grace_s = grace.count();
    std::vector<IpAddr> out;
    auto it = recent.find(name);
    if (it != recent.end())
      for (auto& a : it->second) out.push_back(*IpAddr::parse(a));
    return out;
  }
  std::map<std::string, std::vector<std::string>> names;
  std::map<std::string, std::vector<std::string>> recent;  // answered earlier, moved since
  mutable std::atomic<int64_t> last_grace_s{-1};
  std::map<std::string, int> asked;

 private:
  Loop& loop_;
};

// Keeps each resolve() callback until the test delivers it.
class HeldResolver final : public Resolver {
 public:
  void resolve(const std::string&, ResolveDone done) override {
    std::lock_guard<std::mutex> g(mu);
    pending.push_back(std::move(done));
  }
  std::optional<ResolveResult> cached(const std::string&) const override { return std::nullopt; }
  size_t count() {
    std::lock_guard<std::mutex> g(mu);
    return pending.size();
  }
  std::mutex mu;
  std::vector<ResolveDone> pending;
};

int tcp_listen(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  listen(fd, 128);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

int tcp_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Reads until EOF (or the 5 s receive timeout, or `limit` bytes).
std::string read_all(int fd, size_t limit = 64 << 20) {
  std::string out;
  char buf[65536];
  while (out.size() < limit) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads until `needle` has arrived (or EOF, or the 5 s receive timeout).
std::string read_until(int fd, const std::string& needle) {
  std::string out;
  char buf[65536];
  while (out.find(needle) == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}

// Sends `data` while reading what comes back (so neither side's buffers
// can deadlock the exchange), until `done(received)` or a 10 s deadline.
std::string exchange(int fd, const std::string& data, const std::function<bool(const std::string&)>& done) {
  std::string got;
  size_t off = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  char buf[65536];
  while (!done(got) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (off < data.size() ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (p.revents & POLLIN) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) break;
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
    if ((p.revents & POLLOUT) && off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) off += static_cast<size_t>(n);
    }
    if (p.revents & (POLLERR | POLLHUP)) break;
  }
  return got;
}

// An origin on 127.0.0.1: records what each connection sent; answers with
// `reply(request bytes)` after the client half-closes, or at once per
// HTTP request head when `http` is set.
class Origin {
 public:
  explicit Origin(bool http) : http_(http) {
    fd_ = tcp_listen(&port_);
    th_ = std::thread([this] { run(); });
  }
  // Joins every connection's thread: none may outlive the members it uses.
  ~Origin() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    th_.join();
    {
      std::lock_guard<std::mutex> g(mu_);
      released_ = true;
      cv_.notify_all();
      for (int c : conns_) shutdown(c, SHUT_RDWR);  // unblocks recv/send
    }
    for (auto& t : serving_) t.join();
    for (int c : conns_) close(c);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> g(mu_);
    return got_;
  }
  std::string big;  // sent after the echo, for integrity tests
  // After the client's EOF, keep the connection open until release().
  std::atomic<bool> hold{false};
  // HTTP: answer a head with "Upgrade: websocket" with 101 and echo every
  // byte after it ("ws:" once, then the bytes).
  std::atomic<bool> ws{false};
  void release() {
    std::lock_guard<std::mutex> g(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Waits (bounded) until `n` connections have ended.
  std::vector<std::string> wait_received(size_t n) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait_for(g, std::chrono::seconds(5), [&] { return got_.size() >= n; });
    return got_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::lock_guard<std::mutex> g(mu_);
      conns_.push_back(c);  // closed by the destructor, after its thread is joined
      serving_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string in;
    char buf[65536];
    size_t answered = 0;
    bool switched = false;
    while (true) {
      ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      if (switched) {
        send_all(c, std::string(buf, static_cast<size_t>(n)));
        continue;
      }
      if (http_ && ws && in.find("\r\n\r\n") != std::string::npos &&
          in.find("Upgrade: websocket") < in.find("\r\n\r\n")) {
        size_t end = in.find("\r\n\r\n") + 4;
        send_all(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nws:" +
                        in.substr(end));
        switched = true;
        continue;
      }
      if (http_) {
        // One response per complete head (tests send bodiless requests).
        size_t pos;
        while ((pos = in.find("\r\n\r\n", answered)) != std::string::npos) {
          std::string body = "origin saw " + in.substr(answered, in.find("\r\n", answered) - answered);
          send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
          answered = pos + 4;
        }
      }
    }
    if (!http_) {
      send_all(c, "echo:" + in);
      send_all(c, big);
    }
    {
      std::unique_lock<std::mutex> g(mu_);
      if (hold) cv_.wait_for(g, std::chrono::seconds(10), [&] { return released_; });
      got_.push_back(in);
      cv_.notify_all();
    }
    shutdown(c, SHUT_WR);
  }
  bool http_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread th_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  std::vector<std::string> got_;
  std::vector<int> conns_;
  std::vector<std::thread> serving_;
};

class ProxySession : public ::testing::Test {
 protected:
  void start(const std::string& toml, bool http_origin, ProxyOptions opt = {}) {
    origin_ = std::make_unique<Origin>(http_origin);
    orig_.orig.given = orig_.orig.target = *IpAddr::parse("127.0.0.1");
    orig_.orig.port = origin_->port();
    orig_.orig.family = AF_INET;
    orig_.orig.identified = true;
    orig_.orig.tgid = 4242;
    orig_.orig.comm = "agent";
    auto loop = Loop::create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::make_unique<Loop>(std::move(loop.value()));
    resolver_ = std::make_unique<TableResolver>(*loop_);
    resolver_->names["allowed.test"] = {"127.0.0.1", "2001:db8::10"};
    resolver_->names["other.test"] = {"127.0.0.1"};
    resolver_->names["elsewhere.test"] = {"203.0.113.7"};
    resolver_->names["rebind.test"] = {"10.0.0.5"};
    auto policy = policy::parse_policy(toml, "unit.toml");
    Resolver& resolver = resolver_override_ ? *resolver_override_ : *resolver_;
    auto p = Proxy::start(*loop_, orig_, resolver, [this](const Event& e) {
      std::lock_guard<std::mutex> g(mu_);
      events_.push_back(e);
      cv_.notify_all();
    }, std::make_shared<const decide::ActivePolicy>(policy), opt);
    ASSERT_TRUE(p.ok()) << p.error().message();
    proxy_ = std::move(p.value());
    th_ = std::thread([this] {
      while (!stop_) {
        (void)loop_->run_once(20);
        {
          std::lock_guard<std::mutex> g(turn_mu_);  // no lost wake-up between a waiter's check and its wait
          ++turns_;
        }
        turn_cv_.notify_all();
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (th_.joinable()) th_.join();
    proxy_.reset();
  }
  int client() { return tcp_connect(proxy_->port()); }
  // Waits (bounded) for an event matching `pred`.
  std::optional<Event> event(std::function<bool(const Event&)> pred) {
    std::unique_lock<std::mutex> g(mu_);
    std::optional<Event> found;
    cv_.wait_for(g, std::chrono::seconds(5), [&] {
      for (auto& e : events_)
        if (pred(e)) found = e;
      return found.has_value();
    });
    return found;
  }
  // Does the loop turn far more often than its 20 ms wait allows, within a
  // bounded window? An idle loop turns ~15 times in 300 ms; a level-triggered
  // event nobody consumes turns it thousands of times.
  bool loop_spins() {
    uint64_t start = turns_;
    std::unique_lock<std::mutex> g(turn_mu_);
    return turn_cv_.wait_for(g, std::chrono::milliseconds(300), [&] { return turns_ - start > 200; });
  }
  // Waits (bounded) until the loop has finished a turn after `seen` turns.
  void wait_turn(uint64_t seen) {
    std::unique_lock<std::mutex> g(turn_mu_);
    turn_cv_.wait_for(g, std::chrono::seconds(1), [&] { return turns_ > seen; });
  }
  // Stops the loop thread, so the proxy's state can be read without a race.
  void stop_loop() {
    stop_ = true;
    if (th_.joinable()) th_.join();
  }
  static bool reason_is(const Event& e, unsigned r) { return e.reason == r && e.hook == EGD_HOOK_PROXY; }

  FixedOrig orig_;
  Resolver* resolver_override_ = nullptr;  // instead of the table, if set before start()
  std::unique_ptr<Origin> origin_;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<TableResolver> resolver_;
  std::unique_ptr<Proxy> proxy_;
  std::thread th_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> turns_{0};
  std::mutex turn_mu_;
  std::condition_variable turn_cv_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

std::string policy_text() {
  return "version = 1\nevents = \"all\"\n[[allow]]\nhost = \"allowed.test\"\nports = [\"1-65535\"]\n"
         "[[allow]]\nhost = \"rebind.test\"\nports = [\"1-65535\"]\n"
         "[[allow]]\nhost = \"elsewhere.test\"\nports = [\"1-65535\"]\n";
}

std::string str(const testing::Bytes& b) { return std::string(b.begin(), b.end()); }

std::string hello(const std::string& sni) { return str(testing::ClientHelloBuilder().sni(sni).bytes()); }

// Test that an allowed SNI is relayed both ways, byte for byte, with a
// large download intact, and the allow event names the client.
TEST_F(ProxySession, AllowedTlsRelaysBytesIntact) {
  start(policy_text(), false);
  std::mt19937 rng(1);
  origin_->big.resize(8 << 20);
  for (auto& c : origin_->big) c = static_cast<char>(rng());
  int c = client();
  ASSERT_GE(c, 0);
  std::string first = hello("allowed.test") + std::string("after the hello");
  send_all(c, first);
  shutdown(c, SHUT_WR);
  std::string got = read_all(c);
  close(c);
  EXPECT_EQ(got.size(), 5 + first.size() + origin_->big.size());
  EXPECT_EQ(got, "echo:" + first + origin_->big);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_RULE); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "allowed.test");
  EXPECT_EQ(e->l7, "tls");
  EXPECT_EQ(e->tgid, 4242u);
  EXPECT_EQ(e->comm, "agent");
  EXPECT_EQ(e->rule_id, 1u);
}

// Test that a ClientHello arriving one byte per segment is still judged.
TEST_F(ProxySession, HelloInOneByteWrites) {
  start(policy_text(), false);
  int c = client();
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::string h = hello("allowed.test");
  for (char ch : h) {
    send_all(c, std::string(1, ch));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c), "echo:" + h);
  close(c);
}

// Test the refusals: a name no rule admits gets a fatal access_denied
// alert and never reaches the resolver or the origin.
TEST_F(ProxySession, DeniedSniGetsAlertAndIsNeverResolved) {
  start(policy_text(), false);
  int c = client();
  send_all(c, hello("exfil.attacker.test"));
  std::string got = read_all(c);
  close(c);
  EXPECT_EQ(got, std::string("\x15\x03\x03\x00\x02\x02\x31", 7));
  ASSERT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED); }));
  EXPECT_EQ(resolver_->asked.count("exfil.attacker.test"), 0u);
  EXPECT_TRUE(origin_->received().empty());
}

TEST_F(ProxySession, SniIpMismatchAndRebind) {
  start(policy_text(), false);
  int c = client();
  send_all(c, hello("elsewhere.test"));  // resolves to 203.0.113.7, not the original 127.0.0.1
  read_all(c);
  close(c);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_SNI_IP_MISMATCH); }));
  c = client();
  send_all(c, hello("rebind.test"));  // resolves to 10.0.0.5 only
  read_all(c);
  close(c);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_REBIND); }));
  EXPECT_TRUE(origin_->received().empty());
}

TEST_F(ProxySession, NotTlsNoSniAndEch) {
  start(policy_text() + "", false);
  orig_.orig.port = 443;  // SSH-like bytes where TLS was due
  int c = client();
  send_all(c, "SSH-2.0-OpenSSH_9.2\r\n");
  read_all(c);
  close(c);
  auto not_tls = event([](const Event& e) { return reason_is(e, EGD_REASON_NOT_TLS); });
  ASSERT_TRUE(not_tls);
  EXPECT_EQ(not_tls->l7, "tls") << "TLS was due; the bytes were not HTTP either";

  c = client();
  send_all(c, str(testing::ClientHelloBuilder().bytes()));
  read_all(c);
  close(c);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_NO_SNI); }));

  c = client();
  send_all(c, str(testing::ClientHelloBuilder().sni("allowed.test").ech().bytes()));
  read_all(c);
  close(c);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_ECH); }));
}

TEST_F(ProxySession, DirectDialHasNoRecord) {
  start(policy_text(), false);
  {
    std::lock_guard<std::mutex> g(orig_.mu);
    orig_.present = false;
  }
  int c = client();
  EXPECT_EQ(read_all(c), "");
  close(c);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_NO_RECORD); });
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->sender_known) << "no record: nobody to name";
}

// Test that a client that never sends is timed out, and the proxy serves
// another client meanwhile.
TEST_F(ProxySession, SilentClientTimesOutOthersServed) {
  ProxyOptions opt;
  opt.inspect_timeout = std::chrono::milliseconds(300);
  start(policy_text(), false, opt);
  int silent = client();
  int c = client();
  send_all(c, hello("allowed.test"));
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c).substr(0, 5), "echo:");
  close(c);
  EXPECT_EQ(read_all(silent), "");  // closed by the proxy
  close(silent);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_TIMEOUT); }));
}

// Is `fd` closed by the peer (EOF or reset) within its 5 s receive timeout,
// before sending a byte?
bool closed_at_once(int fd) {
  char b;
  ssize_t n = recv(fd, &b, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// Test the fair share: a process over its cap is refused before a byte is
// read (event too-many-connections, a log line naming it and the cap)
// while another process is served; a connection it ends makes room.
TEST_F(ProxySession, AProcessOverItsShareIsRefusedOthersServed) {
  ProxyOptions opt;
  std::mutex warn_mu;
  std::vector<std::string> warned;
  opt.warn = [&](const std::string& line) {
    std::lock_guard<std::mutex> g(warn_mu);
    warned.push_back(line);
  };
  orig_.clients = {{4242, 0}, {4242, 0}, {4242, 0}, {5151, 0}};
  start(policy_text() + "[proxy]\nmax_connections_per_process = 2\n", false, opt);
  int a = client(), b = client(), flood = client(), other = client();
  ASSERT_TRUE(a >= 0 && b >= 0 && flood >= 0 && other >= 0);
  EXPECT_TRUE(closed_at_once(flood)) << "the third connection of pid 4242 is closed";
  close(flood);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_TOO_MANY_CONNECTIONS); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->tgid, 4242u);
  EXPECT_EQ(e->comm, "agent");
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  std::string h = hello("allowed.test");
  send_all(other, h);
  shutdown(other, SHUT_WR);
  EXPECT_EQ(read_all(other), "echo:" + h) << "another process is served";
  close(other);
  // pid 4242 ends one connection: one more of its connections is admitted
  // once the proxy has seen it go (bounded retries, a loop turn apart).
  close(a);
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    {
      std::lock_guard<std::mutex> g(orig_.mu);
      orig_.clients = {{4242, 0}};
    }
    int again = client();
    send_all(again, h);
    shutdown(again, SHUT_WR);
    served = read_all(again) == "echo:" + h;
    close(again);
    if (!served) wait_turn(turns_.load());
  }
  EXPECT_TRUE(served);
  close(b);
  stop_loop();
  EXPECT_GE(proxy_->decisions()[size_t{EGD_VERDICT_DENY} * EGD_REASON__COUNT + EGD_REASON_TOO_MANY_CONNECTIONS], 1u);
  EXPECT_EQ(proxy_->share_caps().per_process, 2u);
  std::lock_guard<std::mutex> g(warn_mu);
  ASSERT_FALSE(warned.empty());
  EXPECT_NE(warned[0].find("pid 4242 (agent, uid 0)"), std::string::npos) << warned[0];
  EXPECT_NE(warned[0].find("the per-process cap"), std::string::npos) << warned[0];
}

// Test that a flood of refusals is recorded as a bounded number of events
// (the counters count each) and that the total cap refuses everyone once full.
TEST_F(ProxySession, RefusalEventsAreRateLimitedAndTheTotalHolds) {
  ProxyOptions opt;
  opt.max_sessions = 2;
  opt.excess_event_burst = 3;
  opt.excess_events_per_second = 0.001;
  start(policy_text() + "[proxy]\nmax_connections_per_process = 2\n", false, opt);
  {
    std::lock_guard<std::mutex> g(orig_.mu);
    orig_.clients = {{1, 1}, {2, 2}, {3, 3}, {3, 3}, {3, 3}, {3, 3}, {3, 3}, {3, 3}};
  }
  std::vector<int> held = {client(), client()};
  for (int i = 0; i < 6; ++i) {
    int c = client();
    EXPECT_TRUE(closed_at_once(c)) << i;
    close(c);
  }
  for (int c : held) close(c);
  stop_loop();
  EXPECT_EQ(proxy_->decisions()[size_t{EGD_VERDICT_DENY} * EGD_REASON__COUNT + EGD_REASON_TOO_MANY_CONNECTIONS], 6u);
  EXPECT_EQ(proxy_->stats().events_suppressed, 3u);
  std::lock_guard<std::mutex> g(mu_);
  size_t n = 0;
  for (const Event& e : events_) n += reason_is(e, EGD_REASON_TOO_MANY_CONNECTIONS);
  EXPECT_EQ(n, 3u);
}

// Plain HTTP: every request on a kept-alive connection is judged; a
// pipelined request for another host is refused with 403 after the
// response to the first.
TEST_F(ProxySession, PipelinedSecondHostRefusedAfterFirstServed) {
  start(policy_text(), true);
  int c = client();
  send_all(c,
           "GET /one HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
           "GET /two HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("origin saw GET /one HTTP/1.1"), std::string::npos) << got;
  EXPECT_EQ(got.find("GET /two"), std::string::npos) << got;
  EXPECT_NE(got.find("HTTP/1.1 403 Forbidden"), std::string::npos) << got;
  EXPECT_NE(got.find("evil.test"), std::string::npos);
  EXPECT_LT(got.find("origin saw"), got.find("403 Forbidden"));
  auto rec = origin_->received();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].find("evil.test"), std::string::npos);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED) && e.host == "evil.test"; }));
}

TEST_F(ProxySession, KeepAliveSameHostAllServed) {
  start(policy_text(), true);
  int c = client();
  send_all(c,
           "GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
           "POST /b HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n\r\nhello"
           "GET /c HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n");
  shutdown(c, SHUT_WR);
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("origin saw GET /a"), std::string::npos) << got;
  EXPECT_NE(got.find("origin saw POST /b"), std::string::npos) << got;
  EXPECT_NE(got.find("GET /c HTTP/1.1"), std::string::npos) << got;  // the test origin does not skip bodies
}

TEST_F(ProxySession, SmugglingAndForbiddenHost) {
  start(policy_text(), true);
  int c = client();
  send_all(c, "POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("403"), std::string::npos);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_SMUGGLING); }));
  c = client();
  send_all(c, "GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n");
  got = read_all(c);
  close(c);
  EXPECT_NE(got.find("X-Egressd-Reason: host-not-allowed"), std::string::npos) << got;
  EXPECT_NE(got.find("unit.toml"), std::string::npos) << got;  // names the rule source
  EXPECT_TRUE(origin_->received().empty());
}

// Test that audit mode lets a name no rule admits through and records it.
TEST_F(ProxySession, AuditModeRelaysAndRecords) {
  start("version = 1\nmode = \"audit\"\n", false);
  int c = client();
  std::string h = hello("anything.test");
  send_all(c, h);
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c), "echo:" + h);
  close(c);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->verdict, EGD_VERDICT_AUDIT);
}


// ---- hardening ----------------------------------------------------------------

const std::string kWsHead =
    "GET /ws HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

// Test that an upgrade request does not open the connection to unjudged
// bytes before the origin agrees: the origin answers 200 (no switch) and
// keeps reading HTTP, so a request pipelined behind the upgrade must still
// be judged (here: refused, never reaching the origin).
TEST_F(ProxySession, UpgradeTheOriginDeclinesKeepsJudging) {
  start(policy_text(), true);
  int c = client();
  send_all(c, kWsHead + "GET /secret HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("origin saw GET /ws"), std::string::npos) << got;
  EXPECT_EQ(got.find("GET /secret"), std::string::npos) << got;
  EXPECT_NE(got.find("403 Forbidden"), std::string::npos) << got;
  auto rec = origin_->wait_received(1);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].find("evil.test"), std::string::npos) << rec[0];
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED) && e.host == "evil.test"; }));
}

// Test that a WebSocket upgrade the origin accepts (101) is relayed blind
// afterwards, including frame bytes the client sent before the 101.
TEST_F(ProxySession, UpgradeTheOriginAcceptsRelaysFrames) {
  start(policy_text(), true);
  origin_->ws = true;
  int c = client();
  std::string frame("\x82\x05hello", 7);
  send_all(c, kWsHead + frame);
  std::string got = read_until(c, "ws:" + frame);
  EXPECT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
  EXPECT_NE(got.find("ws:" + frame), std::string::npos) << got;
  std::string more("\x82\x03GET", 5);  // after the switch nothing is parsed as HTTP
  send_all(c, more);
  got += read_until(c, more);
  EXPECT_NE(got.find("ws:" + frame + more), std::string::npos) << got;
  close(c);
}

// Test that an upgrade on a connection that already carried a request is
// refused: its response cannot be told from the earlier ones without
// parsing every response, so the switch could not be checked.
TEST_F(ProxySession, UpgradeOnReusedConnectionRefused) {
  start(policy_text(), true);
  origin_->ws = true;
  int c = client();
  send_all(c, "GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n" + kWsHead + "GET /b HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("origin saw GET /a"), std::string::npos) << got;
  EXPECT_NE(got.find("X-Egressd-Reason: smuggling"), std::string::npos) << got;
  auto rec = origin_->wait_received(1);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].find("/ws"), std::string::npos) << rec[0];
  EXPECT_EQ(rec[0].find("evil.test"), std::string::npos) << rec[0];
}

// Test that an h2c upgrade offer (curl --http2 on http://) is taken out of
// every request, first or later on the connection: the origin never sees
// it, answers in HTTP/1.1, and each request stays judged.
TEST_F(ProxySession, H2cOfferIsStrippedAndRequestsServed) {
  start(policy_text(), true);
  int c = client();
  const std::string offer = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n";
  send_all(c, "GET /a HTTP/1.1\r\nHost: allowed.test\r\n" + offer + "\r\n" +
                  "GET /b HTTP/1.1\r\nHost: allowed.test\r\n" + offer + "\r\n" +
                  "GET /c HTTP/1.1\r\nHost: evil.test\r\n" + offer + "\r\n");
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("origin saw GET /a"), std::string::npos) << got;
  EXPECT_NE(got.find("origin saw GET /b"), std::string::npos) << got;
  EXPECT_NE(got.find("X-Egressd-Reason: host-not-allowed"), std::string::npos) << got;
  auto rec = origin_->wait_received(1);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0], "GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /b HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  ASSERT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED) && e.host == "evil.test"; }));
  std::lock_guard<std::mutex> g(mu_);
  for (const Event& e : events_) EXPECT_NE(e.reason, EGD_REASON_SMUGGLING) << "the offer is not refused";
}

// Test that HTTP/2 with prior knowledge gets its own reason and an HTTP/2
// refusal (SETTINGS, then GOAWAY HTTP_1_1_REQUIRED naming it), never the origin.
TEST_F(ProxySession, Http2PrefaceRefusedWithGoaway) {
  start(policy_text(), true);
  int c = client();
  send_all(c, std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00", 33));
  std::string got = read_all(c);
  close(c);
  ASSERT_GE(got.size(), 9u + 9u + 8u) << got;
  EXPECT_EQ(got.substr(0, 9), std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9)) << "an empty SETTINGS first";
  size_t len = static_cast<uint8_t>(got[9]) << 16 | static_cast<uint8_t>(got[10]) << 8 | static_cast<uint8_t>(got[11]);
  EXPECT_EQ(got[12], 0x7) << "GOAWAY";
  EXPECT_EQ(got.size(), 18 + len);
  EXPECT_EQ(got.substr(18, 8), std::string("\x00\x00\x00\x00\x00\x00\x00\x0d", 8)) << "last stream 0, HTTP_1_1_REQUIRED";
  EXPECT_NE(got.find("http2-cleartext"), std::string::npos) << got;
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_HTTP2_CLEARTEXT); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  EXPECT_EQ(e->l7, "http");
  EXPECT_TRUE(origin_->received().empty());
}

// Test that a refused pipelined request whose client has half-closed does
// not spin the loop while the earlier response is pending (level-triggered
// EPOLLRDHUP on a side the session no longer reads).
TEST_F(ProxySession, DrainThenRefuseWithClientEofDoesNotSpin) {
  start(policy_text(), true);
  origin_->hold = true;
  int c = client();
  send_all(c,
           "GET /one HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
           "GET /two HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  shutdown(c, SHUT_WR);
  std::string got = read_until(c, "origin saw GET /one HTTP/1.1");
  ASSERT_NE(got.find("origin saw GET /one HTTP/1.1"), std::string::npos) << got;
  ASSERT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED) && e.host == "evil.test"; }));
  EXPECT_FALSE(loop_spins());
  origin_->release();
  got += read_all(c);
  close(c);
  EXPECT_NE(got.find("403 Forbidden"), std::string::npos) << got;
}

// Test that many small pipelined requests arriving in one read are all
// judged and forwarded: none may wait for more client bytes.
TEST_F(ProxySession, ManyPipelinedRequestsInOneReadAllServed) {
  start("version = 1\n[[allow]]\nhost = \"allowed.test\"\nports = [\"1-65535\"]\n", true);
  int c = client();
  const size_t kRequests = 5000;
  std::string req = "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", all;
  for (size_t i = 0; i < kRequests; ++i) all += req;
  std::string got = exchange(c, all, [&](const std::string& g) { return count_of(g, "origin saw") >= kRequests; });
  close(c);
  EXPECT_EQ(count_of(got, "origin saw"), kRequests);
}

// Test that audit mode records every request on a kept-alive connection
// (the list a policy is written from), and still forwards them all, a
// request with ambiguous framing included.
TEST_F(ProxySession, AuditModeRecordsEveryRequest) {
  start("version = 1\nmode = \"audit\"\nevents = \"all\"\n", true);
  int c = client();
  send_all(c,
           "GET /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
           "GET /b HTTP/1.1\r\nHost: other.test\r\n\r\n"
           "GET /c HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           "GET /d HTTP/1.1\r\nHost: third.test\r\n\r\n");
  std::string got = read_until(c, "origin saw GET /d");
  close(c);
  EXPECT_NE(got.find("origin saw GET /b"), std::string::npos) << got;
  EXPECT_NE(got.find("origin saw GET /d"), std::string::npos) << got;
  EXPECT_TRUE(event([](const Event& e) {
    return reason_is(e, EGD_REASON_HOST_NOT_ALLOWED) && e.host == "other.test" && e.verdict == EGD_VERDICT_AUDIT;
  }));
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_SMUGGLING) && e.verdict == EGD_VERDICT_AUDIT; }));
}


// Sends `data` one byte per segment, each once `sent_one` has returned
// (the loop turned), so the proxy reads it about a byte per read.
void trickle(int fd, const std::string& data, const std::function<void(const std::function<void()>&)>& sent_one) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (char ch : data) sent_one([&] { send_all(fd, std::string(1, ch)); });
}

std::string padded_head(const std::string& first_lines, size_t size) {
  std::string head = first_lines;
  while (head.size() < size) head += "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  return head + "\r\n";
}

// Test that a request head trickling in a byte per read, at the start of
// a connection and later on a kept-alive one, is not parsed again from its
// start on every read: that costs O(n^2) CPU for one slow client (1.4 s of
// the daemon's only thread for one 32 KiB head).
TEST_F(ProxySession, TricklingHeadIsNotReparsedPerRead) {
  start(policy_text(), true);
  int c = client();
  std::string first = padded_head("GET /one HTTP/1.1\r\nHost: allowed.test\r\n", 12000);
  std::string second = padded_head("GET /two HTTP/1.1\r\nHost: allowed.test\r\n", 12000);
  // The turn count is taken before each send: the turn that reads the byte
  // ends after it.
  auto one_turn = [&](const std::function<void()>& send_it) {
    uint64_t seen = turns_;
    send_it();
    wait_turn(seen);
  };
  trickle(c, first, one_turn);
  EXPECT_NE(read_until(c, "origin saw GET /one").find("origin saw GET /one"), std::string::npos);
  trickle(c, second, one_turn);
  EXPECT_NE(read_until(c, "origin saw GET /two").find("origin saw GET /two"), std::string::npos);
  close(c);
  stop_loop();
  EXPECT_LT(proxy_->stats().head_bytes_parsed, 8 * (first.size() + second.size()));
}

// Test that a broken head the client stops sending in the middle of is
// still refused for what it is (not just timed out) when the inspection
// time is up, whatever bytes were not parsed yet.
TEST_F(ProxySession, BrokenHeadRefusedForItsReasonAtTimeout) {
  ProxyOptions opt;
  opt.inspect_timeout = std::chrono::milliseconds(300);
  start(policy_text(), true, opt);
  int c = client();
  uint64_t seen = turns_;
  send_all(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n");
  wait_turn(seen + 1);              // read and parsed: NeedMore
  send_all(c, "Bad Header\r\n");  // no ':': malformed, but too short to be parsed at once
  std::string got = read_all(c);
  close(c);
  EXPECT_NE(got.find("X-Egressd-Reason: malformed"), std::string::npos) << got;
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_MALFORMED); }));
  EXPECT_TRUE(origin_->received().empty());
}


// Test that a resolver answer delivered after the proxy is gone (the
// daemon tearing down while a lookup is in flight) touches nothing of it.
TEST_F(ProxySession, ResolverAnswerAfterProxyGoneIsDropped) {
  HeldResolver held;
  resolver_override_ = &held;
  start(policy_text(), false);
  int c = client();
  send_all(c, hello("allowed.test"));
  for (int i = 0; i < 100 && held.count() == 0; ++i) wait_turn(turns_);
  ASSERT_EQ(held.count(), 1u);
  stop_loop();
  proxy_.reset();
  ResolveResult r;
  r.addrs.push_back(*IpAddr::parse("127.0.0.1"));
  for (auto& done : held.pending) done(r);  // must not reach the freed proxy (ASan)
  EXPECT_TRUE(loop_->run_once(0).ok());
  close(c);
}


// ---- fallback to the name's other addresses ------------------------------------

std::string fallback_policy(const std::string& extra = "") {
  return "version = 1\n" + extra + "[[allow]]\nhost = \"fallback.test\"\nports = [\"1-65535\"]\n"
         "[[allow]]\nhost = \"moved.test\"\nports = [\"1-65535\"]\n";
}

void set_target(FixedOrig& o, const char* addr) {
  std::lock_guard<std::mutex> g(o.mu);
  o.orig.given = o.orig.target = *IpAddr::parse(addr);
}

// Test that when the original address refuses, the proxy dials the name's
// next address, the client is served as if nothing happened, and one event
// (recorded although the policy records only denials) names the address
// that failed, how, and the one that served.
TEST_F(ProxySession, RefusedOriginalFallsBackToNextAddress) {
  start(fallback_policy(), false);
  // Nothing listens on 127.0.0.2 at the origin's port (it is bound to 127.0.0.1).
  resolver_->names["fallback.test"] = {"127.0.0.2", "127.0.0.1"};
  set_target(orig_, "127.0.0.2");
  int c = client();
  std::string h = hello("fallback.test");
  send_all(c, h);
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c), "echo:" + h);
  close(c);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_UPSTREAM_FALLBACK); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->verdict, EGD_VERDICT_ALLOW);
  EXPECT_EQ(e->daddr, "127.0.0.2");
  EXPECT_EQ(e->dial_error, DialError::REFUSED);
  EXPECT_EQ(e->upstream, "127.0.0.1");
  EXPECT_EQ(e->dials, 2u);
  EXPECT_EQ(e->host, "fallback.test");
}

// Test that an original address that does not answer (its listener's
// queue is full, so SYNs are dropped) is given the attempt delay, then the
// next address is dialed beside it and serves.
TEST_F(ProxySession, SilentOriginalFallsBackAfterAttemptDelay) {
  ProxyOptions opt;
  opt.dial_attempt_delay = std::chrono::milliseconds(200);
  start(fallback_policy(), false, opt);
  int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(silent, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(origin_->port());
  inet_pton(AF_INET, "127.0.0.3", &sa.sin_addr);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(listen(silent, 0), 0);
  int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // fills the queue: later SYNs are dropped
  ASSERT_EQ(connect(filler, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  resolver_->names["fallback.test"] = {"127.0.0.3", "127.0.0.1"};
  set_target(orig_, "127.0.0.3");
  int c = client();
  std::string h = hello("fallback.test");
  auto t = std::chrono::steady_clock::now();
  send_all(c, h);
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c), "echo:" + h);
  EXPECT_GE(std::chrono::steady_clock::now() - t, std::chrono::milliseconds(200));
  close(c);
  close(filler);
  close(silent);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_UPSTREAM_FALLBACK); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dial_error, DialError::TIMEOUT);
  EXPECT_EQ(e->upstream, "127.0.0.1");
  EXPECT_EQ(e->dials, 2u);
}

// Test that when every address fails the client gets a reset and one
// upstream-failed event says how the original failed and how many
// addresses were dialed.
TEST_F(ProxySession, EveryAddressRefusedIsUpstreamFailed) {
  start(fallback_policy(), false);
  resolver_->names["fallback.test"] = {"127.0.0.2", "127.0.0.4"};
  set_target(orig_, "127.0.0.2");
  int c = client();
  send_all(c, hello("fallback.test"));
  EXPECT_EQ(read_all(c), "");
  close(c);
  auto e = event([](const Event& e) { return reason_is(e, EGD_REASON_UPSTREAM_FAILED); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->verdict, EGD_VERDICT_DENY);
  EXPECT_EQ(e->dial_error, DialError::REFUSED);
  EXPECT_EQ(e->dials, 2u);
  EXPECT_EQ(e->upstream, "");
  EXPECT_TRUE(origin_->received().empty());
}

// ---- addresses that moved -------------------------------------------------------

// Test that an address the name was answered with earlier (the resolver
// remembers it past its TTL) passes the SNI check although the name
// resolves elsewhere now, with the policy's grace; with a grace of 0 it is
// sni-ip-mismatch again.
TEST_F(ProxySession, AddressThatMovedAcceptedWithinGrace) {
  start(fallback_policy("[proxy]\naddress_grace = \"2m\"\n"), false);
  resolver_->names["moved.test"] = {"127.0.0.9"};
  resolver_->recent["moved.test"] = {"127.0.0.1"};
  int c = client();
  std::string h = hello("moved.test");
  send_all(c, h);
  shutdown(c, SHUT_WR);
  EXPECT_EQ(read_all(c), "echo:" + h);
  close(c);
  EXPECT_EQ(resolver_->last_grace_s.load(), 120);
}

TEST_F(ProxySession, AddressThatMovedRefusedWithoutGrace) {
  start(fallback_policy("[proxy]\naddress_grace = 0\n"), false);
  resolver_->names["moved.test"] = {"127.0.0.9"};
  resolver_->recent["moved.test"] = {"127.0.0.1"};
  int c = client();
  send_all(c, hello("moved.test"));
  read_all(c);
  close(c);
  EXPECT_TRUE(event([](const Event& e) { return reason_is(e, EGD_REASON_SNI_IP_MISMATCH); }));
  EXPECT_TRUE(origin_->received().empty());
}

}  // namespace
}  // namespace egressd::proxy
