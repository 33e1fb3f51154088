#include "proxy/proxy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/session.h"

namespace egressd::proxy {
namespace {

constexpr size_t kScratchBytes = 128 * 1024;
constexpr int kAcceptsPerEvent = 64;

ShareClient share_client(const decide::SteeredFlow& o) { return ShareClient{o.tgid, o.uid, true}; }

Result<UniqueFd> listen_on(int family, uint16_t port) {
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error(family == AF_INET ? "proxy socket (IPv4)" : "proxy socket (IPv6)");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*sa);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    sa->sin6_addr = in6addr_loopback;
    len = sizeof(*sa);
  }
  std::string what = family == AF_INET ? "127.0.0.1:" : "[::1]:";
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return sys_error("bind proxy listener " + what + std::to_string(port));
  if (listen(fd.get(), 4096) != 0) return sys_error("listen on " + what + std::to_string(port));
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);  // same offset for sockaddr_in6
}

}  // namespace

Proxy::Proxy(Loop& loop, decide::SteeredTable& orig, Resolver& resolver, EventSink sink,
             std::shared_ptr<const decide::ActivePolicy> p, ProxyOptions o)
    : loop_(loop),
      orig_(orig),
      resolver_(resolver),
      recorder_(EGD_HOOK_PROXY, std::move(sink)),
      policy_(std::move(p)),
      opt_(o),
      scratch_(kScratchBytes) {}

Proxy::~Proxy() {
  alive_.reset();
  if (pause_timer_) loop_.cancel(pause_timer_);
  sessions_.clear();
  for (auto& l : listeners_) loop_.remove(l->fd.get());
}

Result<std::unique_ptr<Proxy>> Proxy::start(Loop& loop, decide::SteeredTable& orig, Resolver& resolver,
                                            EventSink sink, std::shared_ptr<const decide::ActivePolicy> policy,
                                            ProxyOptions options) {
  std::unique_ptr<Proxy> p(new Proxy(loop, orig, resolver, std::move(sink), std::move(policy), options));
  // One port for both families: the hooks know one. With port 0 the IPv4
  // bind picks it; if that port is taken on ::1, try again (bounded).
  Error last = logic_error("no attempt");
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto v4 = listen_on(AF_INET, options.port);
    if (!v4) return v4.error();
    uint16_t port = bound_port(v4->get());
    auto v6 = listen_on(AF_INET6, port);
    if (!v6 && v6.error().err == EADDRINUSE && options.port == 0) {
      last = v6.error();
      continue;
    }
    p->port_ = port;
    for (UniqueFd* fd : {&v4.value(), v6 ? &v6.value() : nullptr}) {
      if (!fd) continue;
      auto l = std::make_unique<Listener>();
      l->proxy = p.get();
      l->fd = std::move(*fd);
      EGD_TRY(loop.add(l->fd.get(), EPOLLIN, l.get()));
      p->listeners_.push_back(std::move(l));
    }
    return p;
  }
  return last;
}

void Proxy::Listener::on_io(uint32_t) { proxy->accept_from(*this); }

void Proxy::accept_from(Listener& l) {
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    UniqueFd fd(accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_listeners(errno);
      return;  // EAGAIN, or a connection that died in the queue
    }
    ++stats_.accepted;
    auto orig = orig_.take(fd.get(), peer);
    if (!orig) {
      // Dialed directly, not steered: nobody to judge it against.
      decide::SteeredFlow unknown;
      Session probe(*this, 0, UniqueFd(), unknown, policy_);
      record(probe, EGD_VERDICT_DENY, EGD_REASON_NO_RECORD, "", "", "", "", 0);
      continue;  // closes it
    }
    // A fair share each, so one client cannot starve the rest; the
    // refused connection is closed before a byte is read.
    ShareClient client = share_client(*orig);
    if (ShareCap cap = shares_.admit(client, share_caps()); cap != ShareCap::None) {
      refuse_excess(*orig, client, cap);
      continue;
    }
    uint64_t id = next_id_++;
    auto s = std::make_unique<Session>(*this, id, std::move(fd), std::move(*orig), policy_);
    Session* raw = s.get();
    sessions_.emplace(id, std::move(s));
    ++stats_.active;
    raw->start();
  }
}

ShareCaps Proxy::share_caps() const {
  const policy::ConnectionShare& c = policy_->policy.proxy.connections;
  return egressd::share_caps(opt_.max_sessions, c.per_process, c.per_uid);
}

void Proxy::refuse_excess(const decide::SteeredFlow& orig, const ShareClient& client, ShareCap cap) {
  auto now = Loop::Clock::now();
  excess_log_.say(opt_.warn, now, [&] {
    return share_refusal_line("proxy", client, orig.comm, cap, share_caps(), shares_);
  });
  Session s(*this, 0, UniqueFd(), orig, policy_);
  record(s, EGD_VERDICT_DENY, EGD_REASON_TOO_MANY_CONNECTIONS, "", "", "", "", 0);
}

void Proxy::pause_listeners(int err) {
  if (paused_) return;
  paused_ = true;
  pause_log_.say(opt_.warn, Loop::Clock::now(), [&] {
    return "proxy: cannot accept: " + std::string(std::strerror(err)) + "; not accepting for 100 ms";
  });
  for (auto& l : listeners_) (void)loop_.modify(l->fd.get(), 0, l.get());
  pause_timer_ = loop_.after(std::chrono::milliseconds(100), [this] {
    pause_timer_ = 0;
    paused_ = false;
    for (auto& l : listeners_) (void)loop_.modify(l->fd.get(), EPOLLIN, l.get());
  });
}

void Proxy::finished(uint64_t id) {
  loop_.defer([this, alive = std::weak_ptr<int>(alive_), id] {
    if (alive.expired()) return;  // the proxy and its sessions are gone
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    shares_.release(share_client(it->second->orig()));
    sessions_.erase(it);
    --stats_.active;
  });
}

void Proxy::record(const Session& s, unsigned verdict, unsigned reason, const std::string& l7,
                   const std::string& host, const std::string& method, const std::string& path, uint32_t rule_id,
                   const DialResult* dial) {
  auto v = static_cast<uint8_t>(verdict);
  auto r = static_cast<uint16_t>(reason);
  if (!recorder_.count(v, r, policy_->policy.events)) return;
  // A flood of refusals costs neither the loop nor the log.
  if (reason == EGD_REASON_TOO_MANY_CONNECTIONS &&
      !excess_events_.take(opt_.excess_events_per_second, opt_.excess_event_burst, Loop::Clock::now())) {
    ++stats_.events_suppressed;
    return;
  }
  Event e = recorder_.event(v, r, rule_id, &s.orig(), IPPROTO_TCP);
  e.l7 = l7;
  e.host = host;
  e.method = method;
  e.path = path;
  if (dial) {
    e.dial_error = dial->first_error;
    e.dials = dial->dials;
    if (dial->served.family) e.upstream = dial->served.to_string();  // empty when none served
  }
  recorder_.emit(e);
}

}  // namespace egressd::proxy
