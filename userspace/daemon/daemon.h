// daemon.h: the process `egressd attach` becomes. start() fences the cgroup
// and builds every component in the fail-closed order (policy, target, the
// programs attached, a previous daemon stopped and its pidfile taken, then
// the proxy and the resolver registered in the maps); run() serves on one
// Loop until a signal, a detach or another attach ends it. Stopping never
// unfences: links and maps are pinned.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attachment/target.h"
#include "bpf/loader.h"
#include "bpf/steered_table.h"
#include "common/loop.h"
#include "common/result.h"
#include "common/routes.h"
#include "daemon/event_ring.h"
#include "daemon/fd_limit.h"
#include "daemon/metrics_server.h"
#include "daemon/proxy_resolver.h"
#include "daemon/refence.h"
#include "dns/client_identity.h"
#include "dns/server.h"
#include "dns/upstream.h"
#include "events/hub.h"
#include "policy/model.h"
#include "proxy/proxy.h"

namespace egressd::daemon {

// attach's command line, parsed. Errors in the cgroup request are reported
// in start()'s order, after the privilege and policy checks.
struct DaemonOptions {
  Result<systemd::CgroupRequest> cgroup = logic_error("no --cgroup");
  std::string policy_path;   // "" or attachment::kBuiltinPolicy: the built-in default
  std::string dns_upstream;  // --dns-upstream; "" when not given
  proxy::ProxyOptions proxy;
  dns::ServerOptions dns;
  std::optional<MetricsConfig> metrics;
};

class Daemon {
 public:
  // Fails with the message attach prints; by then the fence may already be
  // in force (it stays: failing closed).
  static Result<std::unique_ptr<Daemon>> start(DaemonOptions options);
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  // Serves until told to stop; attach's exit code.
  int run();

 private:
  enum class Trigger {
    Sighup,        // re-read the recorded file and install it, as `egressd reload` does
    ReloadSignal,  // `egressd reload` installed a file: take its rules (installing it again if it changed since)
  };
  struct SignalWatcher final : Loop::Watcher {
    Daemon* daemon = nullptr;
    void on_io(uint32_t) override { daemon->on_signals(); }
  };

  explicit Daemon(DaemonOptions options) : opt_(std::move(options)) { signal_watcher_.daemon = this; }
  Status fence();            // policy, target, attach, pidfile
  Status start_components();  // hub, proxy, resolver, metrics, ring, re-fencer, signals
  void on_signals();
  void reinstall(Trigger trigger);
  void swap_policy(const policy::Policy& next);
  void housekeeping();
  void log_ready() const;
  void stop();
  const MapFds& maps() const { return attached_->maps; }

  DaemonOptions opt_;
  // Members in start-up order: destroyed in reverse, the loop last.
  std::optional<Loop> loop_;
  policy::Policy policy_;  // the one attach installed
  attachment::Target target_;
  std::string cgroup_root_;
  FdLimit fds_;
  std::vector<sockaddr_storage> upstreams_;
  std::optional<dns::UpstreamClient> upstream_;
  std::unique_ptr<ProxyResolver> resolver_;
  std::optional<Attached> attached_;
  UniqueFd pidfile_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<BpfSteeredTable> orig_table_;
  std::unique_ptr<proxy::Proxy> proxy_;
  std::unique_ptr<dns::BpfClientIdentity> dns_identity_;
  std::unique_ptr<NetlinkRoutes> routes_;
  std::unique_ptr<dns::Server> dns_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<EventRing> ring_;
  std::unique_ptr<Refencer> refencer_;
  UniqueFd signals_;
  SignalWatcher signal_watcher_;

  bool running_ = true;
  int exit_code_ = 0;
  Loop::TimerId housekeeping_ = 0;
  // What housekeeping last reported, so each count is logged once it grows.
  uint64_t last_ring_drops_ = 0, last_hub_drops_ = 0, last_dns_suppressed_ = 0, last_proxy_suppressed_ = 0;
};

}  // namespace egressd::daemon
