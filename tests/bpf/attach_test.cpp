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
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "bpf/loader.h"
#include "bpf/pins.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "policy/toml_loader.h"

namespace egressd {
namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

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
    if (auto s = check_bpf_privileges(); !s) {
      if (in_ci()) FAIL() << "CI=true but " << s.error().message();
      GTEST_SKIP() << s.error().message();
    }
    if (auto s = probe_kernel_support(); !s) {
      if (in_ci()) FAIL() << "CI=true but BPF cannot load: " << s.error().message();
      GTEST_SKIP() << s.error().message();
    }
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
// with EPERM, and public web ports pass the hook (then find no route).
TEST_F(BpfAttach, VerdictsReachSockets) {
  attach("version = 1\n");
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "169.254.169.254", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET6, "::ffff:10.0.0.5", 80); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET6, "64:ff9b::a00:5", 443); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 22); }), EPERM);
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "203.0.113.10", 443); }), ENETUNREACH);
  // v6 with no address configured: the kernel has no source address.
  int v6 = in_fence(cg_.path(), [] { return connect_to(AF_INET6, "2001:db8::10", 80); });
  EXPECT_TRUE(v6 == ENETUNREACH || v6 == EADDRNOTAVAIL) << strerror(v6);
  EXPECT_EQ(in_fence(cg_.path(), [] {
              int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
              return fd < 0 ? errno : 0;
            }),
            EPERM);
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

// Test that detach removes the pins and lifts the fence.
TEST_F(BpfAttach, DetachLiftsFence) {
  attach("version = 1\n");
  ASSERT_TRUE(detach_cgroup(cg_.id()).ok());
  EXPECT_FALSE(path_exists(pins_for(cg_.id()).dir));
  EXPECT_EQ(in_fence(cg_.path(), [] { return connect_to(AF_INET, "10.0.0.5", 80); }), ENETUNREACH);
}

}  // namespace
}  // namespace egressd
