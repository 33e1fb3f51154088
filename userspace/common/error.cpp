#include <cerrno>
#include <cstring>

#include "common/result.h"

namespace egressd {

std::string Error::message() const {
  if (err == 0) return context;
  std::string s = context;  // appended, not operator+: GCC 12 -Wrestrict false positive
  s += ": ";
  s += std::strerror(err);
  return s;
}

Error sys_error(std::string context, int err) {
  if (err < 0) err = errno;
  return Error{err, std::move(context)};
}

}  // namespace egressd
