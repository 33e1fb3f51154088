// Which original destinations count as "one of the name's addresses" for
// the proxy's host-forgery check (sni-ip-mismatch): pure, no sockets.
#include <gtest/gtest.h>

#include <cerrno>

#include <string>
#include <vector>

#include "proxy/dialer.h"
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


std::vector<std::string> order(const std::string& orig, const std::vector<std::string>& addrs,
                               const std::vector<std::string>& unusable = {}) {
  std::vector<IpAddr> v;
  for (const auto& a : addrs) v.push_back(*IpAddr::parse(a));
  auto got = fallback_order(*IpAddr::parse(orig), v, [&](const IpAddr& a) {
    for (const auto& u : unusable)
      if (a == *IpAddr::parse(u)) return false;
    return true;
  });
  std::vector<std::string> out;
  for (const IpAddr& a : got) out.push_back(a.to_string());
  return out;
}

// Test the fallback order: the original's family first, then the other,
// in answer order; never the original (nor the IPv4 its IPv6 form embeds),
// no duplicates, none the policy refuses, at most kMaxDials - 1.
TEST(ProxyFallbackOrder, FamilyFirstOriginalAndUnusableLeftOut) {
  EXPECT_EQ(order("203.0.113.10", {"2001:db8::10", "203.0.113.10", "203.0.113.7"}),
            (std::vector<std::string>{"203.0.113.7", "2001:db8::10"}));
  EXPECT_EQ(order("2001:db8::10", {"203.0.113.10", "2001:db8::11", "2001:db8::10"}),
            (std::vector<std::string>{"2001:db8::11", "203.0.113.10"}));
  EXPECT_EQ(order("::ffff:203.0.113.10", {"203.0.113.10", "::ffff:203.0.113.7", "203.0.113.7"}),
            (std::vector<std::string>{"203.0.113.7"}));
  EXPECT_EQ(order("64:ff9b::cb00:710a", {"203.0.113.10", "2001:db8::10"}), (std::vector<std::string>{"2001:db8::10"}));
  EXPECT_EQ(order("203.0.113.10", {"10.0.0.5", "203.0.113.7"}, {"10.0.0.5"}),
            (std::vector<std::string>{"203.0.113.7"}));
  EXPECT_EQ(order("203.0.113.10", {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"}).size(),
            kMaxDials - 1);
  EXPECT_TRUE(order("203.0.113.10", {"203.0.113.10"}).empty());
}

// Test how connect() errors read in events.
TEST(ProxyFallbackOrder, DialErrors) {
  EXPECT_EQ(dial_error_of(ECONNREFUSED), DialError::REFUSED);
  EXPECT_EQ(dial_error_of(EHOSTUNREACH), DialError::UNREACHABLE);
  EXPECT_EQ(dial_error_of(ENETUNREACH), DialError::UNREACHABLE);
  EXPECT_EQ(dial_error_of(ETIMEDOUT), DialError::TIMEOUT);
  EXPECT_EQ(dial_error_of(EPERM), DialError::OTHER);
  EXPECT_EQ(dial_error_name(DialError::REFUSED), "refused");
  EXPECT_EQ(dial_error_name(DialError::OTHER), "error");
}

}  // namespace
}  // namespace egressd::proxy
