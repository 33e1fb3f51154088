// Test the UDP client-socket lookup the resolver's events use
// (dns/sock_diag.h) against SO_COOKIE, on loopback: unconnected and
// connected clients, a dual-stack socket talking IPv4 (v4-mapped), IPv6,
// and a socket that is gone. Also the wire-name helpers the filter copies
// names with (dns/wire_name.h).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/ip_addr.h"
#include "dns/sock_diag.h"
#include "dns/wire_name.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace egressd::dns {
namespace {

struct Pair {
  UniqueFd server, client;
  sockaddr_storage server_addr{}, client_seen{};  // as the server's recvfrom() saw it
};

// A server socket on `lo` and a client of `client_family` sending it one
// datagram (to `to`, which may be a v4-mapped spelling of the server).
Pair exchange(const char* lo, int client_family, const char* to, bool connected) {
  Pair p;
  IpAddr server_ip = *IpAddr::parse(lo);
  p.server.reset(socket(server_ip.family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  socklen_t len = server_ip.to_sockaddr(0, &p.server_addr);
  if (bind(p.server.get(), reinterpret_cast<sockaddr*>(&p.server_addr), len) != 0) return p;
  getsockname(p.server.get(), reinterpret_cast<sockaddr*>(&p.server_addr), &len);
  uint16_t port = ntohs(reinterpret_cast<sockaddr_in*>(&p.server_addr)->sin_port);
  p.client.reset(socket(client_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_storage dst;
  socklen_t dlen = IpAddr::parse(to)->to_sockaddr(port, &dst);
  if (connected) EXPECT_EQ(connect(p.client.get(), reinterpret_cast<sockaddr*>(&dst), dlen), 0);
  EXPECT_EQ(sendto(p.client.get(), "q", 1, 0, reinterpret_cast<sockaddr*>(&dst), dlen), 1);
  char buf[4];
  socklen_t slen = sizeof(p.client_seen);
  EXPECT_EQ(recvfrom(p.server.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&p.client_seen), &slen), 1);
  return p;
}

uint64_t cookie_of(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof(c);
  EXPECT_EQ(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len), 0);
  return c;
}

TEST(SockDiag, FindsUnconnectedAndConnectedClients) {
  SockDiag diag;
  for (bool connected : {false, true}) {
    Pair p = exchange("127.0.0.1", AF_INET, "127.0.0.1", connected);
    ASSERT_TRUE(p.client.valid());
    auto c = diag.udp_cookie(p.client_seen, p.server_addr);
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(*c, cookie_of(p.client.get())) << "connected " << connected;
  }
}

TEST(SockDiag, FindsADualStackClientSendingToAMappedAddress) {
  SockDiag diag;
  Pair p = exchange("127.0.0.1", AF_INET6, "::ffff:127.0.0.1", false);
  ASSERT_TRUE(p.client.valid());
  ASSERT_EQ(p.client_seen.ss_family, AF_INET);
  auto c = diag.udp_cookie(p.client_seen, p.server_addr);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(*c, cookie_of(p.client.get()));
}

TEST(SockDiag, FindsIpv6Clients) {
  Pair p = exchange("::1", AF_INET6, "::1", true);
  if (!p.client.valid()) GTEST_SKIP() << "no ::1 here";
  SockDiag diag;
  auto c = diag.udp_cookie(p.client_seen, p.server_addr);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(*c, cookie_of(p.client.get()));
}

TEST(SockDiag, AClosedClientIsNotFound) {
  SockDiag diag;
  Pair p = exchange("127.0.0.1", AF_INET, "127.0.0.1", false);
  p.client.reset();
  auto c = diag.udp_cookie(p.client_seen, p.server_addr);
  EXPECT_FALSE(c.ok());
  // The same SockDiag keeps working afterwards (sequence numbers, no stale replies).
  Pair q = exchange("127.0.0.1", AF_INET, "127.0.0.1", true);
  auto d = diag.udp_cookie(q.client_seen, q.server_addr);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(*d, cookie_of(q.client.get()));
  sockaddr_storage v6{};
  v6.ss_family = AF_INET6;
  EXPECT_FALSE(diag.udp_cookie(v6, q.server_addr).ok()) << "mixed families";
}

using Bytes = std::vector<uint8_t>;

TEST(WireName, ExpandsPointersAndRefusesWhatTheParserRefuses) {
  // header, "example.com" at 12, then "www" + pointer to 12 at 25.
  Bytes msg(12, 0);
  for (uint8_t b : Bytes{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0}) msg.push_back(b);
  for (uint8_t b : Bytes{3, 'W', 'w', 'W', 0xc0, 12}) msg.push_back(b);
  size_t at = 25;
  Bytes out;
  ASSERT_TRUE(read_wire_name(msg, at, msg.size(), out));
  EXPECT_EQ(at, 31u);
  EXPECT_EQ(wire_name_text(out), "www.example.com");
  lower_wire_name(out);
  EXPECT_EQ(out[1], 'w');
  EXPECT_EQ(out.size(), 17u);
  // A pointer to itself, forwards, into the header, past `limit`: refused, nothing appended.
  for (auto [bytes, limit] : {std::pair{Bytes{0xc0, 31}, size_t{0}},
                              {Bytes{0xc0, 40}, 0},
                              {Bytes{0xc0, 2}, 0},
                              {Bytes{3, 'a', 'b', 'c', 0}, 3}}) {
    Bytes m = msg;
    size_t start = m.size();
    m.insert(m.end(), bytes.begin(), bytes.end());
    size_t pos = start;
    Bytes o = {9};
    EXPECT_FALSE(read_wire_name(m, pos, limit ? start + limit : m.size(), o));
    EXPECT_EQ(pos, start);
    EXPECT_EQ(o, Bytes{9});
  }
  // Over 255 wire bytes.
  Bytes long_name(12, 0);
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(60);
    long_name.insert(long_name.end(), 60, 'a');
  }
  long_name.push_back(0);
  size_t p = 12;
  Bytes o;
  EXPECT_FALSE(read_wire_name(long_name, p, long_name.size(), o));
  EXPECT_EQ(wire_name_text(Bytes{3, 'a', '.', 0, 0}), "a\\.\\000");
  EXPECT_EQ(wire_name_text(Bytes{0}), "");
}

}  // namespace
}  // namespace egressd::dns
