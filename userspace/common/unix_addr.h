// unix_addr.h: the sockaddr_un of a path, for bind/connect/sendto. A path
// that starts with '@' names the abstract namespace (as NOTIFY_SOCKET does).
#pragma once

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd {

struct UnixAddr {
  sockaddr_un sa{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&sa); }
};

inline Result<UnixAddr> unix_addr(std::string_view path) {
  UnixAddr a;
  a.sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sa.sun_path))
    return logic_error("unix socket path too long or empty: " + std::string(path));
  std::memcpy(a.sa.sun_path, path.data(), path.size());
  bool abstract = path[0] == '@';
  if (abstract) a.sa.sun_path[0] = '\0';
  // An abstract name is exactly its bytes; a path carries its terminating NUL.
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return a;
}

}  // namespace egressd
