#include "events/event.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>

#include "common/clock.h"

namespace egressd {
namespace {

constexpr std::string_view kReasonNames[] = {
#define EGD_REASON_NAME(id, name) name,
    EGD_REASONS(EGD_REASON_NAME)
#undef EGD_REASON_NAME
};
static_assert(std::size(kReasonNames) == EGD_REASON__COUNT);

constexpr std::string_view kHookNames[] = {
#define EGD_HOOK_NAME(id, name) name,
    EGD_HOOKS(EGD_HOOK_NAME)
#undef EGD_HOOK_NAME
};
static_assert(std::size(kHookNames) == EGD_HOOK__COUNT);

constexpr std::string_view kDialErrorNames[] = {
#define EGD_DIAL_ERROR_NAME(id, name) name,
    EGD_DIAL_ERRORS(EGD_DIAL_ERROR_NAME)
#undef EGD_DIAL_ERROR_NAME
};

std::string addr_text(int family, const void* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, addr, buf, sizeof(buf))) return "?";
  return buf;
}

}  // namespace

int64_t boottime_to_unix_offset_ns() { return clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME); }

std::string_view reason_name(unsigned reason) {
  return reason < EGD_REASON__COUNT ? kReasonNames[reason] : "unknown";
}

std::string_view hook_name(unsigned hook) { return hook < EGD_HOOK__COUNT ? kHookNames[hook] : "unknown"; }

std::string_view verdict_name(unsigned verdict) {
  if (verdict == EGD_VERDICT_ALLOW) return "allow";
  if (verdict == EGD_VERDICT_AUDIT) return "audit";
  return "deny";
}

std::string_view dial_error_name(DialError e) {
  auto i = static_cast<size_t>(e);
  return i < std::size(kDialErrorNames) ? kDialErrorNames[i] : "unknown";
}

std::string proto_name(uint16_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    case IPPROTO_RAW: return "raw";
    case IPPROTO_UDPLITE: return "udplite";
    case IPPROTO_SCTP: return "sctp";
    case 262: return "mptcp";  // IPPROTO_MPTCP, newer than some libc headers
    default: return std::to_string(protocol);
  }
}

Event decode_event(const egd_event& raw, int64_t boot_to_unix_ns) {
  Event e;
  e.unix_ns = static_cast<uint64_t>(static_cast<int64_t>(raw.boot_ns) + boot_to_unix_ns);
  e.cgroup_id = raw.cgroup_id;
  e.sock_cookie = raw.sock_cookie;
  e.sender_known = true;  // the hooks run in the sender's context
  e.pid = raw.pid;
  e.tgid = raw.tgid;
  e.uid = raw.uid;
  e.rule_id = raw.rule_id;
  e.comm.assign(raw.comm, strnlen(raw.comm, sizeof(raw.comm)));
  e.family = raw.family;
  e.protocol = raw.protocol;
  e.sock_type = raw.sock_type;
  e.hook = raw.hook;
  e.verdict = raw.verdict;
  e.reason = raw.reason;
  e.dport = raw.dport;
  if (raw.hook != EGD_HOOK_SOCK_CREATE && (raw.family == AF_INET || raw.family == AF_INET6))
    e.daddr = addr_text(raw.family, raw.daddr);
  if (raw.judged_addr4 != 0) e.judged = addr_text(AF_INET, &raw.judged_addr4);
  return e;
}

}  // namespace egressd
