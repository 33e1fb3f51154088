// recorder.h: where a userspace decision becomes a count and an event. The
// proxy and the resolver each own one (for their hook) and call it for
// every verdict: it counts per verdict and reason (exported as
// egressd_decisions_total{hook=...}), applies the policy's `events` filter,
// builds the Event from the steered flow's record and hands it to the sink.
// Rate limits stay with the caller: what floods differs per hook.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "decide/steered_flow.h"
#include "egressd_abi.h"
#include "events/event.h"
#include "policy/model.h"

namespace egressd::decide {

// Slot verdict * EGD_REASON__COUNT + reason, as the kernel's egd_stats.
using DecisionCounts = std::array<uint64_t, size_t{EGD_VERDICT__COUNT} * size_t{EGD_REASON__COUNT}>;

class Recorder {
 public:
  using Sink = std::function<void(const Event&)>;

  Recorder(uint8_t hook, Sink sink) : hook_(hook), sink_(std::move(sink)) {}

  // Counts one decision (a verdict or reason out of range counts as deny,
  // internal) and says whether it is to become an event under `events`:
  // denials and audits always; allows with events = "all", except an
  // upstream fallback, which always is (an address of an allowed name is
  // dead). False when there is no sink.
  bool count(uint8_t verdict, uint16_t reason, policy::EventsMode events);

  // The event of a decision on the flow `who` opened (null: unknown, the
  // caller fills the family); the caller adds what its hook saw (l7,
  // host, ...).
  Event event(uint8_t verdict, uint16_t reason, uint32_t rule_id, const SteeredFlow* who, int protocol) const;

  void emit(const Event& e) const {
    if (sink_) sink_(e);
  }

  const DecisionCounts& decisions() const { return decisions_; }

 private:
  uint8_t hook_;
  Sink sink_;
  DecisionCounts decisions_{};
};

}  // namespace egressd::decide
