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
  detach --cgroup CG                   remove the fence and its pins (and stale pins for CG)
  detach --stale                       remove the pins of cgroups that were removed
  reload --cgroup CG [--policy FILE]   swap the policy atomically (default: the current file)
  status [--json]                      attached cgroups, whether each fence is in force, policy,
                                       counters per reason; exits 3 if a cgroup is UNFENCED
  tail [--cgroup CG] [--json]          live decisions, one per line
  check FILE                           validate a policy and print a summary
  explain --policy FILE [--method M] URL
                                       the proxy's decision for URL and the rule behind it

CG is an absolute cgroup2 path, a path relative to the cgroup2 mount, or a
systemd slice name (claude.slice, a-b.slice = a.slice/a-b.slice).
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
  } catch (const UsageError& e) {
    std::fprintf(stderr, "egressd %s: %s\n\n%s", verb.c_str(), e.what(), kUsage);
    return 2;
  }
  std::fprintf(stderr, "egressd: unknown verb '%s'\n\n%s", verb.c_str(), kUsage);
  return 2;
}
