// Which original destinations count as "one of the name's addresses" for
// the proxy's host-forgery check (sni-ip-mismatch): pure, no sockets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/session.h"

namespace egressd::proxy {
namespace {

bool among(const std::string& orig, const std::vector<std::string>& addrs) {
  std::vector<IpAddr> v;
  for (const auto& a : addrs) v.push_back(*IpAddr::parse(a));
  return among_addresses(*IpAddr::parse(orig), v);
}

TEST(ProxyAddrMatch, ExactAndMapped) {
  EXPECT_TRUE(among("203.0.113.7", {"198.51.100.1", "203.0.113.7"}));
  EXPECT_FALSE(among("203.0.113.8", {"203.0.113.7"}));
  EXPECT_TRUE(among("::ffff:203.0.113.7", {"203.0.113.7"}));
  EXPECT_TRUE(among("203.0.113.7", {"::ffff:203.0.113.7"}));
  EXPECT_TRUE(among("2001:db8::10", {"203.0.113.7", "2001:db8::10"}));
  EXPECT_FALSE(among("2001:db8::11", {"2001:db8::10"}));
}

// Test that forms that name exactly one IPv4 host (NAT64 well-known
// prefix, IPv4-translated, IPv4-compatible) match that IPv4.
TEST(ProxyAddrMatch, OneToOneTranslationsMatchTheIpv4) {
  EXPECT_TRUE(among("64:ff9b::cb00:7107", {"203.0.113.7"}));
  EXPECT_FALSE(among("64:ff9b::cb00:7108", {"203.0.113.7"}));
  EXPECT_TRUE(among("::ffff:0:cb00:7107", {"203.0.113.7"}));
  EXPECT_TRUE(among("::cb00:7107", {"203.0.113.7"}));
}

// Test that a 6to4 address does not match the IPv4 in its prefix: the 80
// bits after it name any host of the site behind that router, which the
// name does not resolve to. Only the exact IPv6 (from AAAA) matches.
TEST(ProxyAddrMatch, SixToFourIsNotTheIpv4) {
  EXPECT_FALSE(among("2002:cb00:7107:dead::1", {"203.0.113.7"}));
  EXPECT_FALSE(among("2002:cb00:7107::cb00:7107", {"203.0.113.7"}));
  EXPECT_TRUE(among("2002:cb00:7107:dead::1", {"2002:cb00:7107:dead::1"}));
}

}  // namespace
}  // namespace egressd::proxy
