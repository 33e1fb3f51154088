// bpf tier: the programs load on this kernel, attach to a cgroup through
// pinned links, and the verdicts reach real sockets. Clients run in a child
// process that joins the scratch cgroup and a new, empty network namespace:
// denied connects fail with EPERM before any routing, allowed ones fail with
// ENETUNREACH/ECONNREFUSED there, so nothing is ever sent.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "bpf/fence.h"
#include "bpf/kernel_probe.h"
#include "bpf/loader.h"
#include "bpf/pins.h"
#include "bpf/policy_maps.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "policy/toml_loader.h"

namespace egressd {
namespace {

// A fresh cgroup and its attachment, removed whatever the test's outcome.
class ScratchCgroup {
 public:
  ScratchCgroup() {
    auto root = cgroup2_mount();
    if (!root) return;
    path_ = *root + "/egd-bpf-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++);
    if (!ensure_cgroup_dir(path_)) path_.clear();
  }
  ~ScratchCgroup() {
    if (path_.empty()) return;
    if (auto id = cgroup_id(path_); id) (void)detach_cgroup(*id);
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  uint64_t id() const { return *cgroup_id(path_); }

 private:
  std::string path_;
  static inline int counter_ = 0;
};

// Runs `probe` in a child inside the cgroup and a new netns; returns its
// exit status (the probe returns an errno, 0 for success).
int in_fence(const std::string& cgroup, int (*probe)()) {
  pid_t pid = fork();
  if (pid == 0) {
    std::ofstream(cgroup + "/cgroup.procs") << getpid() << std::flush;
    if (unshare(CLONE_NEWNET) != 0) _exit(200);
    _exit(probe());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

int connect_to(int family, const char* addr, uint16_t port, int type = SOCK_STREAM) {
  int fd = socket(family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa->sin_addr);
    len = sizeof(*sa);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    inet_pton(AF_INET6, addr, &sa->sin6_addr);
    len = sizeof(*sa);
  }
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

class BpfAttach : public ::testing::Test {
 protected:
  void SetUp() override {
    // A skip fails under CI=true (tests/support/gtest_main.cpp).
    if (auto s = check_bpf_privileges(); !s) GTEST_SKIP() << s.error().message();
    if (auto s = probe_kernel_support(); !s) GTEST_SKIP() << "BPF cannot load: " << s.error().message();
    ASSERT_FALSE(cg_.path().empty()) << "cannot create a scratch cgroup";
  }

  Attached attach(const std::string& toml) {
    auto policy = policy::parse_policy(toml, "test.toml");
    auto a = attach_cgroup(cg_.path(), cg_.id(), policy);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message());
    return a.ok() ? std::move(a.value()) : Attached{};
  }

  ScratchCgroup cg_;
};

// Test that private, link-local and embedded-v4 destinations are refused
// with EPERM, and that public web ports are refused too while no proxy is
// registered to steer them to (fail closed).
TEST_F(BpfAttach, VerdictsReachSockets) {
  attach("version = 1\n");
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "169.254.169.254", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET6, "::ffff:10.0.0.5", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET6, "64:ff9b::a00:5", 443); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 22); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 443); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET6, "2001:db8::10", 80); }), EPERM);
  // UDP 53 is not steered: it passes the hook, then finds no route.
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 53, SOCK_DGRAM); }), ENETUNREACH);
  EXPECT_EQ(in_fence(cg_.path(), [] {
              int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
              return fd < 0 ? errno : 0;
            }),
            EPERM);
}

// The steering probe's view, written by the child for the parent to check.
struct SteerSeen {
  int connect_err = -1;
  char peer[64] = {};      // getpeername() in the client
  char accepted[64] = {};  // accept()'s peer in the listener
  int record_found = 0;    // egd_orig_by_port had the accepted peer's key
  char orig[64] = {};      // the record's original destination
  uint32_t orig_tgid = 0;
  uint32_t client_tgid = 0;
  int direct_record = -1;  // a direct dial of the listener had a record (must not)
};

constexpr uint16_t kProxyPort = 15999;
int g_by_port_fd = -1;
SteerSeen* g_seen = nullptr;
const char* g_steer_addr = nullptr;
int g_steer_family = AF_INET;

std::string sockaddr_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sa->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(sa->sin_port));
  }
  auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &sa->sin6_addr, buf, sizeof(buf));
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sa->sin6_port));
}

bool lookup_record(int listener_family, const sockaddr_storage& peer, int accepted_fd, egd_orig* out) {
  egd_port_key k{};
  uint64_t netns = 0;
  socklen_t nl = sizeof(netns);
  if (getsockopt(accepted_fd, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &netns, &nl) != 0) return false;
  k.netns_cookie = netns;
  if (listener_family == AF_INET) {
    auto* sa = reinterpret_cast<const sockaddr_in*>(&peer);
    k.family = AF_INET;
    std::memcpy(&k.addr[0], &sa->sin_addr, 4);
    k.port = ntohs(sa->sin_port);
  } else {
    auto* sa = reinterpret_cast<const sockaddr_in6*>(&peer);
    k.family = AF_INET6;
    std::memcpy(k.addr, &sa->sin6_addr, 16);
    k.port = ntohs(sa->sin6_port);
  }
  return bpf_map_lookup_elem(g_by_port_fd, &k, out) == 0;
}

// Child: in the fenced cgroup and an empty netns with lo up, a listener on
// loopback:kProxyPort stands in for the proxy; connect to g_steer_addr.
int steer_probe() {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return 201;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) return 202;
  close(s);
  bool v4_listener = g_steer_family == AF_INET || std::strncmp(g_steer_addr, "::ffff:", 7) == 0;
  int lfam = v4_listener ? AF_INET : AF_INET6;
  int l = socket(lfam, SOCK_STREAM, 0);
  sockaddr_storage la{};
  socklen_t lalen;
  if (lfam == AF_INET) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&la);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(kProxyPort);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lalen = sizeof(*sa);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&la);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(kProxyPort);
    sa->sin6_addr = in6addr_loopback;
    lalen = sizeof(*sa);
  }
  if (bind(l, reinterpret_cast<sockaddr*>(&la), lalen) != 0 || listen(l, 8) != 0) return 203;

  g_seen->client_tgid = static_cast<uint32_t>(getpid());
  int c = socket(g_steer_family, SOCK_STREAM, 0);
  sockaddr_storage ss{};
  socklen_t len;
  if (g_steer_family == AF_INET) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(443);
    inet_pton(AF_INET, g_steer_addr, &sa->sin_addr);
    len = sizeof(*sa);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(443);
    inet_pton(AF_INET6, g_steer_addr, &sa->sin6_addr);
    len = sizeof(*sa);
  }
  g_seen->connect_err = connect(c, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
  if (g_seen->connect_err) return 0;
  sockaddr_storage peer{};
  socklen_t plen = sizeof(peer);
  getpeername(c, reinterpret_cast<sockaddr*>(&peer), &plen);
  std::snprintf(g_seen->peer, sizeof(g_seen->peer), "%s", sockaddr_text(peer).c_str());

  sockaddr_storage acc{};
  socklen_t alen = sizeof(acc);
  int a = accept(l, reinterpret_cast<sockaddr*>(&acc), &alen);
  if (a < 0) return 204;
  std::snprintf(g_seen->accepted, sizeof(g_seen->accepted), "%s", sockaddr_text(acc).c_str());
  egd_orig o{};
  if (lookup_record(lfam, acc, a, &o)) {
    g_seen->record_found = 1;
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(o.family, o.daddr, buf, sizeof(buf));
    std::snprintf(g_seen->orig, sizeof(g_seen->orig), "%s %u", buf, o.dport);
    g_seen->orig_tgid = o.tgid;
  }
  // Someone dialing the listener directly (loopback is allowed) has no record.
  int d = socket(lfam, SOCK_STREAM, 0);
  if (connect(d, reinterpret_cast<sockaddr*>(&la), lalen) != 0) return 205;
  alen = sizeof(acc);
  int a2 = accept(l, reinterpret_cast<sockaddr*>(&acc), &alen);
  g_seen->direct_record = lookup_record(lfam, acc, a2, &o) ? 1 : 0;
  return 0;
}

// Test the steering mechanism the proxy relies on: with a proxy port
// registered, a connect to a public web port lands on the loopback
// listener; the client's getpeername() shows the original destination; the
// listener finds the original destination and the client's pid in
// egd_orig_by_port from accept()'s peer address; a direct dial has none.
TEST_F(BpfAttach, SteersWebPortsToProxy) {
  Attached a = attach("version = 1\n");
  ASSERT_TRUE(set_proxy_ports(a.maps, kProxyPort, 0).ok());
  g_by_port_fd = a.maps.orig_by_port.get();
  struct Case {
    int family;
    const char* addr;
    const char* peer;
    const char* orig;
  } cases[] = {
      {AF_INET, "203.0.113.10", "203.0.113.10:443", "203.0.113.10 443"},
      {AF_INET6, "2001:db8::10", "[2001:db8::10]:443", "2001:db8::10 443"},
      {AF_INET6, "::ffff:203.0.113.10", "[::ffff:203.0.113.10]:443", "::ffff:203.0.113.10 443"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.addr);
    void* mem = mmap(nullptr, sizeof(SteerSeen), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    g_seen = new (mem) SteerSeen{};
    g_steer_addr = c.addr;
    g_steer_family = c.family;
    EXPECT_EQ(in_fence(cg_.path(), steer_probe), 0);
    EXPECT_EQ(g_seen->connect_err, 0) << strerror(g_seen->connect_err);
    EXPECT_STREQ(g_seen->peer, c.peer);
    EXPECT_EQ(g_seen->record_found, 1) << "accepted peer " << g_seen->accepted;
    EXPECT_STREQ(g_seen->orig, c.orig);
    EXPECT_EQ(g_seen->orig_tgid, g_seen->client_tgid);
    EXPECT_EQ(g_seen->direct_record, 0);
    munmap(mem, sizeof(SteerSeen));
  }
}

constexpr uint16_t kDnsPort = 15998;

struct DnsSeen {
  int send_err = -1;
  char reply_from[64] = {};     // recvfrom()'s source for the unconnected query
  char reply[32] = {};
  char connected_peer[64] = {};  // getpeername() of a connected UDP socket
  char connected_from[64] = {};  // recvfrom() source on it
  int tcp_err = -1;
  char tcp_accepted_at[16] = {};  // "yes" if the TCP listener stand-in got it
};
DnsSeen* g_dns = nullptr;

bool lo_up() {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  bool ok = ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  return ok;
}

sockaddr_in v4addr(const char* a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, a, &sa.sin_addr);
  return sa;
}

// Child: a UDP and a TCP stand-in for the resolver on 127.0.0.1:kDnsPort,
// then queries to "resolvers" on private and public addresses.
int dns_probe() {
  if (!lo_up()) return 201;
  int srv = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in la = v4addr("127.0.0.1", kDnsPort);
  if (bind(srv, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0) return 202;
  int tsrv = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(tsrv, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0 || listen(tsrv, 4) != 0) return 203;
  timeval tv{2, 0};

  auto answer = [&] {
    char buf[64];
    sockaddr_storage from{};
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(srv, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n > 0) sendto(srv, "answer", 6, 0, reinterpret_cast<sockaddr*>(&from), fl);
  };

  // Unconnected sendto a LAN resolver: steered, and the answer appears to
  // come from it.
  int c = socket(AF_INET, SOCK_DGRAM, 0);
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in lan = v4addr("10.0.0.1", 53);
  g_dns->send_err = sendto(c, "query", 5, 0, reinterpret_cast<sockaddr*>(&lan), sizeof(lan)) == 5 ? 0 : errno;
  if (g_dns->send_err) return 0;
  answer();
  sockaddr_storage from{};
  socklen_t fl = sizeof(from);
  ssize_t n = recvfrom(c, g_dns->reply, sizeof(g_dns->reply) - 1, 0, reinterpret_cast<sockaddr*>(&from), &fl);
  if (n > 0) std::snprintf(g_dns->reply_from, sizeof(g_dns->reply_from), "%s", sockaddr_text(from).c_str());

  // Connected UDP (what glibc does) to a public resolver.
  int cc = socket(AF_INET, SOCK_DGRAM, 0);
  setsockopt(cc, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in pub = v4addr("203.0.113.53", 53);
  if (connect(cc, reinterpret_cast<sockaddr*>(&pub), sizeof(pub)) != 0) return 204;
  sockaddr_storage peer{};
  socklen_t pl = sizeof(peer);
  getpeername(cc, reinterpret_cast<sockaddr*>(&peer), &pl);
  std::snprintf(g_dns->connected_peer, sizeof(g_dns->connected_peer), "%s", sockaddr_text(peer).c_str());
  send(cc, "q2", 2, 0);
  answer();
  char buf[16];
  fl = sizeof(from);
  if (recvfrom(cc, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl) > 0)
    std::snprintf(g_dns->connected_from, sizeof(g_dns->connected_from), "%s", sockaddr_text(from).c_str());

  // TCP 53 too.
  int t = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in pub_tcp = v4addr("198.51.100.53", 53);
  g_dns->tcp_err = connect(t, reinterpret_cast<sockaddr*>(&pub_tcp), sizeof(pub_tcp)) == 0 ? 0 : errno;
  if (g_dns->tcp_err == 0) {
    int a = accept(tsrv, nullptr, nullptr);
    if (a >= 0) std::snprintf(g_dns->tcp_accepted_at, sizeof(g_dns->tcp_accepted_at), "yes");
  }
  return 0;
}

// Test DNS steering: once a resolver port is registered, UDP (connected or
// not) and TCP port 53 to any address, private ones included, reach the
// resolver on loopback, and answers appear to come from the server asked
// (recvmsg4) as does the peer of a connected socket (getpeername4).
TEST_F(BpfAttach, SteersDnsToResolver) {
  Attached a = attach("version = 1\n");
  // Without a resolver, DNS to a private address is just private: the UDP
  // connect proceeds (and finds no route here), its sends would be dropped.
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.1", 53, SOCK_DGRAM); }), ENETUNREACH);
  ASSERT_TRUE(set_proxy_ports(a.maps, kProxyPort, kDnsPort).ok());
  void* mem = mmap(nullptr, sizeof(DnsSeen), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  g_dns = new (mem) DnsSeen{};
  EXPECT_EQ(in_fence(cg_.path(), dns_probe), 0);
  EXPECT_EQ(g_dns->send_err, 0) << strerror(g_dns->send_err);
  EXPECT_STREQ(g_dns->reply, "answer");
  EXPECT_STREQ(g_dns->reply_from, "10.0.0.1:53");
  EXPECT_STREQ(g_dns->connected_peer, "203.0.113.53:53");
  EXPECT_STREQ(g_dns->connected_from, "203.0.113.53:53");
  EXPECT_EQ(g_dns->tcp_err, 0) << strerror(g_dns->tcp_err);
  EXPECT_STREQ(g_dns->tcp_accepted_at, "yes");
  munmap(mem, sizeof(DnsSeen));
  // A registered resolver that went away (port 0) refuses, never lets DNS out.
  ASSERT_TRUE(set_proxy_ports(a.maps, kProxyPort, 0).ok());
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.53", 53, SOCK_DGRAM); }), EPERM);
}

// Child: a UDP socket connected to a refused peer (loopback, denied) connects,
// but cannot deliver a datagram; a refused address with no route answers the
// connect with ENETUNREACH, as glibc's address sorting expects. Returns 0 or
// the number of the failed check.
constexpr uint16_t kUdpPort = 15997;
int udp_probe_child() {
  if (!lo_up()) return 201;
  int srv = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in la = v4addr("127.0.0.1", kUdpPort);
  if (bind(srv, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0) return 202;
  int c = socket(AF_INET, SOCK_DGRAM, 0);
  if (connect(c, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0) return 203;
  if (send(c, "x", 1, 0) != -1 || errno != EPERM) return 204;
  if (write(c, "x", 1) != -1 || errno != EPERM) return 205;
  if (sendto(c, "x", 1, 0, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != -1 || errno != EPERM) return 206;
  char b[4];
  if (recv(srv, b, sizeof(b), MSG_DONTWAIT) != -1 || errno != EAGAIN) return 207;  // the drop is synchronous
  if (connect_to(AF_INET, "10.0.0.5", 123, SOCK_DGRAM) != ENETUNREACH) return 208;
  if (connect_to(AF_INET6, "fd00::10", 123, SOCK_DGRAM) != ENETUNREACH) return 209;
  return 0;
}

// Test that a refused UDP connect succeeds and its sends are dropped on
// egress with EPERM, while TCP is still refused at connect.
TEST_F(BpfAttach, UdpConnectProbesSendsRefused) {
  attach("version = 1\n[network]\nloopback = \"deny\"\n");
  EXPECT_EQ(in_fence(cg_.path(), udp_probe_child), 0);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 22); }), EPERM);
}

// Test that a child cgroup created after the attach inherits the fence.
TEST_F(BpfAttach, NestedCgroupIsFenced) {
  attach("version = 1\n");
  std::string child = cg_.path() + "/child";
  ASSERT_TRUE(ensure_cgroup_dir(child).ok());
  int err = in_fence(child, [] { return connect_to(AF_INET, "192.168.1.5", 443); });
  rmdir(child.c_str());
  EXPECT_EQ(err, EPERM);
}

// Test that a second attach adopts the pins and swaps the policy: the
// generation advances and the new deny rule is in force.
TEST_F(BpfAttach, ReattachAdoptsAndSwaps) {
  Attached first = attach("version = 1\n");
  Attached second = attach("version = 1\n[[deny_cidr]]\ncidr = \"203.0.113.0/24\"\n");
  EXPECT_TRUE(second.adopted);
  EXPECT_GT(second.install.gen, first.install.gen);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 443); }), EPERM);
}

// Test that 100k allow CIDRs load (the scale target) and still
// decide: a listed private /32 on its port passes the hook.
TEST_F(BpfAttach, HundredThousandCidrsLoad) {
  std::ostringstream toml;
  toml << "version = 1\n";
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    uint32_t a = 0xcb000000u | (rng() & 0x00ffffffu);  // 203.x.y.z
    toml << "[[allow_cidr]]\ncidr = \"" << (a >> 24) << "." << ((a >> 16) & 255) << "." << ((a >> 8) & 255) << "."
         << (a & 255) << "/32\"\nports = [5432]\n";
  }
  toml << "[[allow_cidr]]\ncidr = \"10.9.8.7/32\"\nports = [5432]\n";
  auto t0 = std::chrono::steady_clock::now();
  Attached a = attach(toml.str());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("attach_ms_100k", std::to_string(ms));
  EXPECT_GE(a.install.entries, 90000u);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.9.8.7", 5432); }), ENETUNREACH);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.9.8.7", 5433); }), EPERM);
}

// Test that a cgroup made again under the same path is a new, unfenced
// cgroup that check_fence calls unfenced, and that move_fence puts the same
// programs and maps (policy, proxy registration) on it and moves the pins.
TEST_F(BpfAttach, MoveFenceOntoRecreatedCgroup) {
  // Pins of our own: the unfenced moment made here must not show in the
  // `egressd status` of anything running beside this test.
  std::string base = "/sys/fs/bpf/egd-bpf-test-" + std::to_string(getpid());
  const char* prev = std::getenv("EGRESSD_BPFFS_DIR");
  struct Restore {
    std::string base;
    std::optional<std::string> prev;
    ~Restore() {
      for (uint64_t id : pinned_cgroups()) (void)detach_cgroup(id);
      rmdir(base.c_str());
      if (prev)
        setenv("EGRESSD_BPFFS_DIR", prev->c_str(), 1);
      else
        unsetenv("EGRESSD_BPFFS_DIR");
    }
  } restore{base, prev ? std::optional<std::string>(prev) : std::nullopt};
  ASSERT_EQ(setenv("EGRESSD_BPFFS_DIR", base.c_str(), 1), 0);
  Attached a = attach("version = 1\n");
  ASSERT_TRUE(set_proxy_ports(a.maps, 40123, 0).ok());
  uint64_t old_id = cg_.id();
  auto before = check_fence(pins_for(old_id), cg_.path(), pinned_cgroups());
  EXPECT_EQ(before.state, FenceCheck::State::kEnforcing) << before.reason;
  EXPECT_EQ(before.attached, static_cast<int>(program_names().size()));

  ASSERT_EQ(rmdir(cg_.path().c_str()), 0);
  auto gone = check_fence(pins_for(old_id), cg_.path(), pinned_cgroups());
  EXPECT_EQ(gone.state, FenceCheck::State::kStale) << gone.reason;
  ASSERT_TRUE(ensure_cgroup_dir(cg_.path()).ok());
  uint64_t new_id = cg_.id();
  ASSERT_NE(new_id, old_id);
  auto recreated = check_fence(pins_for(old_id), cg_.path(), pinned_cgroups());
  EXPECT_EQ(recreated.state, FenceCheck::State::kUnfenced) << recreated.reason;
  EXPECT_EQ(recreated.current_id, new_id);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), ENETUNREACH)
      << "a recreated cgroup is not fenced by the old links";

  int fd = open(cg_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto moved = move_fence(a.maps, pins_for(old_id), fd, new_id);
  close(fd);
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_TRUE(moved->warning.empty()) << moved->warning;
  EXPECT_EQ(moved->pins.dir, pins_for(new_id).dir);
  EXPECT_FALSE(path_exists(pins_for(old_id).dir)) << "old pins left behind";
  auto after = check_fence(pins_for(new_id), cg_.path(), pinned_cgroups());
  EXPECT_EQ(after.state, FenceCheck::State::kEnforcing) << after.reason;
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), EPERM);
  auto maps = open_pinned_maps(pins_for(new_id));
  ASSERT_TRUE(maps.ok()) << maps.error().message();
  auto meta = read_meta(*maps);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->cgroup_id, new_id);
  EXPECT_EQ(meta->reattached, 1u);
  EXPECT_EQ(meta->gen, a.install.gen) << "the policy moved as it was";
  auto conf = read_proxy_conf(*maps);
  ASSERT_TRUE(conf.ok());
  EXPECT_EQ(conf->port, 40123) << "the proxy registration moved with the maps";
}

// Test that detach removes the pins and lifts the fence.
// Test that the pins are the compiled object's programs and maps, nothing
// listed by hand: one link_<program> per program, one pin per map; and that
// the programs come in attach order (socket creation first, the steering
// sendmsg and connect hooks last), as the kernel's link info tells.
TEST_F(BpfAttach, PinsAreTheObjectsProgramsAndMaps) {
  attach("version = 1\n");
  PinLayout pins = pins_for(cg_.id());
  std::set<std::string> want, got;
  for (const std::string& p : program_names()) want.insert("link_" + p);
  for (const std::string& m : map_names()) want.insert(m);
  for (const auto& e : std::filesystem::directory_iterator(pins.dir)) got.insert(e.path().filename());
  EXPECT_EQ(got, want);
  EXPECT_TRUE(want.count("egd_meta") && want.count("egd_events") && want.count("link_egd_connect4"));

  std::vector<uint32_t> types;
  for (const std::string& p : program_names()) {
    UniqueFd fd(bpf_obj_get(pins.link(p).c_str()));
    ASSERT_TRUE(fd.valid()) << p;
    bpf_link_info info{};
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &len), 0) << p;
    EXPECT_EQ(info.cgroup.cgroup_id, cg_.id()) << p;
    types.push_back(info.cgroup.attach_type);
  }
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(types.front(), BPF_CGROUP_INET_SOCK_CREATE);
  auto connect = [](uint32_t t) { return t == BPF_CGROUP_INET4_CONNECT || t == BPF_CGROUP_INET6_CONNECT; };
  auto sendmsg = [](uint32_t t) { return t == BPF_CGROUP_UDP4_SENDMSG || t == BPF_CGROUP_UDP6_SENDMSG; };
  EXPECT_TRUE(connect(types[types.size() - 1]) && connect(types[types.size() - 2]));
  EXPECT_TRUE(sendmsg(types[types.size() - 3]) && sendmsg(types[types.size() - 4]));
}

// Test the kernel probe on this kernel, which has all egressd needs: every
// map type is there, every program loads on its own, and every program can
// be linked to a cgroup (EBADF for the invalid cgroup fd, not EINVAL).
TEST_F(BpfAttach, KernelProbeFindsNothingMissing) {
  EXPECT_EQ(missing_kernel_features(object_elf()), std::vector<std::string>{});
  auto probe = probe_kernel_support();
  EXPECT_TRUE(probe.ok()) << (probe.ok() ? "" : probe.error().message());
}

// Test that an object the kernel cannot load is explained: an ELF that is
// no BPF object names the open that failed rather than claiming a kernel
// feature is missing.
TEST_F(BpfAttach, KernelProbeNamesWhatFailed) {
  const unsigned char junk[64] = {0x7f, 'E', 'L', 'F'};
  std::vector<std::string> missing = missing_kernel_features(junk);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].find("open the BPF object"), std::string::npos) << missing[0];
}

TEST_F(BpfAttach, DetachLiftsFence) {
  attach("version = 1\n");
  ASSERT_TRUE(detach_cgroup(cg_.id()).ok());
  EXPECT_FALSE(path_exists(pins_for(cg_.id()).dir));
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), ENETUNREACH);
}

}  // namespace
}  // namespace egressd
