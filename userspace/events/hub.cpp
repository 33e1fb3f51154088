#include "events/hub.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "events/format.h"

namespace egressd {

Result<Hub> Hub::listen(const std::string& socket_path, std::string cgroup_path) {
  Hub h;
  h.path_ = socket_path;
  h.cgroup_path_ = std::move(cgroup_path);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(sa.sun_path)) return logic_error("socket path too long: " + socket_path);
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size());
  h.listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!h.listen_.valid()) return sys_error("socket");
  unlink(socket_path.c_str());  // a previous daemon's; it has been stopped
  // Events name processes and destinations: root and the socket's group only.
  mode_t old = umask(0117);
  int rc = bind(h.listen_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  umask(old);
  if (rc != 0) return sys_error("bind " + socket_path);
  if (::listen(h.listen_.get(), 64) != 0) return sys_error("listen " + socket_path);
  struct stat st {};
  if (stat(socket_path.c_str(), &st) == 0) h.path_ino_ = st.st_ino;
  return h;
}

Hub::~Hub() {
  // Remove the socket only if it is still ours (a successor may have
  // replaced it already).
  struct stat st {};
  if (listen_.valid() && !path_.empty() && stat(path_.c_str(), &st) == 0 && st.st_ino == path_ino_)
    unlink(path_.c_str());
}

int Hub::accept_one() {
  int fd = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return -1;
  subs_[fd].fd.reset(fd);
  return fd;
}

bool Hub::on_readable(int fd) {
  auto it = subs_.find(fd);
  if (it == subs_.end()) return false;
  Sub& s = it->second;
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    subs_.erase(it);
    return false;
  }
  if (n < 0 || s.mode != Mode::Pending) return true;  // only the hello is read
  s.inbuf.append(buf, static_cast<size_t>(n));
  size_t nl = s.inbuf.find('\n');
  if (nl == std::string::npos) {
    if (s.inbuf.size() > 64) {
      subs_.erase(it);
      return false;
    }
    return true;
  }
  std::string hello = s.inbuf.substr(0, nl);
  if (hello == "json") {
    s.mode = Mode::Json;
  } else if (hello == "text") {
    s.mode = Mode::Text;
  } else {
    send_line(s, "error unknown mode");
    subs_.erase(it);
    return false;
  }
  if (!send_line(s, "ok " + cgroup_path_)) {
    subs_.erase(it);
    return false;
  }
  return true;
}

bool Hub::send_line(Sub& s, const std::string& line) {
  std::string msg = line + "\n";
  ssize_t n = send(s.fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(msg.size())) return true;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    ++dropped_;
    return true;
  }
  if (n >= 0) return false;  // a torn line would corrupt the stream: drop the subscriber
  return false;
}

void Hub::publish(const Event& e) {
  if (subs_.empty()) return;
  std::string json, text;
  for (auto it = subs_.begin(); it != subs_.end();) {
    Sub& s = it->second;
    bool keep = true;
    if (s.mode == Mode::Json) {
      if (json.empty()) json = to_json(e);
      keep = send_line(s, json);
    } else if (s.mode == Mode::Text) {
      if (text.empty()) text = to_text(e);
      keep = send_line(s, text);
    }
    it = keep ? std::next(it) : subs_.erase(it);
  }
}

}  // namespace egressd
