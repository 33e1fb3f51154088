#include "daemon/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>

namespace egressd::daemon {
namespace {

uint64_t as_u64(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); }

}  // namespace

FdLimit raise_fd_limit() {
  FdLimit f;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    f.failed = sys_error("getrlimit(RLIMIT_NOFILE)");
    f.before = f.soft = f.hard = 1024;  // the usual default: a guess that errs low
    return f;
  }
  f.before = as_u64(rl.rlim_cur);
  f.hard = as_u64(rl.rlim_max);
  f.soft = f.before;
  if (rl.rlim_cur == rl.rlim_max) return f;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    f.failed = sys_error("raise the open-file limit from " + std::to_string(f.before) + " to " + std::to_string(f.hard));
  else
    f.soft = f.hard;
  return f;
}

size_t proxy_sessions_for(uint64_t soft, size_t reserved, size_t ceiling) {
  constexpr uint64_t kDaemon = 128;
  constexpr size_t kFloor = 64;
  uint64_t spare = soft > kDaemon + reserved ? soft - kDaemon - reserved : 0;
  return std::max(kFloor, static_cast<size_t>(std::min<uint64_t>(spare / 2, ceiling)));
}

}  // namespace egressd::daemon
