// builder.h: writes DNS messages, compressing names against earlier ones
// the way servers do: the tests' fake upstreams, the fuzz seeds and the
// filtering proxy's own answers (issue 5). Pure, no exceptions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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
  // extended bits.
  bool opt(uint16_t udp_size, uint16_t rcode = 0);

  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  bool enter(int section);
  bool put_name(std::string_view name);
  void patch_count(int index);

  std::vector<uint8_t> out_;
  bool compress_;
  int section_ = 0;        // 0 questions, 1 answer, 2 authority, 3 additional
  uint16_t counts_[4] = {};
  std::vector<std::pair<std::string, uint16_t>> suffixes_;  // canonical name -> where it was written
};

}  // namespace egressd::dns
