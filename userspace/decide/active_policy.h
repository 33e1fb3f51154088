// active_policy.h: the policy the proxy and the resolver decide with, with
// its L3 index built once; swapped whole on reload (a session or an
// exchange in flight keeps the one it started with).
#pragma once

#include <utility>

#include "decide/l3_check.h"
#include "policy/model.h"

namespace egressd::decide {

struct ActivePolicy {
  explicit ActivePolicy(policy::Policy p) : policy(std::move(p)), l3(policy) {}
  ActivePolicy(const ActivePolicy&) = delete;
  policy::Policy policy;
  L3Check l3;
};

}  // namespace egressd::decide
