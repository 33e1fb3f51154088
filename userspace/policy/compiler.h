// compiler.h: Policy -> map entries. Pure: no I/O, no globals, deterministic.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "egressd_abi.h"
#include "policy/model.h"

namespace egressd::policy {

struct CompiledPolicy {
  uint32_t gen = 0;
  egd_config config{};
  std::vector<std::pair<egd_lpm4_key, egd_cidr_rule>> allow4;
  std::vector<std::pair<egd_lpm6_key, egd_cidr_rule>> allow6;
  std::vector<std::pair<egd_lpm4_key, uint32_t>> deny4;
  std::vector<std::pair<egd_lpm6_key, uint32_t>> deny6;
};

// Thrown when a valid policy cannot be expressed in the maps (e.g. more than
// EGD_MAX_PORT_RANGES port ranges apply to one address); names the rule.
class CompileError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Entries for generation `gen` (see egressd_abi.h). Allow entries fold in the
// port ranges of every less specific allow rule that covers them.
CompiledPolicy compile(const Policy& policy, uint32_t gen);

// One human paragraph for `egressd check`.
std::string summarize(const Policy& policy);

}  // namespace egressd::policy
