// args.h: the little command-line grammar egressd uses:
//   egressd VERB [--opt VALUE | --opt=VALUE | --flag]... [-- CMD...]
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/result.h"
#include "systemd/unit_cgroup.h"

namespace egressd::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // `with_value` names options that take a value, `flags` boolean ones;
  // anything else is a UsageError.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
       const std::set<std::string>& flags);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// --cgroup and --user of a verb. --user takes a user name or a numeric uid;
// it needs --cgroup (a slice name). Throws UsageError for a missing --cgroup.
Result<systemd::CgroupRequest> cgroup_request(const Args& args);

}  // namespace egressd::cli
