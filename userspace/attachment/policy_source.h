// policy_source.h: where a verb's policy comes from.
#pragma once

#include <string>

#include "common/result.h"
#include "policy/model.h"

namespace egressd::attachment {

// The name recorded for the built-in default (no --policy given).
inline constexpr const char* kBuiltinPolicy = "<built-in default>";

// Loads FILE, or the built-in default (same as policies/default.toml) when
// `path` is empty or kBuiltinPolicy. Policy errors come back as text
// "FILE:LINE:COL: key: message".
Result<policy::Policy> load_policy(const std::string& path);

}  // namespace egressd::attachment
