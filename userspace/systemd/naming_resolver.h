// naming_resolver.h: unit cgroups from systemd's naming rules alone, for
// hosts where no systemd answers.
#pragma once

#include "systemd/unit_resolver.h"

namespace egressd::systemd {

class NamingRulesResolver final : public UnitResolver {
 public:
  // systemd_host: systemd runs but its bus does not answer. Slices still
  // follow the naming rule; where a scope or service lives only systemd
  // knows, so those are refused rather than guessed.
  explicit NamingRulesResolver(bool systemd_host) : systemd_host_(systemd_host) {}
  bool is_systemd() const override { return false; }
  // A slice: "a-b.slice" -> "/a.slice/a-b.slice", always "active" (attach
  // creates the directory). Without systemd a scope or service name is just
  // a directory below the cgroup2 root, like any relative path.
  Result<UnitState> state(const std::string& unit) override;

 private:
  bool systemd_host_;
};

}  // namespace egressd::systemd
