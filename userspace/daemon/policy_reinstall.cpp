#include "daemon/policy_reinstall.h"

#include <cstring>

#include "attachment/policy_source.h"

namespace egressd::daemon {

std::variant<Reinstalled, ReinstallError> reinstall_policy(const MapFds& maps, const std::string& path,
                                                           Install when) {
  std::string file = path;
  std::optional<egd_meta> meta;
  if (file.empty() || when == Install::IfChanged) {
    auto m = read_meta(maps);
    if (!m) return ReinstallError{ReinstallStep::ReadRecord, m.error(), file};
    meta = *m;
    if (file.empty()) file.assign(meta->policy_path, strnlen(meta->policy_path, sizeof(meta->policy_path)));
  }
  auto p = attachment::load_policy(file);
  if (!p) return ReinstallError{ReinstallStep::Load, p.error(), file};
  Reinstalled out{file, std::move(*p), std::nullopt};
  if (when == Install::Always || out.policy.hash != meta->policy_hash) {
    auto installed = install_policy(maps, out.policy);
    if (!installed) return ReinstallError{ReinstallStep::Install, installed.error(), out.path};
    out.install = *installed;
  }
  return out;
}

}  // namespace egressd::daemon
