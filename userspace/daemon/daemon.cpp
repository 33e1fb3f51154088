#include "daemon/daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <variant>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "attachment/detached_record.h"
#include "attachment/policy_source.h"
#include "attachment/stale_pins.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "common/unix_addr.h"
#include "daemon/metrics_gather.h"
#include "daemon/policy_reinstall.h"
#include "dns/resolv_conf.h"
#include "events/format.h"

namespace egressd::daemon {
namespace {

using attachment::Pinned;

constexpr std::chrono::seconds kHousekeepingInterval{10};

// systemd's readiness protocol (Type=notify), without linking libsystemd.
void sd_notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  auto sa = unix_addr(path);
  if (!sa) return;
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return;
  sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, sa->get(), sa->len);
}

std::string describe(RouteFamilies f) {
  return std::string("IPv4 ") + (f.v4 ? "routed" : "no default route") + ", IPv6 " +
         (f.v6 ? "routed" : "no default route");
}

// An error attach prints as "egressd attach: <what>: <error>".
Error with_context(const std::string& what, const Error& e) { return logic_error(what + e.message()); }

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::start(DaemonOptions options) {
  // Logs go to stderr (journald under systemd); stdout stays free.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("egressd"));
  spdlog::set_pattern("egressd: %l: %v");
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  EGD_TRY(d->fence());
  EGD_TRY(d->start_components());
  return d;
}

Status Daemon::fence() {
  EGD_TRY(check_bpf_privileges());
  auto p = attachment::load_policy(opt_.policy_path);
  if (!p) return p.error();
  policy_ = std::move(*p);
  if (!opt_.cgroup) return opt_.cgroup.error();
  auto target = attachment::resolve_target(*opt_.cgroup, /*create=*/true);
  if (!target) return target.error();
  target_ = std::move(*target);

  // egressd's own sockets (proxy, resolver) must never be fenced.
  auto root = cgroup2_mount();
  auto self = root ? self_cgroup(*root) : Result<std::string>(root.error());
  if (!self) return with_context("cannot tell which cgroup egressd runs in: ", self.error());
  cgroup_root_ = *root;
  if (path_within(*self, target_.path))
    return logic_error("egressd runs inside " + target_.path +
                       ", which would fence egressd itself; run it outside the fenced cgroup");
  if (auto d = find_delegation(target_.path, cgroup_root_))
    spdlog::warn("{} is delegated to uid {}: that user's processes can move themselves out of the fence "
                 "within it; fence a cgroup above the delegation (e.g. a system slice) instead",
                 d->dir, d->uid);

  // Two descriptors per proxied connection: take every one the host allows.
  fds_ = raise_fd_limit();
  if (fds_.failed)
    spdlog::warn("open files: {}; staying at {}", fds_.failed->message(), fds_.soft);
  else if (fds_.soft != fds_.before)
    spdlog::info("open files: soft limit raised from {} to {} (the hard limit)", fds_.before, fds_.soft);
  opt_.proxy.max_sessions = proxy_sessions_for(fds_.soft, opt_.dns.max_tcp_clients, opt_.proxy.max_sessions);
  auto say = [](const std::string& line) { spdlog::warn("{}", line); };
  opt_.proxy.warn = say;
  opt_.dns.warn = say;

  auto loop = Loop::create();
  if (!loop) return loop.error();
  loop_.emplace(std::move(*loop));
  // One list for the proxy's checks and the resolver: --dns-upstream >
  // [dns] upstream > /etc/resolv.conf. egressd is outside the fence, so an
  // upstream on loopback (systemd-resolved's 127.0.0.53) is never steered.
  auto upstreams = dns_upstreams(opt_.dns_upstream, policy_);
  if (!upstreams) return upstreams.error();
  upstreams_ = *upstreams;
  // egressd's one DNS client: the resolver forwards through it, the proxy
  // looks hosts up through it (declared before both, destroyed after).
  dns::UpstreamClient::Options uopt;
  uopt.upstreams = upstreams_;
  upstream_.emplace(*loop_, uopt);
  resolver_ = std::make_unique<ProxyResolver>(*loop_, *upstream_);

  auto lock = attachment::lock_target(target_);
  if (!lock) return lock.error();
  auto attached = attach_cgroup(target_.path, target_.id, policy_);
  if (!attached) return attached.error();
  attached_.emplace(std::move(*attached));
  attachment::remove_detached_record(target_.id);  // fenced again: status no longer reports it detached
  // One consumer per ring: the daemon of a previous attach hands over,
  // and we take the pidfile before anyone else can look.
  if (!attachment::stop_daemon(target_, 5000)) spdlog::warn("previous daemon did not exit");
  auto pidfile = attachment::claim_pidfile(target_);
  if (!pidfile)
    return logic_error(pidfile.error().message() + " (the new policy is in force; this daemon exits)");
  pidfile_ = std::move(*pidfile);
  return {};
}

Status Daemon::start_components() {
  if (!attached_->install.warning.empty()) spdlog::warn("after the policy swap: {}", attached_->install.warning);
  // Pins left for this path by a cgroup that is gone (recreated while no
  // daemon ran) fence nothing; this attachment replaces them.
  for (const Pinned& old : attachment::pinned_attachments()) {
    if (old.path != target_.path || old.id == target_.id || !attachment::pinned_cgroup_gone(old)) continue;
    if (auto s = attachment::remove_stale(old); !s)
      spdlog::warn("stale pins of removed cgroup id {}: {}", old.id, s.error().message());
    else
      spdlog::info("removed the stale pins of cgroup id {} (an earlier {}, removed)", old.id, target_.path);
  }

  auto hub = Hub::listen(*loop_, target_.pins.socket(), target_.path);
  if (!hub) return hub.error();
  hub_ = std::move(*hub);
  auto publish = [hub = hub_.get()](const Event& e) {
    spdlog::info("{}", to_text(e));
    hub->publish(e);
  };

  // The proxy the hooks steer web ports to. Until it is registered in
  // egd_proxy, steered connects are refused (fail closed).
  orig_table_ = std::make_unique<BpfSteeredTable>(maps().orig_by_port.get());
  // One compiled policy for the proxy and the resolver.
  auto in_force = std::make_shared<const decide::ActivePolicy>(policy_);
  auto proxy = proxy::Proxy::start(*loop_, *orig_table_, *resolver_, publish, in_force, opt_.proxy);
  if (!proxy) return with_context("start the proxy: ", proxy.error());
  proxy_ = std::move(*proxy);
  // The resolver the hooks steer DNS to. Registering its port turns DNS
  // steering on for good: from then on no query from the cgroup leaves
  // unless this resolver (or a successor) forwards it.
  dns_identity_ = std::make_unique<dns::BpfClientIdentity>(maps().orig_by_cookie.get(), maps().orig_by_port.get());
  // The families with a default route in this netns (the one the fenced
  // processes connect from when they share the daemon's): the resolver
  // leaves out the others' addresses ([dns] drop_unroutable_families).
  auto routes = NetlinkRoutes::start(*loop_, [](RouteFamilies f) { spdlog::info("routes changed: {}", describe(f)); });
  if (routes) {
    routes_ = std::move(*routes);
    opt_.dns.routes = routes_.get();
    spdlog::info("routes: {}", describe(routes_->families()));
  } else {
    spdlog::warn("cannot read the routing table ({}): the resolver answers every address family",
                 routes.error().message());
  }
  auto dns_server = dns::Server::start(*loop_, *upstream_, *dns_identity_, publish, in_force, opt_.dns);
  if (!dns_server) return with_context("start the resolver: ", dns_server.error());
  dns_ = std::move(*dns_server);
  resolver_->answers_first([server = dns_.get()](const std::string& name) { return server->cached_addresses(name); });
  dns_->observe_answers([r = resolver_.get()](std::string_view qname, uint16_t, const dns::AddressAnswer& a) {
    r->remember(qname, a);
  });
  EGD_TRY(set_proxy_ports(maps(), proxy_->port(), dns_->port()));

  // Prometheus: bound only now, after a previous daemon (which may hold the
  // same address) has stopped.
  if (opt_.metrics) {
    auto m = MetricsServer::start(*loop_, opt_.metrics->at, metrics_source(maps(), *proxy_, *dns_, *hub_),
                                       opt_.metrics->options);
    if (!m) return with_context("metrics: ", m.error());
    metrics_ = std::move(*m);
    spdlog::info("metrics on {} (GET /metrics)", metrics_->where());
  }

  auto ring = EventRing::open(*loop_, maps().events.get(), publish);
  if (!ring) return ring.error();
  ring_ = std::move(*ring);

  // The fence follows the cgroup's path: a removed directory is made again
  // and a recreated one fenced at once (daemon/refence.h).
  auto refencer = Refencer::start(*loop_, target_, maps(), *hub_, cgroup_root_, [this] { running_ = false; },
                                  &attached_->programs);
  if (!refencer) return with_context("watch " + target_.path + ": ", refencer.error());
  refencer_ = std::move(*refencer);

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signals_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  EGD_TRY(loop_->add(signals_.get(), EPOLLIN, &signal_watcher_));

  housekeeping_ = loop_->after(std::chrono::milliseconds(0), [this] { housekeeping(); });
  return {};
}

Daemon::~Daemon() {
  if (housekeeping_ && loop_) loop_->cancel(housekeeping_);
  if (signals_.valid()) loop_->remove(signals_.get());
}

void Daemon::on_signals() {
  signalfd_siginfo si{};
  while (read(signals_.get(), &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGHUP) {
      reinstall(Trigger::Sighup);
    } else if (si.ssi_signo == SIGUSR1) {
      reinstall(Trigger::ReloadSignal);
    } else {
      if (path_exists(target_.pins.dir))
        spdlog::info("exiting on signal {}; {} stays fenced (egressd detach removes the fence)",
                     strsignal(static_cast<int>(si.ssi_signo)), target_.path);
      else
        spdlog::info("fence on {} removed; exiting", target_.path);
      running_ = false;
    }
  }
}

void Daemon::reinstall(Trigger trigger) {
  bool sighup = trigger == Trigger::Sighup;
  UniqueFd lock;
  if (sighup) {
    // Serialised with `egressd reload`, but never waiting: a daemon blocked
    // here would not see the SIGTERM of an attach or detach holding the lock.
    auto l = attachment::lock_target(target_, /*wait=*/false);
    if (!l) {
      spdlog::error("reload skipped: {} (another attach/reload/detach is in progress)", l.error().message());
      return;
    }
    lock = std::move(*l);
  }
  // `egressd reload` has installed a file already: the proxy and resolver
  // take the same file's rules, installed again only if it changed since,
  // so kernel and proxy agree.
  auto r = reinstall_policy(maps(), "", sighup ? Install::Always : Install::IfChanged);
  if (auto* e = std::get_if<ReinstallError>(&r)) {
    std::string why = e->error.message();
    if (!sighup && e->step == ReinstallStep::Install)  // only a changed file is installed again
      spdlog::warn("{} changed after it was installed; installing it again", e->path);
    if (sighup && e->step == ReinstallStep::ReadRecord) spdlog::error("reload: {}", why);
    else if (sighup && e->step == ReinstallStep::Load) spdlog::error("reload rejected, the previous policy stays in force: {}", why);
    else if (sighup) spdlog::error("reload failed, the previous policy stays in force: {}", why);
    else if (e->step == ReinstallStep::ReadRecord) spdlog::error("policy re-read: {}", why);
    else spdlog::error("policy re-read: {}; the proxy keeps its previous host rules", why);
    return;
  }
  auto& done = std::get<Reinstalled>(r);
  if (sighup) {
    if (!done.install->warning.empty()) spdlog::warn("after the policy swap: {}", done.install->warning);
    spdlog::info("policy {} in force (generation {})", done.path, done.install->gen);
  } else {
    if (done.install) spdlog::warn("{} changed after it was installed; installing it again", done.path);
    spdlog::info("proxy host rules from {} in force", done.path);
  }
  swap_policy(done.policy);
}

void Daemon::swap_policy(const policy::Policy& next) {
  auto in_force = std::make_shared<const decide::ActivePolicy>(next);
  proxy_->set_policy(in_force);
  dns_->set_policy(in_force);
  // [dns] upstream is read at attach only.
  if (opt_.dns_upstream.empty() && next.dns.upstream != policy_.dns.upstream)
    spdlog::warn("[dns] upstream changed: the resolver keeps its upstreams until the next attach");
}

void Daemon::housekeeping() {
  housekeeping_ = loop_->after(kHousekeepingInterval, [this] { housekeeping(); });
  hub_->tick();
  refencer_->reconcile();  // in case inotify lost an event
  if (!path_exists(target_.pins.dir)) {
    spdlog::info("attachment removed (egressd detach); exiting");
    running_ = false;
    return;
  }
  if (hub_->dropped_lines() != last_hub_drops_) {
    last_hub_drops_ = hub_->dropped_lines();
    spdlog::warn("{} event lines dropped for subscribers too slow to read them", last_hub_drops_);
  }
  if (uint64_t n = dns_->stats().events_suppressed; n != last_dns_suppressed_) {
    last_dns_suppressed_ = n;
    spdlog::warn("resolver: {} events not recorded so far (rate limit: a flood of denied or malformed queries)", n);
  }
  if (uint64_t n = proxy_->stats().events_suppressed; n != last_proxy_suppressed_) {
    last_proxy_suppressed_ = n;
    spdlog::warn("proxy: {} too-many-connections events not recorded so far (rate limit)", n);
  }
  if (auto c = read_counters(maps()); c && (*c)[EGD_STAT_RING_DROPS] != last_ring_drops_) {
    spdlog::warn("event ring overflowed: {} events dropped so far", (*c)[EGD_STAT_RING_DROPS]);
    last_ring_drops_ = (*c)[EGD_STAT_RING_DROPS];
  }
}

void Daemon::log_ready() const {
  spdlog::info("enforcing on {} (cgroup id {}, policy {}, generation {}, {} map entries{}; load {:.1f} ms, policy {:.1f} ms)",
               target_.path, target_.id, policy_.source, attached_->install.gen, attached_->install.entries,
               attached_->adopted ? ", adopted existing pins" : "", attached_->load_ms, attached_->install.write_ms);
  spdlog::info("proxy listening on 127.0.0.1:{} and [::1]:{}", proxy_->port(), proxy_->port());
  std::string ups;
  for (const auto& u : upstreams_) ups += (ups.empty() ? "" : ", ") + dns::to_string(u);
  spdlog::info("resolver listening on 127.0.0.1:{} and [::1]:{} (UDP and TCP; upstreams {}); the cgroup's DNS goes there",
               dns_->port(), dns_->port(), ups);
  ShareCaps pc = proxy_->share_caps(), dc = dns_->tcp_share_caps();
  spdlog::info("connections held at once: proxy {} ({} per process, {} per user; open-file limit {}), "
               "resolver TCP {} ({} per process, {} per user); more are refused (too-many-connections)",
               pc.total, pc.per_process, pc.per_uid, fds_.soft, dc.total, dc.per_process, dc.per_uid);
}

int Daemon::run() {
  log_ready();
  sd_notify("READY=1\nSTATUS=enforcing on " + target_.path + "\nMAINPID=" + std::to_string(getpid()));
  while (running_) {
    if (auto s = loop_->run_once(-1); !s) {
      std::fprintf(stderr, "egressd attach: %s\n", s.error().message().c_str());
      exit_code_ = 1;
      break;
    }
  }
  stop();
  return exit_code_;
}

void Daemon::stop() {
  ring_.reset();  // the events written so far still reach the log and subscribers
  // Steered connects get EPERM (no-proxy) from now on rather than a refused
  // connection to a port someone else could bind; a daemon that already
  // took over has registered its own port, which stays.
  if (path_exists(target_.pins.dir)) {
    auto c = read_proxy_conf(maps());
    // DNS steering stays on: steered queries are refused (no-proxy), never let out.
    if (c && c->port == proxy_->port() && c->dns_port == dns_->port()) (void)set_proxy_ports(maps(), 0, 0);
  }
  // Our pidfile, still locked by us: remove it before the lock goes.
  unlink(target_.pins.pidfile().c_str());
}

}  // namespace egressd::daemon
