// metrics_server.h: `attach --metrics`: a tiny HTTP/1.1 server for
// Prometheus on the daemon's Loop. It answers GET (and HEAD) /metrics, one
// request per connection (Connection: close), with bounded request size,
// time and number of clients, so a slow or hostile client never stalls the
// proxy or the resolver that share the loop.
//
// It listens on a Unix socket (mode 0600, or 0660 for one group) or on a
// loopback TCP address: metrics name the cgroup and the policy file and are
// never exposed off the host by accident. On TCP, a Host header must name a
// loopback address or localhost, so a web page cannot read them through DNS
// rebinding.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/loop.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::daemon {

struct MetricsAddress {
  bool unix_socket = false;
  std::string path;          // unix_socket
  sockaddr_storage addr{};   // TCP: 127.0.0.0/8 or ::1, with the port
  socklen_t addr_len = 0;
  std::string text;          // as written: "unix:/run/egressd/m.sock", "127.0.0.1:9477", "[::1]:9477"
};

// "unix:PATH" (absolute), "IPV4:PORT" or "[IPV6]:PORT"; an address that is
// not loopback is refused, with a message that says why.
Result<MetricsAddress> parse_metrics_address(const std::string& spec);

// A group name (or number) for --metrics-group.
Result<gid_t> group_id(const std::string& name);

struct HttpRequest {
  std::string method, target, version;
  std::string host;  // empty if none was sent
};

enum class HttpParse { NeedMore, Ok, Bad, TooLarge };

// Parses a request head (request line and header fields up to the empty
// line) from the bytes read so far; TooLarge once max_bytes pass without
// its end.
HttpParse parse_http_request(std::string_view buf, size_t max_bytes, HttpRequest& out);

// The whole response (status line, headers, body) to a parsed request.
// `loopback_host_only`: a Host header must name localhost or a loopback
// address. `body` is called only for GET/HEAD /metrics.
std::string metrics_http_reply(HttpParse state, const HttpRequest& req, bool loopback_host_only,
                               const std::function<Result<std::string>()>& body);

class MetricsServer {
 public:
  using Source = std::function<Result<std::string>()>;  // the exposition text
  struct Options {
    size_t max_request_bytes = 8192;
    std::chrono::milliseconds request_timeout{5000};  // accept -> whole request head
    std::chrono::milliseconds total_timeout{15000};   // accept -> closed
    size_t max_clients = 16;                          // more are closed at accept
    gid_t group = static_cast<gid_t>(-1);             // Unix socket: 0660 for this group instead of 0600
  };

  static Result<std::unique_ptr<MetricsServer>> start(Loop& loop, const MetricsAddress& at, Source source,
                                                      Options options);
  ~MetricsServer();  // closes every connection; removes its Unix socket
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const std::string& where() const { return at_.text; }
  uint16_t port() const;  // TCP: the bound port
  size_t clients() const { return clients_.size(); }

 private:
  struct Listener : Loop::Watcher {
    MetricsServer* server = nullptr;
    void on_io(uint32_t) override { server->accept_all(); }
  };
  struct Client;
  MetricsServer(Loop& loop, MetricsAddress at, Source source, Options options);
  Status listen_unix();
  Status listen_tcp();
  void accept_all();
  void pause_accepting();
  void on_client(Client& c, uint32_t events);
  void respond(Client& c, std::string bytes);
  void flush(Client& c);
  void close_client(Client& c);

  Loop& loop_;
  MetricsAddress at_;
  Source source_;
  Options opt_;
  UniqueFd fd_;
  Listener listener_;
  ino_t socket_ino_ = 0;
  Loop::TimerId pause_timer_ = 0;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Client>> clients_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

struct MetricsConfig {
  MetricsAddress at;
  MetricsServer::Options options;
};

}  // namespace egressd::daemon
