#include <cerrno>
#include <cstring>

#include "common/result.h"

namespace egressd {

std::string Error::message() const {
  if (err == 0) return context;
  return context + ": " + std::strerror(err);
}

Error sys_error(std::string context, int err) {
  if (err < 0) err = errno;
  return Error{err, std::move(context)};
}

}  // namespace egressd
