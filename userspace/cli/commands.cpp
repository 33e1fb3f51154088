// commands.cpp: the short-lived verbs. Each works from the pins alone, so it
// behaves the same whether or not a daemon is running.
#include "cli/commands.h"

#include <grp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <variant>

#include "attachment/detached_record.h"
#include "attachment/policy_source.h"
#include "attachment/stale_pins.h"
#include "attachment/target.h"
#include "bpf/fence.h"
#include "bpf/loader.h"
#include "bpf/policy_maps.h"
#include "cli/args.h"
#include "cli/fence_removal.h"
#include "cli/status_report.h"
#include "common/caps.h"
#include "common/cgroup.h"
#include "common/clock.h"
#include "common/dir_entries.h"
#include "daemon/policy_reinstall.h"
#include "events/subscribe.h"
#include "policy/compiler.h"

namespace egressd::cli {

using namespace attachment;  // the attachment every verb works on

int fail(const char* verb, const std::string& message) {
  std::fprintf(stderr, "egressd %s: %s\n", verb, message.c_str());
  return 1;
}
namespace {

std::string cstr(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

// Why connecting to a daemon's event socket was refused, and how to get in:
// it is 0660 (events name processes and destinations) and the daemon's
// group is root's unless it runs with another.
std::string socket_access_hint(const std::string& path) {
  std::string how = "run egressd tail as root (sudo egressd tail)";
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && st.st_gid != 0) {
    const group* g = getgrgid(st.st_gid);
    how += ", or as a member of group " + (g ? std::string(g->gr_name) : std::to_string(st.st_gid));
  }
  return "permission denied on " + path + ", the daemon's event socket (mode 0660: events name processes and "
         "destinations): " + how;
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
  Args args(argv, {"cgroup", "user", "policy"}, {});
  if (auto s = check_bpf_privileges(); !s) return fail("reload", s.error().message());
  auto req = cgroup_request(args);
  if (!req) return fail("reload", req.error().message());
  auto t = resolve_target(*req, false);
  if (!t) return fail("reload", t.error().message());
  auto lock = lock_target(*t);
  if (!lock) return fail("reload", lock.error().message());
  auto started = std::chrono::steady_clock::now();
  auto maps = open_pinned_maps(t->pins);
  if (!maps) return fail("reload", "no egressd attachment on " + t->path + " (" + maps.error().message() + ")");
  auto r = daemon::reinstall_policy(*maps, args.get("policy"), daemon::Install::Always);
  if (auto* e = std::get_if<daemon::ReinstallError>(&r))
    return fail("reload", e->error.message() +
                              (e->step == daemon::ReinstallStep::ReadRecord ? "" : "\nthe previous policy stays in force"));
  const daemon::Reinstalled& done = std::get<daemon::Reinstalled>(r);
  const InstallInfo& installed = *done.install;
  if (!installed.warning.empty()) std::fprintf(stderr, "egressd reload: warning: %s\n", installed.warning.c_str());
  // The kernel has the new policy; the daemon's proxy re-reads it for its host rules.
  signal_daemon(*t, SIGUSR1);
  double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  std::printf("%s: policy %s in force (generation %u, %zu map entries; %.0f ms in all, %.0f ms writing maps)\n",
              t->path.c_str(), done.path.c_str(), installed.gen, installed.entries, total_ms, installed.write_ms);
  return 0;
}

int cmd_detach(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "user"}, {"stale"});
  if (!args.has("cgroup") && !args.has("stale")) throw UsageError("detach takes --cgroup CG, --stale, or both");
  if (auto s = check_bpf_privileges(); !s) return fail("detach", s.error().message());
  bool failed = false;
  if (!args.has("cgroup")) {
    // Pins whose cgroup was removed (or recreated and not fenced again).
    int n = detach_stale("", failed);
    if (n == 0 && !failed) std::printf("no stale egressd pins\n");
    prune_detached_records();
    return failed ? 1 : 0;
  }
  auto req = cgroup_request(args);
  if (!req) return fail("detach", req.error().message());
  auto t = resolve_target(*req, false);
  if (!t) {
    // The cgroup is gone: pins it left for its path still go.
    auto root = cgroup2_mount();
    auto path = root ? resolve_cgroup_arg(args.get("cgroup"), *root) : Result<std::string>(root.error());
    if (path && !args.has("user") && detach_stale(*path, failed) > 0) return failed ? 1 : 0;
    return fail("detach", t.error().message());
  }
  // Pins left for this path by a cgroup that is gone (recreated, or removed
  // for good) go too: detach means "no egressd on this name".
  int stale = detach_stale(t->path, failed);
  if (!path_exists(t->pins.dir)) {
    if (stale > 0 || failed) return failed ? 1 : 0;
    return fail("detach", t->path + " is not fenced by egressd");
  }
  std::string policy;  // for the record below: the pins that hold it go now
  if (auto maps = open_pinned_maps(t->pins)) {
    if (auto meta = read_meta(*maps)) policy = cstr(meta->policy_path, sizeof(meta->policy_path));
  }
  if (auto s = remove_fence(*t); !s) return fail("detach", s.error().message());
  std::printf("%s: fence removed\n", t->path.c_str());
  if (auto procs = cgroup_procs(t->path); procs) {  // gone: nothing runs there unfenced
    std::string w = unfenced_after_removal(t->path, procs->size(), args.has("user"));
    if (!w.empty()) {
      std::fprintf(stderr, "egressd detach: warning: %s\n", w.c_str());
      // What it warns about, status shows (UNFENCED) for as long as the cgroup lives on.
      if (auto s = write_detached_record({t->path, t->id, unix_now_ns(), policy}); !s)
        std::fprintf(stderr, "egressd detach: warning: egressd status will not show it: %s\n",
                     s.error().message().c_str());
    }
  }
  return failed ? 1 : 0;
}

// Exit status of `status` when a cgroup is not fenced although egressd pins
// say it should be (recreated and not re-attached, or programs missing).
constexpr int kExitUnfenced = 3;

int cmd_status(const std::vector<std::string>& argv) {
  Args args(argv, {}, {"json"});
  if (auto s = check_bpf_privileges(); !s) return fail("status", s.error().message());
  StatusReport report = gather_status();
  for (const std::string& p : report.problems) std::fprintf(stderr, "egressd status: %s\n", p.c_str());
  std::string out = args.has("json") ? status_json(report) : status_text(report, unix_now_ns());
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (int n = report.unfenced()) {
    std::fprintf(stderr, "egressd status: %d cgroup%s UNFENCED\n", n, n == 1 ? "" : "s");
    return kExitUnfenced;
  }
  return 0;
}

int cmd_tail(const std::vector<std::string>& argv) {
  Args args(argv, {"cgroup", "user"}, {"json"});
  std::vector<std::string> sockets;
  if (args.has("cgroup") || args.has("user")) {
    auto req = cgroup_request(args);
    if (!req) return fail("tail", req.error().message());
    auto t = resolve_target(*req, false);
    if (!t) return fail("tail", t.error().message());
    sockets.push_back(t->pins.socket());
  } else if (auto names = dir_entries(run_dir())) {
    for (const std::string& n : *names)
      if (n.size() > 5 && n.substr(n.size() - 5) == ".sock") sockets.push_back(run_dir() + "/" + n);
  }
  std::vector<pollfd> fds;
  size_t denied = 0;
  for (const std::string& path : sockets) {
    auto sub = subscribe_events(path, args.has("json") ? "json" : "text", 5000);
    if (!sub && sub.error().err == EACCES) {
      std::fprintf(stderr, "egressd tail: %s\n", socket_access_hint(path).c_str());
      ++denied;
      continue;
    }
    if (!sub) {
      std::fprintf(stderr, "egressd tail: no daemon answers on %s\n", path.c_str());
      continue;
    }
    std::fprintf(stderr, "egressd tail: following %s\n", sub->cgroup.c_str());
    fds.push_back({sub->fd.release(), POLLIN, 0});
  }
  if (fds.empty() && denied > 0)
    return fail("tail", "a daemon runs, but its event socket is not open to you (see above)");
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
