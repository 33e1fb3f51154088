#include "policy/cidr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace egressd::policy {
namespace {

// IPv6 spaces whose addresses the kernel judges only as an embedded IPv4 (see
// egd_embedded_v4 in bpf/addr_class.h). `v4_bit` is where the IPv4 starts.
// Only v4-mapped addresses are IPv4 on the wire; the translated forms
// (NAT64, 6to4, v4-compatible, v4-translated) are judged as IPv4 *and* as
// IPv6, so IPv6 rules over them do apply.
struct EmbeddingSpace {
  std::array<uint8_t, 16> prefix;
  int len;
  int v4_bit;
  const char* name;
};

constexpr EmbeddingSpace kEmbeddingSpaces[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 96, "::ffff:0:0/96 (IPv4-mapped)"},
};

bool has_host_bits(const std::array<uint8_t, 16>& addr, int prefix) {
  auto masked = addr;
  mask_addr(masked, prefix);
  return masked != addr;
}

// True if the prefix [addr/prefix] lies wholly inside [space/len].
bool inside(const std::array<uint8_t, 16>& addr, int prefix, const std::array<uint8_t, 16>& space, int len) {
  if (prefix < len) return false;
  auto masked = addr;
  mask_addr(masked, len);
  return masked == space;
}

std::string format_addr(int family, const std::array<uint8_t, 16>& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, addr.data(), buf, sizeof(buf));
  return buf;
}

// The IPv4 CIDR the kernel would judge an embedded-space IPv6 CIDR as.
std::string embedded_v4_form(const std::array<uint8_t, 16>& addr, int prefix, const EmbeddingSpace& s) {
  Cidr v4;
  v4.family = AF_INET;
  std::copy_n(addr.begin() + s.v4_bit / 8, 4, v4.addr.begin());
  v4.prefix = static_cast<uint8_t>(std::clamp(prefix - s.v4_bit, 0, 32));
  mask_addr(v4.addr, v4.prefix);
  return format_cidr(v4);
}

// An error message if this IPv6 CIDR sits inside an IPv4-embedding space.
std::optional<std::string> embedded_space_error(const std::array<uint8_t, 16>& addr, int prefix) {
  // :: and ::1 are the v6 unspecified/loopback addresses, not embeddings.
  static constexpr std::array<uint8_t, 16> kZero{};
  if (inside(addr, prefix, kZero, 127)) return std::nullopt;
  for (const auto& s : kEmbeddingSpaces) {
    if (!inside(addr, prefix, s.prefix, s.len)) continue;
    std::string msg = "IPv6 CIDR inside " + std::string(s.name) +
                      ": the kernel judges these addresses as the IPv4 they embed, so an IPv6 rule here never "
                      "matches; write the IPv4 form \"" +
                      embedded_v4_form(addr, prefix, s) + "\"";
    // 6to4 prefixes longer than /48 still reach one IPv4: say so.
    if (prefix > s.v4_bit + 32) msg += " (every address carrying that IPv4 is judged the same)";
    return msg;
  }
  return std::nullopt;
}

// Prefix length digits: 1-3 decimal digits, no sign, no leading zero.
std::optional<int> parse_prefix(std::string_view s) {
  if (s.empty() || s.size() > 3) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace

int addr_bytes(int family) { return family == AF_INET ? 4 : 16; }
int addr_bits(int family) { return addr_bytes(family) * 8; }

void mask_addr(std::array<uint8_t, 16>& addr, int prefix) {
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(prefix - i * 8, 0, 8);
    addr[i] &= static_cast<uint8_t>(0xff00u >> keep);
  }
}

bool cidr_contains(const Cidr& outer, const Cidr& inner) {
  if (outer.family != inner.family || outer.prefix > inner.prefix) return false;
  auto a = outer.addr, b = inner.addr;
  mask_addr(a, outer.prefix);
  mask_addr(b, outer.prefix);
  return a == b;
}

std::string format_cidr(const Cidr& cidr) {
  return format_addr(cidr.family, cidr.addr) + "/" + std::to_string(cidr.prefix);
}

CidrResult parse_cidr(std::string_view text) {
  CidrResult r;
  if (text.empty()) {
    r.error = "empty CIDR";
    return r;
  }
  auto slash = text.find('/');
  std::string addr_text(text.substr(0, slash));
  bool v6 = addr_text.find(':') != std::string::npos;

  Cidr c;
  c.family = v6 ? AF_INET6 : AF_INET;
  c.text = std::string(text);
  if (addr_text.empty() || inet_pton(c.family, addr_text.c_str(), c.addr.data()) != 1) {
    r.error = std::string("not an ") + (v6 ? "IPv6" : "IPv4") + " address: \"" + addr_text + "\"";
    return r;
  }

  int max = addr_bits(c.family);
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto p = parse_prefix(text.substr(slash + 1));
    if (!p) {
      r.error = "bad prefix length \"" + std::string(text.substr(slash + 1)) + "\" (expected a number after '/')";
      return r;
    }
    if (*p > max) {
      r.error = "prefix length " + std::to_string(*p) + " out of range 0.." + std::to_string(max) + " for " +
                (v6 ? "IPv6" : "IPv4");
      return r;
    }
    prefix = *p;
  }
  c.prefix = static_cast<uint8_t>(prefix);

  if (has_host_bits(c.addr, prefix)) {
    Cidr fixed = c;
    mask_addr(fixed.addr, prefix);
    r.error = "host bits set: did you mean " + format_cidr(fixed) + "?";
    return r;
  }
  if (v6) {
    if (auto err = embedded_space_error(c.addr, prefix)) {
      r.error = *err;
      return r;
    }
  }
  r.cidr = std::move(c);
  return r;
}

}  // namespace egressd::policy
