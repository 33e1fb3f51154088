// filter.h: what the resolver changes in an upstream's answer before any
// client sees it (issue 5):
//  - A and AAAA records whose address the policy blocks are removed (DNS
//    rebinding: an allowed name must not lead the agent to a LAN,
//    metadata or loopback address), as are such addresses in the ipv4hint
//    and ipv6hint of HTTPS/SVCB records;
//  - addresses of a family without a route are left out (drop_v4/v6);
//  - with `strip_ech`, the "ech" parameter (SvcParamKey 5) of HTTPS/SVCB
//    records is removed, so clients send a ClientHello whose SNI the proxy
//    can read instead of an encrypted one it must refuse.
// The message is rebuilt (MessageBuilder), not edited in place: compression
// pointers may point into a removed record. Names inside rdata are expanded
// from the upstream's compression. Its OPT record (and any TSIG) is left
// out: the server adds its own for the client. Pure, bounded, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/ip_addr.h"
#include "dns/message.h"

namespace egressd::dns {

inline constexpr uint16_t kSvcKeyMandatory = 0;
inline constexpr uint16_t kSvcKeyIpv4Hint = 4;
inline constexpr uint16_t kSvcKeyEch = 5;
inline constexpr uint16_t kSvcKeyIpv6Hint = 6;

struct FilterOptions {
  std::function<bool(const IpAddr&)> blocked;  // true: the policy blocks this address; empty: none is
  bool strip_ech = false;
  // Leave out every IPv4 / IPv6 address (A or AAAA record, ipv4hint or
  // ipv6hint) whatever the policy says: a family without a route (families.h).
  bool drop_v4 = false, drop_v6 = false;
};

struct FilterResult {
  bool ok = false;
  std::vector<uint8_t> message;  // header and questions as they were, the records kept, no OPT
  std::vector<IpAddr> removed;   // blocked addresses taken out, in message order
  size_t ech_stripped = 0;       // HTTPS/SVCB records that lost their "ech"
  size_t dropped_svcb = 0;       // HTTPS/SVCB records dropped because their parameters did not parse
  size_t family_dropped = 0;     // addresses left out by drop_v4 / drop_v6 (not in `removed`)
  std::string error;             // when !ok: the answer breaks the format (the caller answers SERVFAIL)
};

// `wire` must be what `parsed` was parsed from (status Ok).
FilterResult filter_answer(std::span<const uint8_t> wire, const Message& parsed, const FilterOptions& options);

}  // namespace egressd::dns
