#include "events/hub.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/unix_addr.h"
#include "events/format.h"

namespace egressd {

Result<std::unique_ptr<Hub>> Hub::listen(Loop& loop, const std::string& socket_path, std::string cgroup_path) {
  std::unique_ptr<Hub> h(new Hub(loop));
  h->path_ = socket_path;
  h->cgroup_path_ = std::move(cgroup_path);
  auto sa = unix_addr(socket_path);
  if (!sa) return sa.error();
  h->listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!h->listen_.valid()) return sys_error("socket");
  unlink(socket_path.c_str());  // a previous daemon's; it has been stopped
  // Events name processes and destinations: root and the socket's group only.
  mode_t old = umask(0117);
  int rc = bind(h->listen_.get(), sa->get(), sa->len);
  umask(old);
  if (rc != 0) return sys_error("bind " + socket_path);
  if (::listen(h->listen_.get(), 64) != 0) return sys_error("listen " + socket_path);
  struct stat st {};
  if (stat(socket_path.c_str(), &st) == 0) h->path_ino_ = st.st_ino;
  EGD_TRY(loop.add(h->listen_.get(), EPOLLIN, &h->listener_));
  return h;
}

Hub::~Hub() {
  for (auto& [fd, s] : subs_) loop_.remove(fd);
  if (listen_.valid() && !listener_paused_) loop_.remove(listen_.get());
  // Remove the socket only if it is still ours (a successor may have
  // replaced it already).
  struct stat st {};
  if (listen_.valid() && !path_.empty() && stat(path_.c_str(), &st) == 0 && st.st_ino == path_ino_)
    unlink(path_.c_str());
}

Hub::Subs::iterator Hub::close_sub(Subs::iterator it) {
  loop_.remove(it->first);
  std::shared_ptr<Sub> gone(std::move(it->second));
  gone->fd.reset();  // on_sub_io ignores what the batch still holds for it
  loop_.defer([gone] {});
  return subs_.erase(it);
}

void Hub::on_sub_io(Sub& s, uint32_t events) {
  if (!s.fd.valid()) return;  // closed earlier in this batch
  bool alive = !(events & (EPOLLHUP | EPOLLERR));
  if (alive && (events & EPOLLIN)) alive = on_input(s);
  if (alive && (events & EPOLLOUT)) alive = flush(s);
  if (!alive) close_sub(subs_.find(s.fd.get()));
}

void Hub::accept_all() {
  for (int i = 0; i < 64; ++i) {
    int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // The listener stays readable: stop watching it until tick(), or
        // epoll_wait would return at once forever.
        loop_.remove(listen_.get());
        listener_paused_ = true;
      }
      return;
    }
    if (subs_.size() >= kMaxSubscribers) {
      close(fd);
      continue;
    }
    auto sub = std::make_unique<Sub>();
    sub->hub = this;
    sub->fd.reset(fd);
    if (!loop_.add(fd, EPOLLIN, sub.get())) continue;  // closes fd
    subs_.emplace(fd, std::move(sub));
  }
}

void Hub::tick() {
  if (listener_paused_) {
    listener_paused_ = !loop_.add(listen_.get(), EPOLLIN, &listener_);
  }
  auto deadline = std::chrono::steady_clock::now() - std::chrono::seconds(kHelloTimeoutSeconds);
  for (auto it = subs_.begin(); it != subs_.end();)
    it = (it->second->mode == Mode::Pending && it->second->since < deadline) ? close_sub(it) : std::next(it);
}

bool Hub::on_input(Sub& s) {
  char buf[256];
  ssize_t n = recv(s.fd.get(), buf, sizeof(buf), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
  if (n < 0 || s.mode != Mode::Pending) return true;  // only the hello is read
  s.inbuf.append(buf, static_cast<size_t>(n));
  size_t nl = s.inbuf.find('\n');
  if (nl == std::string::npos) return s.inbuf.size() <= 64;
  std::string hello = s.inbuf.substr(0, nl);
  if (hello == "json") {
    s.mode = Mode::Json;
  } else if (hello == "text") {
    s.mode = Mode::Text;
  } else {
    enqueue(s, "error unknown mode");
    flush(s);
    return false;
  }
  enqueue(s, "ok " + cgroup_path_);
  return flush(s);
}

void Hub::enqueue(Sub& s, const std::string& line) {
  if (s.out.size() - s.out_off + line.size() + 1 > kMaxQueuedBytes) {
    ++s.dropped;
    ++dropped_total_;
    return;
  }
  if (s.dropped) {
    // Say what was lost, in the subscriber's format, before the next line.
    std::string notice = s.mode == Mode::Json
                             ? "{\"type\":\"dropped\",\"lines\":" + std::to_string(s.dropped) + "}"
                             : "-- " + std::to_string(s.dropped) + " events dropped: this subscriber is too slow";
    s.out += notice + "\n";
    s.dropped = 0;
  }
  s.out += line;
  s.out += '\n';
}

bool Hub::flush(Sub& s) {
  while (s.out_off < s.out.size()) {
    ssize_t n = send(s.fd.get(), s.out.data() + s.out_off, s.out.size() - s.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      break;
    }
    s.out_off += static_cast<size_t>(n);
  }
  // Compact rarely: erasing the front on every send would be quadratic.
  if (s.out_off == s.out.size()) {
    s.out.clear();
    s.out_off = 0;
  } else if (s.out_off > (1u << 20)) {
    s.out.erase(0, s.out_off);
    s.out_off = 0;
  }
  bool want = !s.out.empty();
  if (want != s.want_write) {
    (void)loop_.modify(s.fd.get(), want ? (EPOLLIN | EPOLLOUT) : EPOLLIN, &s);
    s.want_write = want;
  }
  return true;
}

Status Hub::rename_socket(const std::string& path) {
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0 || st.st_ino != path_ino_)
    return logic_error(path_ + " is no longer this daemon's socket");
  if (rename(path_.c_str(), path.c_str()) != 0) return sys_error("rename " + path_ + " to " + path);
  path_ = path;
  return {};
}

void Hub::notice(const std::string& json, const std::string& text) {
  for (auto it = subs_.begin(); it != subs_.end();) {
    Sub& s = *it->second;
    if (s.mode != Mode::Pending) enqueue(s, s.mode == Mode::Json ? json : text);
    bool alive = s.mode == Mode::Pending || s.want_write || flush(s);
    it = alive ? std::next(it) : close_sub(it);
  }
}

void Hub::publish(const Event& e) {
  if (subs_.empty()) return;
  std::string json, text;
  for (auto it = subs_.begin(); it != subs_.end();) {
    Sub& s = *it->second;
    if (s.mode == Mode::Json) {
      if (json.empty()) json = to_json(e);
      enqueue(s, json);
    } else if (s.mode == Mode::Text) {
      if (text.empty()) text = to_text(e);
      enqueue(s, text);
    }
    // Subscribers already waiting for EPOLLOUT are flushed when it comes.
    bool alive = s.mode == Mode::Pending || s.want_write || flush(s);
    it = alive ? std::next(it) : close_sub(it);
  }
}

}  // namespace egressd
