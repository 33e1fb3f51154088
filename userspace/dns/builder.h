// builder.h: writes DNS messages, compressing names against earlier ones
// the way servers do: the tests' fake upstreams, the fuzz seeds and the
// filtering proxy's own answers (issue 5). Pure, no exceptions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_addr.h"
#include "dns/message.h"

namespace egressd::dns {

class MessageBuilder {
 public:
  // The header's flags, id and rcode (low 4 bits) are written; its counts
  // come from what is added.
  explicit MessageBuilder(const Header& header, bool compress = true);

  // Sections go in order (questions, answer, authority, additional). Each
  // call returns false and writes nothing if the name is invalid (see
  // append_name), the section is out of order or a count would overflow.
  bool question(std::string_view name, uint16_t type, uint16_t klass = kClassIN);
  bool record(Section section, std::string_view name, uint16_t type, uint32_t ttl, std::span<const uint8_t> rdata,
              uint16_t klass = kClassIN);
  bool address(Section section, std::string_view name, uint32_t ttl, const IpAddr& addr);  // A or AAAA
  bool cname(Section section, std::string_view name, uint32_t ttl, std::string_view target);
  // An EDNS0 OPT record in the additional section; `rcode` > 15 sets the
  // extended bits. `options` is the rdata (code, length, value)*.
  bool opt(uint16_t udp_size, uint16_t rcode = 0, bool dnssec_ok = false, std::span<const uint8_t> options = {});

  // Copying out of a parsed message (dns/filter.h): names in uncompressed
  // wire form (dns/wire_name.h), labels of any octets.
  bool question_wire(std::span<const uint8_t> name, uint16_t type, uint16_t klass);
  // A record written in parts: begin_record, rdata pieces, end_record. If
  // begin_record fails, the pieces and end_record write nothing.
  bool begin_record(Section section, std::span<const uint8_t> owner, uint16_t type, uint16_t klass, uint32_t ttl);
  void rdata_bytes(std::span<const uint8_t> bytes);
  // `compress` only for the RFC 1035 types whose rdata names may be
  // compressed (RFC 3597 section 4); other types' names are written whole.
  void rdata_name(std::span<const uint8_t> name, bool compress);
  // False, withdrawing the record, if its rdata is over 65535 bytes.
  bool end_record();
  // Withdraws the record begun (its rdata did not copy).
  void abandon_record();

  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  bool enter(int section);
  bool put_name(std::string_view name);
  void put_wire_name(std::span<const uint8_t> name, bool compress);
  void patch_count(int index);

  std::vector<uint8_t> out_;
  bool compress_;
  int section_ = 0;        // 0 questions, 1 answer, 2 authority, 3 additional
  uint16_t counts_[4] = {};
  // Lower-cased wire form of each suffix written -> where (first occurrence).
  std::unordered_map<std::string, uint16_t> suffixes_;
  std::vector<std::string> noted_;  // suffixes noted since mark(): forgotten if that write is undone
  void mark(size_t& start);
  void undo(size_t start);
  bool open_ = false;  // between a successful begin_record and end_record
  int open_index_ = 0;
  size_t open_start_ = 0, open_rdata_ = 0;
};

}  // namespace egressd::dns
