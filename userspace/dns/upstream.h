// upstream.h: egressd's one DNS client. It asks the upstream resolvers one
// question and hands back their answer, raw and parsed, for the filtering
// server (server.h: clients' questions) and for host_resolver.h (the
// proxy's name checks: A and AAAA of a host). Each try goes out on a
// fresh connected UDP socket (kernel-chosen source port) with a random id;
// an answer counts only if id and question match (anything else is ignored
// as a possible spoof). A truncated answer is asked again over TCP; a
// FORMERR to an EDNS query is asked again without EDNS; SERVFAIL, REFUSED,
// timeouts and ICMP errors move on to the next upstream, `attempts` rounds.
//
// Lifetime: `done` runs from the loop (never inside ask()), exactly once,
// unless the question is cancelled or the client destroyed first (its
// destructor closes every socket and calls nothing). `done` may ask again
// or cancel other questions. Whoever asks cancels its questions before it
// dies. Destroy the client before its Loop and after everyone asking it.
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
#include "dns/message.h"

namespace egressd::dns {

struct UpstreamQuestion {
  std::vector<uint8_t> name;  // wire form, lower case
  std::string text;           // presentation form (parse_message's), what answers are matched against
  uint16_t type = 0, klass = 0;
  bool dnssec_ok = false, checking_disabled = false;
  std::chrono::milliseconds try_timeout{0};  // per try; 0: Options::try_timeout
};

struct UpstreamReply {
  bool answered = false;  // an upstream answered: `wire` holds it (any rcode)
  std::vector<uint8_t> wire;
  Message message;       // `wire` parsed (its offsets point into `wire`): nobody parses it again
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
  using Ticket = uint64_t;  // a question in flight; 0: none

  UpstreamClient(Loop& loop, Options options);
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // 0 (and `done` is dropped) without upstreams or over max_in_flight.
  Ticket ask(const UpstreamQuestion& question, Done done);
  // Forgets a question in flight: its sockets are closed, `done` never runs.
  void cancel(Ticket ticket);
  bool has_upstreams() const { return !opt_.upstreams.empty(); }
  size_t in_flight() const { return exchanges_.size(); }
  uint64_t tries() const { return tries_; }  // datagrams and connections sent so far

 private:
  struct Conn;
  struct Exchange;

  void start(Exchange& x);
  bool open_try(Exchange& x, bool tcp);
  std::string describe(const Exchange& x) const;  // "1.2.3.4:53", " over TCP" if so: for errors
  void retire(Exchange& x);
  void try_failed(Exchange& x, std::string error);
  void on_io(Conn& conn, uint32_t events);
  void udp_input(Exchange& x);
  void tcp_io(Exchange& x, Conn& conn, uint32_t events);
  void on_answer(Exchange& x, std::span<const uint8_t> wire, Message&& message);
  void finish(Exchange& x);
  uint16_t random_id();

  Loop& loop_;
  Options opt_;
  std::vector<std::string> names_;  // of opt_.upstreams, written once (inet_ntop is dear per answer)
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Exchange>> exchanges_;
  std::vector<uint8_t> rx_;
  uint16_t ids_[32] = {};
  size_t ids_left_ = 0;
  uint64_t tries_ = 0;
  bool asking_ = false;  // inside ask(): answers are delivered later
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace egressd::dns
