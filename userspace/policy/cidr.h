// cidr.h: CIDR text <-> policy::Cidr, and the prefix arithmetic the
// compiler needs. Pure functions; errors are returned, not thrown, so the
// loader can attach a source position to them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/model.h"

namespace egressd::policy {

struct CidrResult {
  std::optional<Cidr> cidr;  // set on success
  std::string error;         // set on failure: a sentence without position
};

// Parses "10.0.0.0/8", "10.0.0.1" (/32), "2001:db8::/32", "2001:db8::1"
// (/128). Rejects bad syntax, out-of-range prefixes, host bits below the
// prefix, and IPv6 CIDRs that lie inside an IPv4-embedding space (the kernel
// judges those addresses as the IPv4 they carry, so such a rule would never
// match; the message names the IPv4 form to write instead).
CidrResult parse_cidr(std::string_view text);

// Canonical text: "10.0.0.0/8", "2001:db8::/32". Always with the prefix.
std::string format_cidr(const Cidr& cidr);

// Address length in bytes (4 or 16) and in bits (32 or 128) for a family.
int addr_bytes(int family);
int addr_bits(int family);

// Clears every bit of `addr` at or after bit `prefix` (network order).
void mask_addr(std::array<uint8_t, 16>& addr, int prefix);

// Does `outer` contain every address of `inner` (same family, shorter or
// equal prefix)?
bool cidr_contains(const Cidr& outer, const Cidr& inner);

}  // namespace egressd::policy
