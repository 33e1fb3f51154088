#include "events/subscribe.h"

#include <poll.h>
#include <sys/socket.h>

#include <chrono>

#include "common/clock.h"
#include "common/unix_addr.h"

namespace egressd {

Result<Subscription> subscribe_events(const std::string& socket_path, const std::string& format, int timeout_ms) {
  auto sa = unix_addr(socket_path);
  if (!sa) return sa.error();
  Subscription sub;
  sub.fd.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sub.fd.valid()) return sys_error("socket");
  if (connect(sub.fd.get(), sa->get(), sa->len) != 0) return sys_error("connect " + socket_path);
  const std::string hello = format + "\n";
  if (send(sub.fd.get(), hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()))
    return sys_error("subscribe on " + socket_path);
  // "ok <cgroup>\n": then the daemon has us on its list and no event is missed.
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string line;
  while (line.size() < 4096) {
    int left = ms_until(end);
    pollfd p{sub.fd.get(), POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0)
      return logic_error("no answer from the daemon on " + socket_path);
    char c;
    if (recv(sub.fd.get(), &c, 1, 0) != 1) return logic_error("the daemon closed " + socket_path);
    if (c == '\n') break;
    line.push_back(c);
  }
  if (line.rfind("ok ", 0) != 0) return logic_error("the daemon refused the subscription: " + line);
  sub.cgroup = line.substr(3);
  return sub;
}

}  // namespace egressd
