#include "dns/reply.h"

#include <algorithm>
#include <cstring>

#include "dns/builder.h"
#include "dns/wire_name.h"

namespace egressd::dns {
namespace {

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

}  // namespace

std::optional<QueryInfo> query_info(std::span<const uint8_t> wire, const Message& m) {
  if (m.questions.size() != 1) return std::nullopt;
  const Question& question = m.questions[0];
  QueryInfo q;
  size_t at = question.offset;
  if (!read_wire_name(wire, at, wire.size(), q.qname_wire) || at + 4 > wire.size()) return std::nullopt;
  q.question.assign(wire.begin() + static_cast<std::ptrdiff_t>(question.offset),
                    wire.begin() + static_cast<std::ptrdiff_t>(at + 4));
  lower_wire_name(q.qname_wire);
  q.id = m.header.id;
  q.opcode = m.header.opcode;
  q.rd = m.header.rd;
  q.cd = m.header.cd;
  q.qname = question.name;
  q.qtype = question.type;
  q.qclass = question.klass;
  if (m.edns) {
    q.edns = true;
    q.edns_version = m.edns->version;
    q.dnssec_ok = m.edns->dnssec_ok;
    q.udp_size = m.edns->udp_size;
  }
  return q;
}

size_t udp_limit(const QueryInfo& q, size_t our_max) {
  if (!q.edns) return kMinUdpPayload;
  return std::clamp<size_t>(q.udp_size, kMinUdpPayload, std::max(our_max, kMinUdpPayload));
}

std::vector<uint8_t> bare_reply(const QueryInfo& q, uint16_t rcode, uint16_t our_udp_size, bool tc,
                                std::optional<uint16_t> ede_code, std::string_view ede_text) {
  Header h;
  h.id = q.id;
  h.qr = true;
  h.opcode = q.opcode;
  h.rd = q.rd;
  h.cd = q.cd;
  h.ra = true;
  h.tc = tc;
  h.rcode = rcode & 0x0f;
  MessageBuilder b(h, /*compress=*/false);
  std::span<const uint8_t> question(q.question);
  if (question.size() > 4) b.question_wire(question.first(question.size() - 4), q.qtype, q.qclass);
  if (q.edns) {
    std::vector<uint8_t> options;
    if (ede_code) {
      put16(options, kEdnsOptionEde);
      put16(options, static_cast<uint16_t>(2 + ede_text.size()));
      put16(options, *ede_code);
      options.insert(options.end(), ede_text.begin(), ede_text.end());
    }
    b.opt(our_udp_size, rcode, q.dnssec_ok, options);
  }
  return b.bytes();
}

std::vector<uint8_t> format_error_reply(std::span<const uint8_t> wire) {
  if (wire.size() < kHeaderBytes) return {};
  std::vector<uint8_t> out(wire.begin(), wire.begin() + kHeaderBytes);
  out[2] = static_cast<uint8_t>(0x80 | (out[2] & 0x79));  // QR, opcode and RD kept; AA and TC cleared
  out[3] = static_cast<uint8_t>(0x80 | kRcodeFormErr);    // RA
  std::fill(out.begin() + 4, out.end(), 0);               // no sections
  return out;
}

std::vector<uint8_t> answer_reply(const QueryInfo& q, std::span<const uint8_t> answer, uint16_t our_udp_size,
                                  size_t limit) {
  size_t name_len = q.qname_wire.size();
  if (q.question.size() != name_len + 4 || answer.size() < kHeaderBytes + q.question.size()) return {};
  if (answer[4] != 0 || answer[5] != 1) return {};  // exactly one question
  std::vector<uint8_t> name(answer.begin() + kHeaderBytes,
                            answer.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + name_len));
  lower_wire_name(name);
  if (name != q.qname_wire || !std::equal(q.question.end() - 4, q.question.end(),
                                          answer.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + name_len)))
    return {};

  std::vector<uint8_t> out(answer.begin(), answer.end());
  out[0] = static_cast<uint8_t>(q.id >> 8);
  out[1] = static_cast<uint8_t>(q.id);
  // RD is the client's; AA goes: a forwarder's answers are not authoritative.
  out[2] = static_cast<uint8_t>((out[2] & ~0x05) | (q.rd ? 0x01 : 0));
  std::memcpy(out.data() + kHeaderBytes, q.question.data(), q.question.size());  // the client's spelling (0x20)
  uint16_t arcount = static_cast<uint16_t>(out[10] << 8 | out[11]);
  if (q.edns && arcount < UINT16_MAX) {
    out.push_back(0);  // root owner
    put16(out, kTypeOPT);
    put16(out, our_udp_size);
    out.insert(out.end(), {0, 0, static_cast<uint8_t>(q.dnssec_ok ? 0x80 : 0), 0});
    put16(out, 0);
    ++arcount;
    out[10] = static_cast<uint8_t>(arcount >> 8);
    out[11] = static_cast<uint8_t>(arcount);
  }
  if (out.size() > limit) return bare_reply(q, static_cast<uint16_t>(answer[3] & 0x0f), our_udp_size, /*tc=*/true);
  return out;
}

}  // namespace egressd::dns
