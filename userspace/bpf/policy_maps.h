// policy_maps.h: the pinned maps of one attachment, and the generation swap
// that installs a policy into them. Works from any process (daemon, reload,
// status) since everything goes through the pins.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "egressd_abi.h"
#include "policy/model.h"

namespace egressd {

struct PinLayout;

// The maps userspace opens from the pins, as typed fields. Pinning, adopting
// and moving a fence go over every map of the object instead (map_names()).
#define EGD_MAP_NAMES(X) \
  X(active) X(config) X(allow4) X(allow6) X(deny4) X(deny6) X(meta) X(stats) X(events) X(proxy) \
  X(orig_by_cookie) X(orig_by_port) X(udp_peer)

struct MapFds {
#define EGD_MAP_FIELD(n) UniqueFd n;
  EGD_MAP_NAMES(EGD_MAP_FIELD)
#undef EGD_MAP_FIELD
};

// Opens the pins of an attachment and checks they speak this egressd's ABI
// (egd_meta.abi_version and the value sizes of the maps it writes).
Result<MapFds> open_pinned_maps(const PinLayout& pins);

struct InstallInfo {
  uint32_t gen = 0;         // now active
  double write_ms = 0;      // writing the new generation
  double cleanup_ms = 0;    // deleting the old one
  size_t entries = 0;
  std::string warning;      // a step after the flip failed: the new policy is in force regardless
};

// Compiles `policy` for the next generation, writes it beside the active
// one, flips egd_active, then deletes the previous generation. A failure
// before the flip leaves the active policy untouched.
Result<InstallInfo> install_policy(const MapFds& maps, const policy::Policy& policy);

Result<egd_meta> read_meta(const MapFds& maps);

// Points steering at the daemon's listeners: the proxy on `port` and the
// resolver on `dns_port` (0: nobody listens, so steered connects are
// refused). A nonzero dns_port turns DNS steering on for good.
Status set_proxy_ports(const MapFds& maps, uint16_t port, uint16_t dns_port);
Result<egd_proxy_conf> read_proxy_conf(const MapFds& maps);
Status write_meta(const MapFds& maps, const egd_meta& meta);

using Counters = std::array<uint64_t, EGD_STAT__COUNT>;
Result<Counters> read_counters(const MapFds& maps);

}  // namespace egressd
