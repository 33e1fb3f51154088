#include "decide/steered_flow.h"

#include <cstring>

namespace egressd::decide {

SteeredFlow steered_from_record(const egd_orig& o) {
  SteeredFlow d;
  d.family = o.family;
  d.given = o.family == AF_INET ? IpAddr::v4(o.daddr) : IpAddr::v6(o.daddr);
  d.target = d.given.unmapped();
  d.port = o.dport;
  d.identified = true;
  d.pid = o.pid;
  d.tgid = o.tgid;
  d.uid = o.uid;
  d.cgroup_id = o.cgroup_id;
  d.sock_cookie = o.sock_cookie;
  d.comm.assign(o.comm, strnlen(o.comm, sizeof(o.comm)));
  return d;
}

}  // namespace egressd::decide
