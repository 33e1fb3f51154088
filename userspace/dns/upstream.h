// upstream.h: asks the upstream resolvers one question for the filtering
// server (server.h) and hands back their raw answer. Each try goes out on a
// fresh connected UDP socket (kernel-chosen source port) with a random id;
// an answer counts only if id and question match (anything else is ignored
// as a possible spoof). A truncated answer is asked again over TCP; a
// FORMERR to an EDNS query is asked again without EDNS; SERVFAIL, REFUSED,
// timeouts and ICMP errors move on to the next upstream, `attempts` rounds.
//
// Lifetime: as StubResolver's. `done` runs later from the loop, exactly
// once, unless the client is destroyed first (its destructor closes every
// socket and calls nothing). Destroy it before its Loop.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/loop.h"

namespace egressd::dns {

struct UpstreamQuestion {
  std::vector<uint8_t> name;  // wire form, lower case
  std::string text;           // presentation form (parse_message's), what answers are matched against
  uint16_t type = 0, klass = 0;
  bool dnssec_ok = false, checking_disabled = false;
};

struct UpstreamReply {
  bool answered = false;  // an upstream answered: `wire` holds it (any rcode)
  std::vector<uint8_t> wire;
  std::string upstream;  // "1.2.3.4:53" that answered, or was tried last
  std::string error;     // why not answered (or why the last answer was not taken)
};

class UpstreamClient {
 public:
  struct Options {
    std::vector<sockaddr_storage> upstreams;  // tried in turn
    std::chrono::milliseconds try_timeout{1500};
    int attempts = 2;               // rounds over the upstreams
    uint16_t edns_udp_size = 1232;  // advertised upstream (0: no EDNS)
    size_t max_in_flight = 4096;    // questions at once; more are refused
  };
  using Done = std::function<void(UpstreamReply&&)>;

  UpstreamClient(Loop& loop, Options options);
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // False (and `done` is dropped) without upstreams or over max_in_flight.
  bool ask(const UpstreamQuestion& question, Done done);
  size_t in_flight() const { return exchanges_.size(); }
  uint64_t tries() const { return tries_; }  // datagrams and connections sent so far

 private:
  struct Conn;
  struct Exchange;

  void start(Exchange& x);
  bool open_try(Exchange& x, bool tcp);
  void retire(Exchange& x);
  void try_failed(Exchange& x, std::string error);
  void on_io(Conn& conn, uint32_t events);
  void udp_input(Exchange& x);
  void tcp_io(Exchange& x, Conn& conn, uint32_t events);
  void on_answer(Exchange& x, std::vector<uint8_t> wire, uint16_t rcode);
  void finish(Exchange& x);
  uint16_t random_id();

  Loop& loop_;
  Options opt_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Exchange>> exchanges_;
  std::vector<uint8_t> rx_;
  uint16_t ids_[32] = {};
  size_t ids_left_ = 0;
  uint64_t tries_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace egressd::dns
