// Test the Prometheus exposition the daemon serves: every family has one
// HELP and one TYPE before its samples, label values are escaped, decision
// series carry hook/verdict/reason, and every row of the daemon table shows.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/metrics_format.h"

namespace egressd::daemon {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  std::string value;
};

// A strict reader of the text format (the subset egressd writes): returns
// false with a message on anything malformed.
bool parse_sample(const std::string& line, Sample& s, std::string& why) {
  size_t i = 0;
  auto name_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
  };
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0) return why = "no metric name: " + line, false;
  s.name = line.substr(0, i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      size_t start = i;
      while (i < line.size() && name_char(line[i], i == start)) ++i;
      std::string label = line.substr(start, i - start);
      if (label.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
        return why = "bad label in: " + line, false;
      i += 2;
      std::string value;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size()) return why = "dangling escape: " + line, false;
          char e = line[i + 1];
          if (e == 'n') value += '\n';
          else if (e == '\\' || e == '"') value += e;
          else return why = std::string("bad escape \\") + e + " in: " + line, false;
          i += 2;
        } else {
          value += line[i++];
        }
      }
      if (i >= line.size()) return why = "unterminated label value: " + line, false;
      ++i;  // closing quote
      if (!s.labels.emplace(label, value).second) return why = "duplicate label " + label, false;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return why = "unterminated label set: " + line, false;
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return why = "no value: " + line, false;
  s.value = line.substr(i + 1);
  if (s.value.empty() || s.value.find_first_not_of("0123456789.") != std::string::npos)
    return why = "bad value: " + line, false;
  return true;
}

struct Exposition {
  std::map<std::string, std::string> type, help;
  std::vector<Sample> samples;
};

// Checks the structure and returns what it holds.
Exposition check_exposition(const std::string& text) {
  Exposition e;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::istringstream in(text);
  std::string line, open;  // the family whose samples may follow
  std::set<std::string> closed;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_FALSE(e.help.count(name)) << "second HELP for " << name;
      EXPECT_FALSE(closed.count(name)) << name << " continues after another family";
      if (!open.empty()) closed.insert(open);
      e.help[name] = line.substr(7 + name.size() + 1);
      open = name;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(name, open) << "TYPE without its HELP: " << line;
      EXPECT_FALSE(e.type.count(name)) << "second TYPE for " << name;
      std::string type = line.substr(7 + name.size() + 1);
      EXPECT_TRUE(type == "counter" || type == "gauge") << line;
      if (type == "counter") EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
      e.type[name] = type;
      continue;
    }
    if (line.rfind("#", 0) == 0) {
      ADD_FAILURE() << "unexpected comment: " << line;
      continue;
    }
    Sample s;
    std::string why;
    EXPECT_TRUE(parse_sample(line, s, why)) << why;
    EXPECT_EQ(s.name, open) << "sample outside its family: " << line;
    EXPECT_TRUE(e.type.count(s.name)) << "no TYPE before " << line;
    EXPECT_EQ(s.name.rfind("egressd_", 0), 0u) << line;
    EXPECT_TRUE(s.labels.count("cgroup")) << line;
    e.samples.push_back(std::move(s));
  }
  for (const auto& [name, help] : e.help) EXPECT_FALSE(help.empty()) << "empty HELP for " << name;
  return e;
}

const Sample* find(const Exposition& e, const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const Sample& s : e.samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) return &s;
  }
  return nullptr;
}

size_t slot(unsigned verdict, unsigned reason) { return verdict * size_t{EGD_REASON__COUNT} + reason; }

MetricsSnapshot sample_snapshot() {
  MetricsSnapshot s;
  s.cgroup = "/sys/fs/cgroup/claude.slice";
  s.policy_path = "/etc/egressd/policy.toml";
  s.policy_hash = 0x0123456789abcdefull;
  s.policy_generation = 7;
  s.policy_loaded_unix_ns = 1764524402113201000ull;
  s.attached_unix_ns = 1764520000000000005ull;
  s.kernel[slot(EGD_VERDICT_DENY, EGD_REASON_PRIVATE)] = 3;
  s.kernel[slot(EGD_VERDICT_ALLOW, EGD_REASON_WEB_PORT)] = 5;
  s.ring_drops = 2;
  s.proxy[slot(EGD_VERDICT_DENY, EGD_REASON_HOST_NOT_ALLOWED)] = 4;
  s.proxy[slot(EGD_VERDICT_ALLOW, EGD_REASON_HOST_RULE)] = 1;
  s.dns[slot(EGD_VERDICT_AUDIT, EGD_REASON_DNS_NAME_NOT_ALLOWED)] = 6;
  return s;
}

TEST(MetricsFormat, FamiliesHaveHelpAndTypeOnce) {
  Exposition e = check_exposition(format_metrics(sample_snapshot()));
  for (const char* name : {"egressd_up", "egressd_policy_info", "egressd_policy_generation",
                           "egressd_policy_loaded_timestamp_seconds", "egressd_attached_timestamp_seconds",
                           "egressd_decisions_total", "egressd_events_dropped_total",
                           "egressd_subscriber_lines_dropped_total", "egressd_proxy_connections_accepted_total",
                           "egressd_proxy_bytes_total", "egressd_dns_queries_total", "egressd_dns_outcomes_total"}) {
    EXPECT_TRUE(e.type.count(name)) << name;
  }
  EXPECT_EQ(e.type["egressd_up"], "gauge");
  EXPECT_EQ(e.type["egressd_decisions_total"], "counter");
  EXPECT_EQ(e.type["egressd_policy_loaded_timestamp_seconds"], "gauge");
}

TEST(MetricsFormat, Values) {
  Exposition e = check_exposition(format_metrics(sample_snapshot()));
  const std::string cg = "/sys/fs/cgroup/claude.slice";
  auto value = [&](const std::string& name, std::map<std::string, std::string> labels) -> std::string {
    labels["cgroup"] = cg;
    const Sample* s = find(e, name, labels);
    return s ? s->value : "<missing>";
  };
  EXPECT_EQ(value("egressd_up", {}), "1");
  EXPECT_EQ(value("egressd_policy_info", {{"policy", "/etc/egressd/policy.toml"}, {"hash", "0123456789abcdef"}}), "1");
  EXPECT_EQ(value("egressd_policy_generation", {}), "7");
  EXPECT_EQ(value("egressd_policy_loaded_timestamp_seconds", {}), "1764524402.113201000");
  EXPECT_EQ(value("egressd_attached_timestamp_seconds", {}), "1764520000.000000005");
  EXPECT_EQ(value("egressd_decisions_total", {{"hook", "kernel"}, {"verdict", "deny"}, {"reason", "private"}}), "3");
  EXPECT_EQ(value("egressd_decisions_total", {{"hook", "kernel"}, {"verdict", "allow"}, {"reason", "web-port"}}), "5");
  EXPECT_EQ(value("egressd_decisions_total", {{"hook", "proxy"}, {"verdict", "deny"}, {"reason", "host-not-allowed"}}),
            "4");
  EXPECT_EQ(value("egressd_decisions_total", {{"hook", "proxy"}, {"verdict", "allow"}, {"reason", "host-rule"}}), "1");
  EXPECT_EQ(value("egressd_decisions_total", {{"hook", "dns"}, {"verdict", "audit"}, {"reason", "dns-name-not-allowed"}}),
            "6");
  EXPECT_EQ(value("egressd_events_dropped_total", {}), "2");
  // Zero decision counters are left out; the others are always there.
  int decisions = 0;
  for (const Sample& s : e.samples) decisions += s.name == "egressd_decisions_total";
  EXPECT_EQ(decisions, 5);
  EXPECT_EQ(value("egressd_proxy_bytes_total", {{"direction", "up"}}), "0");
}

TEST(MetricsFormat, EveryDaemonTableRowIsServed) {
  MetricsSnapshot s = sample_snapshot();
  // Distinct values, so a row wired to the wrong field shows.
  uint64_t v = 100;
#define EGD_SET(field, name, label, type, help) s.daemon.field = v++;
  EGD_DAEMON_METRICS(EGD_SET)
#undef EGD_SET
  std::string text = format_metrics(s);
  Exposition e = check_exposition(text);
  v = 100;
#define EGD_CHECK(field, name, label, kind, help)                                                          \
  {                                                                                                        \
    std::string want = std::string(name) + "{cgroup=\"/sys/fs/cgroup/claude.slice\"" +                     \
                       (std::string(label).empty() ? "" : "," + std::string(label)) + "} " + std::to_string(v++) + \
                       "\n";                                                                               \
    EXPECT_NE(text.find(want), std::string::npos) << #field << ": no line " << want;                       \
    EXPECT_EQ(e.type[name], #kind) << name;                                                                \
  }
  EGD_DAEMON_METRICS(EGD_CHECK)
#undef EGD_CHECK
}

TEST(MetricsFormat, CgroupLabelIsEscaped) {
  MetricsSnapshot s = sample_snapshot();
  s.cgroup = "/sys/fs/cgroup/we\"ird\\slice\nname";
  s.policy_path = "/tmp/p\"o\\l\ncy.toml";
  std::string text = format_metrics(s);
  EXPECT_NE(text.find("egressd_up{cgroup=\"/sys/fs/cgroup/we\\\"ird\\\\slice\\nname\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("policy=\"/tmp/p\\\"o\\\\l\\ncy.toml\""), std::string::npos) << text;
  Exposition e = check_exposition(text);
  ASSERT_FALSE(e.samples.empty());
  for (const Sample& x : e.samples) EXPECT_EQ(x.labels.at("cgroup"), s.cgroup) << x.name;  // round trip
  EXPECT_EQ(find(e, "egressd_policy_info", {})->labels.at("policy"), s.policy_path);
}

TEST(MetricsFormat, LabelEscape) {
  EXPECT_EQ(prometheus_label_escape("plain/path.slice"), "plain/path.slice");
  EXPECT_EQ(prometheus_label_escape("a\"b"), "a\\\"b");
  EXPECT_EQ(prometheus_label_escape("a\\b"), "a\\\\b");
  EXPECT_EQ(prometheus_label_escape("a\nb"), "a\\nb");
  EXPECT_EQ(prometheus_label_escape("\\\"\n"), "\\\\\\\"\\n");
}

}  // namespace
}  // namespace egressd::daemon
