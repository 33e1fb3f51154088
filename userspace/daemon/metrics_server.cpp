#include "daemon/metrics_server.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/unix_addr.h"
#include "daemon/metrics_format.h"

namespace egressd::daemon {
namespace {

constexpr int kAcceptsPerEvent = 16;
constexpr size_t kMaxDrainBytes = 64 * 1024;  // read and dropped after the reply, before close

Result<uint16_t> parse_port(std::string_view s, const std::string& spec) {
  if (s.empty() || s.size() > 5) return logic_error("--metrics " + spec + ": give a port, 1..65535");
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return logic_error("--metrics " + spec + ": the port must be a number, 1..65535");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v < 1 || v > 65535) return logic_error("--metrics " + spec + ": the port must be 1..65535");
  return static_cast<uint16_t>(v);
}

Error not_loopback(const std::string& spec) {
  return logic_error("--metrics " + spec +
                     ": not a loopback address; metrics name the cgroup and the policy and must not be "
                     "reachable from other hosts: use 127.0.0.1:PORT, [::1]:PORT or unix:PATH");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

// Host: localhost, 127.x.y.z or [::1], each with an optional port.
bool loopback_host(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) return false;
    std::string inner(h.substr(1, close - 1));
    in6_addr a6{};
    return inet_pton(AF_INET6, inner.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  std::string_view name = h.substr(0, h.find(':'));
  if (iequals(name, "localhost")) return true;
  std::string s(name);
  in_addr a4{};
  return inet_pton(AF_INET, s.c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

std::string response(int code, std::string_view reason, std::string_view body, bool head,
                     std::string_view content_type = "text/plain; charset=utf-8", std::string_view extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + std::string(reason) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

Result<MetricsAddress> parse_metrics_address(const std::string& spec) {
  MetricsAddress a;
  a.text = spec;
  if (spec.rfind("unix:", 0) == 0) {
    a.unix_socket = true;
    a.path = spec.substr(5);
    if (a.path.empty() || a.path[0] != '/') return logic_error("--metrics " + spec + ": unix:PATH takes an absolute path");
    if (a.path.size() >= sizeof(sockaddr_un::sun_path))
      return logic_error("--metrics " + spec + ": the socket path is longer than " +
                         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    return a;
  }
  if (!spec.empty() && spec[0] == '[') {
    size_t close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':')
      return logic_error("--metrics " + spec + ": write an IPv6 address as [ADDR]:PORT");
    std::string host = spec.substr(1, close - 1);
    auto port = parse_port(std::string_view(spec).substr(close + 2), spec);
    if (!port) return port.error();
    auto* sa = reinterpret_cast<sockaddr_in6*>(&a.addr);
    if (inet_pton(AF_INET6, host.c_str(), &sa->sin6_addr) != 1)
      return logic_error("--metrics " + spec + ": '" + host + "' is not an IPv6 address");
    if (!IN6_IS_ADDR_LOOPBACK(&sa->sin6_addr)) return not_loopback(spec);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(*port);
    a.addr_len = sizeof(sockaddr_in6);
    return a;
  }
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos)
    return logic_error("--metrics " + spec + ": expected unix:PATH, 127.0.0.1:PORT or [::1]:PORT");
  std::string host = spec.substr(0, colon);
  if (host.find(':') != std::string::npos)
    return logic_error("--metrics " + spec + ": write an IPv6 address as [ADDR]:PORT");
  auto port = parse_port(std::string_view(spec).substr(colon + 1), spec);
  if (!port) return port.error();
  auto* sa = reinterpret_cast<sockaddr_in*>(&a.addr);
  if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1)
    return logic_error("--metrics " + spec + ": '" + host +
                       "' is not an IPv4 address (names are not resolved: use 127.0.0.1)");
  if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return not_loopback(spec);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(*port);
  a.addr_len = sizeof(sockaddr_in);
  return a;
}

Result<gid_t> group_id(const std::string& name) {
  if (name.empty()) return logic_error("empty group name");
  if (name.find_first_not_of("0123456789") == std::string::npos && name.size() < 10)
    return static_cast<gid_t>(std::stoul(name));
  group g{};
  group* found = nullptr;
  std::vector<char> buf(16384);
  int rc = getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
  if (rc != 0) return sys_error("look up group " + name, rc);
  if (!found) return logic_error("no group named " + name);
  return g.gr_gid;
}

HttpParse parse_http_request(std::string_view buf, size_t max_bytes, HttpRequest& out) {
  // The head ends at the first empty line (CRLF CRLF, or bare LF LF).
  size_t end = std::string_view::npos, crlf = buf.find("\r\n\r\n"), lf = buf.find("\n\n");
  if (crlf != std::string_view::npos) end = crlf + 4;
  if (lf != std::string_view::npos && (end == std::string_view::npos || lf + 2 < end)) end = lf + 2;
  if (end == std::string_view::npos) return buf.size() >= max_bytes ? HttpParse::TooLarge : HttpParse::NeedMore;
  if (end > max_bytes) return HttpParse::TooLarge;
  std::string_view head = buf.substr(0, end);

  out = HttpRequest{};
  size_t eol = head.find('\n');
  std::string_view line = trim(head.substr(0, eol));
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return HttpParse::Bad;
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || target.empty()) return HttpParse::Bad;
  for (char c : method) {
    if (c < 'A' || c > 'Z') return HttpParse::Bad;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return HttpParse::Bad;
  out.method = method;
  out.target = target;
  out.version = version;

  bool have_host = false;
  size_t pos = eol + 1;
  while (pos < head.size()) {
    size_t next = head.find('\n', pos);
    std::string_view field = head.substr(pos, next - pos);
    pos = next + 1;
    if (!field.empty() && field.back() == '\r') field.remove_suffix(1);
    if (field.empty()) break;  // the empty line
    if (field.front() == ' ' || field.front() == '\t') return HttpParse::Bad;  // obsolete line folding
    size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos) return HttpParse::Bad;
    std::string_view name = field.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return HttpParse::Bad;
    if (iequals(name, "host")) {
      if (have_host) return HttpParse::Bad;
      have_host = true;
      out.host = trim(field.substr(colon + 1));
    }
  }
  return HttpParse::Ok;
}

std::string metrics_http_reply(HttpParse state, const HttpRequest& req, bool loopback_host_only,
                               const std::function<Result<std::string>()>& body) {
  if (state == HttpParse::TooLarge) return response(431, "Request Header Fields Too Large", "request head too large\n", false);
  if (state != HttpParse::Ok) return response(400, "Bad Request", "bad request\n", false);
  bool head = req.method == "HEAD";
  if (req.method != "GET" && !head)
    return response(405, "Method Not Allowed", "GET /metrics\n", false, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n");
  if (loopback_host_only && !req.host.empty() && !loopback_host(req.host))
    return response(403, "Forbidden", "Host must be localhost or a loopback address\n", head);
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") return response(404, "Not Found", "egressd serves GET /metrics\n", head);
  auto text = body();
  if (!text) return response(500, "Internal Server Error", text.error().message() + "\n", head);
  return response(200, "OK", *text, head, kMetricsContentType);
}

// ---- the server -----------------------------------------------------------------

struct MetricsServer::Client : Loop::Watcher {
  enum class Phase { Request, Reply, Drain, Closed };
  MetricsServer* server = nullptr;
  uint64_t id = 0;
  UniqueFd fd;
  Phase phase = Phase::Request;
  std::string in, out;
  size_t sent = 0, drained = 0;
  Loop::TimerId request_timer = 0, total_timer = 0;
  void on_io(uint32_t events) override { server->on_client(*this, events); }
};

MetricsServer::MetricsServer(Loop& loop, MetricsAddress at, Source source, Options options)
    : loop_(loop), at_(std::move(at)), source_(std::move(source)), opt_(options) {
  listener_.server = this;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(Loop& loop, const MetricsAddress& at, Source source,
                                                            Options options) {
  std::unique_ptr<MetricsServer> s(new MetricsServer(loop, at, std::move(source), options));
  EGD_TRY(at.unix_socket ? s->listen_unix() : s->listen_tcp());
  EGD_TRY(loop.add(s->fd_.get(), EPOLLIN, &s->listener_));
  return s;
}

Status MetricsServer::listen_unix() {
  const std::string& path = at_.path;
  auto sa = unix_addr(path);
  if (!sa) return sa.error();
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    // Only a socket nobody answers on is ours to replace (a previous
    // daemon's); never remove another kind of file given by mistake.
    if (!S_ISSOCK(st.st_mode)) return logic_error("metrics socket " + path + " exists and is not a socket");
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!probe.valid()) return sys_error("socket");
    if (connect(probe.get(), sa->get(), sa->len) == 0 || errno == EAGAIN)
      return logic_error("metrics socket " + path + " is in use by another process");
    unlink(path.c_str());
  }
  fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return sys_error("socket");
  // Created 0600 (0660 with a group) by the umask: never more open, not even
  // for an instant.
  mode_t old = umask(opt_.group == static_cast<gid_t>(-1) ? 0177 : 0117);
  int rc = bind(fd_.get(), sa->get(), sa->len);
  umask(old);
  if (rc != 0) return sys_error("bind metrics socket " + path);
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return sys_error("stat metrics socket " + path);
  socket_ino_ = st.st_ino;
  if (opt_.group != static_cast<gid_t>(-1) && lchown(path.c_str(), static_cast<uid_t>(-1), opt_.group) != 0)
    return sys_error("give metrics socket " + path + " to group " + std::to_string(opt_.group));
  if (listen(fd_.get(), 16) != 0) return sys_error("listen on " + path);
  return {};
}

Status MetricsServer::listen_tcp() {
  int family = at_.addr.ss_family;
  fd_.reset(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return sys_error("socket");
  int one = 1;
  setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd_.get(), reinterpret_cast<const sockaddr*>(&at_.addr), at_.addr_len) != 0)
    return sys_error("bind metrics listener " + at_.text);
  if (listen(fd_.get(), 16) != 0) return sys_error("listen on " + at_.text);
  return {};
}

uint16_t MetricsServer::port() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (at_.unix_socket || getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

MetricsServer::~MetricsServer() {
  for (auto& [id, c] : clients_) {
    if (c->fd.valid()) loop_.remove(c->fd.get());
    loop_.cancel(c->request_timer);
    loop_.cancel(c->total_timer);
  }
  loop_.cancel(pause_timer_);
  if (fd_.valid()) loop_.remove(fd_.get());
  struct stat st {};
  // Only if it is still ours: a successor may have replaced it.
  if (at_.unix_socket && lstat(at_.path.c_str(), &st) == 0 && st.st_ino == socket_ino_) unlink(at_.path.c_str());
}

void MetricsServer::accept_all() {
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    UniqueFd fd(accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      // Out of descriptors: the listener stays readable, so stop watching
      // it for a while rather than spin the loop.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting();
      return;
    }
    if (clients_.size() >= opt_.max_clients) continue;  // closed: scrapers come one at a time
    auto c = std::make_unique<Client>();
    c->server = this;
    c->id = next_id_++;
    c->fd = std::move(fd);
    if (!loop_.add(c->fd.get(), EPOLLIN | EPOLLRDHUP, c.get())) continue;
    std::weak_ptr<int> alive = alive_;
    uint64_t id = c->id;
    auto guarded = [this, alive, id](auto fn) {
      return [this, alive, id, fn] {
        if (alive.expired()) return;
        auto it = clients_.find(id);
        if (it != clients_.end()) fn(*it->second);
      };
    };
    c->request_timer = loop_.after(opt_.request_timeout, guarded([this](Client& cl) {
      cl.request_timer = 0;
      if (cl.phase == Client::Phase::Request)
        respond(cl, response(408, "Request Timeout", "request timeout\n", false));
    }));
    c->total_timer = loop_.after(opt_.total_timeout, guarded([this](Client& cl) {
      cl.total_timer = 0;
      close_client(cl);
    }));
    clients_.emplace(id, std::move(c));
  }
}

void MetricsServer::pause_accepting() {
  if (pause_timer_) return;
  loop_.remove(fd_.get());
  pause_timer_ = loop_.after(std::chrono::milliseconds(100), [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    pause_timer_ = 0;
    (void)loop_.add(fd_.get(), EPOLLIN, &listener_);
  });
}

void MetricsServer::on_client(Client& c, uint32_t events) {
  if (c.phase == Client::Phase::Closed) return;
  if (events & EPOLLERR) return close_client(c);
  if (c.phase == Client::Phase::Request && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
    char buf[4096];
    bool eof = false;
    while (c.in.size() < opt_.max_request_bytes) {
      ssize_t n = recv(c.fd.get(), buf, std::min(sizeof(buf), opt_.max_request_bytes - c.in.size()), 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return close_client(c);
      break;
    }
    HttpRequest req;
    HttpParse st = parse_http_request(c.in, opt_.max_request_bytes, req);
    if (st == HttpParse::NeedMore) {
      if (eof) close_client(c);  // gone before asking anything
      return;
    }
    return respond(c, metrics_http_reply(st, req, !at_.unix_socket, source_));
  }
  if (c.phase == Client::Phase::Reply && (events & EPOLLOUT)) return flush(c);
  if (c.phase == Client::Phase::Drain) {
    // Whatever the client still sends is read and dropped until it closes:
    // closing with unread bytes would reset the connection and could
    // destroy the reply before the client has read it.
    char buf[4096];
    for (;;) {
      ssize_t n = recv(c.fd.get(), buf, sizeof(buf), 0);
      if (n > 0 && (c.drained += static_cast<size_t>(n)) < kMaxDrainBytes) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      return close_client(c);
    }
  }
  if (events & EPOLLHUP) close_client(c);
}

void MetricsServer::respond(Client& c, std::string bytes) {
  c.phase = Client::Phase::Reply;
  c.in.clear();
  c.out = std::move(bytes);
  c.sent = 0;
  flush(c);
}

void MetricsServer::flush(Client& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!loop_.modify(c.fd.get(), EPOLLOUT, &c)) close_client(c);
      return;
    }
    return close_client(c);
  }
  std::string().swap(c.out);
  shutdown(c.fd.get(), SHUT_WR);
  c.phase = Client::Phase::Drain;
  if (!loop_.modify(c.fd.get(), EPOLLIN | EPOLLRDHUP, &c)) close_client(c);
}

void MetricsServer::close_client(Client& c) {
  if (c.phase == Client::Phase::Closed) return;
  c.phase = Client::Phase::Closed;
  loop_.remove(c.fd.get());
  loop_.cancel(c.request_timer);
  loop_.cancel(c.total_timer);
  c.fd.reset();
  // Freed after the batch: events already collected may still name it.
  loop_.defer([this, alive = std::weak_ptr<int>(alive_), id = c.id] {
    if (!alive.expired()) clients_.erase(id);
  });
}

}  // namespace egressd::daemon
