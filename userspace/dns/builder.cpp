#include "dns/builder.h"

#include <algorithm>

#include "common/big_endian.h"

namespace egressd::dns {
namespace {

constexpr size_t kMaxPointerTarget = 0x3fff;
constexpr size_t kInitialBytes = 512;  // a typical answer, and the classic UDP limit

}  // namespace

MessageBuilder::MessageBuilder(const Header& h, bool compress) : compress_(compress) {
  out_.reserve(kInitialBytes);  // most messages fit: no regrowth per record
  put16(out_, h.id);
  out_.push_back(static_cast<uint8_t>((h.qr ? 0x80 : 0) | (h.opcode & 0x0f) << 3 | (h.aa ? 0x04 : 0) |
                                      (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0)));
  out_.push_back(static_cast<uint8_t>((h.ra ? 0x80 : 0) | (h.ad ? 0x20 : 0) | (h.cd ? 0x10 : 0) | (h.rcode & 0x0f)));
  out_.resize(kHeaderBytes, 0);
}

bool MessageBuilder::enter(int section) {
  if (open_ || section < section_ || counts_[section] == UINT16_MAX) return false;
  section_ = section;
  return true;
}

void MessageBuilder::patch_count(int index) {
  ++counts_[index];
  out_[4 + 2 * index] = static_cast<uint8_t>(counts_[index] >> 8);
  out_[5 + 2 * index] = static_cast<uint8_t>(counts_[index]);
}

void MessageBuilder::mark(size_t& start) {
  start = out_.size();
  noted_.clear();
}

// Takes back everything written since mark(), compression targets included.
void MessageBuilder::undo(size_t start) {
  out_.resize(start);
  for (const std::string& key : noted_) suffixes_.erase(key);
  noted_.clear();
}

bool MessageBuilder::put_name(std::string_view name) {
  if (name.empty() || name == ".") {
    out_.push_back(0);
    return true;
  }
  std::vector<uint8_t> plain;
  if (!append_name(plain, name)) return false;
  put_wire_name(plain, true);
  return true;
}

// Walks the wire form label by label: each suffix either was written
// before (a pointer ends the name) or is written now and noted. Suffixes are
// keyed by their lower-cased wire bytes (length octets, at most 63, are never
// letters), so labels holding '.' or any other octet compress correctly.
void MessageBuilder::put_wire_name(std::span<const uint8_t> name, bool compress) {
  size_t i = 0;
  while (i < name.size() && name[i] != 0) {  // one label per turn
    size_t n = std::min<size_t>(1 + name[i], name.size() - i);
    if (!compress_) {  // no suffixes to note or find (a query's one name)
      out_.insert(out_.end(), name.begin() + static_cast<std::ptrdiff_t>(i),
                  name.begin() + static_cast<std::ptrdiff_t>(i + n));
      i += n;
      continue;
    }
    size_t end = i;
    while (end < name.size() && name[end] != 0) end += 1 + name[end];
    std::string key(name.begin() + static_cast<std::ptrdiff_t>(i),
                    name.begin() + static_cast<std::ptrdiff_t>(std::min(end, name.size())));
    for (char& c : key)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (compress_ && compress) {
      if (auto it = suffixes_.find(key); it != suffixes_.end()) {
        put16(out_, static_cast<uint16_t>(0xc000 | it->second));
        return;
      }
    }
    if (compress_ && out_.size() <= kMaxPointerTarget) {
      if (suffixes_.emplace(key, static_cast<uint16_t>(out_.size())).second) noted_.push_back(std::move(key));
    }
    out_.insert(out_.end(), name.begin() + static_cast<std::ptrdiff_t>(i),
                name.begin() + static_cast<std::ptrdiff_t>(i + n));
    i += n;
  }
  out_.push_back(0);
}

bool MessageBuilder::question(std::string_view name, uint16_t type, uint16_t klass) {
  if (!enter(0)) return false;
  size_t start;
  mark(start);
  if (!put_name(name)) {
    undo(start);
    return false;
  }
  put16(out_, type);
  put16(out_, klass);
  patch_count(0);
  return true;
}

bool MessageBuilder::question_wire(std::span<const uint8_t> name, uint16_t type, uint16_t klass) {
  if (!enter(0)) return false;
  size_t start;
  mark(start);
  put_wire_name(name, true);
  put16(out_, type);
  put16(out_, klass);
  patch_count(0);
  return true;
}

bool MessageBuilder::record(Section section, std::string_view name, uint16_t type, uint32_t ttl,
                            std::span<const uint8_t> rdata, uint16_t klass) {
  int index = 1 + static_cast<int>(section);
  if (rdata.size() > UINT16_MAX || !enter(index)) return false;
  size_t start;
  mark(start);
  if (!put_name(name)) {
    undo(start);
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

bool MessageBuilder::begin_record(Section section, std::span<const uint8_t> owner, uint16_t type, uint16_t klass,
                                  uint32_t ttl) {
  int index = 1 + static_cast<int>(section);
  if (!enter(index)) return false;
  mark(open_start_);
  put_wire_name(owner, true);
  put16(out_, type);
  put16(out_, klass);
  put32(out_, ttl);
  put16(out_, 0);  // rdlength, patched by end_record
  open_rdata_ = out_.size();
  open_index_ = index;
  open_ = true;
  return true;
}

void MessageBuilder::rdata_bytes(std::span<const uint8_t> bytes) {
  if (open_) out_.insert(out_.end(), bytes.begin(), bytes.end());
}

void MessageBuilder::rdata_name(std::span<const uint8_t> name, bool compress) {
  if (open_) put_wire_name(name, compress);
}

bool MessageBuilder::end_record() {
  if (!open_) return false;
  open_ = false;
  size_t n = out_.size() - open_rdata_;
  if (n > UINT16_MAX) {
    undo(open_start_);
    return false;
  }
  out_[open_rdata_ - 2] = static_cast<uint8_t>(n >> 8);
  out_[open_rdata_ - 1] = static_cast<uint8_t>(n);
  patch_count(open_index_);
  return true;
}

void MessageBuilder::abandon_record() {
  if (!open_) return;
  open_ = false;
  undo(open_start_);
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

bool MessageBuilder::opt(uint16_t udp_size, uint16_t rcode, bool dnssec_ok, std::span<const uint8_t> options) {
  if (options.size() > UINT16_MAX || !enter(3)) return false;
  out_.push_back(0);
  put16(out_, kTypeOPT);
  put16(out_, udp_size);
  out_.push_back(static_cast<uint8_t>(rcode >> 4));
  out_.push_back(0);                       // version 0
  out_.push_back(dnssec_ok ? 0x80 : 0);   // DO
  out_.push_back(0);
  put16(out_, static_cast<uint16_t>(options.size()));
  out_.insert(out_.end(), options.begin(), options.end());
  patch_count(3);
  return true;
}

}  // namespace egressd::dns
