// session.h: one steered connection through the proxy.
//
//   Inspect --(ClientHello / request head judged)--> Resolve --> Connect --> Relay
//      \________________ refused: TLS alert / 403 / close _______________/
//
// Plain HTTP stays parsed while relaying: every request head on a kept-alive
// connection is judged before a byte of it reaches the origin, and bodies are
// counted (Content-Length or chunked) to find the next head. No exceptions;
// any error closes this session only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/loop.h"
#include "common/unique_fd.h"
#include "decide/steered_flow.h"
#include "proxy/dialer.h"
#include "proxy/http_head.h"
#include "proxy/proxy.h"

namespace egressd::proxy {

struct ClientHelloInfo;

// The host-forgery check: is the original destination `orig` one of the
// addresses a name resolved to? v4-mapped forms are their IPv4; an IPv6
// destination that names exactly one IPv4 host (NAT64 64:ff9b::/96,
// IPv4-translated, IPv4-compatible) matches that IPv4. 6to4 does not: the
// 80 bits after its IPv4 name any host of the site behind that router.
bool among_addresses(const IpAddr& orig, const std::vector<IpAddr>& addrs);

class Session {
 public:
  Session(Proxy& proxy, uint64_t id, UniqueFd client, decide::SteeredFlow orig,
          std::shared_ptr<const decide::ActivePolicy> policy);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  const decide::SteeredFlow& orig() const { return orig_; }
  void on_resolved(const ResolveResult& r);

 private:
  enum class Phase { Inspect, Resolve, Connect, Relay, Refuse, Done };
  enum class Body { Head, Fixed, Chunked, Blind };
  // The parsers start from byte 0: parsing a head that trickles in on every
  // read costs O(n^2). Parse again only when the buffer has doubled since
  // the last parse, when new bytes may end the head ("\n\r\n", or "\n\n"
  // which the parser refuses), or when it is full. Verdicts are
  // prefix-stable, so this postpones a verdict, never changes it.
  struct HeadGate {
    size_t parsed = 0;    // buffer size at the last parse (0: none yet)
    size_t searched = 0;  // bytes already scanned for a possible end
    bool due(const std::string& buf);
    void reset() { parsed = searched = 0; }
  };
  struct End : Loop::Watcher {
    Session* s = nullptr;
    bool client = true;
    UniqueFd fd;
    uint32_t interest = 0;
    bool registered = false;
    void on_io(uint32_t events) override { s->on_io(client, events); }
  };

  void on_io(bool client, uint32_t events);
  void inspect();
  void judge_first_flight(bool eof);  // parses inspect_ and acts on the verdict (NeedMore: waits)
  void judge_tls(const ClientHelloInfo& hello);
  void judge_http(const HttpHead& head);
  // Returns false and has refused if the request may not pass. `first`: it
  // opens the connection (its name is resolved before connecting).
  bool judge_request(const HttpHead& head, bool first);
  bool deny(unsigned reason, const std::string& detail);  // false if refused (enforcing), true if audited
  void allowed(unsigned reason, uint32_t rule_id);
  // `host` was answered with the original address within [proxy] address_grace.
  bool answered_recently(const std::string& host) const;
  void connect_upstream();
  void dialed(DialResult r);  // the dialer's outcome: relay, or upstream-failed
  void on_connected();
  void relay_client_readable();
  void relay_upstream_readable();
  bool http_advance();  // moves judged client bytes to c2u_out_; false if refused
  void upgrade_answered();  // the origin's first status line arrived (or EOF): switched or not
  bool client_held() const { return upgrade_wait_ && body_ == Body::Head; }  // client bytes wait for that answer
  bool flush(End& to, std::string& out, uint64_t& counter);
  void after_io();      // EOF propagation, completion, interest
  void refuse_now();    // sends refusal_ and closes
  void abort();         // RST both ways
  void finish();
  void update_interest(End& e, uint32_t want);
  void watch(End& e, uint32_t want);  // relay: like update_interest, but 0 leaves the epoll set
  void arm_idle();
  void record(unsigned verdict, unsigned reason, uint32_t rule_id = 0, const DialResult* dial = nullptr);
  std::string refusal_for(unsigned reason, const std::string& detail) const;

  Proxy& proxy_;
  uint64_t id_;
  End client_, upstream_;
  decide::SteeredFlow orig_;
  std::shared_ptr<const decide::ActivePolicy> policy_;
  Phase phase_ = Phase::Inspect;
  Loop::TimerId timer_ = 0;
  Loop::Clock::time_point last_io_;
  Dialer dialer_;
  std::vector<IpAddr> fallbacks_;  // the name's other addresses, dialed if the original fails

  // What was seen, for decisions and events.
  bool tls_ = false;
  std::string host_;       // SNI or the first Host
  std::string method_, path_;
  std::string inspect_;    // client bytes read before the decision
  unsigned allow_reason_ = 0;
  uint32_t rule_id_ = 0;   // the [[allow]] rule that admitted the first request

  // Relay state. Buffers hold only what a write could not take yet, so an
  // idle session holds none.
  std::string c2u_out_, u2c_out_;
  bool c2u_eof_ = false, u2c_eof_ = false;            // read side saw EOF
  bool c2u_shut_ = false, u2c_shut_ = false;          // write side shut down after EOF
  bool drain_then_refuse_ = false;                    // a later request was refused: finish earlier responses first
  std::string refusal_;                               // bytes to send the client when refusing

  // Plain HTTP request tracking (client -> upstream).
  std::string http_in_;
  Body body_ = Body::Head;
  uint64_t body_left_ = 0;
  ChunkedDecoder chunked_;
  bool first_head_judged_ = false;  // the head in http_in_ was judged during Inspect
  bool http_framed_ = false;        // the first request head parsed whole: requests can be framed
  HttpHead pending_head_;           // the head being judged
  HeadGate gate_;                   // for the head at the start of inspect_ / http_in_
  uint64_t heads_forwarded_ = 0;    // request heads sent to the origin
  bool upgrade_wait_ = false;       // the first request asked to upgrade; its answer is not in yet
  std::string resp_peek_;           // the answer's first bytes, until they say 101 or not
};

}  // namespace egressd::proxy
