// wire_name.h: DNS names as uncompressed wire bytes (length-prefixed labels
// ending in the root's 0). Copying a record out of a message means
// expanding its compressed names: pointers refer to the message they came
// from, and labels may hold any octet (which the presentation form only
// escapes). Pure, bounded, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace egressd::dns {

// Reads the name at `at` in `msg`, following compression pointers with the
// rules of parse_message (each jump lands before the labels it leaves and
// after the header, the name is at most 255 wire bytes, the bytes in place
// end by `limit`). On success appends the uncompressed form to `out` and
// moves `at` past the bytes in place; on failure `out` and `at` are unchanged.
bool read_wire_name(std::span<const uint8_t> msg, size_t& at, size_t limit, std::vector<uint8_t>& out);

// ASCII letters to lower case, in place (DNS compares names that way).
void lower_wire_name(std::span<uint8_t> name);

// The presentation form parse_message gives (Question::name): lower case,
// '.' and '\\' escaped, other octets outside visible ASCII as \DDD, no
// trailing dot, "" for the root. `name` must be a valid wire name.
std::string wire_name_text(std::span<const uint8_t> name);
// The same into `out` (replaced; its capacity is reused: no allocation per
// query on the resolver's fast path).
void wire_name_text(std::span<const uint8_t> name, std::string& out);

}  // namespace egressd::dns
