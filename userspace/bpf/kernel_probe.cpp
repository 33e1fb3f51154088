#include "bpf/kernel_probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace egressd {
namespace {

struct ObjectCloser {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using Object = std::unique_ptr<bpf_object, ObjectCloser>;

Object open_object(std::span<const unsigned char> elf) {
  return Object(bpf_object__open_mem(elf.data(), elf.size(), nullptr));
}

// libbpf logs every failed load (the verifier's log): the failed load being
// explained has logged already, the probes would only repeat it.
struct QuietLibbpf {
  libbpf_print_fn_t old = libbpf_set_print(nullptr);
  ~QuietLibbpf() { libbpf_set_print(old); }
  QuietLibbpf() = default;
  QuietLibbpf(const QuietLibbpf&) = delete;
  QuietLibbpf& operator=(const QuietLibbpf&) = delete;
};

std::string attach_type_name(const bpf_program* p) {
  bpf_attach_type t = bpf_program__expected_attach_type(p);
  const char* s = libbpf_bpf_attach_type_str(t);
  return s ? s : "attach type " + std::to_string(static_cast<int>(t));
}

std::string map_type_name(const bpf_map* m) {
  bpf_map_type t = bpf_map__type(m);
  const char* s = libbpf_bpf_map_type_str(t);
  return s ? s : std::to_string(static_cast<int>(t));
}

// Loads the object with only `program` (none: the maps alone); 0 or -errno.
int load_only(std::span<const unsigned char> elf, const char* program) {
  Object obj = open_object(elf);
  if (!obj) return -errno;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj.get()) {
    bpf_program__set_autoload(p, program && std::strcmp(bpf_program__name(p), program) == 0);
  }
  return bpf_object__load(obj.get());
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

std::string needs() { return std::string("egressd needs Linux ") + kMinimumKernel + " or newer"; }

}  // namespace

std::vector<std::string> missing_kernel_features(std::span<const unsigned char> elf) {
  QuietLibbpf quiet;
  Object obj = open_object(elf);
  if (!obj) return {sys_error("open the BPF object").message()};
  std::vector<std::string> missing;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj.get()) {
    // 0: unsupported; < 0: the probe itself failed, which tells nothing.
    if (!bpf_map__is_internal(m) && libbpf_probe_bpf_map_type(bpf_map__type(m), nullptr) == 0)
      missing.push_back(std::string("map ") + bpf_map__name(m) + ": type " + map_type_name(m));
  }
  if (!missing.empty()) return missing;  // every program needs the maps
  if (int err = load_only(elf, nullptr); err != 0) return {std::string("the maps: ") + std::strerror(-err)};
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj.get()) {
    if (int err = load_only(elf, bpf_program__name(p)); err != 0)
      missing.push_back(std::string("program ") + bpf_program__name(p) + " (" + attach_type_name(p) +
                        "): " + std::strerror(-err));
  }
  return missing;
}

Status check_cgroup_links(bpf_object* obj) {
  std::vector<std::string> missing;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) {
    int fd = bpf_link_create(bpf_program__fd(p), /*target_fd=*/-1, bpf_program__expected_attach_type(p), nullptr);
    if (fd >= 0) close(fd);  // cannot be: there is no cgroup -1
    if (fd >= 0 || errno == EBADF) continue;
    missing.push_back(std::string(bpf_program__name(p)) + " (" + attach_type_name(p) + "): " + std::strerror(errno));
  }
  if (missing.empty()) return {};
  return logic_error("this kernel cannot attach to a cgroup through a bpf_link: " + join(missing) + " (" + needs() +
                     ")");
}

Error load_error(std::span<const unsigned char> elf, int err) {
  if (err == EPERM)
    return sys_error("load BPF programs (needs CAP_BPF and CAP_NET_ADMIN; is a lockdown or seccomp policy in the way?)",
                     err);
  std::vector<std::string> missing = missing_kernel_features(elf);
  if (!missing.empty()) return logic_error("load BPF programs: this kernel refuses " + join(missing) + " (" + needs() + ")");
  bool unsupported = err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */;
  return sys_error(std::string("load BPF programs") + (unsupported ? " (" + needs() + ")" : ""), err);
}

}  // namespace egressd
