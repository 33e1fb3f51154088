#include "dns/wire_name.h"

#include <algorithm>
#include <cstdio>

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
  for (size_t i = 0; i < name.size() && name[i] != 0; i += 1 + name[i]) {
    if (!out.empty()) out.push_back('.');
    for (size_t j = i + 1; j <= i + name[i] && j < name.size(); ++j) {
      uint8_t c = name[j];
      if (c == '.' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c < 0x21 || c > 0x7e) {
        char buf[5];
        std::snprintf(buf, sizeof(buf), "\\%03u", c);
        out.append(buf);
      } else {
        out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
      }
    }
  }
  return out;
}

}  // namespace egressd::dns
