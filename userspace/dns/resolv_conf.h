// resolv_conf.h: the upstream resolvers' addresses: read from resolv.conf
// (when neither --dns-upstream nor [dns] upstream names them), and written
// as text for errors and events.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd::dns {

// Upstreams from resolv.conf text: `nameserver ADDR` lines (IPv4 or IPv6,
// a numeric %scope allowed), port 53, at most 3 like glibc; comments and
// other keywords skipped.
std::vector<sockaddr_storage> parse_resolv_conf(std::string_view text);
// Reads and parses a resolv.conf (start-up only: blocking). An error if it
// names no nameserver.
Result<std::vector<sockaddr_storage>> read_resolv_conf(const std::string& path = "/etc/resolv.conf");
// "1.2.3.4:53", "[::1]:53".
std::string to_string(const sockaddr_storage& addr);

}  // namespace egressd::dns
