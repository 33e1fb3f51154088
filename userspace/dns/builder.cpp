#include "dns/builder.h"

namespace egressd::dns {
namespace {

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

constexpr size_t kMaxPointerTarget = 0x3fff;

}  // namespace

MessageBuilder::MessageBuilder(const Header& h, bool compress) : compress_(compress) {
  put16(out_, h.id);
  out_.push_back(static_cast<uint8_t>((h.qr ? 0x80 : 0) | (h.opcode & 0x0f) << 3 | (h.aa ? 0x04 : 0) |
                                      (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0)));
  out_.push_back(static_cast<uint8_t>((h.ra ? 0x80 : 0) | (h.ad ? 0x20 : 0) | (h.cd ? 0x10 : 0) | (h.rcode & 0x0f)));
  out_.resize(kHeaderBytes, 0);
}

bool MessageBuilder::enter(int section) {
  if (section < section_ || counts_[section] == UINT16_MAX) return false;
  section_ = section;
  return true;
}

void MessageBuilder::patch_count(int index) {
  ++counts_[index];
  out_[4 + 2 * index] = static_cast<uint8_t>(counts_[index] >> 8);
  out_[5 + 2 * index] = static_cast<uint8_t>(counts_[index]);
}

bool MessageBuilder::put_name(std::string_view name) {
  if (name.empty() || name == ".") {
    out_.push_back(0);
    return true;
  }
  std::vector<uint8_t> plain;
  if (!append_name(plain, name)) return false;
  // Walk the validated wire form label by label: each suffix either was
  // written before (a pointer ends the name) or is written now and noted.
  size_t i = 0;
  while (plain[i] != 0) {
    std::string suffix;
    for (size_t j = i; plain[j] != 0; j += 1 + plain[j]) {
      if (!suffix.empty()) suffix.push_back('.');
      suffix.append(reinterpret_cast<const char*>(&plain[j + 1]), plain[j]);
    }
    suffix = canonical_name(suffix);
    if (compress_) {
      for (const auto& [known, at] : suffixes_) {
        if (known == suffix) {
          put16(out_, static_cast<uint16_t>(0xc000 | at));
          return true;
        }
      }
      if (out_.size() <= kMaxPointerTarget) suffixes_.emplace_back(suffix, static_cast<uint16_t>(out_.size()));
    }
    out_.insert(out_.end(), plain.begin() + static_cast<std::ptrdiff_t>(i),
                plain.begin() + static_cast<std::ptrdiff_t>(i + 1 + plain[i]));
    i += 1 + plain[i];
  }
  out_.push_back(0);
  return true;
}

bool MessageBuilder::question(std::string_view name, uint16_t type, uint16_t klass) {
  if (!enter(0)) return false;
  size_t start = out_.size();
  if (!put_name(name)) {
    out_.resize(start);
    return false;
  }
  put16(out_, type);
  put16(out_, klass);
  patch_count(0);
  return true;
}

bool MessageBuilder::record(Section section, std::string_view name, uint16_t type, uint32_t ttl,
                            std::span<const uint8_t> rdata, uint16_t klass) {
  int index = 1 + static_cast<int>(section);
  if (rdata.size() > UINT16_MAX || !enter(index)) return false;
  size_t start = out_.size();
  size_t known = suffixes_.size();
  if (!put_name(name)) {
    out_.resize(start);
    suffixes_.resize(known);
    return false;
  }
  put16(out_, type);
  put16(out_, klass);
  put32(out_, ttl);
  put16(out_, static_cast<uint16_t>(rdata.size()));
  out_.insert(out_.end(), rdata.begin(), rdata.end());
  patch_count(index);
  return true;
}

bool MessageBuilder::address(Section section, std::string_view name, uint32_t ttl, const IpAddr& addr) {
  if (addr.family == AF_INET) return record(section, name, kTypeA, ttl, std::span(addr.bytes.data(), 4));
  if (addr.family == AF_INET6) return record(section, name, kTypeAAAA, ttl, std::span(addr.bytes.data(), 16));
  return false;
}

bool MessageBuilder::cname(Section section, std::string_view name, uint32_t ttl, std::string_view target) {
  std::vector<uint8_t> check;
  if (!target.empty() && target != "." && !append_name(check, target)) return false;
  if (!record(section, name, kTypeCNAME, ttl, {})) return false;
  // The target replaces the empty rdata (compressed too); then the length
  // is patched.
  size_t rdata_at = out_.size();
  put_name(target);  // cannot fail: validated above
  size_t n = out_.size() - rdata_at;
  out_[rdata_at - 2] = static_cast<uint8_t>(n >> 8);
  out_[rdata_at - 1] = static_cast<uint8_t>(n);
  return true;
}

bool MessageBuilder::opt(uint16_t udp_size, uint16_t rcode) {
  if (!enter(3)) return false;
  out_.push_back(0);
  put16(out_, kTypeOPT);
  put16(out_, udp_size);
  out_.push_back(static_cast<uint8_t>(rcode >> 4));
  out_.insert(out_.end(), {0, 0, 0});  // version 0, no flags
  put16(out_, 0);
  patch_count(3);
  return true;
}

}  // namespace egressd::dns
