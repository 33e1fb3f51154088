// cgroup.h: finding cgroup2, naming cgroups the way users do, and their ids.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd {

// Mount point of the cgroup2 hierarchy, from the given mountinfo text
// (the pure part) or from /proc/self/mountinfo.
Result<std::string> cgroup2_mount_from(std::string_view mountinfo);
Result<std::string> cgroup2_mount();

// systemd slice name to its path below its manager's root cgroup, by
// systemd's naming rule: "a-b-c.slice" -> "a.slice/a-b.slice/a-b-c.slice",
// "-.slice" -> "". Components systemd escapes get its '_' prefix
// ("cpu.slice" -> "_cpu.slice", see cgroup_escape). Returns an error for
// names that are not valid slice names.
Result<std::string> slice_path(std::string_view unit);

// systemd's escaping of one cgroup name (cg_escape): a '_' prefix for names
// that could clash with the kernel's files: starting with '_' or '.',
// "cgroup.*", a controller name followed by '.', and the v1 file names.
std::string cgroup_escape(std::string_view name);

// Resolves a --cgroup path against the cgroup2 mount `root` by naming
// rules alone: an absolute path, which must lie under root (a path outside
// it is no cgroup2 directory: processes put there would run unfenced); a
// systemd slice name; or a path relative to root. Rejects "..", the root
// itself and paths outside root. Pure.
Result<std::string> resolve_cgroup_arg(std::string_view arg, const std::string& root);

// root + `rel` (a path below the cgroup2 root, as systemd's ControlGroup
// "/claude.slice"), normalised; refuses "..", and the root cgroup itself.
// `what` names the argument in errors. Pure.
Result<std::string> cgroup_below(const std::string& root, std::string_view rel, std::string_view what);

// Creates the cgroup (and parents) if missing, each handed over like its
// parent (hand_over_new_cgroup), mode 0755.
Status ensure_cgroup_dir(const std::string& path);

// Who owns a cgroup egressd makes, from the owner of its parent's
// cgroup.procs: a non-root owner means the parent is delegated to that user
// (Delegate=, a user manager's subtree), whose manager must be able to make
// cgroups in the new one and move processes into it, as if it had made it
// itself; otherwise (root, or no such file) root keeps it. Pure.
struct FileOwner {
  unsigned uid = 0;
  unsigned gid = 0;
  bool operator==(const FileOwner&) const = default;
};
std::optional<FileOwner> cgroup_handover(std::optional<FileOwner> parent_procs);

// The one place a cgroup egressd just made (attach, or made again by the
// re-fence) gets its access: `mode` exactly (the umask does not apply), and
// the owner cgroup_handover() picks on the directory and the files a
// delegation hands over (cgroup.procs, cgroup.threads, cgroup.subtree_control).
Status hand_over_new_cgroup(const std::string& path, mode_t mode);

// The cgroup id the kernel reports (bpf_get_current_cgroup_id): the inode of
// the cgroup2 directory.
Result<uint64_t> cgroup_id(const std::string& path);

// This process's cgroup2 path, absolute (root + /proc/self/cgroup "0::").
Result<std::string> self_cgroup(const std::string& root);

// The first cgroup from `path` up to (not including) `root` whose
// cgroup.procs a non-root user owns: a subtree delegated to that user, whose
// processes can move themselves anywhere inside it. Empty if none.
struct Delegation {
  std::string dir;
  unsigned uid = 0;
};
std::optional<Delegation> find_delegation(const std::string& path, const std::string& root);

// Processes in the cgroup at `path` and every cgroup below it (cgroup.procs).
Result<std::vector<pid_t>> cgroup_procs(const std::string& path);

// cgroup.freeze: freeze_cgroup returns true if it froze the cgroup, false if
// it was frozen already (someone else's freeze, left alone) or the kernel
// has no freezer. A task moved into a frozen cgroup stops before it runs
// again in user space.
Result<bool> freeze_cgroup(const std::string& path);
Status thaw_cgroup(const std::string& path);

// True if `inner` is `outer` or below it.
bool path_within(std::string_view inner, std::string_view outer);

}  // namespace egressd
