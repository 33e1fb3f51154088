#include "cli/policy_source.h"

#include "policy/compiler.h"
#include "policy/toml_loader.h"

namespace egressd::cli {

Result<policy::Policy> load_policy(const std::string& path) {
  try {
    policy::Policy p = (path.empty() || path == kBuiltinPolicy) ? policy::parse_policy("version = 1\n", kBuiltinPolicy)
                                                                : policy::load_policy_file(path);
    (void)policy::compile(p, 1);  // surfaces limits the maps impose, before anything is touched
    return p;
  } catch (const std::exception& e) {
    return logic_error(e.what());
  }
}

}  // namespace egressd::cli
