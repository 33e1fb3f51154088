// status_report.h: `egressd status`: what is known about each attachment,
// gathered from its pins (so it works whether or not a daemon runs), and its
// two renderings. Gathering does the I/O; the renderings are pure.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/fence.h"
#include "egressd_abi.h"

namespace egressd::cli {

struct AttachmentStatus {
  uint64_t cgroup_id = 0;
  std::string cgroup;                 // as recorded at the first attach
  std::string policy;                 // the file in force (or the built-in default's name)
  uint32_t generation = 0;            // of the policy in the kernel maps
  uint64_t policy_hash = 0;           // FNV-1a 64 of the policy file's bytes
  uint64_t attached_unix_ns = 0;      // first attach
  uint64_t policy_loaded_unix_ns = 0; // installation of the policy in force
  uint32_t allow_cidrs = 0, deny_cidrs = 0, host_rules = 0;
  FenceCheck fence;                   // enforcing / UNFENCED / stale, with why (bpf/fence.h)
  uint32_t reattached = 0;            // moves onto a recreated cgroup at the same path
  int links = 0;                      // programs the kernel lists on the cgroup
  int links_expected = 0;
  int daemon_pid = 0;                 // 0: no daemon serves the attachment
  uint64_t daemon_started_unix_ns = 0;  // 0: unknown
  uint16_t proxy_port = 0;            // 0: no proxy registered (steered web ports are refused)
  uint16_t dns_port = 0;              // 0: no resolver registered
  bool dns_steered = false;           // a resolver was registered once: DNS never passes unsteered
  std::array<uint64_t, EGD_STAT__COUNT> counters{};  // verdict * EGD_REASON__COUNT + reason, ring drops
  // Non-zero: `detach` removed the fence while the cgroup lived on (its
  // record, attachment/detached_record.h); there are no pins, so only cgroup,
  // cgroup_id, policy (the one it had), fence and processes are known.
  uint64_t detached_unix_ns = 0;
  size_t processes = 0;  // in the detached cgroup and below it
};

// The UNFENCED reason of a detached cgroup. Pure.
std::string detached_reason(uint64_t detached_unix_ns, size_t processes);

struct StatusReport {
  std::vector<AttachmentStatus> attachments;
  int unfenced() const;
  std::vector<std::string> problems;  // pin directories that could not be read, with why
};

// Every pin directory under the bpffs base, and every cgroup `detach` left
// unfenced that is still there (records of cgroups gone are removed).
StatusReport gather_status();

// `now_unix_ns` only for the ages ("3h ago") in the human rendering.
std::string status_text(const StatusReport& r, uint64_t now_unix_ns);
std::string status_json(const StatusReport& r);

}  // namespace egressd::cli
