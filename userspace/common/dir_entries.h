// dir_entries.h: the names in a directory, without "." and "..".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd {

enum class EntryKind { Any, Directory };

// At most `max` names, in directory order; an errno-carrying error when the
// directory cannot be opened (ENOENT: removed meanwhile).
Result<std::vector<std::string>> dir_entries(const std::string& dir, EntryKind kind = EntryKind::Any,
                                             size_t max = 1u << 20);

}  // namespace egressd
