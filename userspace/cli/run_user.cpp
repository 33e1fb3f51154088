#include "cli/run_user.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace egressd::cli {
namespace {

bool all_digits(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }

}  // namespace

Result<RunUser> lookup_run_user(const std::string& spec) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = all_digits(spec) ? getpwuid_r(static_cast<uid_t>(std::stoul(spec)), &pw, buf.data(), buf.size(), &found)
                            : getpwnam_r(spec.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return sys_error("look up user " + spec, rc);
  if (!found) return logic_error("no such user: " + spec);
  RunUser u;
  u.name = pw.pw_name;
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
  u.home = pw.pw_dir ? pw.pw_dir : "/";
  int n = 32;
  for (int tries = 0; tries < 8; ++tries) {
    u.groups.resize(static_cast<size_t>(n));
    int want = n;
    if (getgrouplist(u.name.c_str(), u.gid, u.groups.data(), &want) >= 0) {
      u.groups.resize(static_cast<size_t>(want));
      return u;
    }
    n = want > n ? want : n * 2;
  }
  return logic_error("cannot list the groups of user " + u.name);
}

int drop_privileges(const RunUser& user, const char** step) {
  *step = "setgroups";
  if (setgroups(user.groups.size(), user.groups.data()) != 0) return errno;
  *step = "setresgid";
  if (setresgid(user.gid, user.gid, user.gid) != 0) return errno;
  // Ambient capabilities would survive the uid change.
  *step = "clear ambient capabilities";
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  *step = "setresuid";
  if (setresuid(user.uid, user.uid, user.uid) != 0) return errno;
  if (user.uid == 0) return 0;
  // The uid change cleared the effective and permitted sets; the inheritable
  // one stays unless emptied.
  *step = "drop capabilities";
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2]{};
  if (syscall(SYS_capset, &hdr, caps) != 0) return errno;
  *step = "check that root cannot be regained";
  if (setuid(0) == 0) return EPERM;
  if (user.gid != 0 && setgid(0) == 0) return EPERM;
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != user.uid || e != user.uid || s != user.uid) return EPERM;
  if (getresgid(&rg, &eg, &sg) != 0 || rg != user.gid || eg != user.gid || sg != user.gid) return EPERM;
  if (syscall(SYS_capget, &hdr, caps) != 0) return errno;
  for (const auto& c : caps)
    if (c.effective || c.permitted || c.inheritable) return EPERM;
  // No way back up through a set-uid program either: with sudo rights (a
  // cached credential, a NOPASSWD rule) `sudo` would hand the agent root.
  *step = "set no_new_privs";
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

}  // namespace egressd::cli
