// event.h: one enforcement decision, decoded from the ring buffer record
// (egd_event) into a value the log, `tail` and JSON share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "egressd_abi.h"

namespace egressd {

// How the proxy's dial of an origin address failed (declared once; the
// events name them).
#define EGD_DIAL_ERRORS(X)     \
  X(NONE, "none")              \
  X(REFUSED, "refused")        \
  X(UNREACHABLE, "unreachable") \
  X(TIMEOUT, "timeout")        \
  X(OTHER, "error")

enum class DialError : uint8_t {
#define EGD_DIAL_ERROR_ENUM(id, name) id,
  EGD_DIAL_ERRORS(EGD_DIAL_ERROR_ENUM)
#undef EGD_DIAL_ERROR_ENUM
};

struct Event {
  uint64_t unix_ns = 0;
  uint64_t cgroup_id = 0;
  uint64_t sock_cookie = 0;
  // False when nobody could say who sent it (a datagram whose socket was
  // closed before the resolver looked, a connection without a hook's
  // record): pid, tgid, uid and comm are then meaningless, not root's.
  bool sender_known = false;
  uint32_t pid = 0;
  uint32_t tgid = 0;
  uint32_t uid = 0;
  uint32_t rule_id = 0;
  std::string comm;
  int family = 0;
  uint16_t protocol = 0;
  uint8_t sock_type = 0;
  uint8_t hook = 0;
  uint8_t verdict = 0;
  uint16_t reason = 0;
  uint16_t dport = 0;
  std::string daddr;                  // empty for sock_create
  std::optional<std::string> judged;  // the IPv4 a v6 form was judged as
  // Decided by the proxy (hook == EGD_HOOK_PROXY):
  std::string l7;                     // "tls" or "http"; empty for kernel events
  std::string host;                   // SNI or Host, as the client sent it (canonical)
  std::string method, path;           // plain HTTP
  // The proxy's dials of the origin (reasons upstream-fallback and
  // upstream-failed): how the dial of daddr failed, the address that served
  // instead (fallback), and how many addresses were dialed in all.
  DialError dial_error = DialError::NONE;
  std::string upstream;
  uint8_t dials = 0;
  // Decided by the resolver (hook == EGD_HOOK_DNS): l7 "dns", host the
  // name asked, its type and class (0 for a packet without a question).
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

// Offset to add to CLOCK_BOOTTIME ns to get Unix time ns.
int64_t boottime_to_unix_offset_ns();

Event decode_event(const egd_event& raw, int64_t boot_to_unix_ns);

std::string_view reason_name(unsigned reason);
std::string_view hook_name(unsigned hook);
std::string_view verdict_name(unsigned verdict);
std::string_view dial_error_name(DialError e);
std::string proto_name(uint16_t protocol);

}  // namespace egressd
