#include "decide/recorder.h"

#include <netinet/in.h>

#include "common/clock.h"

namespace egressd::decide {

bool Recorder::count(uint8_t verdict, uint16_t reason, policy::EventsMode events) {
  size_t v = verdict < EGD_VERDICT__COUNT ? verdict : size_t{EGD_VERDICT_DENY};
  size_t r = reason < EGD_REASON__COUNT ? reason : size_t{EGD_REASON_INTERNAL};
  ++decisions_[v * EGD_REASON__COUNT + r];
  if (!sink_) return false;
  return verdict != EGD_VERDICT_ALLOW || reason == EGD_REASON_UPSTREAM_FALLBACK || events == policy::EventsMode::All;
}

Event Recorder::event(uint8_t verdict, uint16_t reason, uint32_t rule_id, const SteeredFlow* who,
                      int protocol) const {
  Event e;
  e.unix_ns = unix_now_ns();
  e.hook = hook_;
  e.protocol = static_cast<uint16_t>(protocol);
  e.sock_type = protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  e.verdict = verdict;
  e.reason = reason;
  e.rule_id = rule_id;
  if (who) {
    e.cgroup_id = who->cgroup_id;
    e.sock_cookie = who->sock_cookie;
    e.sender_known = who->identified;
    e.pid = who->pid;
    e.tgid = who->tgid;
    e.uid = who->uid;
    e.comm = who->comm;
    e.family = who->family;
    e.daddr = who->given.to_string();
    e.dport = who->port;
    // A v4-mapped destination was judged as the IPv4 inside.
    if (who->family == AF_INET6 && !(who->target == who->given)) e.judged = who->target.to_string();
  }
  return e;
}

}  // namespace egressd::decide
