// attach.cpp: `egressd attach`: its options, then the daemon (daemon/daemon.h)
// fences the cgroup and stays in the foreground until told to stop.
#include <chrono>
#include <cstdlib>
#include <optional>

#include "attachment/target.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "daemon/daemon.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on
namespace {

uint64_t parse_ms(const Args& args, const std::string& name, uint64_t fallback) {
  std::string v = args.get(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (!end || *end || n == 0 || n > 24ull * 3600 * 1000) throw UsageError("--" + name + " takes milliseconds (1..86400000)");
  return n;
}

// --metrics ADDRESS [--metrics-group GROUP]; nullopt without --metrics.
std::optional<daemon::MetricsConfig> metrics_config(const Args& args) {
  if (!args.has("metrics")) {
    if (args.has("metrics-group")) throw UsageError("--metrics-group needs --metrics unix:PATH");
    return std::nullopt;
  }
  auto at = daemon::parse_metrics_address(args.get("metrics"));
  if (!at) throw UsageError(at.error().message());
  daemon::MetricsConfig c{*at, {}};
  if (args.has("metrics-group")) {
    if (!at->unix_socket) throw UsageError("--metrics-group applies to --metrics unix:PATH only");
    auto gid = daemon::group_id(args.get("metrics-group"));
    if (!gid) throw UsageError("--metrics-group: " + gid.error().message());
    c.options.group = *gid;
  }
  return c;
}

uint16_t parse_port(const Args& args, const std::string& name) {
  int port = std::atoi(args.get(name).c_str());
  if (port < 1 || port > 65535) throw UsageError("--" + name + " takes 1..65535");
  return static_cast<uint16_t>(port);
}

}  // namespace

int cmd_attach(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "user", "policy", "dns-upstream", "dns-port", "proxy-port", "proxy-timeout-ms", "metrics",
                   "metrics-group"},
            {});
  daemon::DaemonOptions o;
  o.cgroup = cgroup_request(args);
  o.policy_path = args.get("policy");
  o.dns_upstream = args.get("dns-upstream");
  o.proxy.inspect_timeout = std::chrono::milliseconds(parse_ms(args, "proxy-timeout-ms", 10000));
  if (args.has("proxy-port")) o.proxy.port = parse_port(args, "proxy-port");
  if (args.has("dns-port")) o.dns.port = parse_port(args, "dns-port");
  o.metrics = metrics_config(args);

  auto d = daemon::Daemon::start(std::move(o));
  if (!d) return fail("attach", d.error().message());
  return (*d)->run();
}

}  // namespace egressd::cli
