// fd_limit.h: the daemon's open-file limit, raised as far as the host
// allows, and how many proxied connections it leaves room for. Each costs
// two descriptors (client and origin); the rest of the daemon (resolver TCP
// clients, upstream sockets, BPF maps, the hub) keeps a reserve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/result.h"

namespace egressd::daemon {

struct FdLimit {
  uint64_t before = 0;  // soft limit at start
  uint64_t soft = 0;    // soft limit now (the hard limit, if raising worked)
  uint64_t hard = 0;    // UINT64_MAX: unlimited
  std::optional<Error> failed;  // getrlimit or setrlimit failed: the limit stays as it was
};

// Raises RLIMIT_NOFILE's soft limit to its hard limit. Not fatal if it
// fails: the daemon runs with fewer connections.
FdLimit raise_fd_limit();

// Proxied connections `soft` descriptors leave room for: two each, after
// 128 for the daemon and `reserved` for the resolver's TCP clients; at
// least 64, at most `ceiling`.
size_t proxy_sessions_for(uint64_t soft, size_t reserved, size_t ceiling);

}  // namespace egressd::daemon
