// fair_share.h: how many connections one client may hold, so that one
// process (or one user's processes) cannot take every connection the proxy
// or the resolver's TCP side holds while the others wait. One rule for both:
//
//   a new connection from process P (tgid) of user U is admitted iff
//     P holds fewer than the per-process cap, and
//     U's processes hold fewer than the per-user cap, and
//     all clients together hold fewer than the total cap;
//   the first cap that fails names the refusal (too-many-connections).
//
// The total comes from the daemon's file limit (proxy) or a fixed bound
// (resolver); per-process and per-user caps are the policy's ([proxy] /
// [dns] tables) or, unset, a quarter and a half of the total. So one process
// leaves three quarters for the rest, and one user half for other users.
// A client the hooks recorded no identity for counts as one client of its
// own ("unknown"), never as root.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace egressd {

struct ShareCaps {
  size_t total = 1, per_process = 1, per_uid = 1;
};

// The caps in force: `per_process`/`per_uid` as configured, 0 for the
// default share of `total`; each at least 1 and at most `total`.
ShareCaps share_caps(size_t total, size_t per_process, size_t per_uid);

enum class ShareCap : uint8_t { None, Process, User, Total };  // the cap that refused; None: admitted
std::string_view share_cap_name(ShareCap c);                  // "per-process", "per-user", "total"

struct ShareClient {
  uint32_t tgid = 0, uid = 0;
  bool known = false;  // false: no identity recorded (counted as "unknown")
};

// The decision, given what the client and everyone hold now.
ShareCap share_decide(const ShareCaps& caps, size_t process_held, size_t uid_held, size_t total_held);

// The live connections per client, and the decision on each new one.
class ConnectionShares {
 public:
  // Decides on one more connection of `c`; counts it if admitted.
  ShareCap admit(const ShareClient& c, const ShareCaps& caps);
  // One connection of `c` (admitted before) ended.
  void release(const ShareClient& c);
  size_t held() const { return total_; }
  size_t held_by_process(const ShareClient& c) const;
  size_t held_by_uid(const ShareClient& c) const;
  size_t clients() const { return by_process_.size(); }  // processes holding any

 private:
  std::unordered_map<uint64_t, size_t> by_process_, by_uid_;
  size_t total_ = 0;
};

// One log line on a refusal: which client hit which cap, and the caps.
// `server` names who refused ("proxy", "resolver (TCP)").
std::string share_refusal_line(std::string_view server, const ShareClient& c, std::string_view comm, ShareCap cap,
                               const ShareCaps& caps, const ConnectionShares& shares);

}  // namespace egressd
