#include "proxy/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "addr_class.h"
#include "decide/host_rules.h"
#include "proxy/client_hello.h"
#include "proxy/responses.h"

namespace egressd::proxy {
namespace {

constexpr size_t kMaxPendingOut = 256 * 1024;  // stop reading a side while this much waits for the other
constexpr int kReadsPerEvent = 4;              // fairness between sessions
constexpr auto kRefuseDrain = std::chrono::milliseconds(1000);
// An origin that accepts an upgrade answers "HTTP/1.1 101" and one SP (or
// CR: some omit the reason phrase and its SP).
constexpr std::string_view kSwitching = "HTTP/1.1 101";

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void set_rst_on_close(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

}  // namespace

bool among_addresses(const IpAddr& orig, const std::vector<IpAddr>& addrs) {
  IpAddr o = orig.unmapped();
  std::optional<IpAddr> embedded;
  if (o.family == AF_INET6) {
    __u32 w[4], v4 = 0;
    std::memcpy(w, o.bytes.data(), 16);
    // 6to4 (2002::/16) embeds its router's IPv4 in a /48: not one host.
    bool six_to_four = o.bytes[0] == 0x20 && o.bytes[1] == 0x02;
    if (!six_to_four && egd_embedded_v4(w, &v4) != EGD_EMBED_NONE) embedded = IpAddr::v4(&v4);
  }
  for (const IpAddr& a : addrs) {
    IpAddr u = a.unmapped();
    if (u == o || (embedded && u == *embedded)) return true;
  }
  return false;
}

Session::Session(Proxy& proxy, uint64_t id, UniqueFd client, decide::SteeredFlow orig,
                 std::shared_ptr<const decide::ActivePolicy> policy)
    : proxy_(proxy), id_(id), orig_(std::move(orig)), policy_(std::move(policy)), dialer_(proxy.loop_) {
  client_.s = upstream_.s = this;
  client_.client = true;
  upstream_.client = false;
  client_.fd = std::move(client);
  last_io_ = proxy_.loop_.now();
}

Session::~Session() {
  if (timer_) proxy_.loop_.cancel(timer_);
  for (End* e : {&client_, &upstream_})
    if (e->registered) proxy_.loop_.remove(e->fd.get());
}

void Session::start() {
  set_nodelay(client_.fd.get());
  update_interest(client_, EPOLLIN | EPOLLRDHUP);
  timer_ = proxy_.loop_.after(proxy_.opt_.inspect_timeout, [this] {
    timer_ = 0;
    if (phase_ != Phase::Inspect) return;
    // Bytes the gate has not parsed yet may carry a verdict of their own.
    if (!inspect_.empty()) {
      judge_first_flight(false);
      if (phase_ != Phase::Inspect) return;
    }
    host_.clear();
    record(policy_->policy.mode == policy::Mode::Audit ? EGD_VERDICT_AUDIT : EGD_VERDICT_DENY, EGD_REASON_TIMEOUT);
    abort();  // nothing decisive arrived: no answer is owed
  });
}

void Session::record(unsigned verdict, unsigned reason, uint32_t rule_id, const DialResult* dial) {
  proxy_.record(*this, verdict, reason, tls_ ? "tls" : "http", host_, method_, path_, rule_id, dial);
}

void Session::update_interest(End& e, uint32_t want) {
  if (!e.fd.valid()) return;
  if (e.registered && e.interest == want) return;
  if (!e.registered) {
    if (!proxy_.loop_.add(e.fd.get(), want, &e)) {
      abort();
      return;
    }
    e.registered = true;
  } else {
    (void)proxy_.loop_.modify(e.fd.get(), want, &e);
  }
  e.interest = want;
}

void Session::on_io(bool client, uint32_t events) {
  if (phase_ == Phase::Done) return;
  if (client) {
    if (phase_ == Phase::Inspect) return inspect();
    if (phase_ == Phase::Refuse) return refuse_now();
    if (phase_ == Phase::Relay) {
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) relay_client_readable();
      if (phase_ == Phase::Relay && (events & EPOLLOUT) && !flush(client_, u2c_out_, proxy_.stats_.bytes_down))
        return;
      return after_io();
    }
    // Resolve/Connect: the client only matters if it goes away.
    if (events & (EPOLLHUP | EPOLLERR)) abort();
    return;
  }
  if (phase_ == Phase::Relay) {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) relay_upstream_readable();
    if (phase_ == Phase::Relay && (events & EPOLLOUT) && !flush(upstream_, c2u_out_, proxy_.stats_.bytes_up)) return;
    after_io();
  }
}

// ---- inspection -------------------------------------------------------------

void Session::inspect() {
  char buf[4096];
  bool eof = false;
  for (int i = 0; i < 8; ++i) {
    ssize_t n = recv(client_.fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      inspect_.append(buf, static_cast<size_t>(n));
      if (inspect_.size() >= kMaxHttpHeadBytes + 1 || static_cast<size_t>(n) < sizeof(buf)) break;
      continue;
    }
    if (n == 0) eof = true;
    else if (errno != EAGAIN && errno != EINTR) return abort();
    break;
  }
  if (inspect_.empty()) {
    if (eof) finish();  // connected and left: nothing to judge
    return;
  }
  if (!eof && static_cast<uint8_t>(inspect_[0]) != 0x16 && !gate_.due(inspect_)) return;
  judge_first_flight(eof);
}

bool Session::HeadGate::due(const std::string& buf) {
  if (buf.size() < searched) reset();  // a new head
  bool yes = parsed == 0 || buf.size() >= 2 * parsed || buf.size() >= kMaxHttpHeadBytes;
  if (!yes) {
    size_t from = searched >= 2 ? searched - 2 : 0;
    yes = buf.find("\n\r\n", from) != std::string::npos || buf.find("\n\n", from) != std::string::npos;
  }
  searched = buf.size();
  if (yes) parsed = buf.size();
  return yes;
}

void Session::judge_first_flight(bool eof) {
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(inspect_.data()), inspect_.size());
  if (static_cast<uint8_t>(inspect_[0]) == 0x16) {
    tls_ = true;
    HelloResult h = parse_client_hello(bytes);
    switch (h.status) {
      case HelloStatus::NeedMore:
        if (eof) finish();
        return;
      case HelloStatus::Done:
        return judge_tls(h.info);
      case HelloStatus::NotTls:
        if (deny(EGD_REASON_NOT_TLS, h.error)) return connect_upstream();
        return;
      default:
        if (deny(EGD_REASON_MALFORMED, h.error)) return connect_upstream();
        return;
    }
  }
  tls_ = false;
  proxy_.stats_.head_bytes_parsed += bytes.size();
  HeadResult r = parse_http_head(bytes);
  switch (r.status) {
    case HeadStatus::NeedMore:
      if (eof) finish();
      return;
    case HeadStatus::Done:
      return judge_http(r.head);
    case HeadStatus::NotHttp:
      // On 443 the client owed us a ClientHello (the event says l7 tls); elsewhere a request.
      tls_ = orig_.port == 443;
      if (deny(tls_ ? EGD_REASON_NOT_TLS : EGD_REASON_NOT_HTTP, r.error)) return connect_upstream();
      return;
    case HeadStatus::Http2:
      method_ = r.head.method;
      if (deny(EGD_REASON_HTTP2_CLEARTEXT, r.error)) return connect_upstream();
      return;
    case HeadStatus::Smuggling:
      host_ = r.head.host;
      method_ = r.head.method;
      path_ = r.head.path;
      if (deny(EGD_REASON_SMUGGLING, r.error)) return connect_upstream();
      return;
    default:
      if (deny(EGD_REASON_MALFORMED, r.error)) return connect_upstream();
      return;
  }
}

void Session::judge_tls(const ClientHelloInfo& hello) {
  host_ = hello.sni;
  const policy::Policy& pol = policy_->policy;
  if (!hello.has_sni || hello.sni_is_ip) {
    // No name to judge: only [[allow_cidr]] (which is never steered) admits these.
    if (deny(EGD_REASON_NO_SNI, hello.has_sni ? "the SNI is an IP literal" : "the ClientHello has no SNI"))
      connect_upstream();
    return;
  }
  if (hello.has_ech && pol.proxy.ech == policy::EchMode::Deny) {
    if (deny(EGD_REASON_ECH, "Encrypted Client Hello hides the real name ([proxy] ech = \"outer-sni\" judges the outer one)"))
      connect_upstream();
    return;
  }
  decide::L7Request req;
  req.host = host_;
  req.port = orig_.port;
  req.tls = true;
  decide::L7Decision d = decide::decide_l7(pol, req);
  if (!d.allowed) {
    if (deny(d.reason, d.detail)) connect_upstream();
    return;
  }
  phase_ = Phase::Resolve;
  allowed(EGD_REASON_HOST_RULE, d.rule ? d.rule->id : 0);
}


void Session::judge_http(const HttpHead& head) {
  pending_head_ = head;
  http_framed_ = true;
  if (!judge_request(head, /*first=*/true)) return;
  // judge_request resolved or refused; nothing else to do here.
}

bool Session::judge_request(const HttpHead& head, bool first) {
  host_ = first ? head.host : host_;
  method_ = head.method;
  path_ = head.path;
  const policy::Policy& pol = policy_->policy;
  std::string host = head.host;
  auto refuse = [&](unsigned reason, const std::string& detail) {
    if (!first) host_ = host;
    bool audited = deny(reason, detail);
    if (audited && first) connect_upstream();
    return audited;
  };
  if (host.empty() || head.host_is_ip)
    return refuse(EGD_REASON_HOST_NOT_ALLOWED, host.empty() ? "the request names no host" : "the Host is an IP literal");
  decide::L7Request req;
  req.host = host;
  req.port = orig_.port;
  req.tls = false;
  req.method = head.method;
  req.path = head.path;
  req.rewrites = head.has_override || !head.upgrade.empty();
  decide::L7Decision d = decide::decide_l7(pol, req);
  if (!d.allowed) return refuse(d.reason, d.detail);
  uint32_t rule = d.rule ? d.rule->id : 0;
  if (first) {
    phase_ = Phase::Resolve;
    allowed(EGD_REASON_HOST_RULE, rule);
    return true;
  }
  if (host != host_) {
    // Another name on a connection whose address was checked for the first:
    // it must resolve to the same address, from what we already know.
    auto known = proxy_.resolver_.cached(host);
    if ((!known || !among_addresses(orig_.target, known->addrs)) && !answered_recently(host)) {
      std::string saved = host_;
      host_ = host;
      bool audited = deny(EGD_REASON_SNI_IP_MISMATCH,
                          "this connection goes to " + orig_.target.to_string() + ", which " + host +
                              " is not known to resolve to");
      host_ = saved;
      return audited;
    }
  }
  std::string saved = host_;
  host_ = host;
  record(EGD_VERDICT_ALLOW, EGD_REASON_HOST_RULE, rule);
  host_ = saved;
  return true;
}

// Enforcing: refuses the client and returns false. Audit mode: records the
// would-be denial and returns true (the caller carries on).
bool Session::deny(unsigned reason, const std::string& detail) {
  if (policy_->policy.mode == policy::Mode::Audit) {
    record(EGD_VERDICT_AUDIT, reason);
    return true;
  }
  record(EGD_VERDICT_DENY, reason);
  refusal_ = refusal_for(reason, detail);
  if (phase_ == Phase::Relay) {
    // Earlier requests on this connection are with the origin: let their
    // responses through, then refuse (drain_then_refuse_).
    drain_then_refuse_ = true;
    return false;
  }
  phase_ = Phase::Refuse;
  if (timer_) proxy_.loop_.cancel(timer_);
  timer_ = proxy_.loop_.after(kRefuseDrain, [this] {
    timer_ = 0;
    finish();
  });
  refuse_now();
  return false;
}

std::string Session::refusal_for(unsigned reason, const std::string& detail) const {
  if (tls_) return reason == EGD_REASON_NOT_TLS || reason == EGD_REASON_MALFORMED ? "" : tls_access_denied_alert();
  if (reason == EGD_REASON_NOT_HTTP || reason == EGD_REASON_NOT_TLS) return "";
  if (reason == EGD_REASON_HTTP2_CLEARTEXT) return http2_goaway_http11_required(reason_name(reason), detail);
  return http_forbidden(host_, orig_.port, reason_name(reason), detail, policy_->policy.source);
}

// Writes what is left of refusal_, then half-closes and reads until the
// client closes (closing with unread input would reset the connection and
// could destroy the response before the client reads it).
void Session::refuse_now() {
  while (!refusal_.empty()) {
    ssize_t n = send(client_.fd.get(), refusal_.data(), refusal_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      refusal_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      update_interest(client_, EPOLLOUT);
      return;
    }
    return finish();
  }
  if (!c2u_shut_) {
    shutdown(client_.fd.get(), SHUT_WR);
    c2u_shut_ = true;  // reused: "client write side is shut"
  }
  char buf[4096];
  for (int i = 0; i < 16; ++i) {
    ssize_t n = recv(client_.fd.get(), buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EAGAIN) {
      update_interest(client_, EPOLLIN | EPOLLRDHUP);
      return;
    }
    return finish();
  }
  update_interest(client_, EPOLLIN | EPOLLRDHUP);
}

// The rules admit the name; the event waits for the address check.
void Session::allowed(unsigned reason, uint32_t rule_id) {
  allow_reason_ = reason;
  rule_id_ = rule_id;
  if (timer_) proxy_.loop_.cancel(timer_);
  timer_ = 0;
  update_interest(client_, 0);  // later bytes wait in the socket until the upstream is there
  Proxy& proxy = proxy_;
  uint64_t id = id_;
  proxy_.resolver_.resolve(host_, [&proxy, alive = std::weak_ptr<int>(proxy_.alive_), id](const ResolveResult& r) {
    if (alive.expired()) return;  // answered after the proxy was destroyed
    auto it = proxy.sessions_.find(id);
    if (it != proxy.sessions_.end()) it->second->on_resolved(r);
  });
}

bool Session::answered_recently(const std::string& host) const {
  auto grace = policy_->policy.proxy.address_grace;
  return grace.count() > 0 && among_addresses(orig_.target, proxy_.resolver_.answered_within(host, grace));
}

void Session::on_resolved(const ResolveResult& r) {
  if (phase_ != Phase::Resolve) return;
  const decide::L3Check& l3 = policy_->l3;
  // An address the name had a little while ago still counts (it moved
  // since); the address check below judges it all the same.
  bool matched = among_addresses(orig_.target, r.addrs) || answered_recently(host_);
  if (!r.error.empty() && !matched) {
    if (deny(EGD_REASON_RESOLVE_FAILED, host_ + " did not resolve: " + r.error)) connect_upstream();
    return;
  }
  decide::L3Verdict here = l3.tcp(orig_.target, orig_.port);
  if (!here.allowed) {
    if (deny(EGD_REASON_REBIND, orig_.target.to_string() + " is a blocked address")) connect_upstream();
    return;
  }
  if (!matched) {
    bool all_blocked = !r.addrs.empty() && std::all_of(r.addrs.begin(), r.addrs.end(), [&](const IpAddr& a) {
      return !l3.tcp(a, orig_.port).allowed;
    });
    std::string detail = host_ + " resolves to ";
    for (size_t i = 0; i < r.addrs.size() && i < 4; ++i) detail += (i ? ", " : "") + r.addrs[i].to_string();
    if (r.addrs.empty()) detail += "no address";
    detail += ", not " + orig_.target.to_string();
    if (deny(all_blocked ? EGD_REASON_REBIND : EGD_REASON_SNI_IP_MISMATCH, detail)) connect_upstream();
    return;
  }
  record(EGD_VERDICT_ALLOW, allow_reason_, rule_id_);
  fallbacks_ = fallback_order(orig_.target, r.addrs, [&](const IpAddr& a) { return l3.tcp(a, orig_.port).allowed; });
  connect_upstream();
}

// ---- upstream -------------------------------------------------------------------

void Session::connect_upstream() {
  phase_ = Phase::Connect;
  if (timer_) proxy_.loop_.cancel(timer_);
  timer_ = 0;
  update_interest(client_, 0);  // hold the client's bytes until the upstream is there
  DialOptions o;
  o.attempt_delay = proxy_.opt_.dial_attempt_delay;
  o.deadline = proxy_.opt_.connect_timeout;
  dialer_.start(orig_.target, fallbacks_, orig_.port, o, [this](DialResult r) { dialed(std::move(r)); });
}

void Session::dialed(DialResult r) {
  if (phase_ != Phase::Connect) return;
  if (!r.fd.valid()) {
    record(EGD_VERDICT_DENY, EGD_REASON_UPSTREAM_FAILED, 0, &r);
    return abort();
  }
  upstream_.fd = std::move(r.fd);
  // Served by another address of the name: say which failed and which served.
  if (r.first_error != DialError::NONE) record(EGD_VERDICT_ALLOW, EGD_REASON_UPSTREAM_FALLBACK, rule_id_, &r);
  on_connected();
}

void Session::on_connected() {
  if (timer_) proxy_.loop_.cancel(timer_);
  timer_ = 0;
  phase_ = Phase::Relay;
  ++proxy_.stats_.relayed;
  if (tls_ || !http_framed_) {
    // TLS is relayed blind once judged; so is what audit mode let through
    // without a well-formed request head (nothing to frame it by). Audit
    // mode otherwise judges (and records) every request like enforcing.
    body_ = Body::Blind;
    c2u_out_ = std::move(inspect_);
  } else {
    http_in_ = std::move(inspect_);
    first_head_judged_ = true;
    gate_.reset();
    http_advance();  // a refused later request sets drain_then_refuse_; earlier ones still go
  }
  inspect_ = std::string();
  arm_idle();
  if (!flush(upstream_, c2u_out_, proxy_.stats_.bytes_up)) return;
  after_io();
}

void Session::arm_idle() {
  timer_ = proxy_.loop_.after(proxy_.opt_.idle_timeout, [this] {
    timer_ = 0;
    auto idle = proxy_.loop_.now() - last_io_;
    if (idle >= proxy_.opt_.idle_timeout) return abort();
    arm_idle();
  });
}

// ---- relay ------------------------------------------------------------------------

// Writes what `out` holds to `to`. False if the session ended.
bool Session::flush(End& to, std::string& out, uint64_t& counter) {
  while (!out.empty()) {
    ssize_t n = send(to.fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      counter += static_cast<uint64_t>(n);
      out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    abort();
    return false;
  }
  if (out.empty() && out.capacity() > 0) std::string().swap(out);  // idle sessions hold no buffer
  return true;
}

void Session::relay_client_readable() {
  std::vector<char>& buf = proxy_.scratch_;
  for (int i = 0; i < kReadsPerEvent && !c2u_eof_ && c2u_out_.size() < kMaxPendingOut && !drain_then_refuse_ &&
                  !client_held();
       ++i) {
    ssize_t n = recv(client_.fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      return abort();
    }
    last_io_ = proxy_.loop_.now();
    if (n == 0) {
      c2u_eof_ = true;
      // An unfinished request is never forwarded.
      http_in_ = std::string();
      break;
    }
    if (body_ == Body::Blind) {
      if (c2u_out_.empty()) {
        ssize_t w = send(upstream_.fd.get(), buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return abort();
        if (w < 0) w = 0;
        proxy_.stats_.bytes_up += static_cast<uint64_t>(w);
        if (w < n) c2u_out_.append(buf.data() + w, static_cast<size_t>(n - w));
      } else {
        c2u_out_.append(buf.data(), static_cast<size_t>(n));
      }
      if (static_cast<size_t>(n) < buf.size()) break;
      continue;
    }
    http_in_.append(buf.data(), static_cast<size_t>(n));
    http_advance();
    if (!flush(upstream_, c2u_out_, proxy_.stats_.bytes_up)) return;
  }
}

void Session::relay_upstream_readable() {
  std::vector<char>& buf = proxy_.scratch_;
  for (int i = 0; i < kReadsPerEvent && !u2c_eof_ && u2c_out_.size() < kMaxPendingOut; ++i) {
    ssize_t n = recv(upstream_.fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      return abort();
    }
    last_io_ = proxy_.loop_.now();
    if (n == 0) {
      u2c_eof_ = true;
      break;
    }
    if (upgrade_wait_ && resp_peek_.size() <= kSwitching.size())
      resp_peek_.append(buf.data(), std::min(static_cast<size_t>(n), kSwitching.size() + 1 - resp_peek_.size()));
    if (u2c_out_.empty()) {
      ssize_t w = send(client_.fd.get(), buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) return abort();
      if (w < 0) w = 0;
      proxy_.stats_.bytes_down += static_cast<uint64_t>(w);
      if (w < n) u2c_out_.append(buf.data() + w, static_cast<size_t>(n - w));
    } else {
      u2c_out_.append(buf.data(), static_cast<size_t>(n));
    }
    if (static_cast<size_t>(n) < buf.size()) break;
  }
  if (upgrade_wait_ && (u2c_eof_ || resp_peek_.size() > kSwitching.size())) upgrade_answered();
}

// The origin's first bytes answer the upgrade request (it was the first
// request on the connection). 101: it speaks the new protocol now, relay
// blind. Anything else (no switch, an interim 100, garbage): it still
// reads HTTP, so the held bytes and everything after are judged.
void Session::upgrade_answered() {
  bool switched = resp_peek_.size() > kSwitching.size() && resp_peek_.compare(0, kSwitching.size(), kSwitching) == 0 &&
                  (resp_peek_[kSwitching.size()] == ' ' || resp_peek_[kSwitching.size()] == '\r');
  upgrade_wait_ = false;
  std::string().swap(resp_peek_);
  if (switched) body_ = Body::Blind;
  http_advance();
  flush(upstream_, c2u_out_, proxy_.stats_.bytes_up);
}

// Client -> upstream for plain HTTP: a request's head is judged before any
// byte of it is forwarded; its body is counted so the next head is found.
bool Session::http_advance() {
  // Bounded by the input: every pass consumes bytes or breaks. No pass
  // budget: requests left over would wait for more client bytes that a
  // pipelining client, waiting for their responses, never sends.
  while (!http_in_.empty() && !drain_then_refuse_) {
    if (body_ == Body::Blind) {
      c2u_out_ += http_in_;
      http_in_.clear();
      break;
    }
    if (body_ == Body::Fixed) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(body_left_, http_in_.size()));
      c2u_out_.append(http_in_, 0, take);
      http_in_.erase(0, take);
      body_left_ -= take;
      if (body_left_ == 0) body_ = Body::Head;
      continue;
    }
    if (body_ == Body::Chunked) {
      auto r = chunked_.feed(std::span(reinterpret_cast<const uint8_t*>(http_in_.data()), http_in_.size()));
      c2u_out_.append(http_in_, 0, r.consumed);
      http_in_.erase(0, r.consumed);
      if (r.status == ChunkStatus::Done) {
        body_ = Body::Head;
        chunked_ = ChunkedDecoder();
        continue;
      }
      if (r.status != ChunkStatus::NeedMore) {
        if (deny(EGD_REASON_SMUGGLING, "malformed chunked body: " + chunked_.error())) {
          body_ = Body::Blind;  // audit: recorded; what follows cannot be framed
          continue;
        }
        http_in_.clear();
        return false;
      }
      break;
    }
    // After an upgrade request nothing is forwarded until the origin has
    // said whether it switched: if it did not, it reads these bytes as
    // HTTP requests, which must be judged first.
    if (upgrade_wait_) break;
    if (!gate_.due(http_in_)) break;
    proxy_.stats_.head_bytes_parsed += std::min(http_in_.size(), kMaxHttpHeadBytes);
    HeadResult h = parse_http_head(std::span(reinterpret_cast<const uint8_t*>(http_in_.data()), http_in_.size()));
    if (h.status == HeadStatus::NeedMore) break;
    gate_.reset();  // a verdict: the next head starts afresh
    bool first = first_head_judged_;
    first_head_judged_ = false;
    if (h.status != HeadStatus::Done) {
      method_ = h.head.method;
      path_ = h.head.path;
      unsigned reason = h.status == HeadStatus::Smuggling ? EGD_REASON_SMUGGLING
                        : h.status == HeadStatus::NotHttp ? EGD_REASON_NOT_HTTP
                        : h.status == HeadStatus::Http2   ? EGD_REASON_HTTP2_CLEARTEXT
                                                          : EGD_REASON_MALFORMED;
      if (deny(reason, h.error)) {
        body_ = Body::Blind;  // audit: recorded; what follows cannot be framed
        continue;
      }
      http_in_.clear();
      return false;
    }
    if (!first && !judge_request(h.head, /*first=*/false)) {
      http_in_.clear();
      return false;
    }
    bool blind_after = false;
    if (!h.head.upgrade.empty()) {
      // Only on the first request can the origin's answer be found (its
      // first bytes) without parsing every response.
      if (heads_forwarded_ == 0) {
        upgrade_wait_ = true;
      } else if (deny(EGD_REASON_SMUGGLING,
                      "upgrade on a connection that already carried a request (open a new connection for it)")) {
        blind_after = true;  // audit: recorded; the switch cannot be followed
      } else {
        http_in_.clear();
        return false;
      }
    }
    // A head that offered h2c goes without the offer: the origin answers
    // in HTTP/1.1 and the connection stays judged request by request.
    if (h.head.rewritten.empty())
      c2u_out_.append(http_in_, 0, h.head.head_bytes);
    else
      c2u_out_ += h.head.rewritten;
    http_in_.erase(0, h.head.head_bytes);
    ++heads_forwarded_;
    if (blind_after) {
      body_ = Body::Blind;
    } else if (auto len = fixed_body_length(h.head)) {
      body_left_ = *len;
      body_ = *len ? Body::Fixed : Body::Head;
    } else {
      body_ = Body::Chunked;
    }
  }
  if (http_in_.size() > kMaxHttpHeadBytes + kMaxPendingOut) {  // a head is at most kMaxHttpHeadBytes; belt and braces
    http_in_.clear();
    return deny(EGD_REASON_MALFORMED, "request too large");
  }
  return true;
}

void Session::after_io() {
  if (phase_ != Phase::Relay) return;
  // EOF travels once everything before it is delivered.
  bool c2u_done_reading = c2u_eof_ || (drain_then_refuse_ && http_in_.empty());
  if (drain_then_refuse_) http_in_.clear();
  if (c2u_done_reading && c2u_out_.empty() && !c2u_shut_) {
    shutdown(upstream_.fd.get(), SHUT_WR);
    c2u_shut_ = true;
  }
  if (u2c_eof_ && u2c_out_.empty() && !u2c_shut_) {
    if (drain_then_refuse_) {
      // The origin answered what it was sent: now the refusal, then close.
      phase_ = Phase::Refuse;
      c2u_shut_ = false;
      if (timer_) proxy_.loop_.cancel(timer_);
      timer_ = proxy_.loop_.after(kRefuseDrain, [this] {
        timer_ = 0;
        finish();
      });
      if (upstream_.registered) proxy_.loop_.remove(upstream_.fd.get());
      upstream_.registered = false;
      upstream_.fd.reset();
      return refuse_now();
    }
    shutdown(client_.fd.get(), SHUT_WR);
    u2c_shut_ = true;
  }
  if (c2u_shut_ && u2c_shut_) return finish();

  // Level-triggered: ask only for what the next call will consume. EPOLLRDHUP
  // goes with EPOLLIN (a side we do not read keeps it asserted), and a side
  // we neither read nor write leaves the set (EPOLLHUP/EPOLLERR are always
  // reported and would spin until the other side moves).
  bool read_client = !c2u_eof_ && !drain_then_refuse_ && !client_held() && c2u_out_.size() < kMaxPendingOut;
  bool read_upstream = !u2c_eof_ && u2c_out_.size() < kMaxPendingOut;
  watch(client_, (read_client ? EPOLLIN | EPOLLRDHUP : 0u) | (u2c_out_.empty() ? 0u : EPOLLOUT));
  watch(upstream_, (read_upstream ? EPOLLIN | EPOLLRDHUP : 0u) | (c2u_out_.empty() ? 0u : EPOLLOUT));
}

void Session::watch(End& e, uint32_t want) {
  if (want != 0) return update_interest(e, want);
  if (e.registered) proxy_.loop_.remove(e.fd.get());
  e.registered = false;
  e.interest = 0;
}

void Session::abort() {
  if (phase_ == Phase::Done) return;
  for (End* e : {&client_, &upstream_})
    if (e->fd.valid()) set_rst_on_close(e->fd.get());
  finish();
}

void Session::finish() {
  if (phase_ == Phase::Done) return;
  phase_ = Phase::Done;
  dialer_.stop();  // no dial outlives the session's end
  if (timer_) proxy_.loop_.cancel(timer_);
  timer_ = 0;
  for (End* e : {&client_, &upstream_}) {
    if (e->registered) proxy_.loop_.remove(e->fd.get());
    e->registered = false;
    e->fd.reset();
  }
  proxy_.finished(id_);
}

}  // namespace egressd::proxy
