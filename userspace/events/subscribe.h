// subscribe.h: the subscriber's side of the hub's protocol (hub.h), for
// `egressd tail` and `egressd run --tail`: connect, say the format, wait
// for "ok <cgroup path>".
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd {

struct Subscription {
  UniqueFd fd;         // blocking; one event per line from here on
  std::string cgroup;  // what the daemon fences, from its "ok" line
};

// `format` is "text" or "json". The error keeps connect()'s errno (EACCES:
// the socket is not open to the caller).
Result<Subscription> subscribe_events(const std::string& socket_path, const std::string& format, int timeout_ms);

}  // namespace egressd
