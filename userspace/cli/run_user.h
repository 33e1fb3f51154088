// run_user.h: the account `egressd run` starts CMD as, and the one-way drop
// to it in the child between fork and exec.
#pragma once

#include <string>

#include "cli/run_rules.h"
#include "common/result.h"

namespace egressd::cli {

// Looks up a user name or numeric uid in the user database, with its
// supplementary groups.
Result<RunUser> lookup_run_user(const std::string& spec);

// In the forked child, as root: supplementary groups, gid, uid, then checks
// that root cannot be regained (setuid(0) fails, no capability is left) when
// `user` is not root. Only system calls: safe between fork and exec.
// Returns 0, or the errno of the failed step and names it in *step.
int drop_privileges(const RunUser& user, const char** step);

}  // namespace egressd::cli
