// egressd: eBPF egress fence for AI coding agents.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"

namespace {

constexpr const char* kUsage = R"(usage: egressd VERB [OPTIONS]

  attach --cgroup CG [--policy FILE]   fence CG (runs in the foreground; enforcement stays
                                       pinned when it exits); again on the same CG swaps policy
         [--dns-upstream IP[,IP]]      where allowed names are resolved (default: [dns] upstream,
                                       else /etc/resolv.conf)
         [--proxy-port N] [--dns-port N]
                                       fixed ports for the proxy and the resolver (default: any)
         [--proxy-timeout-ms N]        accept -> verdict limit of the proxy (default 10000)
         [--metrics unix:PATH | 127.0.0.1:PORT | [::1]:PORT]
                                       serve Prometheus metrics (GET /metrics); loopback only,
                                       a Unix socket is mode 0600
         [--metrics-group GROUP]       the Unix socket is 0660 for GROUP instead
  detach --cgroup CG                   remove the fence and its pins (and stale pins for CG)
  detach --stale                       remove the pins of cgroups that were removed
  reload --cgroup CG [--policy FILE]   swap the policy atomically (default: the current file)
  status [--json]                      per fenced cgroup: policy (file, hash, generation), since
                                       when, daemon, proxy/DNS ports, counters per reason;
                                       exits 3 if a cgroup is UNFENCED
  tail [--cgroup CG] [--json]          live decisions, one per line
  check FILE                           validate a policy and print a summary
  explain --policy FILE [--method M] URL
                                       the proxy's decision for URL and the rule behind it
  run [--policy FILE] [--user USER] [--tail] -- CMD [ARGS...]
                                       run CMD fenced in a cgroup of its own (as USER, default:
                                       $SUDO_USER under sudo); exits with CMD's status

CG is a systemd unit (claude.slice, run-r1.scope, agent.service; asked of
systemd when it runs, else a-b.slice = a.slice/a-b.slice), an absolute path
under the cgroup2 mount, or a path relative to that mount. With --user
USER|UID (attach, detach, reload, tail), CG is a slice of that user's systemd
manager, below user@UID.service.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string verb = argv[1];
  std::vector<std::string> rest(argv + 2, argv + argc);
  using namespace egressd::cli;
  try {
    if (verb == "attach") return cmd_attach(rest);
    if (verb == "detach") return cmd_detach(rest);
    if (verb == "reload") return cmd_reload(rest);
    if (verb == "status") return cmd_status(rest);
    if (verb == "tail") return cmd_tail(rest);
    if (verb == "check") return cmd_check(rest);
    if (verb == "explain") return cmd_explain(rest);
    if (verb == "run") return cmd_run(rest);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "egressd %s: %s\n\n%s", verb.c_str(), e.what(), kUsage);
    return 2;
  }
  std::fprintf(stderr, "egressd: unknown verb '%s'\n\n%s", verb.c_str(), kUsage);
  return 2;
}
