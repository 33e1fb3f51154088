#include "bpf/policy_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "bpf/pins.h"
#include "common/clock.h"
#include "policy/compiler.h"

namespace egressd {
namespace {

using Clock = std::chrono::steady_clock;

template <class K, class V>
Status write_entries(int fd, const std::vector<std::pair<K, V>>& entries, const char* what) {
  if (entries.empty()) return {};
  std::vector<K> keys;
  std::vector<V> values;
  keys.reserve(entries.size());
  values.reserve(entries.size());
  for (const auto& [k, v] : entries) {
    keys.push_back(k);
    values.push_back(v);
  }
  // Batch updates of LPM tries are 2-3x faster; kernels without them get
  // one update per entry.
  __u32 count = static_cast<__u32>(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) == 0 && count == keys.size())
    return {};
  for (size_t i = 0; i < keys.size(); ++i) {
    if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY) != 0)
      return sys_error(std::string("write ") + what + " entry");
  }
  return {};
}

// Deletes every entry whose generation is not `keep`.
template <class K>
Status delete_other_generations(int fd, uint32_t keep) {
  std::vector<K> doomed;
  K key{}, next{};
  const K* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (ntohl(next.gen) != keep) doomed.push_back(next);
    key = next;
    prev = &key;
  }
  if (doomed.empty()) return {};
  __u32 count = static_cast<__u32>(doomed.size());
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  if (bpf_map_delete_batch(fd, doomed.data(), &count, &opts) == 0 && count == doomed.size()) return {};
  for (const K& k : doomed) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) return sys_error("delete stale policy entry");
  }
  return {};
}

Status check_value_size(int fd, size_t want, const std::string& path) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return sys_error("inspect " + path);
  if (info.value_size != want)
    return logic_error(path + " has " + std::to_string(info.value_size) + "-byte values, this egressd writes " +
                       std::to_string(want) + ": pins from another egressd version; detach first");
  return {};
}

Result<uint32_t> active_gen(const MapFds& maps) {
  uint32_t zero = 0, gen = 0;
  if (bpf_map_lookup_elem(maps.active.get(), &zero, &gen) != 0) return sys_error("read egd_active");
  return gen;
}

}  // namespace

Result<MapFds> open_pinned_maps(const PinLayout& pins) {
  MapFds m;
#define EGD_OPEN_MAP(n)                                                  \
  if (!m.n.valid()) {                                                    \
    std::string path = pins.map("egd_" #n);                              \
    int fd = bpf_obj_get(path.c_str());                                  \
    if (fd < 0) return sys_error("open pinned map " + path, -fd);        \
    m.n.reset(fd);                                                       \
  }
  // egd_meta first: pins of another ABI may lack a map, and the version is
  // what to report then.
  EGD_OPEN_MAP(meta)
  EGD_TRY(check_value_size(m.meta.get(), sizeof(egd_meta), pins.map("egd_meta")));
  auto meta = read_meta(m);
  if (!meta) return meta.error();
  if (meta->abi_version != EGD_ABI_VERSION)
    return logic_error("pins in " + pins.dir + " are from ABI version " + std::to_string(meta->abi_version) +
                       ", this egressd speaks " + std::to_string(EGD_ABI_VERSION) +
                       ": detach first (a fence is adopted only with the same ABI)");
  EGD_MAP_NAMES(EGD_OPEN_MAP)
#undef EGD_OPEN_MAP
  EGD_TRY(check_value_size(m.config.get(), sizeof(egd_config), pins.map("egd_config")));
  EGD_TRY(check_value_size(m.allow4.get(), sizeof(egd_cidr_rule), pins.map("egd_allow4")));
  EGD_TRY(check_value_size(m.allow6.get(), sizeof(egd_cidr_rule), pins.map("egd_allow6")));
  EGD_TRY(check_value_size(m.proxy.get(), sizeof(egd_proxy_conf), pins.map("egd_proxy")));
  EGD_TRY(check_value_size(m.orig_by_port.get(), sizeof(egd_orig), pins.map("egd_orig_by_port")));
  EGD_TRY(check_value_size(m.udp_peer.get(), sizeof(egd_udp_mark), pins.map("egd_udp_peer")));
  return m;
}

Result<egd_proxy_conf> read_proxy_conf(const MapFds& maps) {
  uint32_t zero = 0;
  egd_proxy_conf conf{};
  if (bpf_map_lookup_elem(maps.proxy.get(), &zero, &conf) != 0) return sys_error("read egd_proxy");
  return conf;
}

Status set_proxy_ports(const MapFds& maps, uint16_t port, uint16_t dns_port) {
  uint32_t zero = 0;
  auto old = read_proxy_conf(maps);
  if (!old) return old.error();
  egd_proxy_conf conf = *old;
  conf.port = port;
  conf.dns_port = dns_port;
  if (dns_port) conf.flags |= EGD_PROXY_F_DNS;
  if (bpf_map_update_elem(maps.proxy.get(), &zero, &conf, BPF_ANY) != 0) return sys_error("write egd_proxy");
  return {};
}

Result<InstallInfo> install_policy(const MapFds& maps, const policy::Policy& policy) {
  auto old = active_gen(maps);
  if (!old) return old.error();
  InstallInfo info;
  info.gen = *old + 1;
  if (info.gen == 0) info.gen = 1;  // 0 is "never written"; wrapping takes 4e9 reloads

  policy::CompiledPolicy c;
  try {
    c = policy::compile(policy, info.gen);
  } catch (const std::exception& e) {
    return logic_error(e.what());
  }
  info.entries = c.allow4.size() + c.allow6.size() + c.deny4.size() + c.deny6.size();

  auto t0 = Clock::now();
  // Leftovers of an interrupted install would shadow nothing (other gen)
  // but would waste space and could collide with this gen's keys.
  EGD_TRY(delete_other_generations<egd_lpm4_key>(maps.allow4.get(), *old));
  EGD_TRY(delete_other_generations<egd_lpm6_key>(maps.allow6.get(), *old));
  EGD_TRY(delete_other_generations<egd_lpm4_key>(maps.deny4.get(), *old));
  EGD_TRY(delete_other_generations<egd_lpm6_key>(maps.deny6.get(), *old));
  EGD_TRY(write_entries(maps.allow4.get(), c.allow4, "allow4"));
  EGD_TRY(write_entries(maps.allow6.get(), c.allow6, "allow6"));
  EGD_TRY(write_entries(maps.deny4.get(), c.deny4, "deny4"));
  EGD_TRY(write_entries(maps.deny6.get(), c.deny6, "deny6"));
  uint32_t slot = info.gen & 1;
  if (bpf_map_update_elem(maps.config.get(), &slot, &c.config, BPF_ANY) != 0)
    return sys_error("write egd_config");
  info.write_ms = ms_since(t0);

  // The flip: one 4-byte store the hooks read once per decision.
  uint32_t zero = 0;
  if (bpf_map_update_elem(maps.active.get(), &zero, &info.gen, BPF_ANY) != 0)
    return sys_error("activate policy generation");

  // After the flip the new policy is in force: what follows is bookkeeping,
  // and a failure there must not be reported as "the old policy stays".
  auto meta = read_meta(maps);
  if (meta) {
    meta->gen = info.gen;
    meta->policy_loaded_unix_ns = unix_now_ns();
    meta->policy_hash = policy.hash;
    meta->n_allow_cidrs = static_cast<uint32_t>(policy.allow_cidrs.size());
    meta->n_deny_cidrs = static_cast<uint32_t>(policy.deny_cidrs.size());
    meta->n_host_rules = static_cast<uint32_t>(policy.hosts.size());
    std::memset(meta->policy_path, 0, sizeof(meta->policy_path));
    std::strncpy(meta->policy_path, policy.source.c_str(), sizeof(meta->policy_path) - 1);
    if (auto w = write_meta(maps, *meta); !w) info.warning = w.error().message();
  } else {
    info.warning = meta.error().message();
  }

  // A hook that read the old generation just before the flip may still be
  // looking it up. Hooks are non-sleepable and run for well under a
  // microsecond inside an RCU read section; this outlasts any of them, so no
  // decision ever sees its generation half-deleted.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t1 = Clock::now();
  for (Status st : {delete_other_generations<egd_lpm4_key>(maps.allow4.get(), info.gen),
                    delete_other_generations<egd_lpm6_key>(maps.allow6.get(), info.gen),
                    delete_other_generations<egd_lpm4_key>(maps.deny4.get(), info.gen),
                    delete_other_generations<egd_lpm6_key>(maps.deny6.get(), info.gen)}) {
    if (!st) info.warning = "removing the previous generation: " + st.error().message();
  }
  info.cleanup_ms = ms_since(t1);
  return info;
}

Result<egd_meta> read_meta(const MapFds& maps) {
  uint32_t zero = 0;
  egd_meta meta{};
  if (bpf_map_lookup_elem(maps.meta.get(), &zero, &meta) != 0) return sys_error("read egd_meta");
  return meta;
}

Status write_meta(const MapFds& maps, const egd_meta& meta) {
  uint32_t zero = 0;
  if (bpf_map_update_elem(maps.meta.get(), &zero, &meta, BPF_ANY) != 0) return sys_error("write egd_meta");
  return {};
}

Result<Counters> read_counters(const MapFds& maps) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return sys_error("count possible CPUs", -ncpu);
  Counters total{};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t slot = 0; slot < EGD_STAT__COUNT; ++slot) {
    if (bpf_map_lookup_elem(maps.stats.get(), &slot, per_cpu.data()) != 0) return sys_error("read egd_stats");
    for (uint64_t v : per_cpu) total[slot] += v;
  }
  return total;
}

}  // namespace egressd
