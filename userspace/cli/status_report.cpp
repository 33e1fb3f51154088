// status_report.cpp: gathering `egressd status` from the pins.
#include "cli/status_report.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "attachment/detached_record.h"
#include "attachment/target.h"
#include "bpf/loader.h"
#include "bpf/policy_maps.h"
#include "common/cgroup.h"
#include "events/event.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on
namespace {

std::string cstr(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

// When a process started, from /proc/PID/stat (clock ticks since boot); 0
// if it cannot be told.
uint64_t process_start_unix_ns(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return 0;
  size_t paren = stat.rfind(')');  // comm may hold spaces and parentheses
  if (paren == std::string::npos) return 0;
  std::istringstream rest(stat.substr(paren + 1));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 22 && rest >> field; ++i) {  // field 22 is starttime
    if (i == 22) ticks = std::strtoull(field.c_str(), nullptr, 10);
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (ticks == 0 || hz <= 0) return 0;
  return static_cast<uint64_t>(boottime_to_unix_offset_ns()) + ticks * (1000000000ull / static_cast<uint64_t>(hz));
}

}  // namespace

StatusReport gather_status() {
  StatusReport r;
  std::vector<uint64_t> ids = pinned_cgroups();
  for (uint64_t id : ids) {
    PinLayout pins = pins_for(id);
    auto maps = open_pinned_maps(pins);
    if (!maps) {
      r.problems.push_back(pins.dir + ": " + maps.error().message());
      continue;
    }
    auto meta = read_meta(*maps);
    auto counters = read_counters(*maps);
    if (!meta || !counters) {
      r.problems.push_back(pins.dir + ": " + (meta ? counters.error() : meta.error()).message());
      continue;
    }
    AttachmentStatus a;
    a.cgroup_id = id;
    a.cgroup = cstr(meta->cgroup_path, sizeof(meta->cgroup_path));
    a.policy = cstr(meta->policy_path, sizeof(meta->policy_path));
    a.generation = meta->gen;
    a.policy_hash = meta->policy_hash;
    a.attached_unix_ns = meta->attached_at_unix_ns;
    a.policy_loaded_unix_ns = meta->policy_loaded_unix_ns;
    a.allow_cidrs = meta->n_allow_cidrs;
    a.deny_cidrs = meta->n_deny_cidrs;
    a.host_rules = meta->n_host_rules;
    a.fence = check_fence(pins, a.cgroup, ids);
    a.reattached = meta->reattached;
    a.links = a.fence.attached;
    a.links_expected = static_cast<int>(program_names().size());
    a.daemon_pid = daemon_pid(Target{a.cgroup, id, pins});
    if (a.daemon_pid) a.daemon_started_unix_ns = process_start_unix_ns(a.daemon_pid);
    if (auto c = read_proxy_conf(*maps)) {
      a.proxy_port = c->port;
      a.dns_port = c->dns_port;
      a.dns_steered = c->flags & EGD_PROXY_F_DNS;
    }
    a.counters = *counters;
    r.attachments.push_back(std::move(a));
  }
  for (uint64_t id : detached_record_ids()) {
    auto rec = read_detached_record(id);
    if (!rec) {
      r.problems.push_back(rec.error().message());
      continue;
    }
    // Gone, made again (a new id) or fenced again: the record says nothing now.
    auto procs = cgroup_procs(rec->path);
    if (!procs || !detached_cgroup_present(*rec) || path_exists(pins_for(id).dir)) {
      remove_detached_record(id);
      continue;
    }
    AttachmentStatus a;
    a.cgroup_id = id;
    a.cgroup = rec->path;
    a.policy = rec->policy;
    a.detached_unix_ns = rec->detached_unix_ns;
    a.processes = procs->size();
    a.fence.state = FenceCheck::State::kUnfenced;
    a.fence.reason = detached_reason(a.detached_unix_ns, a.processes);
    a.fence.current_id = id;
    a.links_expected = static_cast<int>(program_names().size());
    r.attachments.push_back(std::move(a));
  }
  return r;
}

int StatusReport::unfenced() const {
  int n = 0;
  for (const AttachmentStatus& a : attachments) n += a.fence.state == FenceCheck::State::kUnfenced;
  return n;
}

}  // namespace egressd::cli
