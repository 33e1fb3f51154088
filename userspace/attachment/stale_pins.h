// stale_pins.h: pins of a cgroup that is gone. A removed cgroup's pins stay
// (the daemon moves them onto a recreated cgroup; without a daemon nobody
// does); `detach` and a new `attach` of the same path clear them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::attachment {

struct Pinned {
  uint64_t id;
  std::string path;  // the cgroup path the attachment was made for (egd_meta)
};

// Every attachment with readable pins.
std::vector<Pinned> pinned_attachments();

// The pinned cgroup no longer exists: the path is gone or holds another cgroup.
bool pinned_cgroup_gone(const Pinned& p);

// Stops the attachment's daemon (it would move the fence onto a recreated
// cgroup meanwhile), then removes the pins and run files.
Status remove_stale(const Pinned& p);

}  // namespace egressd::attachment
