#include "dns/filter.h"

#include <algorithm>

#include "common/big_endian.h"
#include "dns/builder.h"
#include "dns/wire_name.h"

namespace egressd::dns {
namespace {

bool family_dropped(const FilterOptions& o, const IpAddr& a) {
  return a.family == AF_INET ? o.drop_v4 : o.drop_v6;
}

// How a type's rdata holds names (RFC 3597 section 4 lists the types whose
// names receivers must expand; only the RFC 1035 ones may be compressed
// again when written).
enum class Part : uint8_t { End, Name, CompressedName, Fixed2, Fixed4, Fixed6, Fixed20, CharString };

const Part* layout(uint16_t type) {
  static constexpr Part kName[] = {Part::CompressedName, Part::End};
  static constexpr Part kPlainName[] = {Part::Name, Part::End};
  static constexpr Part kSoa[] = {Part::CompressedName, Part::CompressedName, Part::Fixed20, Part::End};
  static constexpr Part kTwoNames[] = {Part::CompressedName, Part::CompressedName, Part::End};
  static constexpr Part kTwoPlainNames[] = {Part::Name, Part::Name, Part::End};
  static constexpr Part kMx[] = {Part::Fixed2, Part::CompressedName, Part::End};
  static constexpr Part kPrefName[] = {Part::Fixed2, Part::Name, Part::End};
  static constexpr Part kPx[] = {Part::Fixed2, Part::Name, Part::Name, Part::End};
  static constexpr Part kSrv[] = {Part::Fixed6, Part::Name, Part::End};
  static constexpr Part kNaptr[] = {Part::Fixed4,     Part::CharString, Part::CharString,
                                    Part::CharString, Part::Name,       Part::End};
  switch (type) {
    case 2:
    case 3:
    case 4:
    case 5:
    case 7:
    case 8:
    case 9:
    case 12: return kName;  // NS MD MF CNAME MB MG MR PTR
    case 6: return kSoa;
    case 14: return kTwoNames;       // MINFO
    case 15: return kMx;             // MX
    case 17: return kTwoPlainNames;  // RP
    case 18:
    case 21:
    case 36: return kPrefName;   // AFSDB RT KX
    case 26: return kPx;         // PX
    case 33: return kSrv;        // SRV
    case 35: return kNaptr;      // NAPTR
    case 39: return kPlainName;  // DNAME
    default: return nullptr;
  }
}

// Copies rdata part by part, expanding names. False if it does not follow
// its type's layout exactly.
bool copy_rdata(MessageBuilder& b, std::span<const uint8_t> msg, const Record& r, const Part* parts) {
  size_t at = r.rdata_offset;
  std::vector<uint8_t> name;
  for (const Part* p = parts; *p != Part::End; ++p) {
    size_t fixed = *p == Part::Fixed2    ? 2
                   : *p == Part::Fixed4  ? 4
                   : *p == Part::Fixed6  ? 6
                   : *p == Part::Fixed20 ? 20
                                         : 0;
    switch (*p) {
      case Part::Name:
      case Part::CompressedName:
        name.clear();
        if (!read_wire_name(msg, at, r.end, name)) return false;
        b.rdata_name(name, *p == Part::CompressedName);
        break;
      case Part::CharString:
        if (at >= r.end || at + 1 + msg[at] > r.end) return false;
        b.rdata_bytes(msg.subspan(at, 1 + msg[at]));
        at += 1 + msg[at];
        break;
      default:
        if (at + fixed > r.end) return false;
        b.rdata_bytes(msg.subspan(at, fixed));
        at += fixed;
    }
  }
  return at == r.end;
}

struct SvcParam {
  uint16_t key;
  std::vector<uint8_t> value;
};

// HTTPS/SVCB rdata (RFC 9460): priority, target name, then parameters in
// strictly increasing key order. Writes the record's rdata without "ech"
// (if asked) and without blocked hint addresses; a parameter left empty is
// dropped and taken out of "mandatory" too, so the record stays valid.
// False if the rdata does not parse.
bool copy_svcb(MessageBuilder& b, std::span<const uint8_t> msg, const Record& r, const FilterOptions& o,
               FilterResult& result) {
  size_t at = r.rdata_offset;
  if (r.rdata_length < 3) return false;
  std::span<const uint8_t> priority = msg.subspan(at, 2);
  at += 2;
  std::vector<uint8_t> target;
  if (!read_wire_name(msg, at, r.end, target)) return false;

  std::vector<SvcParam> params;
  std::vector<uint16_t> removed_keys;
  int prev = -1;
  bool stripped = false;
  while (at < r.end) {  // each turn consumes at least 4 bytes
    if (at + 4 > r.end) return false;
    uint16_t key = be16(&msg[at]), len = be16(&msg[at + 2]);
    at += 4;
    if (static_cast<int>(key) <= prev || at + len > r.end) return false;
    prev = key;
    std::span<const uint8_t> value = msg.subspan(at, len);
    at += len;
    if (key == kSvcKeyEch && o.strip_ech) {
      stripped = true;
      removed_keys.push_back(key);
      continue;
    }
    if (key == kSvcKeyIpv4Hint || key == kSvcKeyIpv6Hint) {
      size_t width = key == kSvcKeyIpv4Hint ? 4 : 16;
      if (len == 0 || len % width != 0) return false;
      SvcParam kept{key, {}};
      for (size_t i = 0; i < len; i += width) {
        IpAddr a = width == 4 ? IpAddr::v4(&value[i]) : IpAddr::v6(&value[i]);
        if (family_dropped(o, a)) {
          ++result.family_dropped;
          continue;
        }
        if (o.blocked && o.blocked(a)) {
          result.removed.push_back(a);
          continue;
        }
        kept.value.insert(kept.value.end(), value.begin() + static_cast<std::ptrdiff_t>(i),
                          value.begin() + static_cast<std::ptrdiff_t>(i + width));
      }
      if (kept.value.empty()) {
        removed_keys.push_back(key);
        continue;
      }
      params.push_back(std::move(kept));
      continue;
    }
    if (key == kSvcKeyMandatory && (len == 0 || len % 2 != 0)) return false;
    params.push_back({key, std::vector<uint8_t>(value.begin(), value.end())});
  }
  if (!params.empty() && params.front().key == kSvcKeyMandatory && !removed_keys.empty()) {
    std::vector<uint8_t>& list = params.front().value;
    std::vector<uint8_t> kept;
    for (size_t i = 0; i + 1 < list.size(); i += 2) {
      uint16_t k = be16(&list[i]);
      if (std::find(removed_keys.begin(), removed_keys.end(), k) == removed_keys.end()) put16(kept, k);
    }
    if (kept.empty())
      params.erase(params.begin());
    else
      list = std::move(kept);
  }

  b.rdata_bytes(priority);
  b.rdata_name(target, false);  // RFC 9460: never compressed
  std::vector<uint8_t> out;
  for (const SvcParam& p : params) {
    put16(out, p.key);
    put16(out, static_cast<uint16_t>(p.value.size()));
    out.insert(out.end(), p.value.begin(), p.value.end());
  }
  b.rdata_bytes(out);
  if (stripped) ++result.ech_stripped;
  return true;
}

}  // namespace

FilterResult filter_answer(std::span<const uint8_t> wire, const Message& m, const FilterOptions& o) {
  FilterResult result;
  Header h = m.header;
  h.rcode &= 0x0f;  // the extended bits lived in the OPT record, which is not copied
  MessageBuilder b(h);
  std::vector<uint8_t> name;
  for (const Question& q : m.questions) {
    size_t at = q.offset;
    name.clear();
    if (!read_wire_name(wire, at, wire.size(), name) || !b.question_wire(name, q.type, q.klass)) {
      result.error = "question does not copy";
      return result;
    }
  }
  for (const auto* section : {&m.answers, &m.authority, &m.additional}) {
    for (const Record& r : *section) {  // bounded by the records parsed
      if (r.type == kTypeOPT || r.type == kTypeTSIG) continue;
      if (r.addr && family_dropped(o, *r.addr)) {
        ++result.family_dropped;
        continue;
      }
      if (r.addr && o.blocked && o.blocked(*r.addr)) {
        result.removed.push_back(*r.addr);
        continue;
      }
      size_t at = r.offset;
      name.clear();
      if (!read_wire_name(wire, at, r.end, name)) {
        result.error = "record owner does not copy";
        return result;
      }
      if (!b.begin_record(r.section, name, r.type, r.klass, r.ttl)) {
        result.error = "record out of order or too many records";
        return result;
      }
      bool svcb = (r.type == kTypeHTTPS || r.type == kTypeSVCB) && r.klass == kClassIN;
      bool copied;
      if (svcb) {
        copied = copy_svcb(b, wire, r, o, result);
      } else if (const Part* parts = layout(r.type)) {
        copied = copy_rdata(b, wire, r, parts);
      } else {
        b.rdata_bytes(wire.subspan(r.rdata_offset, r.rdata_length));
        copied = true;
      }
      if (!copied) {
        b.abandon_record();
        if (svcb) {  // parameters no client could parse either: the record goes, not the answer
          ++result.dropped_svcb;
          continue;
        }
        result.error = "rdata of type " + std::to_string(r.type) + " does not follow its layout";
        return result;
      }
      if (!b.end_record()) {
        result.error = "record over 65535 bytes";
        return result;
      }
    }
  }
  if (b.bytes().size() > kMaxMessageBytes) {
    result.error = "rebuilt answer over 65535 bytes";
    return result;
  }
  result.message = b.bytes();
  result.ok = true;
  return result;
}

}  // namespace egressd::dns
