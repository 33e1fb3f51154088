#include "daemon/metrics_format.h"

#include <cinttypes>
#include <cstdio>
#include <string_view>

#include "events/event.h"

namespace egressd::daemon {
namespace {

std::string help_escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

class Writer {
 public:
  explicit Writer(const std::string& cgroup) : cgroup_("cgroup=\"" + prometheus_label_escape(cgroup) + "\"") {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help_escape(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `labels`: more label pairs after cgroup, already escaped ("" for none).
  void sample(std::string_view name, std::string_view labels, std::string_view value) {
    out_ += name;
    out_ += '{';
    out_ += cgroup_;
    if (!labels.empty()) {
      out_ += ',';
      out_ += labels;
    }
    out_ += "} ";
    out_ += value;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, uint64_t value) {
    sample(name, labels, std::to_string(value));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string cgroup_;
  std::string out_;
};

// Unix ns as seconds, exactly (no double rounding).
std::string seconds(uint64_t unix_ns) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%" PRIu64 ".%09" PRIu64, unix_ns / 1000000000u, unix_ns % 1000000000u);
  return buf;
}

void decisions(Writer& w, const char* hook, const DecisionCounts& c) {
  for (unsigned v = 0; v < EGD_VERDICT__COUNT; ++v) {
    for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
      uint64_t n = c[v * EGD_REASON__COUNT + r];
      if (!n) continue;
      std::string labels = std::string("hook=\"") + hook + "\",verdict=\"" + std::string(verdict_name(v)) +
                           "\",reason=\"" + std::string(reason_name(r)) + "\"";
      w.sample("egressd_decisions_total", labels, n);
    }
  }
}

struct Row {
  std::string_view name, label, type, help;
  uint64_t DaemonCounters::*field;
};

constexpr Row kRows[] = {
#define EGD_DAEMON_ROW(field, name, label, type, help) {name, label, #type, help, &DaemonCounters::field},
    EGD_DAEMON_METRICS(EGD_DAEMON_ROW)
#undef EGD_DAEMON_ROW
};

}  // namespace

std::string prometheus_label_escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_metrics(const MetricsSnapshot& s) {
  Writer w(s.cgroup);
  w.family("egressd_up", "gauge", "1 while the egressd daemon of this cgroup serves");
  w.sample("egressd_up", "", 1);

  char hash[24];
  std::snprintf(hash, sizeof(hash), "%016" PRIx64, s.policy_hash);
  w.family("egressd_policy_info", "gauge", "The policy in force: its file and FNV-1a hash of its bytes");
  w.sample("egressd_policy_info", "policy=\"" + prometheus_label_escape(s.policy_path) + "\",hash=\"" + hash + "\"", 1);
  w.family("egressd_policy_generation", "gauge", "Generation of the policy in the kernel maps (each install adds one)");
  w.sample("egressd_policy_generation", "", s.policy_generation);
  w.family("egressd_policy_loaded_timestamp_seconds", "gauge", "When the policy in force was installed (Unix time)");
  w.sample("egressd_policy_loaded_timestamp_seconds", "", seconds(s.policy_loaded_unix_ns));
  w.family("egressd_attached_timestamp_seconds", "gauge", "When the cgroup was first fenced (Unix time)");
  w.sample("egressd_attached_timestamp_seconds", "", seconds(s.attached_unix_ns));

  w.family("egressd_decisions_total", "counter",
           "Decisions by verdict and reason; hook kernel: the BPF programs (kept across daemon restarts), "
           "proxy and dns: this daemon's proxy and resolver");
  decisions(w, "kernel", s.kernel);
  decisions(w, "proxy", s.proxy);
  decisions(w, "dns", s.dns);
  w.family("egressd_events_dropped_total", "counter", "Events the kernel could not put in the full event ring");
  w.sample("egressd_events_dropped_total", "", s.ring_drops);

  std::string_view open;
  for (const Row& r : kRows) {
    if (r.name != open) {
      w.family(r.name, r.type, r.help);
      open = r.name;
    }
    w.sample(r.name, r.label, s.daemon.*r.field);
  }
  return w.take();
}

}  // namespace egressd::daemon
