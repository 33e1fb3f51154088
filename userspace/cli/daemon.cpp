// daemon.cpp: `egressd attach`: fence a cgroup, then stay in the foreground
// consuming the event ring (log + live subscribers) until told to stop.
// Stopping the daemon never unfences: links and maps are pinned.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "bpf/loader.h"
#include "cli/fd_limit.h"
#include "cli/proxy_resolver.h"
#include "cli/refence.h"
#include "cli/stale_pins.h"
#include "common/loop.h"
#include "common/routes.h"
#include "dns/client_identity.h"
#include "dns/server.h"
#include "dns/stub_resolver.h"
#include "bpf/steered_table.h"
#include "proxy/proxy.h"
#include "cli/args.h"
#include "cli/detached_record.h"
#include "cli/metrics_gather.h"
#include "cli/metrics_server.h"
#include "cli/commands.h"
#include "cli/policy_source.h"
#include "cli/target.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "events/event.h"
#include "events/format.h"
#include "events/hub.h"

namespace egressd::cli {
namespace {

// systemd's readiness protocol (Type=notify), without linking libsystemd.
void sd_notify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof(sa.sun_path)) return;
  std::memcpy(sa.sun_path, path, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return;
  sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
}

struct RingContext {
  Hub* hub;
  int64_t boot_to_unix;
};

int on_ring_record(void* ctx, void* data, size_t size) {
  if (size < sizeof(egd_event)) return 0;
  auto* rc = static_cast<RingContext*>(ctx);
  egd_event raw;
  std::memcpy(&raw, data, sizeof(raw));
  Event e = decode_event(raw, rc->boot_to_unix);
  spdlog::info("{}", to_text(e));
  rc->hub->publish(e);
  return 0;
}

std::optional<policy::Policy> reload_policy(const Target& target, const MapFds& maps) {
  // Serialised with `egressd reload`, but never waiting: a daemon blocked
  // here would not see the SIGTERM of an attach or detach holding the lock.
  auto lock = lock_target(target, /*wait=*/false);
  if (!lock) {
    spdlog::error("reload skipped: {} (another attach/reload/detach is in progress)", lock.error().message());
    return std::nullopt;
  }
  auto meta = read_meta(maps);
  if (!meta) {
    spdlog::error("reload: {}", meta.error().message());
    return std::nullopt;
  }
  std::string path(meta->policy_path, strnlen(meta->policy_path, sizeof(meta->policy_path)));
  auto p = load_policy(path);
  if (!p) {
    spdlog::error("reload rejected, the previous policy stays in force: {}", p.error().message());
    return std::nullopt;
  }
  auto installed = install_policy(maps, *p);
  if (!installed) {
    spdlog::error("reload failed, the previous policy stays in force: {}", installed.error().message());
    return std::nullopt;
  }
  if (!installed->warning.empty()) spdlog::warn("after the policy swap: {}", installed->warning);
  spdlog::info("policy {} in force (generation {})", path, installed->gen);
  return std::move(*p);
}

// `egressd reload` installed a policy into the maps: the proxy takes the
// same file's host rules. If the file changed since, install what it says
// now, so kernel and proxy agree.
std::optional<policy::Policy> reread_policy(const MapFds& maps) {
  auto meta = read_meta(maps);
  if (!meta) {
    spdlog::error("policy re-read: {}", meta.error().message());
    return std::nullopt;
  }
  std::string path(meta->policy_path, strnlen(meta->policy_path, sizeof(meta->policy_path)));
  auto p = load_policy(path);
  if (!p) {
    spdlog::error("policy re-read: {}; the proxy keeps its previous host rules", p.error().message());
    return std::nullopt;
  }
  if (p->hash != meta->policy_hash) {
    spdlog::warn("{} changed after it was installed; installing it again", path);
    auto installed = install_policy(maps, *p);
    if (!installed) {
      spdlog::error("policy re-read: {}; the proxy keeps its previous host rules", installed.error().message());
      return std::nullopt;
    }
  }
  spdlog::info("proxy host rules from {} in force", path);
  return std::move(*p);
}

}  // namespace

namespace {

// Adapts an fd the daemon reads to the loop.
struct FnWatcher final : Loop::Watcher {
  std::function<void(uint32_t)> fn;
  void on_io(uint32_t events) override { fn(events); }
};

std::shared_ptr<const decide::ActivePolicy> active(const policy::Policy& p) {
  return std::make_shared<const decide::ActivePolicy>(p);
}

uint64_t parse_ms(const Args& args, const std::string& name, uint64_t fallback) {
  std::string v = args.get(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (!end || *end || n == 0 || n > 24ull * 3600 * 1000) throw UsageError("--" + name + " takes milliseconds (1..86400000)");
  return n;
}

}  // namespace

int cmd_attach(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "user", "policy", "dns-upstream", "dns-port", "proxy-port", "proxy-timeout-ms", "metrics",
                   "metrics-group"},
            {});
  auto cg_req = cgroup_request(args);
  std::string policy_path = args.get("policy");
  proxy::ProxyOptions popt;
  popt.inspect_timeout = std::chrono::milliseconds(parse_ms(args, "proxy-timeout-ms", 10000));
  if (args.has("proxy-port")) {
    int port = std::atoi(args.get("proxy-port").c_str());
    if (port < 1 || port > 65535) throw UsageError("--proxy-port takes 1..65535");
    popt.port = static_cast<uint16_t>(port);
  }
  dns::ServerOptions dopt;
  if (args.has("dns-port")) {
    int port = std::atoi(args.get("dns-port").c_str());
    if (port < 1 || port > 65535) throw UsageError("--dns-port takes 1..65535");
    dopt.port = static_cast<uint16_t>(port);
  }
  auto metrics_at = metrics_config(args);
  // Logs go to stderr (journald under systemd); stdout stays free.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("egressd"));
  spdlog::set_pattern("egressd: %l: %v");

  if (auto s = check_bpf_privileges(); !s) return fail("attach", s.error().message());
  auto p = load_policy(policy_path);
  if (!p) return fail("attach", p.error().message());
  if (!cg_req) return fail("attach", cg_req.error().message());
  auto target = resolve_target(*cg_req, /*create=*/true);
  if (!target) return fail("attach", target.error().message());

  // egressd's own sockets (proxy, resolver) must never be fenced.
  auto root = cgroup2_mount();
  auto self = root ? self_cgroup(*root) : Result<std::string>(root.error());
  if (!self) return fail("attach", "cannot tell which cgroup egressd runs in: " + self.error().message());
  if (path_within(*self, target->path))
    return fail("attach", "egressd runs inside " + target->path +
                              ", which would fence egressd itself; run it outside the fenced cgroup");
  if (auto d = find_delegation(target->path, *root))
    spdlog::warn("{} is delegated to uid {}: that user's processes can move themselves out of the fence "
                 "within it; fence a cgroup above the delegation (e.g. a system slice) instead",
                 d->dir, d->uid);

  // Two descriptors per proxied connection: take every one the host allows.
  FdLimit fds = raise_fd_limit();
  if (fds.failed)
    spdlog::warn("open files: {}; staying at {}", fds.failed->message(), fds.soft);
  else if (fds.soft != fds.before)
    spdlog::info("open files: soft limit raised from {} to {} (the hard limit)", fds.before, fds.soft);
  popt.max_sessions = proxy_sessions_for(fds.soft, dopt.max_tcp_clients, popt.max_sessions);
  auto say = [](const std::string& line) { spdlog::warn("{}", line); };
  popt.warn = say;
  dopt.warn = say;

  auto loop = Loop::create();
  if (!loop) return fail("attach", loop.error().message());
  // One list for the proxy's checks and the resolver: --dns-upstream >
  // [dns] upstream > /etc/resolv.conf. egressd is outside the fence, so an
  // upstream on loopback (systemd-resolved's 127.0.0.53) is never steered.
  auto upstreams = dns_upstreams(args.get("dns-upstream"), *p);
  if (!upstreams) return fail("attach", upstreams.error().message());
  dopt.upstream.upstreams = *upstreams;
  auto resolver = make_proxy_resolver(*loop, *upstreams);
  if (!resolver) return fail("attach", resolver.error().message());

  Result<Attached> attached = logic_error("unset");
  Result<UniqueFd> pidfile = logic_error("unset");
  {
    auto lock = lock_target(*target);
    if (!lock) return fail("attach", lock.error().message());
    attached = attach_cgroup(target->path, target->id, *p);
    if (!attached) return fail("attach", attached.error().message());
    remove_detached_record(target->id);  // fenced again: status no longer reports it detached
    // One consumer per ring: the daemon of a previous attach hands over,
    // and we take the pidfile before anyone else can look.
    if (!stop_daemon(*target, 5000)) spdlog::warn("previous daemon did not exit");
    pidfile = claim_pidfile(*target);
    if (!pidfile)
      return fail("attach", pidfile.error().message() + " (the new policy is in force; this daemon exits)");
  }
  if (!attached->install.warning.empty()) spdlog::warn("after the policy swap: {}", attached->install.warning);
  MapFds& maps = attached->maps;
  // Pins left for this path by a cgroup that is gone (recreated while no
  // daemon ran) fence nothing; this attachment replaces them.
  for (const Pinned& old : pinned_attachments()) {
    if (old.path != target->path || old.id == target->id || !pinned_cgroup_gone(old)) continue;
    if (auto s = remove_stale(old); !s)
      spdlog::warn("stale pins of removed cgroup id {}: {}", old.id, s.error().message());
    else
      spdlog::info("removed the stale pins of cgroup id {} (an earlier {}, removed)", old.id, target->path);
  }

  // The hub keeps its own epoll set (it registers fds by number); the loop
  // watches that set as one fd.
  UniqueFd hub_ep(epoll_create1(EPOLL_CLOEXEC));
  auto hub = Hub::listen(target->pins.socket(), target->path, hub_ep.get());
  if (!hub) return fail("attach", hub.error().message());
  auto publish = [&hub](const Event& e) {
    spdlog::info("{}", to_text(e));
    hub->publish(e);
  };

  // The proxy the hooks steer web ports to. Until it is registered in
  // egd_proxy, steered connects are refused (fail closed).
  BpfSteeredTable orig_table(maps.orig_by_port.get());
  auto in_force = active(*p);  // one compiled policy for the proxy and the resolver
  auto proxy = proxy::Proxy::start(*loop, orig_table, **resolver, publish, in_force, popt);
  if (!proxy) return fail("attach", "start the proxy: " + proxy.error().message());
  // The resolver the hooks steer DNS to. Registering its port turns DNS
  // steering on for good: from then on no query from the cgroup leaves
  // unless this resolver (or a successor) forwards it.
  dns::BpfClientIdentity dns_identity(maps.orig_by_cookie.get(), maps.orig_by_port.get());
  // The families with a default route in this netns (the one the fenced
  // processes connect from when they share the daemon's): the resolver
  // leaves out the others' addresses ([dns] drop_unroutable_families).
  auto describe = [](RouteFamilies f) {
    return std::string("IPv4 ") + (f.v4 ? "routed" : "no default route") + ", IPv6 " +
           (f.v6 ? "routed" : "no default route");
  };
  auto routes = NetlinkRoutes::start(*loop, [&describe](RouteFamilies f) {
    spdlog::info("routes changed: {}", describe(f));
  });
  if (routes) {
    dopt.routes = routes->get();
    spdlog::info("routes: {}", describe((*routes)->families()));
  } else {
    spdlog::warn("cannot read the routing table ({}): the resolver answers every address family",
                 routes.error().message());
  }
  auto dns_server = dns::Server::start(*loop, dns_identity, publish, in_force, dopt);
  if (!dns_server) return fail("attach", "start the resolver: " + dns_server.error().message());
  (*resolver)->answers_first([server = dns_server->get()](const std::string& name) { return server->cached_addresses(name); });
  (*dns_server)->observe_answers([r = resolver->get()](std::string_view qname, uint16_t qtype,
                                                        std::span<const uint8_t> message) {
    r->remember(qname, qtype, message);
  });
  if (auto s = set_proxy_ports(maps, (*proxy)->port(), (*dns_server)->port()); !s)
    return fail("attach", s.error().message());
  // A new policy for both; [dns] upstream is read at attach only.
  auto swap_policy = [&](const policy::Policy& np) {
    auto next = active(np);
    (*proxy)->set_policy(next);
    (*dns_server)->set_policy(next);
    if (!args.has("dns-upstream") && np.dns.upstream != p->dns.upstream)
      spdlog::warn("[dns] upstream changed: the resolver keeps its upstreams until the next attach");
  };

  // Prometheus: bound only now, after a previous daemon (which may hold the
  // same address) has stopped.
  std::unique_ptr<MetricsServer> metrics;
  if (metrics_at) {
    auto m = MetricsServer::start(*loop, metrics_at->at, metrics_source(maps, **proxy, **dns_server, *hub),
                                  metrics_at->options);
    if (!m) return fail("attach", "metrics: " + m.error().message());
    metrics = std::move(*m);
    spdlog::info("metrics on {} (GET /metrics)", metrics->where());
  }

  RingContext rctx{&hub.value(), boottime_to_unix_offset_ns()};
  ring_buffer* rb = ring_buffer__new(maps.events.get(), on_ring_record, &rctx, nullptr);
  if (!rb) return fail("attach", sys_error("open event ring").message());

  // The fence follows the cgroup's path: a removed directory is made again
  // and a recreated one fenced at once (cli/refence.h).
  bool running = true;
  auto refencer = Refencer::start(*loop, *target, maps, *hub, *root, [&running] { running = false; }, &attached->programs);
  if (!refencer) return fail("attach", "watch " + target->path + ": " + refencer.error().message());

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  UniqueFd sfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  int exit_code = 0;
  FnWatcher ring_w, sig_w, hub_w;
  ring_w.fn = [&](uint32_t) { ring_buffer__consume(rb); };
  hub_w.fn = [&](uint32_t) {
    epoll_event evs[32];
    int n = epoll_wait(hub_ep.get(), evs, 32, 0);
    for (int i = 0; i < n; ++i) hub->handle(evs[i].data.fd, evs[i].events);
  };
  sig_w.fn = [&](uint32_t) {
    signalfd_siginfo si{};
    while (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
      if (si.ssi_signo == SIGHUP) {
        if (auto np = reload_policy(*target, maps)) swap_policy(*np);
      } else if (si.ssi_signo == SIGUSR1) {
        if (auto np = reread_policy(maps)) swap_policy(*np);
      } else {
        if (path_exists(target->pins.dir))
          spdlog::info("exiting on signal {}; {} stays fenced (egressd detach removes the fence)",
                       strsignal(static_cast<int>(si.ssi_signo)), target->path);
        else
          spdlog::info("fence on {} removed; exiting", target->path);
        running = false;
      }
    }
  };
  for (auto [fd, w] : {std::pair<int, FnWatcher*>{ring_buffer__epoll_fd(rb), &ring_w}, {sfd.get(), &sig_w},
                       {hub_ep.get(), &hub_w}}) {
    if (auto s = loop->add(fd, EPOLLIN, w); !s) return fail("attach", s.error().message());
  }

  spdlog::info("enforcing on {} (cgroup id {}, policy {}, generation {}, {} map entries{}; load {:.1f} ms, policy {:.1f} ms)",
               target->path, target->id, p->source, attached->install.gen, attached->install.entries,
               attached->adopted ? ", adopted existing pins" : "", attached->load_ms, attached->install.write_ms);
  spdlog::info("proxy listening on 127.0.0.1:{} and [::1]:{}", (*proxy)->port(), (*proxy)->port());
  std::string ups;
  for (const auto& u : *upstreams) ups += (ups.empty() ? "" : ", ") + dns::to_string(u);
  spdlog::info("resolver listening on 127.0.0.1:{} and [::1]:{} (UDP and TCP; upstreams {}); the cgroup's DNS goes there",
               (*dns_server)->port(), (*dns_server)->port(), ups);
  ShareCaps pc = (*proxy)->share_caps(), dc = (*dns_server)->tcp_share_caps();
  spdlog::info("connections held at once: proxy {} ({} per process, {} per user; open-file limit {}), "
               "resolver TCP {} ({} per process, {} per user); more are refused (too-many-connections)",
               pc.total, pc.per_process, pc.per_uid, fds.soft, dc.total, dc.per_process, dc.per_uid);
  sd_notify("READY=1\nSTATUS=enforcing on " + target->path + "\nMAINPID=" + std::to_string(getpid()));

  uint64_t last_drops = 0, last_hub_drops = 0, last_dns_suppressed = 0, last_proxy_suppressed = 0;
  auto next_housekeeping = std::chrono::steady_clock::now();
  while (running) {
    // Producers wake us only when the ring fills up (EGD_RING_WAKEUP_BYTES);
    // otherwise events are collected on this tick.
    if (auto s = loop->run_once(EGD_EVENT_POLL_MS); !s) {
      exit_code = fail("attach", s.error().message());
      break;
    }
    ring_buffer__consume(rb);
    if (std::chrono::steady_clock::now() >= next_housekeeping) {
      next_housekeeping = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      // Housekeeping: report ring overflow, and leave if detached.
      hub->tick();
      (*refencer)->reconcile();  // in case inotify lost an event
      if (!path_exists(target->pins.dir)) {
        spdlog::info("attachment removed (egressd detach); exiting");
        break;
      }
      if (hub->dropped_lines() != last_hub_drops) {
        last_hub_drops = hub->dropped_lines();
        spdlog::warn("{} event lines dropped for subscribers too slow to read them", last_hub_drops);
      }
      if (uint64_t n = (*dns_server)->stats().events_suppressed; n != last_dns_suppressed) {
        last_dns_suppressed = n;
        spdlog::warn("resolver: {} events not recorded so far (rate limit: a flood of denied or malformed queries)", n);
      }
      if (uint64_t n = (*proxy)->stats().events_suppressed; n != last_proxy_suppressed) {
        last_proxy_suppressed = n;
        spdlog::warn("proxy: {} too-many-connections events not recorded so far (rate limit)", n);
      }
      if (auto c = read_counters(maps); c && (*c)[EGD_STAT_RING_DROPS] != last_drops) {
        spdlog::warn("event ring overflowed: {} events dropped so far", (*c)[EGD_STAT_RING_DROPS]);
        last_drops = (*c)[EGD_STAT_RING_DROPS];
      }
    }
  }
  ring_buffer__consume(rb);
  ring_buffer__free(rb);
  // Steered connects get EPERM (no-proxy) from now on rather than a refused
  // connection to a port someone else could bind; a daemon that already
  // took over has registered its own port, which stays.
  if (path_exists(target->pins.dir)) {
    auto c = read_proxy_conf(maps);
    // DNS steering stays on: steered queries are refused (no-proxy), never let out.
    if (c && c->port == (*proxy)->port() && c->dns_port == (*dns_server)->port()) (void)set_proxy_ports(maps, 0, 0);
  }
  // Our pidfile, still locked by us: remove it before the lock goes.
  unlink(target->pins.pidfile().c_str());
  return exit_code;
}

}  // namespace egressd::cli
