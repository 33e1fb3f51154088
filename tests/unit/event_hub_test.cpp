// The tail hub as watchers on the daemon's Loop: hello and registration,
// fan-out in each subscriber's format, subscribers that go away (also within
// one batch of events), and the socket file's lifetime.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "events/hub.h"

namespace egressd {
namespace {

using namespace std::chrono_literals;

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egressd-hub-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/events.sock";
    auto loop = Loop::create();
    ASSERT_TRUE(loop) << loop.error().message();
    loop_.emplace(std::move(*loop));
    auto hub = Hub::listen(*loop_, path_, "/sys/fs/cgroup/test.slice");
    ASSERT_TRUE(hub) << hub.error().message();
    hub_ = std::move(*hub);
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    hub_.reset();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  void turn(int n = 1) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(loop_->run_once(20));
  }

  int connect_sub() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.c_str(), path_.size());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << std::strerror(errno);
    fds_.push_back(fd);
    return fd;
  }

  // One line from `fd`, turning the loop meanwhile; "" on the deadline.
  std::string line(int fd, std::chrono::milliseconds within = 2000ms) {
    std::string out;
    auto end = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < end) {
      turn();
      pollfd p{fd, POLLIN, 0};
      while (poll(&p, 1, 0) == 1) {
        char c;
        if (recv(fd, &c, 1, 0) != 1) return out;
        if (c == '\n') return out;
        out.push_back(c);
      }
    }
    return "";
  }

  int subscribe(const char* mode) {
    int fd = connect_sub();
    std::string hello = std::string(mode) + "\n";
    EXPECT_EQ(send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
    EXPECT_EQ(line(fd), "ok /sys/fs/cgroup/test.slice");
    return fd;
  }

  // Turns the loop until the hub counts `n` subscribers.
  bool subscribers_become(size_t n) {
    auto end = std::chrono::steady_clock::now() + 2s;
    while (hub_->subscribers() != n && std::chrono::steady_clock::now() < end) turn();
    return hub_->subscribers() == n;
  }

  static Event denied() {
    Event e;
    e.hook = EGD_HOOK_CONNECT4;
    e.verdict = EGD_VERDICT_DENY;
    e.reason = EGD_REASON_PRIVATE;
    e.family = AF_INET;
    e.protocol = IPPROTO_TCP;
    e.daddr = "10.0.0.5";
    e.dport = 80;
    e.comm = "probe";
    return e;
  }

  std::string dir_, path_;
  std::optional<Loop> loop_;
  std::unique_ptr<Hub> hub_;
  std::vector<int> fds_;
};

TEST_F(HubTest, SubscribersGetEachEventInTheirFormat) {
  int json = subscribe("json"), text = subscribe("text");
  ASSERT_TRUE(subscribers_become(2));
  hub_->publish(denied());
  std::string j = line(json), t = line(text);
  EXPECT_EQ(j.front(), '{') << j;
  EXPECT_NE(j.find("\"10.0.0.5\""), std::string::npos) << j;
  EXPECT_NE(t.front(), '{') << t;
  EXPECT_NE(t.find("10.0.0.5"), std::string::npos) << t;
}

TEST_F(HubTest, UnknownModeIsRefusedAndClosed) {
  int fd = connect_sub();
  ASSERT_EQ(send(fd, "yaml\n", 5, MSG_NOSIGNAL), 5);
  EXPECT_EQ(line(fd), "error unknown mode");
  EXPECT_TRUE(subscribers_become(0));
}

TEST_F(HubTest, SubscribersThatHangUpAreDropped) {
  int a = subscribe("json");
  subscribe("json");
  ASSERT_TRUE(subscribers_become(2));
  shutdown(a, SHUT_RDWR);
  EXPECT_TRUE(subscribers_become(1));
  hub_->publish(denied());  // reaches the one left
  EXPECT_EQ(hub_->subscribers(), 1u);
}

TEST_F(HubTest, ManyHangUpsInOneBatchAreSafe) {
  // Every subscriber's hang-up lands in the same epoll batch: each is
  // closed while the batch may still name it (freed only after the batch).
  std::vector<int> subs;
  for (int i = 0; i < 16; ++i) subs.push_back(subscribe(i % 2 ? "json" : "text"));
  ASSERT_TRUE(subscribers_become(16));
  for (int fd : subs) shutdown(fd, SHUT_RDWR);
  EXPECT_TRUE(subscribers_become(0));
  int again = subscribe("json");  // the listener still works, fds reused
  ASSERT_TRUE(subscribers_become(1));
  hub_->publish(denied());
  EXPECT_EQ(line(again).front(), '{');
}

TEST_F(HubTest, NoticeReachesSubscribers) {
  int json = subscribe("json"), text = subscribe("text");
  hub_->notice("{\"type\":\"refenced\"}", "-- fence moved");
  EXPECT_EQ(line(json), "{\"type\":\"refenced\"}");
  EXPECT_EQ(line(text), "-- fence moved");
}

TEST_F(HubTest, SocketIsMode0660AndRemovedWithTheHub) {
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  hub_.reset();
  EXPECT_NE(stat(path_.c_str(), &st), 0);
}

TEST_F(HubTest, RenamedSocketStillServes) {
  std::string moved = dir_ + "/moved.sock";
  ASSERT_TRUE(hub_->rename_socket(moved));
  path_ = moved;
  int fd = subscribe("text");
  hub_->publish(denied());
  EXPECT_NE(line(fd).find("10.0.0.5"), std::string::npos);
}

}  // namespace
}  // namespace egressd
