#include "dns/upstream.h"

#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dns/builder.h"
#include "dns/message.h"
#include "dns/resolv_conf.h"

namespace egressd::dns {
namespace {

constexpr int kMaxDatagramsPerWakeup = 16;
constexpr int kMaxTcpReadsPerWakeup = 64;

socklen_t addr_len(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}
std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

}  // namespace

// One socket of one try. The loop holds a raw pointer to it, so a retired
// Conn is kept alive through defer() until the current batch is over.
struct UpstreamClient::Conn final : Loop::Watcher {
  UpstreamClient* owner = nullptr;
  Exchange* exchange = nullptr;
  UniqueFd fd;
  bool tcp = false;
  bool connected = false;
  std::vector<uint8_t> out;  // TCP: length-prefixed query
  size_t written = 0;
  std::vector<uint8_t> in;  // TCP: length prefix and answer so far
  void on_io(uint32_t events) override {
    if (owner && exchange) owner->on_io(*this, events);
  }
};

struct UpstreamClient::Exchange {
  uint64_t id = 0;
  UpstreamQuestion q;
  Done done;
  uint16_t qid = 0;
  std::vector<uint8_t> wire;
  bool edns = true;
  size_t next_try = 0;
  size_t upstream = 0;
  std::shared_ptr<Conn> conn;
  Loop::TimerId timer = 0;
  UpstreamReply reply;  // the answer so far (a SERVFAIL kept while others are tried)
};

UpstreamClient::UpstreamClient(Loop& loop, Options options) : loop_(loop), opt_(std::move(options)) {
  opt_.attempts = std::max(opt_.attempts, 1);
  for (const sockaddr_storage& u : opt_.upstreams) names_.push_back(to_string(u));
  rx_.resize(kMaxMessageBytes + 1);
}

UpstreamClient::~UpstreamClient() {
  alive_.reset();  // deferred deliveries see this and call nothing
  for (auto& [id, x] : exchanges_) retire(*x);
}

UpstreamClient::Ticket UpstreamClient::ask(const UpstreamQuestion& question, Done done) {
  if (opt_.upstreams.empty() || exchanges_.size() >= opt_.max_in_flight) return 0;
  auto x = std::make_unique<Exchange>();
  x->id = next_id_++;
  x->q = question;
  x->done = std::move(done);
  x->edns = opt_.edns_udp_size > 0;
  Exchange& ref = *x;
  exchanges_.emplace(ref.id, std::move(x));
  asking_ = true;
  start(ref);  // may finish at once (every upstream unusable): delivery is deferred
  asking_ = false;
  return ref.id;
}

void UpstreamClient::cancel(Ticket ticket) {
  auto it = exchanges_.find(ticket);
  if (it == exchanges_.end()) return;  // delivered already
  retire(*it->second);
  exchanges_.erase(it);
}

// Opens tries until one is under way or the budget is spent. Bounded by
// attempts * upstreams.
void UpstreamClient::start(Exchange& x) {
  size_t budget = static_cast<size_t>(opt_.attempts) * opt_.upstreams.size();
  while (!x.conn) {
    if (x.next_try >= budget) return finish(x);
    x.upstream = x.next_try++ % opt_.upstreams.size();
    open_try(x, false);
  }
}

uint16_t UpstreamClient::random_id() {
  if (ids_left_ == 0) {
    ssize_t n = getrandom(ids_, sizeof(ids_), GRND_NONBLOCK);
    if (n != static_cast<ssize_t>(sizeof(ids_))) {
      // Entropy not ready (early boot): weaker ids beat no resolution; the
      // random source port still guards the answer.
      uint64_t s = static_cast<uint64_t>(Loop::Clock::now().time_since_epoch().count()) ^ ids_[0];
      for (auto& id : ids_) {
        s = (s ^ (s >> 31)) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
        id = static_cast<uint16_t>(s >> 32);
      }
    }
    ids_left_ = std::size(ids_);
  }
  return ids_[--ids_left_];
}

bool UpstreamClient::open_try(Exchange& x, bool tcp) {
  const sockaddr_storage& server = opt_.upstreams[x.upstream];
  x.reply.upstream = names_[x.upstream];
  std::string where = x.reply.upstream + (tcp ? " over TCP" : "");
  if (!tcp) {  // a TCP retry asks the same question with the same id
    x.qid = random_id();
    Header h;
    h.id = x.qid;
    h.rd = true;
    h.cd = x.q.checking_disabled;
    MessageBuilder b(h, false);
    b.question_wire(x.q.name, x.q.type, x.q.klass);
    if (x.edns) b.opt(opt_.edns_udp_size, 0, x.q.dnssec_ok);
    x.wire = b.bytes();
  }
  auto conn = std::make_shared<Conn>();
  conn->tcp = tcp;
  conn->fd.reset(socket(server.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!conn->fd.valid()) {
    x.reply.error = where + ": " + errno_text("socket", errno);
    return false;
  }
  ++tries_;
  // Connected: the kernel drops datagrams from anyone but the upstream.
  int rc = connect(conn->fd.get(), reinterpret_cast<const sockaddr*>(&server), addr_len(server));
  if (rc != 0 && !(tcp && errno == EINPROGRESS)) {
    x.reply.error = where + ": " + errno_text("connect", errno);
    return false;
  }
  uint32_t events = EPOLLIN;
  if (tcp) {
    conn->out = {static_cast<uint8_t>(x.wire.size() >> 8), static_cast<uint8_t>(x.wire.size())};
    conn->out.insert(conn->out.end(), x.wire.begin(), x.wire.end());
    events = EPOLLOUT;
  } else if (send(conn->fd.get(), x.wire.data(), x.wire.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(x.wire.size())) {
    x.reply.error = where + ": " + errno_text("send", errno);
    return false;
  }
  if (!loop_.add(conn->fd.get(), events, conn.get()).ok()) {
    x.reply.error = where + ": " + errno_text("epoll_ctl", errno);
    return false;
  }
  conn->owner = this;
  conn->exchange = &x;
  x.conn = std::move(conn);
  auto timeout = x.q.try_timeout.count() > 0 ? x.q.try_timeout : opt_.try_timeout;
  x.timer = loop_.after(timeout, [this, &x] {
    x.timer = 0;
    try_failed(x, describe(x) + ": timeout");
  });
  return true;
}

std::string UpstreamClient::describe(const Exchange& x) const {
  return names_[x.upstream] + (x.conn && x.conn->tcp ? " over TCP" : "");
}

void UpstreamClient::retire(Exchange& x) {
  if (x.timer) loop_.cancel(x.timer);
  x.timer = 0;
  if (!x.conn) return;
  loop_.remove(x.conn->fd.get());
  x.conn->fd.reset();
  x.conn->owner = nullptr;
  x.conn->exchange = nullptr;
  loop_.defer([conn = std::move(x.conn)] {});
  x.conn = nullptr;
}

void UpstreamClient::try_failed(Exchange& x, std::string error) {
  retire(x);
  x.reply.error = std::move(error);
  start(x);
}

void UpstreamClient::on_io(Conn& conn, uint32_t events) {
  Exchange& x = *conn.exchange;
  if (conn.tcp)
    tcp_io(x, conn, events);
  else
    udp_input(x);
}

static bool matches(const UpstreamQuestion& q, uint16_t qid, const Message& m) {
  const Header& h = m.header;
  if (!h.qr || h.opcode != 0 || h.id != qid || m.questions.size() != 1) return false;
  const Question& qq = m.questions[0];
  return qq.type == q.type && qq.klass == q.klass && qq.name == q.text;
}

void UpstreamClient::udp_input(Exchange& x) {
  int fd = x.conn->fd.get();
  for (int i = 0; i < kMaxDatagramsPerWakeup; ++i) {
    ssize_t n = recv(fd, rx_.data(), rx_.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      // e.g. ECONNREFUSED from an ICMP port unreachable: next try at once.
      return try_failed(x, describe(x) + ": " + errno_text("recv", errno));
    }
    std::span<const uint8_t> data(rx_.data(), static_cast<size_t>(n));
    ParseResult p = parse_message(data);
    // Garbage and answers to other questions may be spoofs: ignore them and
    // keep waiting for the real one (or the timeout).
    if (p.status != ParseStatus::Ok || !matches(x.q, x.qid, p.message)) continue;
    if (p.message.header.tc) {
      retire(x);
      if (!open_try(x, true)) start(x);
      return;
    }
    return on_answer(x, data, std::move(p.message));
  }
}

void UpstreamClient::tcp_io(Exchange& x, Conn& conn, uint32_t events) {
  std::string where = names_[x.upstream] + " over TCP";
  int fd = conn.fd.get();
  if (!conn.connected) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return try_failed(x, where + ": " + errno_text("connect", err));
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    conn.connected = true;
  }
  if (conn.written < conn.out.size()) {
    ssize_t n = send(fd, conn.out.data() + conn.written, conn.out.size() - conn.written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return try_failed(x, where + ": " + errno_text("send", errno));
    }
    conn.written += static_cast<size_t>(n);
    if (conn.written < conn.out.size()) return;
    if (!loop_.modify(fd, EPOLLIN, &conn).ok()) return try_failed(x, where + ": " + errno_text("epoll_ctl", errno));
    return;  // level-triggered: the answer wakes us
  }
  for (int i = 0; i < kMaxTcpReadsPerWakeup; ++i) {
    size_t have = conn.in.size();
    size_t need = have < 2 ? 2 : 2 + (static_cast<size_t>(conn.in[0]) << 8 | conn.in[1]);
    conn.in.resize(need);
    ssize_t n = recv(fd, conn.in.data() + have, need - have, 0);
    if (n <= 0) {
      conn.in.resize(have);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      return try_failed(x,
                        where + ": " + (n == 0 ? std::string("closed before the answer") : errno_text("recv", errno)));
    }
    conn.in.resize(have + static_cast<size_t>(n));
    if (conn.in.size() < 2) continue;
    size_t len = static_cast<size_t>(conn.in[0]) << 8 | conn.in[1];
    if (len < kHeaderBytes) return try_failed(x, where + ": answer shorter than a header");
    if (conn.in.size() < 2 + len) continue;
    std::span<const uint8_t> data = std::span(conn.in).subspan(2);
    ParseResult p = parse_message(data);
    // A TCP peer is the upstream itself (the handshake saw to that): a bad
    // answer ends the try instead of being waited out.
    if (p.status != ParseStatus::Ok) return try_failed(x, where + ": bad answer: " + p.error);
    if (!matches(x.q, x.qid, p.message)) return try_failed(x, where + ": answer to another question");
    return on_answer(x, data, std::move(p.message));
  }
}

// `message` is `wire` parsed; both are kept (a SERVFAIL too, in case no
// other upstream does better).
void UpstreamClient::on_answer(Exchange& x, std::span<const uint8_t> wire, Message&& message) {
  const std::string& where = names_[x.upstream];
  uint16_t rcode = message.header.rcode;
  if (rcode == kRcodeFormErr && x.edns) {
    // An upstream that predates EDNS0: ask it again without (once).
    x.edns = false;
    --x.next_try;
    retire(x);
    return start(x);
  }
  x.reply.answered = true;
  x.reply.wire.assign(wire.begin(), wire.end());
  x.reply.message = std::move(message);
  x.reply.upstream = where;
  if (rcode != kRcodeNoError && rcode != kRcodeNxDomain) {
    // Kept in case no other upstream does better.
    retire(x);
    x.reply.error = where + ": answered " + rcode_name(rcode);
    return start(x);
  }
  x.reply.error.clear();
  finish(x);
}

// From the loop's I/O and timers the answer is delivered at once, so the
// resolver's replies to a batch of answers leave together (one sendmmsg);
// inside ask() it is deferred, and the exchange stays listed until then, so
// a cancel in between still stops it.
void UpstreamClient::finish(Exchange& x) {
  retire(x);
  auto deliver = [this](uint64_t id) {
    auto it = exchanges_.find(id);
    if (it == exchanges_.end()) return;  // cancelled
    std::unique_ptr<Exchange> owned = std::move(it->second);
    exchanges_.erase(it);
    owned->done(std::move(owned->reply));  // may cancel others, or ask again
  };
  if (!asking_) return deliver(x.id);
  loop_.defer([deliver, alive = std::weak_ptr<int>(alive_), id = x.id] {
    if (!alive.expired()) deliver(id);
  });
}

}  // namespace egressd::dns
