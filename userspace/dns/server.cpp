#include "dns/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "decide/dns_check.h"
#include "dns/filter.h"

namespace egressd::dns {
namespace {

constexpr size_t kDatagramsPerWakeup = 64;  // one recvmmsg, one sendmmsg
constexpr size_t kUdpSlotBytes = kMaxMessageBytes + 1;  // any datagram; a longer one is malformed
constexpr int kAcceptsPerWakeup = 64;
constexpr int kTcpReadsPerWakeup = 16;
constexpr size_t kTcpMaxInput = 2 + kMaxMessageBytes + 4096;  // one whole frame and the start of the next
constexpr int kBindAttempts = 16;

Result<UniqueFd> listen_on(int family, int type, uint16_t port, sockaddr_storage* bound) {
  std::string what = std::string(type == SOCK_STREAM ? "TCP " : "UDP ") +
                     (family == AF_INET ? "127.0.0.1:" : "[::1]:") + std::to_string(port);
  UniqueFd fd(socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return sys_error("resolver socket " + what);
  int one = 1;
  if (type == SOCK_STREAM) setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  IpAddr lo = family == AF_INET ? *IpAddr::parse("127.0.0.1") : *IpAddr::parse("::1");
  sockaddr_storage ss;
  socklen_t len = lo.to_sockaddr(port, &ss);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("bind resolver " + what);
  if (type == SOCK_STREAM && listen(fd.get(), 1024) != 0) return sys_error("listen on resolver " + what);
  len = sizeof(*bound);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(bound), &len);
  return fd;
}

uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);  // same offset for sockaddr_in6
}

socklen_t addr_len(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// A question's policy decision, kept with its cached answer, and the
// families left out of the answer (the route state it was filtered under).
uint64_t pack(const decide::QueryCheck& c, FamilyDrop drop) {
  return uint64_t{c.verdict} | uint64_t{c.reason} << 8 | uint64_t{c.rule_id} << 24 | uint64_t{drop.bits()} << 56;
}
uint8_t drop_bits(uint64_t tag) { return static_cast<uint8_t>(tag >> 56); }
decide::QueryCheck unpack(uint64_t tag) {
  decide::QueryCheck c;
  c.forward = true;  // only forwarded questions are cached
  c.verdict = static_cast<uint8_t>(tag);
  c.reason = static_cast<uint16_t>(tag >> 8);
  c.rule_id = static_cast<uint32_t>(tag >> 24);  // cast: bits 56.. are the families
  c.rcode = kRcodeNoError;
  return c;
}

ShareClient share_client(const decide::SteeredFlow* who) {
  return who ? ShareClient{who->tgid, who->uid, true} : ShareClient{};
}

}  // namespace

struct Server::Listener final : Loop::Watcher {
  Server* server = nullptr;
  UniqueFd fd;
  bool tcp = false;
  sockaddr_storage local{};
  void on_io(uint32_t) override {
    if (tcp)
      server->on_accept(*this);
    else
      server->on_udp(*this);
  }
};

struct Server::TcpClient final : Loop::Watcher {
  Server* server = nullptr;
  uint64_t id = 0;
  UniqueFd fd;
  Listener* listener = nullptr;
  sockaddr_storage peer{};
  std::shared_ptr<const decide::SteeredFlow> who;  // taken at accept
  ShareClient share;                               // whose share it counts in
  std::vector<uint8_t> in, out;
  size_t out_sent = 0;
  size_t in_flight = 0;  // queries read, not yet answered
  bool eof = false;      // the client half-closed: answer what is in flight, then close
  bool closed = false;
  bool framing = false;   // inside tcp_frames: answers given meanwhile need no new pass
  bool pass_due = false;  // a deferred tcp_frames pass is scheduled
  uint32_t interest = EPOLLIN;
  Loop::TimerId idle = 0;
  void on_io(uint32_t events) override {
    if (!closed) server->tcp_io(*this, events);
  }
};

// Someone to answer: a UDP peer (through the listener it wrote to) or a
// TCP connection (by id: it may be gone when the answer comes).
struct Server::Waiter {
  Listener* listener = nullptr;
  sockaddr_storage peer{};
  uint64_t tcp_id = 0;  // 0: UDP
  std::shared_ptr<const decide::SteeredFlow> who;
  QueryInfo q;
};

struct Server::Pending {
  std::vector<Waiter> waiters;
  UpstreamClient::Ticket ticket = 0;
  decide::QueryCheck check;  // the decision that forwarded it
  uint64_t generation = 0;   // of the policy it was made under: cached only if still in force
};

// One recvmmsg's worth of datagrams, each with the waiter it becomes.
struct Server::UdpIn {
  // Allocated uninitialised: the kernel writes only a datagram's bytes, so
  // only the pages queries touch become resident (a few KiB per slot).
  std::unique_ptr<uint8_t[]> bytes{new uint8_t[kDatagramsPerWakeup * kUdpSlotBytes]};
  std::array<Waiter, kDatagramsPerWakeup> waiters;  // recvmmsg writes each peer in place
  std::array<iovec, kDatagramsPerWakeup> iov{};
  std::array<mmsghdr, kDatagramsPerWakeup> msgs{};
  uint8_t* slot(size_t i) { return bytes.get() + i * kUdpSlotBytes; }
};

// UDP replies not sent yet, all for one socket; slots keep their buffers.
struct Server::UdpOut {
  struct Slot {
    std::vector<uint8_t> bytes;
    sockaddr_storage peer{};
  };
  std::array<Slot, kDatagramsPerWakeup> slots;
  std::array<iovec, kDatagramsPerWakeup> iov{};
  std::array<mmsghdr, kDatagramsPerWakeup> msgs{};
  size_t n = 0;
  int fd = -1;
};

Server::Server(Loop& loop, UpstreamClient& upstream, ClientIdentity& identity, EventSink sink,
               std::shared_ptr<const decide::ActivePolicy> p, ServerOptions o)
    : loop_(loop),
      identity_(identity),
      recorder_(EGD_HOOK_DNS, std::move(sink)),
      policy_(std::move(p)),
      opt_(std::move(o)),
      upstream_(upstream),
      cache_(opt_.cache),
      udp_in_(std::make_unique<UdpIn>()),
      udp_out_(std::make_unique<UdpOut>()) {
  explain_refusals();
  rx_.resize(kMaxMessageBytes + 1);
  UdpIn& in = *udp_in_;
  for (size_t i = 0; i < kDatagramsPerWakeup; ++i) {
    in.iov[i] = {in.slot(i), kUdpSlotBytes};
    msghdr& h = in.msgs[i].msg_hdr;
    h.msg_name = &in.waiters[i].peer;
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &in.iov[i];
    h.msg_iovlen = 1;
  }
}

Server::~Server() {
  alive_.reset();
  for (auto& [key, pending] : pending_) upstream_.cancel(pending->ticket);  // the client outlives us
  for (auto& l : listeners_) loop_.remove(l->fd.get());
  for (auto& [id, c] : tcp_) {
    if (c->idle) loop_.cancel(c->idle);
    if (c->fd.valid()) loop_.remove(c->fd.get());
  }
}

Result<std::unique_ptr<Server>> Server::start(Loop& loop, UpstreamClient& upstream, ClientIdentity& identity,
                                              EventSink sink, std::shared_ptr<const decide::ActivePolicy> policy,
                                              ServerOptions options) {
  std::unique_ptr<Server> s(
      new Server(loop, upstream, identity, std::move(sink), std::move(policy), std::move(options)));
  EGD_TRY(s->bind_all());
  return s;
}

// One port for UDP and TCP on both families: the hooks know one. With port
// 0 the first bind picks it; if it is taken for another of the four, try
// again (bounded).
Status Server::bind_all() {
  Error last = logic_error("no attempt");
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    std::vector<std::unique_ptr<Listener>> ls;
    sockaddr_storage bound{};
    auto first = listen_on(AF_INET, SOCK_DGRAM, opt_.port, &bound);
    if (!first) return first.error();
    uint16_t port = port_of(bound);
    auto add = [&](UniqueFd fd, bool tcp, const sockaddr_storage& local) {
      auto l = std::make_unique<Listener>();
      l->server = this;
      l->fd = std::move(fd);
      l->tcp = tcp;
      l->local = local;
      ls.push_back(std::move(l));
    };
    add(std::move(*first), false, bound);
    bool retry = false;
    for (auto [family, type] : {std::pair{AF_INET, SOCK_STREAM}, {AF_INET6, SOCK_DGRAM}, {AF_INET6, SOCK_STREAM}}) {
      sockaddr_storage local{};
      auto fd = listen_on(family, type, port, &local);
      if (fd) {
        add(std::move(*fd), type == SOCK_STREAM, local);
        continue;
      }
      int err = fd.error().err;
      if (err == EADDRINUSE && opt_.port == 0) {
        last = fd.error();
        retry = true;
        break;
      }
      // No ::1 in this namespace: IPv4 only (steered IPv6 DNS is refused there).
      if (family == AF_INET6 && (err == EADDRNOTAVAIL || err == EAFNOSUPPORT)) break;
      return fd.error();
    }
    if (retry) continue;
    for (auto& l : ls) EGD_TRY(loop_.add(l->fd.get(), EPOLLIN, l.get()));
    listeners_ = std::move(ls);
    port_ = port;
    return {};
  }
  return last;
}

void Server::set_policy(std::shared_ptr<const decide::ActivePolicy> p) {
  policy_ = std::move(p);
  ++policy_generation_;
  cache_.clear();
  explain_refusals();
}

// "egressd: dns-name-not-allowed by policy /etc/egressd/claude.toml": who
// refused, why, and where to change it (a path, nothing secret), cut to
// kMaxEdeText by append_ede.
void Server::explain_refusals() {
  const policy::Policy& p = policy_->policy;
  std::string by = p.source.empty() ? std::string(" by the policy") : " by policy " + p.source;
  ede_name_ = "egressd: " + std::string(reason_name(EGD_REASON_DNS_NAME_NOT_ALLOWED)) + by;
  ede_type_ = "egressd: " + std::string(reason_name(EGD_REASON_DNS_TYPE_NOT_ALLOWED)) + by;
  ede_sinkhole_ = ede_name_ + " (sinkhole: connections reach egressd's proxy, which refuses them)";
  sinkhole4_ = IpAddr::parse(p.dns.sinkhole_ipv4);
  sinkhole6_ = IpAddr::parse(p.dns.sinkhole_ipv6);
}

FamilyDrop Server::family_drop() const {
  return families_to_drop(opt_.routes ? opt_.routes->families() : RouteFamilies{},
                          policy_->policy.dns.drop_unroutable_families);
}

std::optional<std::vector<IpAddr>> Server::cached_addresses(std::string_view name) const {
  return cache_.addresses(name, Loop::Clock::now());
}

// ---- UDP ----------------------------------------------------------------------

// Up to kDatagramsPerWakeup datagrams per wakeup (level-triggered: the rest
// wake us again), answered in order; the replies leave together.
void Server::on_udp(Listener& l) {
  UdpIn& in = *udp_in_;
  int n = recvmmsg(l.fd.get(), in.msgs.data(), kDatagramsPerWakeup, MSG_DONTWAIT, nullptr);
  if (n <= 0) return;  // EAGAIN; errors of a UDP socket are about earlier sends
  auto now = Loop::Clock::now();
  ++batching_;
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    Waiter& w = in.waiters[i];
    w.listener = &l;
    w.tcp_id = 0;
    w.who.reset();
    ++stats_.udp;
    query(w, std::span<const uint8_t>(in.slot(i), in.msgs[i].msg_len), now);
    in.msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);  // the kernel wrote the peer's length
  }
  --batching_;
  flush_udp();
}

// ---- TCP ------------------------------------------------------------------------

void Server::on_accept(Listener& l) {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    UniqueFd fd(accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting(errno);
      return;
    }
    auto taken = identity_.tcp(fd.get(), peer);  // taken even if refused below: the map must not fill
    std::shared_ptr<const decide::SteeredFlow> who;
    if (taken) who = std::make_shared<const decide::SteeredFlow>(std::move(*taken));
    // A fair share each, so one client cannot starve the rest.
    ShareClient client = share_client(who.get());
    if (ShareCap cap = tcp_shares_.admit(client, tcp_share_caps()); cap != ShareCap::None) {
      refuse_excess(l, peer, std::move(who), client, cap);
      continue;  // closes it; the client retries or gives up
    }
    auto c = std::make_unique<TcpClient>();
    c->server = this;
    c->id = next_tcp_id_++;
    c->fd = std::move(fd);
    c->listener = &l;
    c->peer = peer;
    c->who = std::move(who);
    c->share = client;
    if (!loop_.add(c->fd.get(), EPOLLIN, c.get()).ok()) {
      tcp_shares_.release(client);
      continue;
    }
    TcpClient& ref = *c;
    tcp_.emplace(ref.id, std::move(c));
    ++stats_.tcp_accepted;
    ++stats_.tcp_active;
    tcp_arm_idle(ref);
  }
}

ShareCaps Server::tcp_share_caps() const {
  const policy::ConnectionShare& c = policy_->policy.dns.tcp_connections;
  return share_caps(opt_.max_tcp_clients, c.per_process, c.per_uid);
}

void Server::refuse_excess(Listener& l, const sockaddr_storage& peer,
                           std::shared_ptr<const decide::SteeredFlow> who, const ShareClient& client, ShareCap cap) {
  ++stats_.tcp_refused;
  auto now = Loop::Clock::now();
  excess_log_.say(opt_.warn, now, [&] {
    return share_refusal_line("resolver (TCP)", client, who ? std::string_view(who->comm) : std::string_view(), cap,
                              tcp_share_caps(), tcp_shares_);
  });
  Waiter w;  // never answered: only for the event (an id of its own marks it TCP)
  w.listener = &l;
  w.peer = peer;
  w.tcp_id = next_tcp_id_++;
  w.who = std::move(who);
  record(w, nullptr, EGD_VERDICT_DENY, EGD_REASON_TOO_MANY_CONNECTIONS, 0);
}

void Server::pause_accepting(int err) {
  if (accept_paused_) return;
  accept_paused_ = true;
  pause_log_.say(opt_.warn, Loop::Clock::now(), [&] {
    return "resolver (TCP): cannot accept: " + std::string(std::strerror(err)) + "; not accepting for 100 ms";
  });
  for (auto& l : listeners_)
    if (l->tcp) (void)loop_.modify(l->fd.get(), 0, l.get());
  loop_.after(std::chrono::milliseconds(100), [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    accept_paused_ = false;
    for (auto& l : listeners_)
      if (l->tcp) (void)loop_.modify(l->fd.get(), EPOLLIN, l.get());
  });
}

void Server::tcp_arm_idle(TcpClient& c) {
  if (c.idle) loop_.cancel(c.idle);
  uint64_t id = c.id;
  c.idle = loop_.after(opt_.tcp_idle_timeout, [this, id] {
    auto it = tcp_.find(id);
    if (it == tcp_.end() || it->second->closed) return;
    TcpClient& c = *it->second;
    c.idle = 0;
    if (c.in_flight > 0) return tcp_arm_idle(c);  // upstream timeouts bound this
    tcp_close(c);
  });
}

void Server::tcp_close(TcpClient& c) {
  if (c.closed) return;
  c.closed = true;
  if (c.idle) loop_.cancel(c.idle);
  c.idle = 0;
  loop_.remove(c.fd.get());
  c.fd.reset();
  --stats_.tcp_active;
  tcp_shares_.release(c.share);
  // The loop may still hold events for it in this batch: freed after.
  loop_.defer([this, id = c.id, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired()) tcp_.erase(id);
  });
}

void Server::tcp_io(TcpClient& c, uint32_t events) {
  if (events & EPOLLOUT) tcp_flush(c);
  if (!c.closed && (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) tcp_read(c);
  if (!c.closed) tcp_update_interest(c);
}

void Server::tcp_read(TcpClient& c) {
  for (int i = 0; i < kTcpReadsPerWakeup && !c.closed && !c.eof; ++i) {
    if (c.in.size() >= kTcpMaxInput) break;  // frames in hand first
    ssize_t n = recv(c.fd.get(), rx_.data(), std::min(rx_.size(), kTcpMaxInput - c.in.size()), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) tcp_close(c);
      break;
    }
    if (n == 0) {
      c.eof = true;
      break;
    }
    c.in.insert(c.in.end(), rx_.begin(), rx_.begin() + n);
    tcp_frames(c);
  }
  if (!c.closed) tcp_frames(c);
  if (!c.closed && c.eof && c.in_flight == 0 && c.out_sent == c.out.size()) tcp_close(c);
}

// Every complete frame, as long as the connection has room for more
// queries in flight (the rest wait in `in`, and reading pauses).
void Server::tcp_frames(TcpClient& c) {
  if (c.framing) return;
  c.framing = true;
  size_t at = 0;
  while (!c.closed && c.in_flight < opt_.max_tcp_queries && c.in.size() - at >= 2) {
    size_t len = static_cast<size_t>(c.in[at]) << 8 | c.in[at + 1];
    if (len < kHeaderBytes) {
      Waiter w;
      w.listener = c.listener;
      w.peer = c.peer;
      w.tcp_id = c.id;
      w.who = c.who;
      ++stats_.malformed;
      record(w, nullptr, EGD_VERDICT_DENY, EGD_REASON_DNS_MALFORMED, 0);
      return tcp_close(c);  // framing lost: nothing after it can be trusted
    }
    if (c.in.size() - at < 2 + len) break;
    Waiter w;
    w.listener = c.listener;
    w.peer = c.peer;
    w.tcp_id = c.id;
    w.who = c.who;
    ++c.in_flight;
    ++stats_.tcp;
    tcp_arm_idle(c);
    // A copy: answering may close the connection and free `in`.
    std::vector<uint8_t> frame(c.in.begin() + static_cast<std::ptrdiff_t>(at + 2),
                               c.in.begin() + static_cast<std::ptrdiff_t>(at + 2 + len));
    at += 2 + len;
    query(w, frame, Loop::Clock::now());
  }
  c.framing = false;
  if (!c.closed) c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(at));
}

void Server::tcp_send(TcpClient& c, std::vector<uint8_t> message) {
  if (c.closed || message.empty()) return;
  if (c.out.size() - c.out_sent + message.size() + 2 > opt_.max_tcp_output) return tcp_close(c);  // not reading
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  }
  c.out.push_back(static_cast<uint8_t>(message.size() >> 8));
  c.out.push_back(static_cast<uint8_t>(message.size()));
  c.out.insert(c.out.end(), message.begin(), message.end());
  tcp_flush(c);
}

void Server::tcp_flush(TcpClient& c) {
  while (!c.closed && c.out_sent < c.out.size()) {  // each turn sends bytes or stops
    ssize_t n = send(c.fd.get(), c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) tcp_close(c);
      return;
    }
    c.out_sent += static_cast<size_t>(n);
  }
  if (!c.closed && c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
    if (c.eof && c.in_flight == 0) tcp_close(c);
  }
}

void Server::tcp_update_interest(TcpClient& c) {
  if (c.closed) return;
  uint32_t want = 0;
  if (!c.eof && c.in_flight < opt_.max_tcp_queries && c.in.size() < kTcpMaxInput) want |= EPOLLIN;
  if (c.out_sent < c.out.size()) want |= EPOLLOUT;
  if (want == c.interest) return;
  c.interest = want;
  if (!loop_.modify(c.fd.get(), want, &c).ok()) tcp_close(c);
}

// ---- queries ------------------------------------------------------------------------

// `w` may be moved from (into the exchange it waits on).
void Server::query(Waiter& w, std::span<const uint8_t> wire, Loop::Clock::time_point now) {
  ++stats_.queries;
  auto drop = [&] {
    ++stats_.malformed;
    record(w, nullptr, EGD_VERDICT_DENY, EGD_REASON_DNS_MALFORMED, 0);
    reply(w, {});  // nothing sent; a TCP query is accounted for
  };
  // Nearly every query is one question (+ OPT): read without the full parser.
  if (!fast_query_info(wire, w.q)) {
    ParseResult p = parse_message(wire);
    // Garbage, responses (reflection) and compression tricks get no answer.
    if (p.status != ParseStatus::Ok || p.message.header.qr) return drop();
    const Message& m = p.message;
    if (m.questions.size() != 1) {
      ++stats_.formerr;
      record(w, nullptr, EGD_VERDICT_DENY, EGD_REASON_DNS_MALFORMED, 0);
      return reply(w, format_error_reply(wire));
    }
    auto info = query_info(wire, m);
    if (!info) return drop();
    w.q = std::move(*info);
  }
  const QueryInfo& q = w.q;
  const decide::ActivePolicy& active = *policy_;

  if (q.opcode != 0) {  // NOTIFY, UPDATE, ...: never forwarded
    record(w, &q, EGD_VERDICT_DENY, EGD_REASON_DNS_TYPE_NOT_ALLOWED, 0);
    return reply(w, bare_reply(q, kRcodeNotImp, opt_.udp_payload));
  }
  if (q.edns && q.edns_version != 0) return reply(w, bare_reply(q, kRcodeBadVers, opt_.udp_payload));

  // A hit: the question was decided under this policy when it was
  // forwarded (set_policy empties the cache), so that decision stands.
  // An answer filtered under other routes than now's is not served.
  AnswerCache::key_into(key_, q.qname, q.qtype, q.qclass, q.dnssec_ok, q.cd);
  uint64_t tag = 0;
  uint8_t routes = family_drop().bits();
  if (!w.tcp_id) {
    std::vector<uint8_t>& out = udp_slot(w);
    if (cache_.get_into(key_, now, out, &tag) && drop_bits(tag) == routes) {
      decide::QueryCheck c = unpack(tag);
      record(w, &q, c.verdict, c.reason, c.rule_id);
      ++stats_.cache_hits;
      if (answer_reply_in_place(q, out, opt_.udp_payload, udp_limit(q, opt_.udp_payload))) udp_commit();
      return;
    }
  } else if (std::vector<uint8_t> hit; cache_.get_into(key_, now, hit, &tag) && drop_bits(tag) == routes) {
    decide::QueryCheck c = unpack(tag);
    record(w, &q, c.verdict, c.reason, c.rule_id);
    ++stats_.cache_hits;
    if (!answer_reply_in_place(q, hit, opt_.udp_payload, kMaxMessageBytes)) hit.clear();
    return reply(w, std::move(hit));
  }

  decide::QueryCheck check = decide::check_query(active.policy, q.qname, q.qtype, q.qclass);
  record(w, &q, check.verdict, check.reason, check.rule_id);
  if (!check.forward) {
    bool name = check.reason == EGD_REASON_DNS_NAME_NOT_ALLOWED;
    if (name && active.policy.dns.denied == policy::DnsDenied::Sinkhole) return reply(w, sinkhole(q));
    return reply(w, bare_reply(q, check.rcode, opt_.udp_payload, false, name ? kEdeBlocked : kEdeNotSupported,
                               name ? ede_name_ : ede_type_));
  }

  if (auto it = pending_.find(key_); it != pending_.end()) {
    if (it->second->waiters.size() < opt_.max_waiters) {
      ++stats_.coalesced;
      it->second->waiters.push_back(std::move(w));
      return;
    }
    ++stats_.overloaded;
    return reply(w, bare_reply(q, kRcodeServFail, opt_.udp_payload));
  }
  if (pending_.size() >= opt_.max_pending) {
    ++stats_.overloaded;
    return reply(w, bare_reply(q, kRcodeServFail, opt_.udp_payload));
  }
  UpstreamQuestion uq;
  uq.name = q.qname_wire;
  uq.text = q.qname;
  uq.type = q.qtype;
  uq.klass = q.qclass;
  uq.dnssec_ok = q.dnssec_ok;
  uq.checking_disabled = q.cd;
  auto pending = std::make_unique<Pending>();
  pending->check = check;
  pending->generation = policy_generation_;
  pending->waiters.push_back(std::move(w));
  std::string key = key_;
  pending->ticket = upstream_.ask(uq, [this, key](UpstreamReply&& r) { answered(key, std::move(r)); });
  if (!pending->ticket) {
    ++stats_.overloaded;
    const Waiter& only = pending->waiters.front();
    record(only, &only.q, EGD_VERDICT_DENY, EGD_REASON_DNS_UPSTREAM_FAILED, 0);
    return reply(only, bare_reply(only.q, kRcodeServFail, opt_.udp_payload));
  }
  ++stats_.forwarded;
  pending_.emplace(std::move(key), std::move(pending));
}

// A denied name under [dns] denied = "sinkhole": A/AAAA (class IN) get the
// sinkhole address of their family unless that family is left out
// (families.h); anything else an empty NOERROR. Never forwarded.
std::vector<uint8_t> Server::sinkhole(const QueryInfo& q) {
  FamilyDrop drop = family_drop();
  const std::optional<IpAddr>* addr = nullptr;
  if (q.qclass == kClassIN && q.qtype == kTypeA && !drop.v4) addr = &sinkhole4_;
  if (q.qclass == kClassIN && q.qtype == kTypeAAAA && !drop.v6) addr = &sinkhole6_;
  if (!addr || !*addr) return bare_reply(q, kRcodeNoError, opt_.udp_payload, false, kEdeBlocked, ede_name_);
  ++stats_.sinkholed;
  return address_reply(q, **addr, opt_.sinkhole_ttl, opt_.udp_payload, kEdeBlocked, ede_sinkhole_);
}

void Server::answered(const std::string& key, UpstreamReply&& r) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  std::unique_ptr<Pending> pending = std::move(it->second);
  pending_.erase(it);
  if (pending->waiters.empty()) return;
  const decide::ActivePolicy& active = *policy_;
  const QueryInfo& first = pending->waiters.front().q;

  std::vector<uint8_t> message;
  uint16_t rcode = kRcodeServFail;
  if (r.answered) {
    const Message& m = r.message;  // the client's parse of r.wire
    rcode = m.header.rcode;
    bool audit = active.policy.mode == policy::Mode::Audit;
    FilterOptions by_policy;
    by_policy.blocked = [&active](const IpAddr& a) { return !active.l3.reachable(a); };
    by_policy.strip_ech = active.policy.proxy.ech == policy::EchMode::Deny;
    // Families without a route are left out in either mode: not a
    // policy decision, so audit mode keeps it too.
    FamilyDrop drop = family_drop();
    by_policy.drop_v4 = drop.v4;
    by_policy.drop_v6 = drop.v6;
    FilterOptions unfiltered;
    unfiltered.drop_v4 = drop.v4;
    unfiltered.drop_v6 = drop.v6;
    if (rcode == kRcodeNoError || rcode == kRcodeNxDomain) {
      // Audit mode answers unfiltered (OPT dropped all the same) and
      // records what the filter would have removed.
      FilterResult f = filter_answer(r.wire, m, audit ? unfiltered : by_policy);
      if (f.ok) {
        message = std::move(f.message);
        stats_.family_dropped += f.family_dropped;
        if (audit) f = filter_answer(r.wire, m, by_policy);
        if (!f.removed.empty()) {
          if (!audit) stats_.rebind_removed += f.removed.size();
          const Waiter& w = pending->waiters.front();
          record(w, &w.q, audit ? EGD_VERDICT_AUDIT : EGD_VERDICT_DENY, EGD_REASON_REBIND, 0);
        }
        if (!audit) stats_.ech_stripped += f.ech_stripped;
        // Asked under an older policy: answered, but not kept (the
        // cache holds only decisions of the policy in force). The
        // observer hears only of names the proxy can ask about.
        bool keep = pending->generation == policy_generation_;
        bool observe = answer_observer_ && pending->check.rule_id != 0 &&
                       (first.qtype == kTypeA || first.qtype == kTypeAAAA);
        if (keep || observe) {
          ParseResult given = parse_message(message);  // the one parse of the answer as clients get it
          if (keep) cache_.put(key, first.qname, message, given, Loop::Clock::now(), pack(pending->check, drop));
          if (observe && given.status == ParseStatus::Ok)
            answer_observer_(first.qname, first.qtype, addresses_for(given.message, first.qname));
        }
      } else {
        rcode = kRcodeServFail;
      }
    }
  }
  if (message.empty()) ++stats_.upstream_failed;
  hold_udp();
  for (const Waiter& w : pending->waiters) {  // bounded by max_waiters
    if (!message.empty()) {
      size_t limit = w.tcp_id ? kMaxMessageBytes : udp_limit(w.q, opt_.udp_payload);
      std::vector<uint8_t> out = answer_reply(w.q, message, opt_.udp_payload, limit);
      if (!out.empty()) {
        if (out.size() >= 3 && (out[2] & 0x02)) ++stats_.truncated;
        reply(w, std::move(out));
        continue;
      }
    }
    record(w, &w.q, EGD_VERDICT_DENY, EGD_REASON_DNS_UPSTREAM_FAILED, 0);
    reply(w, bare_reply(w.q, rcode == kRcodeNoError || rcode == kRcodeNxDomain ? kRcodeServFail : rcode,
                        opt_.udp_payload));
  }
}

void Server::reply(const Waiter& w, std::vector<uint8_t> message) {
  if (!w.tcp_id) {
    if (message.empty()) return;
    udp_slot(w).swap(message);
    return udp_commit();
  }
  auto it = tcp_.find(w.tcp_id);
  if (it == tcp_.end() || it->second->closed) return;
  TcpClient& c = *it->second;
  if (c.in_flight) --c.in_flight;
  tcp_send(c, std::move(message));
  if (c.closed) return;
  if (c.in_flight == 0 && c.out_sent == c.out.size()) {
    if (c.eof) return tcp_close(c);
    tcp_arm_idle(c);
  }
  tcp_update_interest(c);
  // Room for more queries: frames already read are taken in a pass of
  // their own (not from here: this may run inside a pass).
  if (c.framing || c.pass_due || c.in.size() < 2) return;
  c.pass_due = true;
  loop_.defer([this, id = c.id, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    auto it = tcp_.find(id);
    if (it == tcp_.end() || it->second->closed) return;
    TcpClient& c = *it->second;
    c.pass_due = false;
    tcp_frames(c);
    if (!c.closed && c.eof && c.in_flight == 0 && c.out_sent == c.out.size()) return tcp_close(c);
    tcp_update_interest(c);
  });
}

std::vector<uint8_t>& Server::udp_slot(const Waiter& w) {
  UdpOut& o = *udp_out_;
  int fd = w.listener->fd.get();
  if (o.n == kDatagramsPerWakeup || (o.n > 0 && o.fd != fd)) flush_udp();  // one socket per sendmmsg
  o.fd = fd;
  UdpOut::Slot& slot = o.slots[o.n];
  slot.peer = w.peer;
  slot.bytes.clear();
  return slot.bytes;
}

// Upstream answers arrive one per socket: the replies to all that come in
// one turn of the loop leave together, at its end.
void Server::hold_udp() {
  if (udp_held_) return;
  udp_held_ = true;
  ++batching_;
  loop_.defer([this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    udp_held_ = false;
    --batching_;
    flush_udp();
  });
}

void Server::udp_commit() {
  ++udp_out_->n;
  if (batching_ == 0) flush_udp();
}

void Server::flush_udp() {
  UdpOut& o = *udp_out_;
  size_t n = o.n;
  o.n = 0;
  for (size_t i = 0; i < n; ++i) {
    UdpOut::Slot& slot = o.slots[i];
    o.iov[i] = {slot.bytes.data(), slot.bytes.size()};
    msghdr& h = o.msgs[i].msg_hdr;
    h.msg_name = &slot.peer;
    h.msg_namelen = addr_len(slot.peer);
    h.msg_iov = &o.iov[i];
    h.msg_iovlen = 1;
  }
  // sendmmsg stops at the first reply the socket refuses (full, or an
  // error of an earlier send): that one is dropped, as sendto's would be,
  // and the rest go on. Bounded: every turn moves on by one at least.
  for (size_t sent = 0; sent < n;) {
    int r = sendmmsg(o.fd, o.msgs.data() + sent, static_cast<unsigned>(n - sent), MSG_DONTWAIT | MSG_NOSIGNAL);
    sent += r > 0 ? static_cast<size_t>(r) : 1;
  }
}

// ---- events ---------------------------------------------------------------------

std::optional<decide::SteeredFlow> Server::who(const Waiter& w) {
  if (w.tcp_id) return w.who ? std::optional<decide::SteeredFlow>(*w.who) : std::nullopt;
  return identity_.udp(w.peer, w.listener->local);
}

void Server::record(const Waiter& w, const QueryInfo* q, uint8_t verdict, uint16_t reason, uint32_t rule_id) {
  if (!recorder_.count(verdict, reason, policy_->policy.events)) return;
  bool malformed = reason == EGD_REASON_DNS_MALFORMED;
  Bucket& bucket = malformed ? malformed_ : events_;
  if (!bucket.take(malformed ? opt_.malformed_per_second : opt_.events_per_second,
                   malformed ? opt_.malformed_burst : opt_.event_burst, Loop::Clock::now())) {
    ++stats_.events_suppressed;
    return;
  }
  auto o = who(w);
  Event e = recorder_.event(verdict, reason, rule_id, o ? &*o : nullptr, w.tcp_id ? IPPROTO_TCP : IPPROTO_UDP);
  if (!o) e.family = w.peer.ss_family;
  e.l7 = "dns";
  if (q) {
    e.host = q->qname;
    e.qtype = q->qtype;
    e.qclass = q->qclass;
  }
  recorder_.emit(e);
}

}  // namespace egressd::dns
