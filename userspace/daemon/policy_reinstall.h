// policy_reinstall.h: the one way a policy file reaches an attachment's maps
// after attach. `egressd reload` (any file, or the recorded one), the
// daemon's SIGHUP (the recorded file) and the daemon's re-read when `egressd
// reload` signals it (the recorded file, installed again only if it changed
// since) all come here; a file that fails to load or install leaves the
// previous policy in force.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "bpf/policy_maps.h"
#include "common/result.h"
#include "policy/model.h"

namespace egressd::daemon {

enum class Install {
  Always,     // reload: the file's policy goes in
  IfChanged,  // re-read: only if the file differs from what was installed
};

// Which step failed: reading the recorded path, loading the file, or
// writing the maps. Callers word their messages by it.
enum class ReinstallStep { ReadRecord, Load, Install };

struct Reinstalled {
  std::string path;                    // the file read
  policy::Policy policy;               // what is in force now
  std::optional<InstallInfo> install;  // empty: the maps already held this file's policy
};

struct ReinstallError {
  ReinstallStep step;
  Error error;
  std::string path;  // the file, once known
};

// `path` empty: the file recorded at the last install. Callers serialise
// with attach/reload/detach (lock_target) where they must.
std::variant<Reinstalled, ReinstallError> reinstall_policy(const MapFds& maps, const std::string& path, Install when);

}  // namespace egressd::daemon
