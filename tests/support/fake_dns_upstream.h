// fake_dns_upstream.h: a DNS server for tests, on 127.0.0.1 (or ::1), UDP
// and TCP on one port, served by the test's Loop. The handler returns the
// messages to send back for each query (none: stay silent; over TCP each
// goes with its length prefix). Every query is parsed and kept, so tests
// can count what reached the "upstream" and how it was asked.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <functional>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/unique_fd.h"
#include "dns/builder.h"
#include "dns/message.h"

namespace egressd::testing {

using Bytes = std::vector<uint8_t>;

struct FnIo final : Loop::Watcher {
  std::function<void(uint32_t)> fn;
  void on_io(uint32_t events) override { fn(events); }
};

class FakeDnsUpstream {
 public:
  using Handler = std::function<std::vector<Bytes>(const dns::Message& query, bool tcp)>;

  FakeDnsUpstream(Loop& loop, Handler handler, int family = AF_INET) : loop_(loop), handler_(std::move(handler)) {
    for (int i = 0; i < 20 && !tcp_.valid(); ++i) bind_pair(family);  // bounded: the TCP port may be taken
    if (!tcp_.valid()) return;
    udp_io_.fn = [this](uint32_t) { on_udp(); };
    tcp_io_.fn = [this](uint32_t) { on_accept(); };
    EXPECT_TRUE(loop_.add(udp_.get(), EPOLLIN, &udp_io_).ok());
    EXPECT_TRUE(loop_.add(tcp_.get(), EPOLLIN, &tcp_io_).ok());
  }
  ~FakeDnsUpstream() {
    if (udp_.valid()) loop_.remove(udp_.get());
    if (tcp_.valid()) loop_.remove(tcp_.get());
    for (auto& c : conns_)
      if (c->fd.valid()) loop_.remove(c->fd.get());
  }
  bool ok() const { return tcp_.valid(); }
  void set_handler(Handler h) { handler_ = std::move(h); }
  int queries() const { return udp_queries + tcp_queries; }
  int edns_queries() const {
    int n = 0;
    for (const dns::Message& q : seen) n += q.edns ? 1 : 0;
    return n;
  }

  sockaddr_storage addr{};
  int udp_queries = 0;
  int tcp_queries = 0;
  std::vector<dns::Message> seen;  // every query, in order

 private:
  struct TcpConn {
    UniqueFd fd;
    Bytes in;
    FnIo io;
  };

  void bind_pair(int family) {
    udp_.reset(socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    IpAddr lo = family == AF_INET ? *IpAddr::parse("127.0.0.1") : *IpAddr::parse("::1");
    socklen_t len = lo.to_sockaddr(0, &addr);
    if (bind(udp_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return udp_.reset();
    getsockname(udp_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    tcp_.reset(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(tcp_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(tcp_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(tcp_.get(), 16) != 0) tcp_.reset();
  }

  std::vector<Bytes> handle(std::span<const uint8_t> wire, bool tcp) {
    dns::ParseResult p = dns::parse_message(wire);
    EXPECT_EQ(p.status, dns::ParseStatus::Ok) << p.error;
    if (p.status != dns::ParseStatus::Ok || p.message.questions.size() != 1) return {};
    (tcp ? tcp_queries : udp_queries)++;
    seen.push_back(p.message);
    return handler_(p.message, tcp);
  }

  void on_udp() {
    for (int i = 0; i < 64; ++i) {
      uint8_t buf[65536];
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      ssize_t n = recvfrom(udp_.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return;
      for (const Bytes& out : handle(std::span(buf, static_cast<size_t>(n)), false))
        sendto(udp_.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  void on_accept() {
    int fd = accept4(tcp_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto c = std::make_unique<TcpConn>();
    c->fd.reset(fd);
    TcpConn* raw = c.get();
    c->io.fn = [this, raw](uint32_t) { on_tcp(*raw); };
    EXPECT_TRUE(loop_.add(fd, EPOLLIN, &c->io).ok());
    conns_.push_back(std::move(c));
  }

  void on_tcp(TcpConn& c) {
    if (!c.fd.valid()) return;
    uint8_t buf[4096];
    ssize_t n = recv(c.fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      loop_.remove(c.fd.get());
      c.fd.reset();  // the TcpConn itself lives until the server does
      return;
    }
    c.in.insert(c.in.end(), buf, buf + n);
    while (c.in.size() >= 2 && c.in.size() >= 2u + (c.in[0] << 8 | c.in[1])) {  // each turn takes one frame
      size_t len = static_cast<size_t>(c.in[0] << 8 | c.in[1]);
      Bytes frame(c.in.begin() + 2, c.in.begin() + 2 + static_cast<std::ptrdiff_t>(len));
      c.in.erase(c.in.begin(), c.in.begin() + 2 + static_cast<std::ptrdiff_t>(len));
      for (const Bytes& out : handle(frame, true)) {
        Bytes framed = {static_cast<uint8_t>(out.size() >> 8), static_cast<uint8_t>(out.size())};
        framed.insert(framed.end(), out.begin(), out.end());
        EXPECT_EQ(send(c.fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL), static_cast<ssize_t>(framed.size()));
      }
    }
  }

  Loop& loop_;
  Handler handler_;
  UniqueFd udp_, tcp_;
  FnIo udp_io_, tcp_io_;
  std::list<std::unique_ptr<TcpConn>> conns_;
};

}  // namespace egressd::testing
