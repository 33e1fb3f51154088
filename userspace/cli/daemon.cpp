// daemon.cpp: `egressd attach`: fence a cgroup, then stay in the foreground
// consuming the event ring (log + live subscribers) until told to stop.
// Stopping the daemon never unfences: links and maps are pinned.
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

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "bpf/loader.h"
#include "cli/args.h"
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

void reload_policy(const Target& target, const MapFds& maps) {
  // Serialised with `egressd reload`, but never waiting: a daemon blocked
  // here would not see the SIGTERM of an attach or detach holding the lock.
  auto lock = lock_target(target, /*wait=*/false);
  if (!lock) {
    spdlog::error("reload skipped: {} (another attach/reload/detach is in progress)", lock.error().message());
    return;
  }
  auto meta = read_meta(maps);
  if (!meta) {
    spdlog::error("reload: {}", meta.error().message());
    return;
  }
  std::string path(meta->policy_path, strnlen(meta->policy_path, sizeof(meta->policy_path)));
  auto p = load_policy(path);
  if (!p) {
    spdlog::error("reload rejected, the previous policy stays in force: {}", p.error().message());
    return;
  }
  auto installed = install_policy(maps, *p);
  if (!installed) {
    spdlog::error("reload failed, the previous policy stays in force: {}", installed.error().message());
    return;
  }
  if (!installed->warning.empty()) spdlog::warn("after the policy swap: {}", installed->warning);
  spdlog::info("policy {} in force (generation {})", path, installed->gen);
}

}  // namespace

int cmd_attach(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "policy"}, {});
  std::string cg_arg = args.require("cgroup");
  std::string policy_path = args.get("policy");
  // Logs go to stderr (journald under systemd); stdout stays free.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("egressd"));
  spdlog::set_pattern("egressd: %l: %v");

  if (auto s = check_bpf_privileges(); !s) return fail("attach", s.error().message());
  auto p = load_policy(policy_path);
  if (!p) return fail("attach", p.error().message());
  auto target = resolve_target(cg_arg, /*create=*/true);
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

  Result<Attached> attached = logic_error("unset");
  Result<UniqueFd> pidfile = logic_error("unset");
  {
    auto lock = lock_target(*target);
    if (!lock) return fail("attach", lock.error().message());
    attached = attach_cgroup(target->path, target->id, *p);
    if (!attached) return fail("attach", attached.error().message());
    // One consumer per ring: the daemon of a previous attach hands over,
    // and we take the pidfile before anyone else can look.
    if (!stop_daemon(*target, 5000)) spdlog::warn("previous daemon did not exit");
    pidfile = claim_pidfile(*target);
    if (!pidfile)
      return fail("attach", pidfile.error().message() + " (the new policy is in force; this daemon exits)");
  }
  if (!attached->install.warning.empty()) spdlog::warn("after the policy swap: {}", attached->install.warning);
  MapFds& maps = attached->maps;

  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  auto hub = Hub::listen(target->pins.socket(), target->path, ep.get());
  if (!hub) return fail("attach", hub.error().message());

  RingContext rctx{&hub.value(), boottime_to_unix_offset_ns()};
  ring_buffer* rb = ring_buffer__new(maps.events.get(), on_ring_record, &rctx, nullptr);
  if (!rb) return fail("attach", sys_error("open event ring").message());

  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  auto watch = [&](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
  };
  watch(ring_buffer__epoll_fd(rb));
  watch(sfd.get());

  spdlog::info("enforcing on {} (cgroup id {}, policy {}, generation {}, {} map entries{}; load {:.1f} ms, policy {:.1f} ms)",
               target->path, target->id, p->source, attached->install.gen, attached->install.entries,
               attached->adopted ? ", adopted existing pins" : "", attached->load_ms, attached->install.write_ms);
  sd_notify("READY=1\nSTATUS=enforcing on " + target->path + "\nMAINPID=" + std::to_string(getpid()));

  int exit_code = 0;
  uint64_t last_drops = 0, last_hub_drops = 0;
  auto next_housekeeping = std::chrono::steady_clock::now();
  for (bool running = true; running;) {
    epoll_event evs[32];
    // Producers wake us only when the ring fills up (EGD_RING_WAKEUP_BYTES);
    // otherwise events are collected on this tick.
    int n = epoll_wait(ep.get(), evs, 32, EGD_EVENT_POLL_MS);
    if (n < 0 && errno != EINTR) {
      exit_code = fail("attach", sys_error("epoll_wait").message());
      break;
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == ring_buffer__epoll_fd(rb)) {
        continue;  // consumed below, on every wakeup
      } else if (fd == sfd.get()) {
        signalfd_siginfo si{};
        while (read(sfd.get(), &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGHUP) {
            reload_policy(*target, maps);
          } else {
            if (path_exists(target->pins.dir))
              spdlog::info("exiting on signal {}; {} stays fenced (egressd detach removes the fence)",
                           strsignal(static_cast<int>(si.ssi_signo)), target->path);
            else
              spdlog::info("fence on {} removed; exiting", target->path);
            running = false;
          }
        }
      } else {
        hub->handle(fd, evs[i].events);
      }
    }
    ring_buffer__consume(rb);
    if (std::chrono::steady_clock::now() >= next_housekeeping) {
      next_housekeeping = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      // Housekeeping: report ring overflow, and leave if detached.
      hub->tick();
      if (!path_exists(target->pins.dir)) {
        spdlog::info("attachment removed (egressd detach); exiting");
        break;
      }
      if (hub->dropped_lines() != last_hub_drops) {
        last_hub_drops = hub->dropped_lines();
        spdlog::warn("{} event lines dropped for subscribers too slow to read them", last_hub_drops);
      }
      if (auto c = read_counters(maps); c && (*c)[EGD_STAT_RING_DROPS] != last_drops) {
        spdlog::warn("event ring overflowed: {} events dropped so far", (*c)[EGD_STAT_RING_DROPS]);
        last_drops = (*c)[EGD_STAT_RING_DROPS];
      }
    }
  }
  ring_buffer__consume(rb);
  ring_buffer__free(rb);
  // Our pidfile, still locked by us: remove it before the lock goes.
  unlink(target->pins.pidfile().c_str());
  return exit_code;
}

}  // namespace egressd::cli
