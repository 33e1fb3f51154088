#include "bpf/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "common/unique_fd.h"
#include "egressd.skel.h"

namespace egressd {
namespace {

struct SkelDeleter {
  void operator()(egressd_bpf* s) const { egressd_bpf__destroy(s); }
};
using Skeleton = std::unique_ptr<egressd_bpf, SkelDeleter>;

struct ProgLink {
  const char* name;
  bpf_program* prog;
  bpf_link** link;
};

// Attach order: socket creation first, so that once connect is fenced no
// raw socket can be opened either; the steering helpers (record cleanup,
// re-keying, getpeername) before the connect hooks that steer.
std::array<ProgLink, kProgramCount> programs(egressd_bpf* s) {
  return {{{"egd_sock_create", s->progs.egd_sock_create, &s->links.egd_sock_create},
           {"egd_setsockopt", s->progs.egd_setsockopt, &s->links.egd_setsockopt},
           {"egd_skb_egress", s->progs.egd_skb_egress, &s->links.egd_skb_egress},
           {"egd_sock_release", s->progs.egd_sock_release, &s->links.egd_sock_release},
           {"egd_sockops", s->progs.egd_sockops, &s->links.egd_sockops},
           {"egd_getpeername4", s->progs.egd_getpeername4, &s->links.egd_getpeername4},
           {"egd_getpeername6", s->progs.egd_getpeername6, &s->links.egd_getpeername6},
           {"egd_recvmsg4", s->progs.egd_recvmsg4, &s->links.egd_recvmsg4},
           {"egd_recvmsg6", s->progs.egd_recvmsg6, &s->links.egd_recvmsg6},
           {"egd_sendmsg4", s->progs.egd_sendmsg4, &s->links.egd_sendmsg4},
           {"egd_sendmsg6", s->progs.egd_sendmsg6, &s->links.egd_sendmsg6},
           {"egd_connect4", s->progs.egd_connect4, &s->links.egd_connect4},
           {"egd_connect6", s->progs.egd_connect6, &s->links.egd_connect6}}};
}

struct NamedMap {
  const char* name;
  bpf_map* map;
};

std::array<NamedMap, 13> maps_of(egressd_bpf* s) {
  return {{{"egd_active", s->maps.egd_active},
           {"egd_config", s->maps.egd_config},
           {"egd_allow4", s->maps.egd_allow4},
           {"egd_allow6", s->maps.egd_allow6},
           {"egd_deny4", s->maps.egd_deny4},
           {"egd_deny6", s->maps.egd_deny6},
           {"egd_meta", s->maps.egd_meta},
           {"egd_stats", s->maps.egd_stats},
           {"egd_events", s->maps.egd_events},
           {"egd_proxy", s->maps.egd_proxy},
           {"egd_orig_by_cookie", s->maps.egd_orig_by_cookie},
           {"egd_orig_by_port", s->maps.egd_orig_by_port},
           {"egd_udp_peer", s->maps.egd_udp_peer}}};
}

Result<Skeleton> open_skeleton() {
  egressd_bpf* s = egressd_bpf__open();
  if (!s) return sys_error("open BPF object");
  return Skeleton(s);
}

Status load_skeleton(egressd_bpf* s) {
  int err = egressd_bpf__load(s);
  if (err == 0) return {};
  int e = -err;
  std::string hint;
  if (e == EPERM) hint = " (needs CAP_BPF and CAP_NET_ADMIN; is a lockdown or seccomp policy in the way?)";
  if (e == EINVAL || e == EOPNOTSUPP || e == 524 /* ENOTSUPP */)
    hint = " (this kernel lacks cgroup sock_addr BPF or a helper egressd uses; Linux 5.8+ is needed)";
  return sys_error("load BPF programs" + hint, e);
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Pinned maps of a previous attach are reused, so the policy, counters and
// unread events carry over; a different ABI version is refused.
Status reuse_pinned_maps(egressd_bpf* s, const PinLayout& pins) {
  for (const NamedMap& m : maps_of(s)) {
    std::string path = pins.map(m.name);
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return sys_error("open pinned map " + path + " (a partial attachment: run egressd detach first)", -fd);
    UniqueFd owned(fd);
    if (m.map == s->maps.egd_meta) {
      uint32_t zero = 0;
      egd_meta meta{};
      if (bpf_map_lookup_elem(fd, &zero, &meta) != 0) return sys_error("read " + path);
      if (meta.abi_version != EGD_ABI_VERSION)
        return logic_error("pins in " + pins.dir + " are from ABI version " + std::to_string(meta.abi_version) +
                           ", this egressd speaks " + std::to_string(EGD_ABI_VERSION) + ": detach first");
    }
    int err = bpf_map__reuse_fd(m.map, fd);
    if (err) return sys_error("reuse pinned map " + path + " (map shape changed? detach first)", -err);
  }
  return {};
}

Status pin_maps(egressd_bpf* s, const PinLayout& pins) {
  for (const NamedMap& m : maps_of(s)) {
    std::string path = pins.map(m.name);
    int err = bpf_map__pin(m.map, path.c_str());
    if (err) return sys_error("pin map " + path, -err);
  }
  return {};
}

Status attach_links(egressd_bpf* s, const PinLayout& pins, int cgroup_fd) {
  for (const ProgLink& p : programs(s)) {
    std::string path = pins.link(p.name);
    if (path_exists(path)) {
      // Adopt: swap the program under the pinned link; the link never
      // leaves the cgroup, so there is no unfenced instant.
      bpf_link* link = bpf_link__open(path.c_str());
      if (!link) return sys_error("open pinned link " + path);
      *p.link = link;
      int err = bpf_link__update_program(link, p.prog);
      if (err) return sys_error("replace program in " + path, -err);
      continue;
    }
    bpf_link* link = bpf_program__attach_cgroup(p.prog, cgroup_fd);
    if (!link) return sys_error(std::string("attach ") + p.name + " to cgroup");
    *p.link = link;
    int err = bpf_link__pin(link, path.c_str());
    if (err) return sys_error("pin link " + path, -err);
  }
  return {};
}

}  // namespace

Status probe_kernel_support() {
  auto skel = open_skeleton();
  if (!skel) return skel.error();
  return load_skeleton(skel->get());
}

namespace {

Result<Attached> attach_or_adopt(const std::string& cgroup_path, uint64_t cgroup_id, const policy::Policy& policy) {
  EGD_TRY(ensure_bpffs());
  Attached out;
  out.pins = pins_for(cgroup_id);
  out.adopted = path_exists(out.pins.map("egd_meta"));

  UniqueFd cg(open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) return sys_error("open cgroup " + cgroup_path);

  auto t0 = std::chrono::steady_clock::now();
  auto skel = open_skeleton();
  if (!skel) return skel.error();
  egressd_bpf* s = skel->get();
  if (out.adopted) EGD_TRY(reuse_pinned_maps(s, out.pins));
  EGD_TRY(load_skeleton(s));
  out.load_ms = ms_since(t0);

  if (!out.adopted) {
    // Meta first: pins are never visible without their ABI version.
    egd_meta meta{};
    meta.abi_version = EGD_ABI_VERSION;
    meta.cgroup_id = cgroup_id;
    meta.attached_at_unix_ns = unix_now_ns();
    std::strncpy(meta.cgroup_path, cgroup_path.c_str(), sizeof(meta.cgroup_path) - 1);
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(s->maps.egd_meta), &zero, &meta, BPF_ANY) != 0)
      return sys_error("write egd_meta");
    if (mkdir(out.pins.dir.c_str(), 0700) != 0 && errno != EEXIST)
      return sys_error("create pin directory " + out.pins.dir);
    EGD_TRY(pin_maps(s, out.pins));
  }
  auto maps = open_pinned_maps(out.pins);
  if (!maps) return maps.error();
  out.maps = std::move(maps.value());
  // Policy before links: a fresh attachment is never live without one.
  auto installed = install_policy(out.maps, policy);
  if (!installed) return installed.error();
  out.install = installed.value();

  EGD_TRY(attach_links(s, out.pins, cg.get()));
  for (const ProgLink& p : programs(s)) {
    UniqueFd fd(fcntl(bpf_program__fd(p.prog), F_DUPFD_CLOEXEC, 3));
    if (!fd.valid()) return sys_error(std::string("keep program ") + p.name);
    out.programs.emplace(p.name, std::move(fd));
  }
  // Destroying the skeleton closes our fds; the pins keep links and maps.
  return out;
}

}  // namespace

Result<Attached> attach_cgroup(const std::string& cgroup_path, uint64_t cgroup_id,
                               const policy::Policy& policy) {
  bool fresh = !path_exists(pins_for(cgroup_id).map("egd_meta"));
  auto r = attach_or_adopt(cgroup_path, cgroup_id, policy);
  if (!r && fresh && path_exists(pins_for(cgroup_id).dir)) {
    // A fresh attach that failed half way must not leave a partial fence
    // that looks like a whole one: back to the state before (unfenced).
    if (auto d = detach_cgroup(cgroup_id); !d)
      return logic_error(r.error().message() + "; and removing the partial attachment failed: " +
                         d.error().message() + " (run egressd detach)");
    return logic_error(r.error().message() + " (nothing was left attached)");
  }
  return r;
}

Status detach_cgroup(uint64_t cgroup_id) {
  PinLayout pins = pins_for(cgroup_id);
  if (!path_exists(pins.dir)) return logic_error("no egressd attachment for cgroup id " + std::to_string(cgroup_id));
  DIR* d = opendir(pins.dir.c_str());
  if (!d) return sys_error("open " + pins.dir);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  }
  closedir(d);
  // Links first, so enforcement ends before the maps it reads go away.
  std::stable_partition(names.begin(), names.end(), [](const std::string& n) { return n.rfind("link_", 0) == 0; });
  for (const std::string& name : names) {
    std::string path = pins.dir + "/" + name;
    if (name.rfind("link_", 0) == 0) {
      int fd = bpf_obj_get(path.c_str());
      if (fd >= 0) {
        // BPF_LINK_DETACH cuts the link even if a daemon still holds an fd.
        bpf_link_detach(fd);
        close(fd);
      }
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove " + path);
  }
  if (rmdir(pins.dir.c_str()) != 0 && errno != ENOENT) return sys_error("remove " + pins.dir);
  return {};
}

}  // namespace egressd
