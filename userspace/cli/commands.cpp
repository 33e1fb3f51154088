// commands.cpp: the short-lived verbs. Each works from the pins alone, so it
// behaves the same whether or not a daemon is running.
#include "cli/commands.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "bpf/fence.h"
#include "bpf/loader.h"
#include "bpf/policy_maps.h"
#include "cli/args.h"
#include "cli/policy_source.h"
#include "cli/stale_pins.h"
#include "cli/target.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "events/event.h"
#include "events/format.h"
#include "policy/compiler.h"

namespace egressd::cli {
namespace {

std::string cstr(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

struct Status1 {
  uint64_t id;
  egd_meta meta;
  Counters counters;
  FenceCheck fence;
  int daemon;
  egd_proxy_conf steering;  // port 0: no proxy registered (web ports are refused); dns_port likewise
};

egd_proxy_conf steering(const MapFds& maps) {
  auto c = read_proxy_conf(maps);
  return c ? *c : egd_proxy_conf{};
}

void print_counters_text(const Counters& c, unsigned verdict) {
  bool any = false;
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
    uint64_t v = c[verdict * EGD_REASON__COUNT + r];
    if (!v) continue;
    std::printf("%s %s %llu", any ? "," : "", std::string(reason_name(r)).c_str(), static_cast<unsigned long long>(v));
    any = true;
  }
  if (!any) std::printf(" none");
  std::printf("\n");
}

std::string counters_json(const Counters& c, unsigned verdict) {
  std::string s = "{";
  bool first = true;
  for (unsigned r = 0; r < EGD_REASON__COUNT; ++r) {
    uint64_t v = c[verdict * EGD_REASON__COUNT + r];
    if (!v) continue;
    s += std::string(first ? "" : ",") + "\"" + std::string(reason_name(r)) + "\":" + std::to_string(v);
    first = false;
  }
  return s + "}";
}

int connect_unix(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) return -1;
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads one '\n'-terminated line (bounded) with a deadline.
bool read_line(int fd, std::string& line, int timeout_ms) {
  line.clear();
  for (int i = 0; i < 512; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return false;
    char c;
    if (recv(fd, &c, 1, 0) != 1) return false;
    if (c == '\n') return true;
    line.push_back(c);
  }
  return false;
}

// Removes the stale attachments for `path` (every one if empty); returns
// how many, printing each.
int detach_stale(const std::string& path, bool& failed) {
  int removed = 0;
  for (const Pinned& p : pinned_attachments()) {
    if ((!path.empty() && p.path != path) || !pinned_cgroup_gone(p)) continue;
    if (auto s = remove_stale(p); !s) {
      std::fprintf(stderr, "egressd detach: %s (cgroup id %llu): %s\n", p.path.c_str(),
                   static_cast<unsigned long long>(p.id), s.error().message().c_str());
      failed = true;
      continue;
    }
    std::printf("%s: stale pins of removed cgroup id %llu removed\n", p.path.c_str(),
                static_cast<unsigned long long>(p.id));
    ++removed;
  }
  return removed;
}

}  // namespace

int cmd_check(const std::vector<std::string>& argv) {
  Args args(argv, {}, {});
  if (args.positional().size() != 1) throw UsageError("check takes one FILE");
  auto p = load_policy(args.positional()[0]);
  if (!p) return fail("check", p.error().message());
  std::printf("%s: OK\n%s", args.positional()[0].c_str(), policy::summarize(*p).c_str());
  return 0;
}

int cmd_reload(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "policy"}, {});
  if (auto s = check_bpf_privileges(); !s) return fail("reload", s.error().message());
  auto t = resolve_target(args.require("cgroup"), false);
  if (!t) return fail("reload", t.error().message());
  auto lock = lock_target(*t);
  if (!lock) return fail("reload", lock.error().message());
  auto started = std::chrono::steady_clock::now();
  auto maps = open_pinned_maps(t->pins);
  if (!maps) return fail("reload", "no egressd attachment on " + t->path + " (" + maps.error().message() + ")");
  std::string path = args.get("policy");
  if (path.empty()) {
    auto meta = read_meta(*maps);
    if (!meta) return fail("reload", meta.error().message());
    path = cstr(meta->policy_path, sizeof(meta->policy_path));
  }
  auto p = load_policy(path);
  if (!p) return fail("reload", p.error().message() + "\nthe previous policy stays in force");
  auto installed = install_policy(*maps, *p);
  if (!installed) return fail("reload", installed.error().message() + "\nthe previous policy stays in force");
  if (!installed->warning.empty()) std::fprintf(stderr, "egressd reload: warning: %s\n", installed->warning.c_str());
  // The kernel has the new policy; the daemon's proxy re-reads it for its host rules.
  signal_daemon(*t, SIGUSR1);
  double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::printf("%s: policy %s in force (generation %u, %zu map entries; %.0f ms in all, %.0f ms writing maps)\n",
              t->path.c_str(), path.c_str(), installed->gen, installed->entries, total_ms, installed->write_ms);
  return 0;
}

int cmd_detach(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup"}, {"stale"});
  if (!args.has("cgroup") && !args.has("stale")) throw UsageError("detach takes --cgroup CG, --stale, or both");
  if (auto s = check_bpf_privileges(); !s) return fail("detach", s.error().message());
  bool failed = false;
  if (!args.has("cgroup")) {
    // Pins whose cgroup was removed (or recreated and not fenced again).
    int n = detach_stale("", failed);
    if (n == 0 && !failed) std::printf("no stale egressd pins\n");
    return failed ? 1 : 0;
  }
  auto root = cgroup2_mount();
  if (!root) return fail("detach", root.error().message());
  auto path = resolve_cgroup_arg(args.get("cgroup"), *root);
  if (!path) return fail("detach", path.error().message());
  // Pins left for this path by a cgroup that is gone (recreated, or removed
  // for good) go too: detach means "no egressd on this name".
  int stale = detach_stale(*path, failed);
  if (!path_exists(*path)) {
    if (stale > 0 || failed) return failed ? 1 : 0;
    return fail("detach", "cgroup " + *path + " does not exist and no egressd pins name it");
  }
  auto t = resolve_target(*path, false);
  if (!t) return fail("detach", t.error().message());
  auto lock = lock_target(*t);
  if (!lock) return fail("detach", lock.error().message());
  if (!path_exists(t->pins.dir)) {
    if (stale > 0 || failed) return failed ? 1 : 0;
    return fail("detach", t->path + " is not fenced by egressd");
  }
  if (auto s = detach_cgroup(t->id); !s) return fail("detach", s.error().message());
  stop_daemon(*t, 5000);
  unlink(t->pins.socket().c_str());
  unlink(t->pins.pidfile().c_str());
  std::printf("%s: fence removed\n", t->path.c_str());
  return failed ? 1 : 0;
}

// Exit status of `status` when a cgroup is not fenced although egressd pins
// say it should be (recreated and not re-attached, or programs missing).
constexpr int kExitUnfenced = 3;

int cmd_status(const std::vector<std::string>& argv) {
  Args args(argv, {}, {"json"});
  if (auto s = check_bpf_privileges(); !s) return fail("status", s.error().message());
  std::vector<Status1> all;
  std::vector<uint64_t> ids = pinned_cgroups();
  for (uint64_t id : ids) {
    PinLayout pins = pins_for(id);
    auto maps = open_pinned_maps(pins);
    if (!maps) {
      std::fprintf(stderr, "egressd status: %s: %s\n", pins.dir.c_str(), maps.error().message().c_str());
      continue;
    }
    auto meta = read_meta(*maps);
    auto counters = read_counters(*maps);
    if (!meta || !counters) continue;
    Target t{cstr(meta->cgroup_path, sizeof(meta->cgroup_path)), id, pins};
    all.push_back({id, *meta, *counters, check_fence(pins, t.path, ids), daemon_pid(t), steering(*maps)});
  }
  bool json = args.has("json");
  int unfenced = 0;
  if (json) std::printf("{\"attachments\":[");
  for (size_t i = 0; i < all.size(); ++i) {
    const Status1& s = all[i];
    std::string cg = cstr(s.meta.cgroup_path, sizeof(s.meta.cgroup_path));
    std::string pol = cstr(s.meta.policy_path, sizeof(s.meta.policy_path));
    uint64_t drops = s.counters[EGD_STAT_RING_DROPS];
    bool enforcing = s.fence.state == FenceCheck::State::kEnforcing;
    if (s.fence.state == FenceCheck::State::kUnfenced) ++unfenced;
    if (json) {
      std::printf("%s{\"cgroup\":\"%s\",\"cgroup_id\":%llu,\"state\":\"%s\",\"reason\":\"%s\","
                  "\"current_cgroup_id\":%llu,\"reattached\":%u,\"policy\":\"%s\",\"generation\":%u,"
                  "\"attached_at\":\"%s\",\"policy_loaded_at\":\"%s\",\"links\":%d,\"fenced\":%s,"
                  "\"daemon_pid\":%d,\"proxy_port\":%u,\"dns_port\":%u,\"dns_steered\":%s,\"allowed\":%s,\"denied\":%s,\"audited\":%s,\"ring_drops\":%llu}",
                  i ? "," : "", json_escape(cg).c_str(), static_cast<unsigned long long>(s.id),
                  std::string(fence_state_name(s.fence.state)).c_str(), json_escape(s.fence.reason).c_str(),
                  static_cast<unsigned long long>(s.fence.current_id), s.meta.reattached,
                  json_escape(pol).c_str(), s.meta.gen, iso8601(s.meta.attached_at_unix_ns).c_str(),
                  iso8601(s.meta.policy_loaded_unix_ns).c_str(), s.fence.attached, enforcing ? "true" : "false", s.daemon,
                  static_cast<unsigned>(s.steering.port), static_cast<unsigned>(s.steering.dns_port),
                  (s.steering.flags & EGD_PROXY_F_DNS) ? "true" : "false", counters_json(s.counters, EGD_VERDICT_ALLOW).c_str(),
                  counters_json(s.counters, EGD_VERDICT_DENY).c_str(),
                  counters_json(s.counters, EGD_VERDICT_AUDIT).c_str(), static_cast<unsigned long long>(drops));
      continue;
    }
    std::printf("%s (cgroup id %llu)\n", cg.c_str(), static_cast<unsigned long long>(s.id));
    switch (s.fence.state) {
      case FenceCheck::State::kEnforcing:
        std::printf("  fence:    enforcing (%d/%d programs attached)\n", s.fence.attached, kProgramCount);
        break;
      case FenceCheck::State::kUnfenced:
        std::printf("  fence:    UNFENCED: %s\n", s.fence.reason.c_str());
        std::printf("            (egressd attach --cgroup %s fences it again)\n", cg.c_str());
        break;
      case FenceCheck::State::kStale:
        std::printf("  fence:    stale: %s\n", s.fence.reason.c_str());
        std::printf("            (%s; egressd detach --stale removes these pins)\n",
                    s.daemon ? "its daemon fences the path again when it is made" : "no daemon watches the path");
        break;
    }
    if (s.meta.reattached)
      std::printf("  moved:    %u time%s onto a recreated cgroup at the same path\n", s.meta.reattached,
                  s.meta.reattached == 1 ? "" : "s");
    std::printf("  policy:   %s (generation %u, loaded %s; %u allow_cidr, %u deny_cidr, %u host rules)\n",
                pol.c_str(), s.meta.gen, iso8601(s.meta.policy_loaded_unix_ns).c_str(), s.meta.n_allow_cidrs,
                s.meta.n_deny_cidrs, s.meta.n_host_rules);
    std::printf("  since:    %s\n", iso8601(s.meta.attached_at_unix_ns).c_str());
    if (s.daemon)
      std::printf("  daemon:   pid %d\n", s.daemon);
    else if (enforcing)
      std::printf("  daemon:   not running (the fence holds; events wait in the ring until one attaches)\n");
    else
      std::printf("  daemon:   not running\n");
    if (s.steering.port)
      std::printf("  proxy:    127.0.0.1:%u and [::1]:%u (web ports are steered there)\n", s.steering.port,
                  s.steering.port);
    else
      std::printf("  proxy:    none registered (web ports are refused)\n");
    if (s.steering.dns_port)
      std::printf("  resolver: 127.0.0.1:%u and [::1]:%u (DNS to any address is steered there)\n", s.steering.dns_port,
                  s.steering.dns_port);
    else if (s.steering.flags & EGD_PROXY_F_DNS)
      std::printf("  resolver: none running (DNS is refused until a daemon serves it)\n");
    else
      std::printf("  resolver: none registered yet (DNS passes at L4)\n");
    std::printf("  denied:  ");
    print_counters_text(s.counters, EGD_VERDICT_DENY);
    std::printf("  allowed: ");
    print_counters_text(s.counters, EGD_VERDICT_ALLOW);
    std::printf("  ring drops: %llu\n", static_cast<unsigned long long>(drops));
  }
  if (json) std::printf("]}\n");
  if (!json && all.empty()) std::printf("no cgroup is fenced by egressd\n");
  if (unfenced) {
    std::fprintf(stderr, "egressd status: %d cgroup%s UNFENCED\n", unfenced, unfenced == 1 ? "" : "s");
    return kExitUnfenced;
  }
  return 0;
}

int cmd_tail(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup"}, {"json"});
  std::vector<std::string> sockets;
  if (args.has("cgroup")) {
    auto t = resolve_target(args.get("cgroup"), false);
    if (!t) return fail("tail", t.error().message());
    sockets.push_back(t->pins.socket());
  } else if (DIR* d = opendir(run_dir().c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".sock") sockets.push_back(run_dir() + "/" + n);
    }
    closedir(d);
  }
  std::vector<pollfd> fds;
  const std::string hello = args.has("json") ? "json\n" : "text\n";
  for (const std::string& path : sockets) {
    int fd = connect_unix(path);
    std::string reply;
    if (fd < 0 || send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()) ||
        !read_line(fd, reply, 5000) || reply.rfind("ok ", 0) != 0) {
      if (fd >= 0) close(fd);
      std::fprintf(stderr, "egressd tail: no daemon answers on %s\n", path.c_str());
      continue;
    }
    std::fprintf(stderr, "egressd tail: following %s\n", reply.substr(3).c_str());
    fds.push_back({fd, POLLIN, 0});
  }
  if (fds.empty())
    return fail("tail", "no egressd daemon is running" +
                            std::string(args.has("cgroup") ? " for that cgroup" : "") +
                            " (start one with egressd attach; the fence itself does not need it)");
  // Several daemons may be followed at once: write only whole lines.
  std::vector<std::string> partial(fds.size());
  char chunk[65536];
  while (!fds.empty()) {
    if (poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < fds.size();) {
      if (fds[i].revents == 0) {
        ++i;
        continue;
      }
      ssize_t n = recv(fds[i].fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        close(fds[i].fd);
        fds.erase(fds.begin() + static_cast<long>(i));
        partial.erase(partial.begin() + static_cast<long>(i));
        continue;
      }
      std::string& buf = partial[i];
      buf.append(chunk, static_cast<size_t>(n));
      size_t end = buf.rfind('\n');
      if (end != std::string::npos) {
        if (fwrite(buf.data(), 1, end + 1, stdout) != end + 1) return 1;
        fflush(stdout);
        buf.erase(0, end + 1);
      }
      ++i;
    }
  }
  std::fprintf(stderr, "egressd tail: the daemon went away\n");
  return 1;
}

}  // namespace egressd::cli
