// Test parse_resolv_conf (dns/resolv_conf.h): nameserver lines in the
// forms glibc reads, everything else skipped.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/resolv_conf.h"

#include <netinet/in.h>

namespace {

using egressd::dns::parse_resolv_conf;
using egressd::dns::to_string;

std::vector<std::string> servers(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& ss : parse_resolv_conf(text)) out.push_back(to_string(ss));
  return out;
}

TEST(ResolvConf, SystemdStub) {
  EXPECT_EQ(servers("# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n"
                    "nameserver 127.0.0.53\n"
                    "options edns0 trust-ad\n"
                    "search .\n"),
            std::vector<std::string>{"127.0.0.53:53"});
}

TEST(ResolvConf, IPv4AndIPv6InOrder) {
  EXPECT_EQ(servers("nameserver 10.0.0.2\nnameserver 2001:4860:4860::8888\n"),
            (std::vector<std::string>{"10.0.0.2:53", "[2001:4860:4860::8888]:53"}));
}

TEST(ResolvConf, CommentsBlanksAndWhitespace) {
  EXPECT_EQ(servers("; semicolon comment\n"
                    "#nameserver 9.9.9.9\n"
                    "   # indented comment\n"
                    "\n"
                    "\t nameserver\t1.1.1.1   # trailing words are ignored\r\n"
                    "domain example.com\n"
                    "nameserver 8.8.8.8"),  // no final newline
            (std::vector<std::string>{"1.1.1.1:53", "8.8.8.8:53"}));
}

TEST(ResolvConf, BadLinesAreSkipped) {
  EXPECT_EQ(servers("nameserver\n"
                    "nameserver not-an-address\n"
                    "nameserver 1.2.3\n"
                    "nameserver 1.2.3.4:5353\n"
                    "nameservers 1.2.3.4\n"
                    "NAMESERVER 1.2.3.4\n"
                    "nameserver 5.6.7.8\n"),
            std::vector<std::string>{"5.6.7.8:53"});
}

TEST(ResolvConf, ScopedLinkLocal) {
  auto got = parse_resolv_conf("nameserver fe80::1%2\nnameserver fe80::2%eth0\nnameserver 1.2.3.4%2\n");
  ASSERT_EQ(got.size(), 1u) << "named scopes need an interface lookup; IPv4 has no scope";
  EXPECT_EQ(reinterpret_cast<const sockaddr_in6*>(&got[0])->sin6_scope_id, 2u);
  EXPECT_EQ(to_string(got[0]), "[fe80::1]:53");
}

TEST(ResolvConf, AtMostThreeLikeGlibc) {
  EXPECT_EQ(servers("nameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\nnameserver 4.4.4.4\n").size(), 3u);
}

TEST(ResolvConf, Empty) {
  EXPECT_TRUE(servers("").empty());
  EXPECT_TRUE(servers("search example.com\n").empty());
}

TEST(ResolvConf, ReadingAMissingFileIsAnError) {
  auto r = egressd::dns::read_resolv_conf("/nonexistent/resolv.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, ENOENT);
}

}  // namespace
