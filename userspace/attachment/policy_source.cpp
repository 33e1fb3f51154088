#include "attachment/policy_source.h"

#include <cstdlib>

#include "egressd_abi.h"

#include "policy/compiler.h"
#include "policy/toml_loader.h"

namespace egressd::attachment {

Result<policy::Policy> load_policy(const std::string& path) {
  bool builtin = path.empty() || path == kBuiltinPolicy;
  std::string file = path;
  if (!builtin) {
    // Reloads (SIGHUP, `reload` without --policy) reread the recorded path
    // from anywhere: record it absolute, symlinks resolved, and whole.
    char* real = realpath(path.c_str(), nullptr);
    if (!real) return sys_error(path + ": cannot read");
    file = real;
    free(real);
    if (file.size() >= EGD_PATH_MAX)
      return logic_error(file + ": path longer than " + std::to_string(EGD_PATH_MAX - 1) + " bytes");
  }
  try {
    policy::Policy p = builtin ? policy::parse_policy("version = 1\n", kBuiltinPolicy) : policy::load_policy_file(file);
    (void)policy::compile(p, 1);  // surfaces limits the maps impose, before anything is touched
    return p;
  } catch (const std::exception& e) {
    return logic_error(e.what());
  }
}

}  // namespace egressd::attachment
