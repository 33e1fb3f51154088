#include "cli/fence_removal.h"

#include <unistd.h>

#include <string_view>

#include "bpf/loader.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on

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

std::string unfenced_after_removal(const std::string& path, size_t procs, bool user) {
  std::string unit = path.substr(path.rfind('/') + 1);
  constexpr std::string_view kSlice = ".slice";
  bool slice = unit.size() > kSlice.size() && unit.compare(unit.size() - kSlice.size(), kSlice.size(), kSlice) == 0;
  if (procs == 0 && !slice) return "";
  std::string w = path + " still exists and is no longer fenced";
  if (procs > 0) w += ": the " + std::to_string(procs) + " processes in it now connect unfenced";
  if (slice) {
    w += std::string(procs > 0 ? ", and" : ":") + " every new session started in " + unit +
         " runs unfenced. `systemctl " + (user ? "--user " : "") + "stop " + unit +
         "` stops the slice and its sessions; `egressd attach` fences it again";
  }
  return w;
}

}  // namespace egressd::cli
