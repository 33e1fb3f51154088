#include "cli/args.h"

#include <pwd.h>

#include <cerrno>
#include <cstdlib>

namespace egressd::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
           const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (with_value.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw UsageError("--" + name + " needs a value");
        value = argv[++i];
      }
      values_[name] = value;
    } else if (flags.count(name) && !inline_value) {
      values_[name] = "1";
    } else {
      throw UsageError("unknown option --" + name);
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw UsageError("--" + name + " is required");
  return it->second;
}

Result<systemd::CgroupRequest> cgroup_request(const Args& args) {
  systemd::CgroupRequest req;
  if (args.has("user") && !args.has("cgroup")) throw UsageError("--user needs --cgroup SLICE (such as claude.slice)");
  req.cgroup = args.require("cgroup");
  if (!args.has("user")) return req;
  std::string user = args.get("user");
  if (!user.empty() && user.find_first_not_of("0123456789") == std::string::npos) {
    errno = 0;
    unsigned long uid = std::strtoul(user.c_str(), nullptr, 10);
    if (errno != 0 || uid >= 0xffffffffUL) return logic_error("--user: uid out of range: " + user);
    req.uid = static_cast<unsigned>(uid);
    return req;
  }
  passwd pw{}, *found = nullptr;
  std::vector<char> buf(16384);
  int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return sys_error("--user: look up user " + user, rc);
  if (!found) return logic_error("--user: no user named " + user);
  req.uid = found->pw_uid;
  return req;
}

}  // namespace egressd::cli
