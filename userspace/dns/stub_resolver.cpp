#include "dns/stub_resolver.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace egressd::dns {
namespace {

constexpr int kMaxDatagramsPerWakeup = 16;
constexpr int kMaxTcpReadsPerWakeup = 64;
constexpr size_t kMaxResolvConfBytes = 64 * 1024;
constexpr size_t kMaxNameservers = 3;  // glibc's MAXNS

socklen_t addr_len(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

}  // namespace

// One socket of one try. The loop holds a raw pointer to it, so a retired
// Conn is kept alive through defer() until the current batch is over.
struct StubResolver::Conn final : Loop::Watcher {
  StubResolver* owner = nullptr;
  Query* query = nullptr;
  UniqueFd fd;
  bool tcp = false;
  bool connected = false;
  std::vector<uint8_t> out;  // TCP: length-prefixed query
  size_t written = 0;
  std::vector<uint8_t> in;  // TCP: length prefix and answer so far

  void on_io(uint32_t events) override {
    if (owner && query) owner->on_io(*this, events);
  }
};

// One question (A or AAAA) of a lookup, through its tries.
struct StubResolver::Query {
  Lookup* lookup = nullptr;
  uint16_t qtype = 0;
  uint16_t id = 0;
  std::vector<uint8_t> wire;
  size_t next_try = 0;  // tries rotate over the upstreams
  size_t upstream = 0;  // of the current try
  bool edns = true;
  bool done = false;
  std::shared_ptr<Conn> conn;
  Loop::TimerId timer = 0;
  // Outcome.
  bool answered = false;
  uint16_t rcode = kRcodeServFail;
  std::vector<IpAddr> addrs;
  uint32_t ttl = 0;
  std::string error;
};

struct StubResolver::Lookup {
  std::string name;
  Query a, aaaa;
  std::vector<Done> waiters;
};

StubResolver::StubResolver(Loop& loop, Options options) : loop_(loop), opt_(std::move(options)) {
  opt_.attempts = std::max(opt_.attempts, 1);
  rx_.resize(kMaxMessageBytes + 1);
}

StubResolver::~StubResolver() {
  alive_.reset();  // deferred deliveries see this and call nothing
  for (auto& [name, lookup] : lookups_) {
    retire(lookup->a);
    retire(lookup->aaaa);
  }
}

void StubResolver::fail_later(Done done, std::string error) {
  Resolution r;
  r.rcode = kRcodeServFail;
  r.error = std::move(error);
  loop_.defer([alive = std::weak_ptr<int>(alive_), done = std::move(done), r = std::move(r)] {
    if (!alive.expired()) done(r);
  });
}

void StubResolver::resolve(const std::string& raw, Done done) {
  if (auto ip = IpAddr::parse(raw)) {
    Resolution r;
    r.addrs.push_back(*ip);
    loop_.defer([alive = std::weak_ptr<int>(alive_), done = std::move(done), r = std::move(r)] {
      if (!alive.expired()) done(r);
    });
    return;
  }
  std::string name = canonical_name(raw);
  std::vector<uint8_t> check;
  if (name.empty() || !append_name(check, name)) return fail_later(std::move(done), "invalid name");

  if (auto it = cache_.find(name); it != cache_.end()) {
    if (it->second.expires > Loop::Clock::now()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      Resolution r = it->second.result;
      r.from_cache = true;
      loop_.defer([alive = std::weak_ptr<int>(alive_), done = std::move(done), r = std::move(r)] {
        if (!alive.expired()) done(r);
      });
      return;
    }
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  if (auto it = lookups_.find(name); it != lookups_.end()) {
    it->second->waiters.push_back(std::move(done));  // coalesced
    return;
  }
  if (opt_.upstreams.empty()) return fail_later(std::move(done), "no DNS upstreams");
  if (lookups_.size() >= opt_.max_in_flight) return fail_later(std::move(done), "too many DNS lookups in flight");

  auto lookup = std::make_shared<Lookup>();
  lookup->name = name;
  lookup->waiters.push_back(std::move(done));
  for (Query* q : {&lookup->a, &lookup->aaaa}) {
    q->lookup = lookup.get();
    q->edns = opt_.edns_udp_size > 0;
  }
  lookup->a.qtype = kTypeA;
  lookup->aaaa.qtype = kTypeAAAA;
  lookups_.emplace(name, lookup);
  // Both may finish at once (every upstream unusable); delivery is deferred.
  start(lookup->a);
  start(lookup->aaaa);
}

std::optional<Resolution> StubResolver::cached(const std::string& raw) const {
  auto it = cache_.find(canonical_name(raw));
  if (it == cache_.end() || it->second.expires <= Loop::Clock::now()) return std::nullopt;
  Resolution r = it->second.result;
  r.from_cache = true;
  return r;
}

// Opens tries until one is under way or the budget is spent. Bounded by
// attempts * upstreams.
void StubResolver::start(Query& q) {
  size_t budget = static_cast<size_t>(opt_.attempts) * opt_.upstreams.size();
  while (!q.conn) {
    if (q.next_try >= budget) return finish(q);
    q.upstream = q.next_try++ % opt_.upstreams.size();
    open_udp(q);
  }
}

uint16_t StubResolver::random_id() {
  if (ids_left_ == 0) {
    ssize_t n = getrandom(ids_, sizeof(ids_), GRND_NONBLOCK);
    if (n != static_cast<ssize_t>(sizeof(ids_))) {
      // Entropy not ready (early boot): weaker ids beat no resolution; the
      // random source port still guards the answer.
      uint64_t x = static_cast<uint64_t>(Loop::Clock::now().time_since_epoch().count()) ^ ids_[0];
      for (auto& id : ids_) {
        x = (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
        id = static_cast<uint16_t>(x >> 32);
      }
    }
    ids_left_ = std::size(ids_);
  }
  return ids_[--ids_left_];
}

bool StubResolver::watch(Query& q, std::shared_ptr<Conn> conn, uint32_t events) {
  if (!loop_.add(conn->fd.get(), events, conn.get()).ok()) {
    q.error = errno_text("epoll_ctl", errno);
    return false;
  }
  conn->owner = this;
  conn->query = &q;
  q.conn = std::move(conn);
  q.timer = loop_.after(opt_.try_timeout, [this, &q] {
    q.timer = 0;
    try_failed(q, to_string(opt_.upstreams[q.upstream]) + (q.conn->tcp ? " over TCP" : "") + ": timeout");
  });
  return true;
}

bool StubResolver::open_udp(Query& q) {
  const sockaddr_storage& server = opt_.upstreams[q.upstream];
  q.id = random_id();
  q.wire = build_query(q.id, q.lookup->name, q.qtype, true, q.edns ? opt_.edns_udp_size : 0);
  auto conn = std::make_shared<Conn>();
  std::string where = to_string(server);
  conn->fd.reset(socket(server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!conn->fd.valid()) {
    q.error = where + ": " + errno_text("socket", errno);
    return false;
  }
  // Connected: the kernel drops datagrams from anyone but the upstream.
  if (connect(conn->fd.get(), reinterpret_cast<const sockaddr*>(&server), addr_len(server)) != 0) {
    q.error = where + ": " + errno_text("connect", errno);
    return false;
  }
  if (send(conn->fd.get(), q.wire.data(), q.wire.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(q.wire.size())) {
    q.error = where + ": " + errno_text("send", errno);
    return false;
  }
  return watch(q, std::move(conn), EPOLLIN);
}

bool StubResolver::open_tcp(Query& q) {
  const sockaddr_storage& server = opt_.upstreams[q.upstream];
  auto conn = std::make_shared<Conn>();
  std::string where = to_string(server) + " over TCP";
  conn->tcp = true;
  conn->out = {static_cast<uint8_t>(q.wire.size() >> 8), static_cast<uint8_t>(q.wire.size())};
  conn->out.insert(conn->out.end(), q.wire.begin(), q.wire.end());
  conn->fd.reset(socket(server.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!conn->fd.valid()) {
    q.error = where + ": " + errno_text("socket", errno);
    return false;
  }
  if (connect(conn->fd.get(), reinterpret_cast<const sockaddr*>(&server), addr_len(server)) != 0 &&
      errno != EINPROGRESS) {
    q.error = where + ": " + errno_text("connect", errno);
    return false;
  }
  return watch(q, std::move(conn), EPOLLOUT);
}

void StubResolver::retire(Query& q) {
  if (q.timer) loop_.cancel(q.timer);
  q.timer = 0;
  if (!q.conn) return;
  loop_.remove(q.conn->fd.get());
  q.conn->fd.reset();
  q.conn->owner = nullptr;
  q.conn->query = nullptr;
  loop_.defer([conn = std::move(q.conn)] {});
  q.conn = nullptr;
}

void StubResolver::try_failed(Query& q, std::string error) {
  retire(q);
  q.error = std::move(error);
  start(q);
}

void StubResolver::on_io(Conn& conn, uint32_t events) {
  Query& q = *conn.query;
  if (conn.tcp)
    tcp_io(q, conn, events);
  else
    udp_input(q);
}

void StubResolver::udp_input(Query& q) {
  int fd = q.conn->fd.get();
  for (int i = 0; i < kMaxDatagramsPerWakeup; ++i) {
    ssize_t n = recv(fd, rx_.data(), rx_.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      // e.g. ECONNREFUSED from an ICMP port unreachable: next try at once.
      return try_failed(q, to_string(opt_.upstreams[q.upstream]) + ": " + errno_text("recv", errno));
    }
    ParseResult p = parse_message(std::span(rx_.data(), static_cast<size_t>(n)));
    // Garbage and answers to other questions may be spoofs: ignore them
    // and keep waiting for the real one (or the timeout).
    if (p.status != ParseStatus::Ok || !matches(q, p.message)) continue;
    if (p.message.header.tc) {
      retire(q);
      if (!open_tcp(q)) start(q);
      return;
    }
    return on_answer(q, p.message);
  }
}

void StubResolver::tcp_io(Query& q, Conn& conn, uint32_t events) {
  std::string where = to_string(opt_.upstreams[q.upstream]) + " over TCP";
  int fd = conn.fd.get();
  if (!conn.connected) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return try_failed(q, where + ": " + errno_text("connect", err));
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    conn.connected = true;
  }
  if (conn.written < conn.out.size()) {
    ssize_t n = send(fd, conn.out.data() + conn.written, conn.out.size() - conn.written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return try_failed(q, where + ": " + errno_text("send", errno));
    }
    conn.written += static_cast<size_t>(n);
    if (conn.written < conn.out.size()) return;
    if (!loop_.modify(fd, EPOLLIN, &conn).ok()) return try_failed(q, where + ": " + errno_text("epoll_ctl", errno));
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
      return try_failed(q, where + ": " + (n == 0 ? std::string("closed before the answer") : errno_text("recv", errno)));
    }
    conn.in.resize(have + static_cast<size_t>(n));
    if (conn.in.size() < 2) continue;
    size_t len = static_cast<size_t>(conn.in[0]) << 8 | conn.in[1];
    if (len < kHeaderBytes) return try_failed(q, where + ": answer shorter than a header");
    if (conn.in.size() < 2 + len) continue;
    ParseResult p = parse_message(std::span(conn.in).subspan(2));
    // A TCP peer is the upstream itself (the handshake saw to that): a bad
    // answer ends the try instead of being waited out.
    if (p.status != ParseStatus::Ok) return try_failed(q, where + ": bad answer: " + p.error);
    if (!matches(q, p.message)) return try_failed(q, where + ": answer to another question");
    return on_answer(q, p.message);
  }
}

bool StubResolver::matches(const Query& q, const Message& m) const {
  const Header& h = m.header;
  if (!h.qr || h.opcode != 0 || h.id != q.id || m.questions.size() != 1) return false;
  const Question& qq = m.questions[0];
  return qq.type == q.qtype && qq.klass == kClassIN && qq.name == q.lookup->name;
}

void StubResolver::on_answer(Query& q, const Message& m) {
  std::string where = to_string(opt_.upstreams[q.upstream]);
  uint16_t rcode = m.header.rcode;
  if (rcode == kRcodeFormErr && q.edns) {
    // An upstream that predates EDNS0: ask it again without (once).
    q.edns = false;
    --q.next_try;
    retire(q);
    return start(q);
  }
  if (rcode != kRcodeNoError && rcode != kRcodeNxDomain) {
    q.rcode = rcode;
    return try_failed(q, where + ": answered " + rcode_name(rcode));
  }
  AddressAnswer answer = addresses_for(m, q.lookup->name);
  if (answer.chain_too_long) {
    q.error = where + ": CNAME chain longer than " + std::to_string(kMaxCnameHops);
    return finish(q);
  }
  int family = q.qtype == kTypeA ? AF_INET : AF_INET6;
  q.addrs.clear();
  for (const IpAddr& a : answer.addrs)
    if (a.family == family) q.addrs.push_back(a);
  q.answered = true;
  q.rcode = rcode;
  q.ttl = answer.ttl;
  q.error.clear();
  finish(q);
}

void StubResolver::finish(Query& q) {
  retire(q);
  q.done = true;
  Lookup& l = *q.lookup;
  if (!l.a.done || !l.aaaa.done) return;

  auto it = lookups_.find(l.name);
  std::shared_ptr<Lookup> lookup = it->second;
  lookups_.erase(it);
  Resolution r;
  if (!l.a.answered && !l.aaaa.answered) {
    r.rcode = l.a.rcode;
    r.error = l.a.error == l.aaaa.error ? l.a.error : "A: " + l.a.error + "; AAAA: " + l.aaaa.error;
    if (r.error.empty()) r.error = "no answer";
  } else {
    bool noerror = (l.a.answered && l.a.rcode == kRcodeNoError) || (l.aaaa.answered && l.aaaa.rcode == kRcodeNoError);
    r.rcode = noerror ? kRcodeNoError : (l.a.answered ? l.a.rcode : l.aaaa.rcode);
    r.addrs = l.a.addrs;
    r.addrs.insert(r.addrs.end(), l.aaaa.addrs.begin(), l.aaaa.addrs.end());
    std::chrono::seconds ttl = opt_.negative_ttl;
    if (!r.addrs.empty()) {
      uint32_t min_ttl = UINT32_MAX;
      for (const Query* x : {&l.a, &l.aaaa})
        if (!x->addrs.empty()) min_ttl = std::min(min_ttl, x->ttl);
      ttl = std::clamp(std::chrono::seconds(min_ttl), opt_.min_ttl, opt_.max_ttl);
    }
    // Half an answer (one type failed) is kept only briefly, so the failed
    // half is asked again soon.
    if (!l.a.answered || !l.aaaa.answered) ttl = std::min(ttl, opt_.negative_ttl);
    remember(l.name, r, ttl);
  }
  loop_.defer([alive = std::weak_ptr<int>(alive_), lookup = std::move(lookup), r = std::move(r)] {
    // A callback may destroy the resolver: check before each.
    for (Done& done : lookup->waiters) {
      if (alive.expired()) return;
      done(r);
    }
  });
}

void StubResolver::remember(const std::string& name, const Resolution& r, std::chrono::seconds ttl) {
  if (opt_.cache_entries == 0 || ttl.count() <= 0) return;
  auto expires = Loop::Clock::now() + ttl;
  if (auto it = cache_.find(name); it != cache_.end()) {
    it->second.result = r;
    it->second.expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  while (cache_.size() >= opt_.cache_entries) {  // bounded: one eviction per entry
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(name);
  cache_.emplace(name, CacheEntry{r, expires, lru_.begin()});
}

std::vector<sockaddr_storage> parse_resolv_conf(std::string_view text) {
  std::vector<sockaddr_storage> out;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty() && out.size() < kMaxNameservers) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto next_word = [&]() {
      while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
      size_t n = 0;
      while (n < line.size() && !is_space(line[n])) ++n;
      std::string_view w = line.substr(0, n);
      line.remove_prefix(n);
      return w;
    };
    std::string_view key = next_word();
    if (key != "nameserver") continue;  // also skips '#' and ';' comments
    std::string addr(next_word());
    uint32_t scope = 0;
    if (size_t pct = addr.find('%'); pct != std::string::npos) {
      std::string_view digits = std::string_view(addr).substr(pct + 1);
      if (digits.empty() || digits.size() > 9) continue;  // interface names need I/O: not here
      bool numeric = true;
      for (char c : digits) {
        numeric = numeric && c >= '0' && c <= '9';
        scope = scope * 10 + static_cast<uint32_t>(c - '0');
      }
      if (!numeric) continue;
      addr.resize(pct);
    }
    auto ip = IpAddr::parse(addr);
    if (!ip || (scope && ip->family != AF_INET6)) continue;
    sockaddr_storage ss;
    ip->to_sockaddr(53, &ss);
    if (ip->family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_scope_id = scope;
    out.push_back(ss);
  }
  return out;
}

Result<std::vector<sockaddr_storage>> read_resolv_conf(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + path);
  std::string text(kMaxResolvConfBytes, '\0');
  size_t have = 0;
  while (have < text.size()) {  // bounded by the size cap
    ssize_t n = read(fd.get(), text.data() + have, text.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read " + path);
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  text.resize(have);
  auto servers = parse_resolv_conf(text);
  if (servers.empty()) return logic_error(path + " names no nameserver");
  return servers;
}

std::string to_string(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    return IpAddr::v4(&sa->sin_addr).to_string() + ":" + std::to_string(ntohs(sa->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    return "[" + IpAddr::v6(&sa->sin6_addr).to_string() + "]:" + std::to_string(ntohs(sa->sin6_port));
  }
  return "?";
}

}  // namespace egressd::dns
