#include "common/fair_share.h"

#include <algorithm>

namespace egressd {
namespace {

// Unknown clients share one key that no tgid or uid (32 bits) can take.
constexpr uint64_t kUnknown = uint64_t{1} << 32;

uint64_t process_key(const ShareClient& c) { return c.known ? c.tgid : kUnknown; }
uint64_t uid_key(const ShareClient& c) { return c.known ? c.uid : kUnknown; }

size_t count_of(const std::unordered_map<uint64_t, size_t>& m, uint64_t k) {
  auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

void decrement(std::unordered_map<uint64_t, size_t>& m, uint64_t k) {
  auto it = m.find(k);
  if (it == m.end()) return;
  if (--it->second == 0) m.erase(it);  // only holders are kept: the maps stay as small as the live clients
}

}  // namespace

ShareCaps share_caps(size_t total, size_t per_process, size_t per_uid) {
  ShareCaps c;
  c.total = std::max<size_t>(total, 1);
  auto pick = [&](size_t configured, size_t divisor) {
    return std::clamp<size_t>(configured ? configured : c.total / divisor, 1, c.total);
  };
  c.per_process = pick(per_process, 4);
  c.per_uid = pick(per_uid, 2);
  return c;
}

std::string_view share_cap_name(ShareCap c) {
  switch (c) {
    case ShareCap::None: return "none";
    case ShareCap::Process: return "per-process";
    case ShareCap::User: return "per-user";
    case ShareCap::Total: return "total";
  }
  return "?";
}

ShareCap share_decide(const ShareCaps& caps, size_t process_held, size_t uid_held, size_t total_held) {
  if (process_held >= caps.per_process) return ShareCap::Process;
  if (uid_held >= caps.per_uid) return ShareCap::User;
  if (total_held >= caps.total) return ShareCap::Total;
  return ShareCap::None;
}

ShareCap ConnectionShares::admit(const ShareClient& c, const ShareCaps& caps) {
  ShareCap d = share_decide(caps, held_by_process(c), held_by_uid(c), total_);
  if (d != ShareCap::None) return d;
  ++by_process_[process_key(c)];
  ++by_uid_[uid_key(c)];
  ++total_;
  return d;
}

void ConnectionShares::release(const ShareClient& c) {
  if (total_ == 0 || !by_process_.count(process_key(c))) return;  // never admitted: nothing to give back
  decrement(by_process_, process_key(c));
  decrement(by_uid_, uid_key(c));
  --total_;
}

size_t ConnectionShares::held_by_process(const ShareClient& c) const { return count_of(by_process_, process_key(c)); }
size_t ConnectionShares::held_by_uid(const ShareClient& c) const { return count_of(by_uid_, uid_key(c)); }

std::string share_refusal_line(std::string_view server, const ShareClient& c, std::string_view comm, ShareCap cap,
                               const ShareCaps& caps, const ConnectionShares& shares) {
  std::string who = c.known ? "pid " + std::to_string(c.tgid) + " (" + std::string(comm.empty() ? "?" : comm) +
                                  ", uid " + std::to_string(c.uid) + ")"
                            : std::string("an unknown client (no identity recorded)");
  std::string held;
  switch (cap) {
    case ShareCap::Process: held = "it holds " + std::to_string(shares.held_by_process(c)); break;
    case ShareCap::User: held = "its user's processes hold " + std::to_string(shares.held_by_uid(c)); break;
    default: held = "all clients hold " + std::to_string(shares.held()); break;
  }
  return std::string(server) + ": refused a connection of " + who + ", too-many-connections: " + held +
         ", the " + std::string(share_cap_name(cap)) + " cap (caps: " + std::to_string(caps.per_process) +
         " per process, " + std::to_string(caps.per_uid) + " per user, " + std::to_string(caps.total) +
         " in total)";
}

}  // namespace egressd
