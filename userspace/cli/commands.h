// commands.h: one function per verb; each returns the process exit code
// (0 ok, 1 failure, 2 usage).
#pragma once

#include <string>
#include <vector>

namespace egressd::cli {

int cmd_attach(const std::vector<std::string>& args);
int cmd_detach(const std::vector<std::string>& args);
int cmd_reload(const std::vector<std::string>& args);
int cmd_status(const std::vector<std::string>& args);
int cmd_tail(const std::vector<std::string>& args);
int cmd_check(const std::vector<std::string>& args);
int cmd_explain(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);

// Prints "egressd VERB: message" and returns 1.
int fail(const char* verb, const std::string& message);

}  // namespace egressd::cli
