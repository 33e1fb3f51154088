#include "bpf/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "bpf/kernel_probe.h"
#include "common/clock.h"
#include "common/unique_fd.h"
#include "egressd.skel.h"

namespace egressd {
namespace {

struct SkelDeleter {
  void operator()(egressd_bpf* s) const { egressd_bpf__destroy(s); }
};
using Skeleton = std::unique_ptr<egressd_bpf, SkelDeleter>;

struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }  // closes our fd; the pin keeps it
};
using Links = std::vector<std::unique_ptr<bpf_link, LinkDeleter>>;

// Attach order: socket creation first, so that once anything is fenced no
// raw socket can be opened either; the hooks that steer (sendmsg, then
// connect) last, after the ones that keep their records (sockops,
// sock_release, getpeername, recvmsg). The rest keep the object's order.
int attach_rank(bpf_attach_type t) {
  switch (t) {
    case BPF_CGROUP_INET_SOCK_CREATE: return 0;
    case BPF_CGROUP_UDP4_SENDMSG:
    case BPF_CGROUP_UDP6_SENDMSG: return 2;
    case BPF_CGROUP_INET4_CONNECT:
    case BPF_CGROUP_INET6_CONNECT: return 3;
    default: return 1;
  }
}

std::vector<bpf_program*> programs(bpf_object* obj) {
  std::vector<bpf_program*> out;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) out.push_back(p);
  std::stable_sort(out.begin(), out.end(), [](bpf_program* a, bpf_program* b) {
    return attach_rank(bpf_program__expected_attach_type(a)) < attach_rank(bpf_program__expected_attach_type(b));
  });
  return out;
}

// The maps to pin: libbpf's internal ones (.rodata, .bss) belong to one load.
std::vector<bpf_map*> pinned_maps(bpf_object* obj) {
  std::vector<bpf_map*> out;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    if (!bpf_map__is_internal(m)) out.push_back(m);
  }
  return out;
}

Result<Skeleton> open_skeleton() {
  egressd_bpf* s = egressd_bpf__open();
  if (!s) return sys_error("open BPF object");
  return Skeleton(s);
}

Status load_skeleton(egressd_bpf* s) {
  int err = egressd_bpf__load(s);
  if (err == 0) return {};
  return load_error(object_elf(), -err);
}

// Pinned maps of a previous attach are reused, so the policy, counters and
// unread events carry over. The caller has checked their ABI.
Status reuse_pinned_maps(egressd_bpf* s, const PinLayout& pins) {
  for (bpf_map* m : pinned_maps(s->obj)) {
    std::string path = pins.map(bpf_map__name(m));
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) return sys_error("open pinned map " + path + " (a partial attachment: run egressd detach first)");
    // libbpf dups the fd: ours is closed on return.
    int err = bpf_map__reuse_fd(m, fd.get());
    if (err) return sys_error("reuse pinned map " + path + " (map shape changed? detach first)", -err);
  }
  return {};
}

Status pin_maps(egressd_bpf* s, const PinLayout& pins) {
  for (bpf_map* m : pinned_maps(s->obj)) {
    std::string path = pins.map(bpf_map__name(m));
    int err = bpf_map__pin(m, path.c_str());
    if (err) return sys_error("pin map " + path, -err);
  }
  return {};
}

Status attach_links(egressd_bpf* s, const PinLayout& pins, int cgroup_fd, Links& links) {
  for (bpf_program* p : programs(s->obj)) {
    const char* name = bpf_program__name(p);
    std::string path = pins.link(name);
    if (path_exists(path)) {
      // Adopt: swap the program under the pinned link; the link never
      // leaves the cgroup, so there is no unfenced instant.
      bpf_link* link = bpf_link__open(path.c_str());
      if (!link) return sys_error("open pinned link " + path);
      links.emplace_back(link);
      int err = bpf_link__update_program(link, p);
      if (err) return sys_error("replace program in " + path, -err);
      continue;
    }
    bpf_link* link = bpf_program__attach_cgroup(p, cgroup_fd);
    if (!link) return sys_error(std::string("attach ") + name + " to cgroup");
    links.emplace_back(link);
    int err = bpf_link__pin(link, path.c_str());
    if (err) return sys_error("pin link " + path, -err);
  }
  return {};
}

// Names of the object's programs (attach order) and pinned maps; opening the
// embedded object reads its ELF, nothing of the kernel.
struct ObjectNames {
  std::vector<std::string> programs, maps;
};

const ObjectNames& object_names() {
  static const ObjectNames names = [] {
    ObjectNames n;
    auto skel = open_skeleton();
    if (!skel) {  // the object is part of this binary: only out of memory gets here
      std::fprintf(stderr, "egressd: %s\n", skel.error().message().c_str());
      std::abort();
    }
    for (bpf_program* p : programs((*skel)->obj)) n.programs.emplace_back(bpf_program__name(p));
    for (bpf_map* m : pinned_maps((*skel)->obj)) n.maps.emplace_back(bpf_map__name(m));
    return n;
  }();
  return names;
}

}  // namespace

std::span<const unsigned char> object_elf() {
  size_t size = 0;
  const void* bytes = egressd_bpf__elf_bytes(&size);
  return {static_cast<const unsigned char*>(bytes), size};
}

const std::vector<std::string>& program_names() { return object_names().programs; }
const std::vector<std::string>& map_names() { return object_names().maps; }

Status probe_kernel_support() {
  auto skel = open_skeleton();
  if (!skel) return skel.error();
  EGD_TRY(load_skeleton(skel->get()));
  return check_cgroup_links((*skel)->obj);
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
  if (out.adopted) {
    // The one ABI check of pins (egd_meta's version, the value sizes) is
    // open_pinned_maps's, as for every other reader of them.
    if (auto pinned = open_pinned_maps(out.pins); !pinned) return pinned.error();
    EGD_TRY(reuse_pinned_maps(s, out.pins));
  }
  EGD_TRY(load_skeleton(s));
  out.load_ms = ms_since(t0);
  // Before anything is pinned: a kernel that cannot link a program fails
  // here, naming it, rather than half way through attaching.
  EGD_TRY(check_cgroup_links(s->obj));

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

  Links links;
  EGD_TRY(attach_links(s, out.pins, cg.get(), links));
  for (bpf_program* p : programs(s->obj)) {
    UniqueFd fd(fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 3));
    if (!fd.valid()) return sys_error(std::string("keep program ") + bpf_program__name(p));
    out.programs.emplace(bpf_program__name(p), std::move(fd));
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
