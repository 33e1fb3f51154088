#include "dns/reply.h"

#include <algorithm>
#include <cstring>

#include "common/big_endian.h"
#include "dns/builder.h"
#include "dns/wire_name.h"

namespace egressd::dns {

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

bool fast_query_info(std::span<const uint8_t> wire, QueryInfo& q) {
  const size_t size = wire.size();
  if (size < kHeaderBytes || size > kMaxMessageBytes) return false;
  const uint8_t* p = wire.data();
  // QR clear, one question, no answer or authority records, at most one additional.
  if ((p[2] & 0x80) || be16(p + 4) != 1 || be16(p + 6) != 0 || be16(p + 8) != 0) return false;
  uint16_t arcount = be16(p + 10);
  if (arcount > 1) return false;
  // The name: plain labels (no pointer: a query has nothing before its name to point at).
  size_t at = kHeaderBytes;
  for (;;) {
    if (at >= size) return false;
    uint8_t len = p[at];
    if (len & 0xc0) return false;
    if (at + 1 + len - kHeaderBytes > kMaxNameWireBytes) return false;
    at += 1 + len;
    if (len == 0) break;
  }
  size_t name_end = at;
  if (size - at < 4) return false;
  size_t question_end = at + 4;
  bool edns = false;
  uint16_t udp_size = 0;
  uint32_t opt_ttl = 0;
  if (arcount == 1) {
    // Only an OPT record owned by the root; its rdata is not looked into (as the parser).
    if (size - question_end < 11 || p[question_end] != 0 || be16(p + question_end + 1) != kTypeOPT) return false;
    const uint8_t* r = p + question_end + 1;
    udp_size = be16(r + 2);
    opt_ttl = static_cast<uint32_t>(r[4]) << 24 | static_cast<uint32_t>(r[5]) << 16 |
              static_cast<uint32_t>(r[6]) << 8 | r[7];
    if (size - question_end - 11 < be16(r + 8)) return false;
    edns = true;
  }
  std::span<const uint8_t> name = wire.subspan(kHeaderBytes, name_end - kHeaderBytes);
  q.id = be16(p);
  q.opcode = (p[2] >> 3) & 0x0f;
  q.rd = p[2] & 0x01;
  q.cd = p[3] & 0x10;
  q.question.assign(wire.begin() + kHeaderBytes, wire.begin() + static_cast<std::ptrdiff_t>(question_end));
  q.qname_wire.assign(name.begin(), name.end());
  lower_wire_name(q.qname_wire);
  wire_name_text(name, q.qname);
  q.qtype = be16(p + name_end);
  q.qclass = be16(p + name_end + 2);
  q.edns = edns;
  q.edns_version = edns ? static_cast<uint8_t>(opt_ttl >> 16) : 0;
  q.dnssec_ok = edns && (opt_ttl & 0x8000) != 0;
  q.udp_size = udp_size;
  return true;
}

size_t udp_limit(const QueryInfo& q, size_t our_max) {
  if (!q.edns) return kMinUdpPayload;
  return std::clamp<size_t>(q.udp_size, kMinUdpPayload, std::max(our_max, kMinUdpPayload));
}

void append_ede(std::vector<uint8_t>& options, uint16_t info_code, std::string_view text) {
  if (text.size() > kMaxEdeText) {
    size_t cut = kMaxEdeText;
    while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 sequence
    text = text.substr(0, cut);
  }
  put16(options, kEdnsOptionEde);
  put16(options, static_cast<uint16_t>(2 + text.size()));
  put16(options, info_code);
  options.insert(options.end(), text.begin(), text.end());
}

namespace {

std::vector<uint8_t> local_reply(const QueryInfo& q, uint16_t rcode, uint16_t our_udp_size, bool tc,
                                 const IpAddr* addr, uint32_t ttl, std::optional<uint16_t> ede_code,
                                 std::string_view ede_text) {
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
  if (question.size() > 4) {
    std::span<const uint8_t> name = question.first(question.size() - 4);
    b.question_wire(name, q.qtype, q.qclass);
    if (addr && b.begin_record(Section::Answer, name, addr->family == AF_INET ? kTypeA : kTypeAAAA, kClassIN, ttl)) {
      b.rdata_bytes(std::span<const uint8_t>(addr->bytes.data(), addr->family == AF_INET ? 4 : 16));
      b.end_record();
    }
  }
  if (q.edns) {
    std::vector<uint8_t> options;
    if (ede_code) append_ede(options, *ede_code, ede_text);
    b.opt(our_udp_size, rcode, q.dnssec_ok, options);
  }
  return b.bytes();
}

}  // namespace

std::vector<uint8_t> bare_reply(const QueryInfo& q, uint16_t rcode, uint16_t our_udp_size, bool tc,
                                std::optional<uint16_t> ede_code, std::string_view ede_text) {
  return local_reply(q, rcode, our_udp_size, tc, nullptr, 0, ede_code, ede_text);
}

std::vector<uint8_t> address_reply(const QueryInfo& q, const IpAddr& addr, uint32_t ttl, uint16_t our_udp_size,
                                   std::optional<uint16_t> ede_code, std::string_view ede_text) {
  return local_reply(q, kRcodeNoError, our_udp_size, false, &addr, ttl, ede_code, ede_text);
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
  std::vector<uint8_t> out(answer.begin(), answer.end());
  if (!answer_reply_in_place(q, out, our_udp_size, limit)) return {};
  return out;
}

bool answer_reply_in_place(const QueryInfo& q, std::vector<uint8_t>& out, uint16_t our_udp_size, size_t limit) {
  size_t name_len = q.qname_wire.size();
  if (q.question.size() != name_len + 4 || out.size() < kHeaderBytes + q.question.size()) return false;
  if (out[4] != 0 || out[5] != 1) return false;  // exactly one question
  // The answer's question is q's in any case: compared lower-cased (qname_wire is).
  const uint8_t* name = out.data() + kHeaderBytes;
  for (size_t i = 0; i < name_len; ++i) {
    uint8_t c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c - 'A' + 'a');
    if (c != q.qname_wire[i]) return false;
  }
  if (!std::equal(q.question.end() - 4, q.question.end(), name + name_len)) return false;

  uint8_t rcode = out[3] & 0x0f;
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
  if (out.size() > limit) out = bare_reply(q, rcode, our_udp_size, /*tc=*/true);
  return true;
}

}  // namespace egressd::dns
