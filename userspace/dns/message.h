// message.h: the DNS wire format (RFC 1035, EDNS0 of RFC 6891) as pure
// functions over byte spans, shared by the stub resolver and, later, the
// filtering DNS proxy. No I/O, no exceptions, every loop bounded by the
// input: compression pointers must point backwards (so a name cannot loop)
// and names are at most 255 wire bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns_types.h"
#include "common/ip_addr.h"

namespace egressd::dns {

inline constexpr size_t kHeaderBytes = 12;
inline constexpr size_t kMaxNameWireBytes = 255;  // RFC 1035 2.3.4, length octets included
inline constexpr size_t kMaxMessageBytes = 65535;  // what a TCP length prefix can say
inline constexpr size_t kMaxCnameHops = 8;

// "NOERROR", "NXDOMAIN", ... or the number.
std::string rcode_name(uint16_t rcode);

enum class ParseStatus {
  Ok,
  Truncated,        // the message ends inside a header, name or record
  Malformed,        // breaks the format (see error)
  CompressionLoop,  // a pointer into the name being read, or too many jumps
  NameTooLong,      // a name over 255 wire bytes
};

const char* to_string(ParseStatus status);

struct Header {
  uint16_t id = 0;
  bool qr = false;  // a response
  uint8_t opcode = 0;
  bool aa = false, tc = false, rd = false, ra = false, ad = false, cd = false;
  uint16_t rcode = 0;  // 12 bits when an OPT record carries the upper 8
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
};

struct Question {
  std::string name;  // presentation form, lower case, no trailing dot ("" is the root)
  uint16_t type = 0;
  uint16_t klass = 0;
  size_t offset = 0;  // where the question starts in the message
};

enum class Section : uint8_t { Answer, Authority, Additional };

struct Record {
  Section section = Section::Answer;
  std::string name;  // owner, as Question::name
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;  // values with the top bit set read as 0 (RFC 2181 8)
  // Byte ranges in the message, so a caller can copy, drop or rewrite records.
  size_t offset = 0;  // first byte of the owner name
  size_t end = 0;     // one past the rdata
  size_t rdata_offset = 0;
  uint16_t rdata_length = 0;
  // Decoded for class IN: A and AAAA into addr, CNAME into target.
  std::optional<IpAddr> addr;
  std::string target;
};

struct Edns {
  uint16_t udp_size = 0;
  uint8_t version = 0;
  bool dnssec_ok = false;
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<Record> answers, authority, additional;  // the OPT record stays in additional
  std::optional<Edns> edns;
  size_t end = 0;  // bytes parsed; anything after is ignored
};

struct ParseResult {
  ParseStatus status = ParseStatus::Malformed;
  Message message;    // complete only when status == Ok
  std::string error;  // a short sentence when status != Ok
};

// Parses one message (a UDP payload, or a TCP one without its length prefix).
ParseResult parse_message(std::span<const uint8_t> data);

// Lower case, one trailing dot dropped: how names are compared here.
std::string canonical_name(std::string_view name);

// Appends `name` ("a.example.com", trailing dot optional, "." for the root)
// uncompressed. False, leaving `out` unchanged, unless every label is 1..63
// bytes of visible ASCII other than '.' and the whole is at most 255 wire bytes.
bool append_name(std::vector<uint8_t>& out, std::string_view name);

// A standard query for (name, qtype, IN), with an EDNS0 OPT record
// advertising `edns_udp_size` unless that is 0. Empty if the name is invalid.
std::vector<uint8_t> build_query(uint16_t id, std::string_view name, uint16_t qtype, bool rd = true,
                                 uint16_t edns_udp_size = 1232);

struct AddressAnswer {
  std::vector<IpAddr> addrs;  // A and AAAA (class IN) of the final name, in message order, no duplicates
  uint32_t ttl = 0;           // minimum over the CNAMEs followed and the addresses returned; 0 if neither
  std::string final_name;     // the name the chain ends at (canonical)
  size_t cname_hops = 0;
  bool chain_too_long = false;  // more than kMaxCnameHops CNAMEs (or a loop): addrs is then empty
};

// Follows the CNAME chain from `qname` through the answer section only and
// collects the final name's addresses. Records for other owners are
// ignored, so an answer cannot vouch for names nobody asked about.
AddressAnswer addresses_for(const Message& message, std::string_view qname);

}  // namespace egressd::dns
