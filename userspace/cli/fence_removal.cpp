#include "cli/fence_removal.h"

#include <unistd.h>

#include "bpf/loader.h"

namespace egressd::cli {

Status remove_fence(const Target& t, int daemon_timeout_ms) {
  auto lock = lock_target(t);
  if (!lock) return lock.error();
  if (!path_exists(t.pins.dir)) return logic_error(t.path + " is not fenced by egressd");
  EGD_TRY(detach_cgroup(t.id));
  stop_daemon(t, daemon_timeout_ms);
  unlink(t.pins.socket().c_str());
  unlink(t.pins.pidfile().c_str());
  return {};
}

}  // namespace egressd::cli
