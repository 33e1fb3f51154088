#include "dns/wire_name.h"

#include <algorithm>

#include "dns/message.h"

namespace egressd::dns {
namespace {

constexpr int kMaxJumps = 128;  // as the parser: a pointer per label at most

}  // namespace

bool read_wire_name(std::span<const uint8_t> msg, size_t& at, size_t limit, std::vector<uint8_t>& out) {
  size_t start_size = out.size();
  size_t p = at, run_start = at, cur_limit = std::min(limit, msg.size());
  size_t after = 0;  // where the bytes in place end, once known
  size_t wire = 0;
  int jumps = 0;
  auto fail = [&] {
    out.resize(start_size);
    return false;
  };
  for (;;) {  // every turn consumes a label or a jump: bounded by 255 bytes and kMaxJumps
    if (p + 1 > cur_limit) return fail();
    uint8_t len = msg[p];
    if ((len & 0xc0) == 0xc0) {
      if (p + 2 > cur_limit) return fail();
      size_t target = static_cast<size_t>(len & 0x3f) << 8 | msg[p + 1];
      if (!after) after = p + 2;
      if (target >= run_start || target < kHeaderBytes || ++jumps > kMaxJumps) return fail();
      cur_limit = p;  // what a pointer reaches ends before the pointer
      p = run_start = target;
      continue;
    }
    if (len & 0xc0) return fail();
    wire += 1 + static_cast<size_t>(len);
    if (wire > kMaxNameWireBytes || p + 1 + len > cur_limit) return fail();
    out.insert(out.end(), msg.begin() + static_cast<std::ptrdiff_t>(p),
               msg.begin() + static_cast<std::ptrdiff_t>(p + 1 + len));
    if (len == 0) {
      at = after ? after : p + 1;
      return true;
    }
    p += 1 + len;
  }
}

void lower_wire_name(std::span<uint8_t> name) {
  for (size_t i = 0; i < name.size() && name[i] != 0; i += 1 + name[i])
    for (size_t j = i + 1; j <= i + name[i] && j < name.size(); ++j)
      if (name[j] >= 'A' && name[j] <= 'Z') name[j] = static_cast<uint8_t>(name[j] - 'A' + 'a');
}

std::string wire_name_text(std::span<const uint8_t> name) {
  std::string out;
  wire_name_text(name, out);
  return out;
}

void wire_name_text(std::span<const uint8_t> name, std::string& out) {
  // Written through a pointer into room for the worst case (every octet
  // \DDD, a dot per label), then cut to size: no per-character push_back.
  out.resize(4 * name.size());
  char* o = out.data();
  for (size_t i = 0; i < name.size() && name[i] != 0; i += 1 + name[i]) {
    if (o != out.data()) *o++ = '.';
    for (size_t j = i + 1; j <= i + name[i] && j < name.size(); ++j) {
      uint8_t c = name[j];
      if (c == '.' || c == '\\') {
        *o++ = '\\';
        *o++ = static_cast<char>(c);
      } else if (c < 0x21 || c > 0x7e) {
        *o++ = '\\';
        *o++ = static_cast<char>('0' + c / 100);
        *o++ = static_cast<char>('0' + c / 10 % 10);
        *o++ = static_cast<char>('0' + c % 10);
      } else {
        *o++ = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
      }
    }
  }
  out.resize(static_cast<size_t>(o - out.data()));
}

}  // namespace egressd::dns
