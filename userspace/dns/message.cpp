#include "dns/message.h"

#include <algorithm>
#include <cstdio>

#include "common/big_endian.h"

namespace egressd::dns {
namespace {

// Enough for any legitimate name (a pointer per label at most, 127 labels),
// far below what the backwards rule alone would allow.
constexpr int kMaxCompressionJumps = 128;
constexpr size_t kMinRecordBytes = 11;  // root owner, type, class, ttl, rdlength

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Presentation form (RFC 4343): '.' and '\' escaped, bytes outside visible
// ASCII as \DDD, letters lower-cased. One string per name, so comparing
// strings compares names case-insensitively.
void append_label_text(std::string& out, const uint8_t* label, size_t n) {
  if (!out.empty()) out.push_back('.');
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = label[i];
    if (c == '.' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x21 || c > 0x7e) {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\%03u", c);
      out.append(buf);
    } else {
      out.push_back(lower(static_cast<char>(c)));
    }
  }
}

class Parser {
 public:
  explicit Parser(std::span<const uint8_t> msg) : msg_(msg) {}

  ParseResult run() {
    if (msg_.size() > kMaxMessageBytes) return fail(ParseStatus::Malformed, "message over 65535 bytes");
    if (msg_.size() < kHeaderBytes) return fail(ParseStatus::Truncated, "message shorter than its header");
    Header& h = out_.message.header;
    const uint8_t* p = msg_.data();
    h.id = be16(p);
    h.qr = p[2] & 0x80;
    h.opcode = (p[2] >> 3) & 0x0f;
    h.aa = p[2] & 0x04;
    h.tc = p[2] & 0x02;
    h.rd = p[2] & 0x01;
    h.ra = p[3] & 0x80;
    h.ad = p[3] & 0x20;
    h.cd = p[3] & 0x10;
    h.rcode = p[3] & 0x0f;
    h.qdcount = be16(p + 4);
    h.ancount = be16(p + 6);
    h.nscount = be16(p + 8);
    h.arcount = be16(p + 10);
    pos_ = kHeaderBytes;

    auto& qs = out_.message.questions;
    qs.reserve(std::min<size_t>(h.qdcount, remaining() / 5));
    for (size_t i = 0; i < h.qdcount; ++i) {
      Question q;
      q.offset = pos_;
      if (!name(pos_, msg_.size(), q.name, "question")) return std::move(out_);
      if (remaining() < 4) return fail(ParseStatus::Truncated, "question ends early");
      q.type = be16(msg_.data() + pos_);
      q.klass = be16(msg_.data() + pos_ + 2);
      pos_ += 4;
      qs.push_back(std::move(q));
    }
    if (!section(Section::Answer, h.ancount, out_.message.answers, "answer")) return std::move(out_);
    if (!section(Section::Authority, h.nscount, out_.message.authority, "authority")) return std::move(out_);
    if (!section(Section::Additional, h.arcount, out_.message.additional, "additional")) return std::move(out_);
    out_.message.end = pos_;
    out_.status = ParseStatus::Ok;
    return std::move(out_);
  }

 private:
  size_t remaining() const { return msg_.size() - pos_; }

  ParseResult fail(ParseStatus s, std::string why) {
    out_.status = s;
    out_.error = std::move(why);
    return std::move(out_);
  }
  bool failed(ParseStatus s, std::string why) {
    out_.status = s;
    out_.error = std::move(why);
    return false;
  }

  // Reads the name at `at`; its in-place bytes must end by `limit` (the end
  // of an rdata, or of the message). On success `at` is past those bytes.
  // A pointer names an earlier occurrence of a name, so each jump must land
  // before the run of labels it leaves (jump targets strictly decrease: no
  // loop) and what it reaches must end before the pointer itself (a name
  // never depends on bytes after it).
  bool name(size_t& at, size_t limit, std::string& text, const char* where) {
    text.clear();
    size_t p = at;
    size_t run_start = at;
    size_t cur_limit = limit;
    size_t wire = 0;
    int jumps = 0;
    bool jumped = false;
    auto short_of = [&](size_t need) {
      // Past the message is truncation; past an rdata or a pointer inside it is malformed.
      if (jumped) return failed(ParseStatus::Malformed, std::string(where) + ": compressed name runs past its pointer");
      if (need > msg_.size()) return failed(ParseStatus::Truncated, std::string(where) + ": name ends early");
      return failed(ParseStatus::Malformed, std::string(where) + ": name runs past its rdata");
    };
    for (;;) {
      if (p + 1 > cur_limit) return short_of(p + 1);
      uint8_t len = msg_[p];
      if ((len & 0xc0) == 0xc0) {
        if (p + 2 > cur_limit) return short_of(p + 2);
        size_t target = static_cast<size_t>(len & 0x3f) << 8 | msg_[p + 1];
        if (!jumped) at = p + 2;
        jumped = true;
        if (target >= p) return failed(ParseStatus::Malformed, std::string(where) + ": forward compression pointer");
        if (target >= run_start) return failed(ParseStatus::CompressionLoop, std::string(where) + ": compression loop");
        if (target < kHeaderBytes)
          return failed(ParseStatus::Malformed, std::string(where) + ": compression pointer into the header");
        if (++jumps > kMaxCompressionJumps)
          return failed(ParseStatus::CompressionLoop, std::string(where) + ": too many compression jumps");
        cur_limit = p;
        p = run_start = target;
        continue;
      }
      if (len & 0xc0) return failed(ParseStatus::Malformed, std::string(where) + ": unknown label type");
      wire += 1 + len;
      if (wire > kMaxNameWireBytes) return failed(ParseStatus::NameTooLong, std::string(where) + ": name over 255 bytes");
      if (len == 0) {
        if (!jumped) at = p + 1;
        return true;
      }
      if (p + 1 + len > cur_limit) return short_of(p + 1 + len);
      append_label_text(text, msg_.data() + p + 1, len);
      p += 1 + len;
    }
  }

  bool section(Section s, uint16_t count, std::vector<Record>& out, const char* where) {
    out.reserve(std::min<size_t>(count, remaining() / kMinRecordBytes));
    for (size_t i = 0; i < count; ++i) {
      Record r;
      r.section = s;
      r.offset = pos_;
      if (!name(pos_, msg_.size(), r.name, where)) return false;
      if (remaining() < 10) return failed(ParseStatus::Truncated, std::string(where) + ": record ends early");
      const uint8_t* p = msg_.data() + pos_;
      r.type = be16(p);
      r.klass = be16(p + 2);
      uint32_t raw_ttl = be32(p + 4);
      r.rdata_length = be16(p + 8);
      pos_ += 10;
      r.rdata_offset = pos_;
      if (remaining() < r.rdata_length) return failed(ParseStatus::Truncated, std::string(where) + ": rdata ends early");
      r.end = pos_ + r.rdata_length;
      r.ttl = raw_ttl > 0x7fffffffu ? 0 : raw_ttl;
      if (r.type == kTypeOPT) {
        if (!opt(r, raw_ttl, where)) return false;
      } else if (!rdata(r, where)) {
        return false;
      }
      pos_ = r.end;
      out.push_back(std::move(r));
    }
    return true;
  }

  bool opt(const Record& r, uint32_t raw_ttl, const char* where) {
    Message& m = out_.message;
    if (r.section != Section::Additional)
      return failed(ParseStatus::Malformed, std::string(where) + ": OPT record outside additional");
    if (!r.name.empty()) return failed(ParseStatus::Malformed, "OPT record not owned by the root");
    if (m.edns) return failed(ParseStatus::Malformed, "more than one OPT record");
    m.edns = Edns{r.klass, static_cast<uint8_t>(raw_ttl >> 16), (raw_ttl & 0x8000) != 0};
    m.header.rcode = static_cast<uint16_t>((raw_ttl >> 24) << 4 | m.header.rcode);
    return true;
  }

  bool rdata(Record& r, const char* where) {
    if (r.klass != kClassIN) return true;
    const uint8_t* d = msg_.data() + r.rdata_offset;
    switch (r.type) {
      case kTypeA:
        if (r.rdata_length != 4) return failed(ParseStatus::Malformed, std::string(where) + ": A rdata not 4 bytes");
        r.addr = IpAddr::v4(d);
        return true;
      case kTypeAAAA:
        if (r.rdata_length != 16)
          return failed(ParseStatus::Malformed, std::string(where) + ": AAAA rdata not 16 bytes");
        r.addr = IpAddr::v6(d);
        return true;
      case kTypeCNAME: {
        size_t at = r.rdata_offset;
        if (!name(at, r.end, r.target, where)) return false;
        if (at != r.end) return failed(ParseStatus::Malformed, std::string(where) + ": CNAME rdata longer than its name");
        return true;
      }
      default:
        return true;
    }
  }

  std::span<const uint8_t> msg_;
  size_t pos_ = 0;
  ParseResult out_;
};

}  // namespace

std::string rcode_name(uint16_t rcode) {
  static constexpr const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  if (rcode < std::size(kNames)) return kNames[rcode];
  return "RCODE" + std::to_string(rcode);
}

const char* to_string(ParseStatus status) {
  switch (status) {
    case ParseStatus::Ok: return "ok";
    case ParseStatus::Truncated: return "truncated";
    case ParseStatus::Malformed: return "malformed";
    case ParseStatus::CompressionLoop: return "compression-loop";
    case ParseStatus::NameTooLong: return "name-too-long";
  }
  return "?";
}

ParseResult parse_message(std::span<const uint8_t> data) { return Parser(data).run(); }

std::string canonical_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) c = lower(c);
  return out;
}

bool append_name(std::vector<uint8_t>& out, std::string_view name) {
  if (name == ".") {
    out.push_back(0);
    return true;
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() + 2 > kMaxNameWireBytes) return false;
  size_t start = out.size();
  while (true) {  // one label per turn; the name shrinks every time
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    bool visible = std::all_of(label.begin(), label.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
    if (label.empty() || label.size() > kMaxLabelBytes || !visible) {
      out.resize(start);
      return false;
    }
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  out.push_back(0);
  return true;
}

std::vector<uint8_t> build_query(uint16_t id, std::string_view name, uint16_t qtype, bool rd,
                                 uint16_t edns_udp_size) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + name.size() + 2 + 4 + 11);
  put16(out, id);
  out.push_back(rd ? 0x01 : 0x00);  // QR=0, opcode QUERY
  out.push_back(0);
  put16(out, 1);  // qdcount
  put16(out, 0);
  put16(out, 0);
  put16(out, edns_udp_size > 0 ? 1 : 0);
  if (!append_name(out, name)) return {};
  put16(out, qtype);
  put16(out, kClassIN);
  if (edns_udp_size > 0) {
    out.push_back(0);  // root owner
    put16(out, kTypeOPT);
    put16(out, edns_udp_size);
    out.insert(out.end(), {0, 0, 0, 0});  // extended rcode, version 0, no DO
    put16(out, 0);                        // no options
  }
  return out;
}

AddressAnswer addresses_for(const Message& message, std::string_view qname) {
  AddressAnswer out;
  std::string name = canonical_name(qname);
  uint32_t ttl = UINT32_MAX;
  // Each hop is one more CNAME; a loop spends the hop budget like a chain.
  for (;;) {
    const Record* cname = nullptr;
    for (const Record& r : message.answers) {
      if (r.klass == kClassIN && r.type == kTypeCNAME && r.name == name) {
        cname = &r;
        break;
      }
    }
    if (!cname) break;
    if (out.cname_hops == kMaxCnameHops) {
      out.chain_too_long = true;
      out.final_name = name;
      out.ttl = 0;
      return out;
    }
    ++out.cname_hops;
    ttl = std::min(ttl, cname->ttl);
    name = cname->target;
  }
  for (const Record& r : message.answers) {
    if (r.klass != kClassIN || !r.addr || r.name != name) continue;
    ttl = std::min(ttl, r.ttl);
    if (std::find(out.addrs.begin(), out.addrs.end(), *r.addr) == out.addrs.end()) out.addrs.push_back(*r.addr);
  }
  out.final_name = std::move(name);
  out.ttl = ttl == UINT32_MAX ? 0 : ttl;
  return out;
}

}  // namespace egressd::dns
