// status_format.cpp: the renderings of `egressd status` (pure).
#include <cinttypes>
#include <cstdio>

#include "cli/status_report.h"
#include "events/event.h"
#include "events/format.h"

namespace egressd::cli {
namespace {

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

// "3h ago": coarse, for a human glancing at the time.
std::string age(uint64_t then_ns, uint64_t now_ns) {
  if (then_ns == 0 || now_ns < then_ns) return "";
  uint64_t s = (now_ns - then_ns) / 1000000000u;
  char buf[32];
  if (s < 120) std::snprintf(buf, sizeof(buf), "%" PRIu64 "s", s);
  else if (s < 2 * 3600) std::snprintf(buf, sizeof(buf), "%" PRIu64 "m", s / 60);
  else if (s < 2 * 86400) std::snprintf(buf, sizeof(buf), "%" PRIu64 "h", s / 3600);
  else std::snprintf(buf, sizeof(buf), "%" PRIu64 "d", s / 86400);
  return std::string(" (") + buf + " ago)";
}

std::string when(uint64_t ns, uint64_t now_ns) { return ns ? iso8601(ns) + age(ns, now_ns) : "unknown"; }

template <class C>
std::string counters_text(const C& c, unsigned verdict) {
  std::string s;
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
    uint64_t v = c[verdict * EGD_REASON__COUNT + r];
    if (!v) continue;
    s += (s.empty() ? "" : ", ") + std::string(reason_name(r)) + " " + std::to_string(v);
  }
  return s.empty() ? "none" : s;
}

template <class C>
bool any(const C& c, unsigned verdict) {
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
    if (c[verdict * EGD_REASON__COUNT + r]) return true;
  }
  return false;
}

template <class C>
std::string counters_json(const C& c, unsigned verdict) {
  std::string s = "{";
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
    uint64_t v = c[verdict * EGD_REASON__COUNT + r];
    if (!v) continue;
    s += std::string(s.size() > 1 ? "," : "") + "\"" + std::string(reason_name(r)) + "\":" + std::to_string(v);
  }
  return s + "}";
}

std::string quoted(const std::string& s) { return "\"" + json_escape(s) + "\""; }

// A cgroup `detach` left running: no pins, so nothing but why it is unfenced.
std::string detached_text(const AttachmentStatus& a) {
  return "  fence:      UNFENCED: " + a.fence.reason + "\n" + "              (egressd attach --cgroup " + a.cgroup +
         " fences it again)\n" + "  policy:     none (was " + (a.policy.empty() ? "unknown" : a.policy) + ")\n";
}

}  // namespace

std::string detached_reason(uint64_t detached_unix_ns, size_t processes) {
  return "detached at " + iso8601(detached_unix_ns) + "; " + std::to_string(processes) + " process" +
         (processes == 1 ? "" : "es") + " in it; new sessions run unfenced; stop the slice or attach again";
}

std::string status_text(const StatusReport& r, uint64_t now) {
  std::string o;
  auto line = [&o](const char* label, const std::string& text) {
    char pad[16];
    std::snprintf(pad, sizeof(pad), "  %-12s", label);
    o += pad + text + "\n";
  };
  for (const AttachmentStatus& a : r.attachments) {
    o += a.cgroup + " (cgroup id " + std::to_string(a.cgroup_id) + ")\n";
    if (a.detached_unix_ns) {
      o += detached_text(a);
      continue;
    }
    switch (a.fence.state) {
      case FenceCheck::State::kEnforcing:
        line("fence:", "enforcing (" + std::to_string(a.links) + "/" + std::to_string(a.links_expected) +
                           " programs attached)");
        break;
      case FenceCheck::State::kUnfenced:
        line("fence:", "UNFENCED: " + a.fence.reason);
        line("", "(egressd attach --cgroup " + a.cgroup + " fences it again)");
        break;
      case FenceCheck::State::kStale:
        line("fence:", "stale: " + a.fence.reason);
        line("", std::string("(") + (a.daemon_pid ? "its daemon fences the path again when it is made" : "no daemon watches the path") +
                     "; egressd detach --stale removes these pins)");
        break;
    }
    if (a.reattached)
      line("moved:", std::to_string(a.reattached) + " time" + (a.reattached == 1 ? "" : "s") +
                         " onto a recreated cgroup at the same path");
    line("policy:", a.policy + " (generation " + std::to_string(a.generation) + ", hash " + hex64(a.policy_hash) + "; " +
                        std::to_string(a.allow_cidrs) + " allow_cidr, " + std::to_string(a.deny_cidrs) + " deny_cidr, " +
                        std::to_string(a.host_rules) + " host rules)");
    line("since:", "fenced " + when(a.attached_unix_ns, now) + "; policy installed " + when(a.policy_loaded_unix_ns, now));
    if (a.daemon_pid)
      line("daemon:", "running, pid " + std::to_string(a.daemon_pid) +
                          (a.daemon_started_unix_ns ? ", started " + when(a.daemon_started_unix_ns, now) : ""));
    else if (a.fence.state == FenceCheck::State::kEnforcing)
      line("daemon:", "not running (the fence holds; events wait in the ring until one attaches)");
    else
      line("daemon:", "not running");
    std::string proxy = std::to_string(a.proxy_port), dns = std::to_string(a.dns_port);
    if (a.proxy_port)
      line("proxy:", "127.0.0.1:" + proxy + " and [::1]:" + proxy + " (web ports are steered there)");
    else
      line("proxy:", "none registered (web ports are refused)");
    if (a.dns_port)
      line("resolver:", "127.0.0.1:" + dns + " and [::1]:" + dns + " (DNS to any address is steered there)");
    else if (a.dns_steered)
      line("resolver:", "none running (DNS is refused until a daemon serves it)");
    else
      line("resolver:", "none registered yet (DNS passes at L4)");
    line("denied:", counters_text(a.counters, EGD_VERDICT_DENY));
    line("allowed:", counters_text(a.counters, EGD_VERDICT_ALLOW));
    if (any(a.counters, EGD_VERDICT_AUDIT)) line("audited:", counters_text(a.counters, EGD_VERDICT_AUDIT));
    line("ring drops:", std::to_string(a.counters[EGD_STAT_RING_DROPS]) +
                            (a.counters[EGD_STAT_RING_DROPS] ? " (events lost: the ring was full)" : ""));
  }
  if (r.attachments.empty()) o += "no cgroup is fenced by egressd\n";
  return o;
}

std::string status_json(const StatusReport& r) {
  std::string o = "{\"attachments\":[";
  for (size_t i = 0; i < r.attachments.size(); ++i) {
    const AttachmentStatus& a = r.attachments[i];
    auto b = [](bool v) { return std::string(v ? "true" : "false"); };
    auto n = [](uint64_t v) { return std::to_string(v); };
    o += i ? ",{" : "{";
    o += "\"cgroup\":" + quoted(a.cgroup) + ",\"cgroup_id\":" + n(a.cgroup_id);
    if (a.detached_unix_ns) {  // no pins: what the detach record and the cgroup tell
      o += ",\"detached\":true,\"detached_at\":" + quoted(iso8601(a.detached_unix_ns));
      o += ",\"processes\":" + n(a.processes) + ",\"policy\":" + quoted(a.policy);
      o += ",\"fenced\":false,\"state\":" + quoted(std::string(fence_state_name(a.fence.state)));
      o += ",\"reason\":" + quoted(a.fence.reason) + ",\"current_cgroup_id\":" + n(a.fence.current_id);
      o += ",\"links\":0,\"links_expected\":" + std::to_string(a.links_expected);
      o += ",\"daemon_pid\":0,\"daemon_running\":false}";
      continue;
    }
    o += ",\"detached\":false";
    o += ",\"policy\":" + quoted(a.policy) + ",\"policy_hash\":\"" + hex64(a.policy_hash) + "\"";
    o += ",\"generation\":" + n(a.generation);
    o += ",\"policy_rules\":{\"allow_cidr\":" + n(a.allow_cidrs) + ",\"deny_cidr\":" + n(a.deny_cidrs) +
         ",\"host\":" + n(a.host_rules) + "}";
    o += ",\"attached_at\":" + quoted(iso8601(a.attached_unix_ns));
    o += ",\"policy_loaded_at\":" + quoted(iso8601(a.policy_loaded_unix_ns));
    o += ",\"links\":" + std::to_string(a.links) + ",\"links_expected\":" + std::to_string(a.links_expected);
    o += ",\"fenced\":" + b(a.fence.state == FenceCheck::State::kEnforcing);
    o += ",\"state\":" + quoted(std::string(fence_state_name(a.fence.state))) + ",\"reason\":" + quoted(a.fence.reason);
    o += ",\"current_cgroup_id\":" + n(a.fence.current_id) + ",\"reattached\":" + n(a.reattached);
    o += ",\"daemon_pid\":" + std::to_string(a.daemon_pid) + ",\"daemon_running\":" + b(a.daemon_pid != 0);
    o += ",\"daemon_started_at\":" + (a.daemon_started_unix_ns ? quoted(iso8601(a.daemon_started_unix_ns)) : "null");
    o += ",\"proxy_port\":" + n(a.proxy_port) + ",\"dns_port\":" + n(a.dns_port) + ",\"dns_steered\":" + b(a.dns_steered);
    o += ",\"allowed\":" + counters_json(a.counters, EGD_VERDICT_ALLOW);
    o += ",\"denied\":" + counters_json(a.counters, EGD_VERDICT_DENY);
    o += ",\"audited\":" + counters_json(a.counters, EGD_VERDICT_AUDIT);
    o += ",\"ring_drops\":" + n(a.counters[EGD_STAT_RING_DROPS]) + "}";
  }
  o += "],\"problems\":[";
  for (size_t i = 0; i < r.problems.size(); ++i) o += (i ? "," : "") + quoted(r.problems[i]);
  return o + "]}\n";
}

}  // namespace egressd::cli
