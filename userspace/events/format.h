// format.h: the two renderings of an Event: one JSON object per line (for
// jq and tests) and one human line (time, comm[pid], verdict, destination,
// reason).
#pragma once

#include <string>

#include "events/event.h"

namespace egressd {

std::string to_json(const Event& e);
std::string to_text(const Event& e);
std::string json_escape(std::string_view s);
std::string iso8601(uint64_t unix_ns);

}  // namespace egressd
