// caps.h: the privileges egressd needs, checked up front for a clear error.
#pragma once

#include <string>

#include "common/result.h"

namespace egressd {

// Loading and attaching cgroup programs needs CAP_BPF (or CAP_SYS_ADMIN)
// and CAP_NET_ADMIN in the initial user namespace.
Status check_bpf_privileges();

}  // namespace egressd
