#include "proxy/dialer.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "proxy/session.h"

namespace egressd::proxy {

DialError dial_error_of(int err) {
  switch (err) {
    case ECONNREFUSED:
      return DialError::REFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
      return DialError::UNREACHABLE;
    case ETIMEDOUT:
      return DialError::TIMEOUT;
    default:
      return DialError::OTHER;
  }
}

std::vector<IpAddr> fallback_order(const IpAddr& original, const std::vector<IpAddr>& resolved,
                                   const std::function<bool(const IpAddr&)>& usable) {
  IpAddr o = original.unmapped();
  std::vector<IpAddr> same, other;
  for (const IpAddr& a : resolved) {
    IpAddr u = a.unmapped();
    if (among_addresses(o, {u})) continue;  // the original, or the IPv4 host its IPv6 form names
    if (std::find(same.begin(), same.end(), u) != same.end() || std::find(other.begin(), other.end(), u) != other.end())
      continue;
    if (!usable(u)) continue;
    (u.family == o.family ? same : other).push_back(u);
  }
  same.insert(same.end(), other.begin(), other.end());
  if (same.size() > kMaxDials - 1) same.resize(kMaxDials - 1);
  return same;
}

Dialer::~Dialer() { stop(); }

void Dialer::stop() {
  finished_ = true;
  done_ = nullptr;
  if (stagger_) loop_.cancel(stagger_);
  if (deadline_) loop_.cancel(deadline_);
  stagger_ = deadline_ = 0;
  for (Attempt& a : attempts_) close_attempt(a);
  in_flight_ = 0;
}

void Dialer::start(const IpAddr& original, const std::vector<IpAddr>& others, uint16_t port, DialOptions options,
                   Done done) {
  finished_ = false;
  done_ = std::move(done);
  opt_ = options;
  port_ = port;
  planned_ = started_ = in_flight_ = 0;
  attempts_[planned_++].addr = original;
  for (const IpAddr& a : others) {
    if (planned_ == kMaxDials) break;
    attempts_[planned_++].addr = a;
  }
  for (Attempt& a : attempts_) a.d = this;
  deadline_ = loop_.after(opt_.deadline, [this] {
    deadline_ = 0;
    finish(nullptr);
  });
  dial_next();
}

void Dialer::dial_next() {
  while (!finished_ && started_ < planned_) {  // bounded by planned_ <= kMaxDials
    Attempt& a = attempts_[started_++];
    a.fd.reset(socket(a.addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!a.fd.valid()) {
      failed(a, dial_error_of(errno));
      continue;
    }
    int one = 1;
    setsockopt(a.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_storage ss;
    socklen_t len = a.addr.to_sockaddr(port_, &ss);
    if (connect(a.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
      failed(a, dial_error_of(errno));  // no route, for one: the next address at once
      continue;
    }
    if (!loop_.add(a.fd.get(), EPOLLOUT, &a)) {
      failed(a, DialError::OTHER);
      continue;
    }
    ++in_flight_;
    if (started_ < planned_) {
      stagger_ = loop_.after(opt_.attempt_delay, [this] {
        stagger_ = 0;
        dial_next();  // the earlier attempts stay open: the first to connect wins
      });
    }
    return;
  }
  if (!finished_ && in_flight_ == 0) finish(nullptr);
}

void Dialer::on_io(Attempt& a, uint32_t) {
  if (finished_ || !a.fd.valid()) return;  // an event collected before the attempt ended
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(a.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == EINPROGRESS || err == EALREADY) return;
  if (err == 0) return finish(&a);
  --in_flight_;
  failed(a, dial_error_of(err));
  if (stagger_) {
    loop_.cancel(stagger_);
    stagger_ = 0;
  }
  dial_next();  // the next address now, or the end when none is left
}

void Dialer::failed(Attempt& a, DialError e) {
  a.error = e;
  close_attempt(a);
}

void Dialer::close_attempt(Attempt& a) {
  if (!a.fd.valid()) return;
  loop_.remove(a.fd.get());
  a.fd.reset();
}

void Dialer::finish(Attempt* winner) {
  if (finished_) return;
  finished_ = true;
  if (stagger_) loop_.cancel(stagger_);
  if (deadline_) loop_.cancel(deadline_);
  stagger_ = deadline_ = 0;
  DialResult r;
  r.dials = static_cast<uint8_t>(started_);
  if (winner) {
    loop_.remove(winner->fd.get());
    r.fd = std::move(winner->fd);
    r.served = winner->addr;
  }
  const Attempt& first = attempts_[0];
  // Still open when another won or the deadline came: it did not answer in time.
  if (winner != &first) r.first_error = first.error != DialError::NONE ? first.error : DialError::TIMEOUT;
  for (Attempt& a : attempts_) close_attempt(a);
  in_flight_ = 0;
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(r));
}

}  // namespace egressd::proxy
