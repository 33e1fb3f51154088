// reply.h: a client's query as the resolver keeps it while it is answered,
// and the replies built for it: local refusals (no record, the query's own
// question echoed byte for byte) and answers from the cache or an upstream
// (the client's id, RD bit and spelling of the name, its own OPT record,
// truncated to what it can receive over UDP). Pure, no exceptions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_addr.h"
#include "dns/message.h"

namespace egressd::dns {

inline constexpr uint16_t kRcodeBadVers = 16;  // RFC 6891: an EDNS version we do not speak
inline constexpr uint16_t kEdeBlocked = 15;    // RFC 8914 extended errors
inline constexpr uint16_t kEdeNotSupported = 21;
inline constexpr uint16_t kEdnsOptionEde = 15;
inline constexpr size_t kMaxEdeText = 200;  // EXTRA-TEXT is cut to this many bytes (a UDP reply stays small)
inline constexpr size_t kMinUdpPayload = 512;

struct QueryInfo {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool rd = false, cd = false;
  std::vector<uint8_t> question;    // name, type, class as the client sent them
  std::vector<uint8_t> qname_wire;  // the name in wire form, lower case (what goes upstream)
  std::string qname;                // presentation form (parse_message's)
  uint16_t qtype = 0, qclass = 0;
  bool edns = false;
  uint8_t edns_version = 0;
  bool dnssec_ok = false;
  uint16_t udp_size = 0;  // as advertised; 0 without EDNS
};

// The query of `wire` (parsed into `m`), which must hold exactly one
// question; nullopt otherwise.
std::optional<QueryInfo> query_info(std::span<const uint8_t> wire, const Message& m);

// The common query read without parse_message: header, one uncompressed
// question, nothing else but at most a root-owned OPT record (what stub
// resolvers, dig and dnsperf send). True when `wire` is such a query: `q`
// then holds exactly what query_info(wire, parse_message(wire).message)
// would, and parse_message would accept it as a query (Ok, QR clear, one
// question). False for anything else, which the caller gives to the full
// parser (it decides: malformed, FORMERR, other sections...). `q` is
// overwritten, reusing its buffers: no allocation per query once warm.
bool fast_query_info(std::span<const uint8_t> wire, QueryInfo& q);

// How large a UDP reply this client takes: 512 without EDNS, else its
// advertised size within 512..`our_max`.
size_t udp_limit(const QueryInfo& q, size_t our_max);

// A reply without records: header (id, opcode, RD, CD copied; RA set),
// the question, and an OPT record (DO copied, `our_udp_size`) if the query
// had one, holding an Extended DNS Error when `ede_code` is set. `tc` marks
// it truncated (the client retries over TCP).
std::vector<uint8_t> bare_reply(const QueryInfo& q, uint16_t rcode, uint16_t our_udp_size, bool tc = false,
                                std::optional<uint16_t> ede_code = std::nullopt, std::string_view ede_text = {});

// An EDNS option carrying an Extended DNS Error (RFC 8914): option code
// 15, INFO-CODE, EXTRA-TEXT (UTF-8, cut to kMaxEdeText bytes at a
// character boundary), appended to `options`.
void append_ede(std::vector<uint8_t>& options, uint16_t info_code, std::string_view text);

// A local NOERROR answer with one A or AAAA record for the question's
// name (`addr`'s family must be the question's type), TTL `ttl`; otherwise
// as bare_reply. Used for sinkholed names.
std::vector<uint8_t> address_reply(const QueryInfo& q, const IpAddr& addr, uint32_t ttl, uint16_t our_udp_size,
                                   std::optional<uint16_t> ede_code = std::nullopt, std::string_view ede_text = {});

// FORMERR for a query without exactly one question: its header only.
std::vector<uint8_t> format_error_reply(std::span<const uint8_t> wire);

// `answer` (a message without OPT whose question is q's, in any case) made
// the client's: its id, RD bit and question bytes, an OPT record if it sent
// one. Empty if the question does not match. Over `limit` bytes (UDP), a
// truncated bare reply instead.
std::vector<uint8_t> answer_reply(const QueryInfo& q, std::span<const uint8_t> answer, uint16_t our_udp_size,
                                  size_t limit);
// The same in place: `message` holds the answer (e.g. a cache hit copied
// into a reused send buffer) and becomes the reply. False, `message`
// unspecified, if the question does not match.
bool answer_reply_in_place(const QueryInfo& q, std::vector<uint8_t>& message, uint16_t our_udp_size, size_t limit);

}  // namespace egressd::dns
