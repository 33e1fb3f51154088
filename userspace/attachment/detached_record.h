// detached_record.h: what `detach` leaves in the run directory when the
// cgroup outlives its fence with something to run unfenced (processes in it,
// or a systemd slice: what detach warns about; PinLayout::detached_record),
// so `status` can still say so after the pins are gone. attach
// on the cgroup removes it; so does the cgroup's removal (status and
// detach --stale drop records whose cgroup is gone).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::attachment {

struct DetachedRecord {
  std::string path;  // the cgroup directory
  uint64_t cgroup_id = 0;
  uint64_t detached_unix_ns = 0;
  std::string policy;  // the policy in force when it was detached ("" if unknown)
};

// "key=value" lines (path, cgroup_id, detached_at_ns, policy). Pure.
std::string format_detached_record(const DetachedRecord& r);
// nullopt for a malformed record. Pure.
std::optional<DetachedRecord> parse_detached_record(std::string_view text);

// Writes the record (mode 0644) atomically, replacing any for the same id.
Status write_detached_record(const DetachedRecord& r);
// Reads the record of cgroup `id`; an error if absent or malformed.
Result<DetachedRecord> read_detached_record(uint64_t id);
// Removes the record of cgroup `id`, if any.
void remove_detached_record(uint64_t id);

// Removes the records whose cgroup is gone (or made again, or fenced again).
void prune_detached_records();

// Whether the cgroup the record names is still at its path with its id.
bool detached_cgroup_present(const DetachedRecord& r);

}  // namespace egressd::attachment
