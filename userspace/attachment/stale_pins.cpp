#include "attachment/stale_pins.h"

#include <unistd.h>

#include <cstring>

#include "attachment/target.h"
#include "bpf/loader.h"
#include "bpf/pins.h"
#include "bpf/policy_maps.h"
#include "common/cgroup.h"

namespace egressd::attachment {

std::vector<Pinned> pinned_attachments() {
  std::vector<Pinned> out;
  for (uint64_t id : pinned_cgroups()) {
    auto maps = open_pinned_maps(pins_for(id));
    if (!maps) continue;
    auto meta = read_meta(*maps);
    if (meta) out.push_back({id, std::string(meta->cgroup_path, strnlen(meta->cgroup_path, sizeof(meta->cgroup_path)))});
  }
  return out;
}

bool pinned_cgroup_gone(const Pinned& p) {
  auto id = cgroup_id(p.path);
  return !id || *id != p.id;
}

Status remove_stale(const Pinned& p) {
  Target t{p.path, p.id, pins_for(p.id)};
  stop_daemon(t, 5000);
  EGD_TRY(detach_cgroup(p.id));
  unlink(t.pins.socket().c_str());
  unlink(t.pins.pidfile().c_str());
  return {};
}

}  // namespace egressd::attachment
