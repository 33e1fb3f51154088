// server.h: the filtering DNS resolver the hooks steer the cgroup's DNS to
// (UDP and TCP port 53, any address). It listens on 127.0.0.1 and [::1]
// (UDP and TCP, one port), on the daemon's Loop, and per query:
//  - exactly one question, else FORMERR; garbage is dropped (with an
//    event, rate-limited);
//  - a name no rule allows: NXDOMAIN (or REFUSED, [dns] denied) at once,
//    never forwarded, whatever the type, with an Extended DNS Error whose
//    text names egressd, the reason and the policy file; with [dns]
//    denied = "sinkhole", A/AAAA get the sinkhole address (the fence
//    steers it to the proxy, which refuses the name with a message) and
//    other types an empty NOERROR; an allowed name asking ANY or a type
//    outside decide/dns_check.h's list: REFUSED;
//  - an allowed name: from the cache, or asked upstream through egressd's
//    one DNS client (upstream.h: fresh id and source port, failover,
//    TC -> TCP; the proxy's name checks share it); identical questions in
//    flight share one upstream exchange. The answer is filtered (filter.h:
//    blocked addresses and ECH removed, and the addresses of a family
//    without a default route: families.h), cached, and given to each client
//    with its own id, spelling and EDNS. The route state an answer was
//    filtered under is kept with it: a hit under another is a miss.
//  - audit mode forwards everything and records what would have been
//    denied (verdict audit), answers unfiltered.
// Every denied query is an Event (hook dns) naming the client process
// (client_identity.h); allowed ones with events = "all".
//
// UDP is served in batches: each wakeup takes up to 64 datagrams with one
// recvmmsg and sends their replies with one sendmmsg (in order, after the
// batch). A cache hit costs no allocation: the query is read by
// fast_query_info into reused buffers, the cache key is built in a reused
// string, the entry is copied into the reply's send buffer and patched
// (id, flags, the client's spelling, EDNS). The policy decision for a
// question is kept with its cache entry (the cache is emptied with every
// new policy), so a hit skips the rule walk; its event, if any, is the same.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/fair_share.h"
#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/result.h"
#include "common/routes.h"
#include "common/token_bucket.h"
#include "common/unique_fd.h"
#include "decide/active_policy.h"
#include "decide/recorder.h"
#include "dns/answer_cache.h"
#include "dns/client_identity.h"
#include "dns/families.h"
#include "dns/message.h"
#include "dns/reply.h"
#include "dns/stats.h"
#include "dns/upstream.h"
#include "egressd_abi.h"
#include "events/event.h"

namespace egressd::dns {

struct ServerOptions {
  uint16_t port = 0;  // 0: any free port (the same for UDP/TCP and both families)
  size_t max_pending = 4096;  // distinct questions waiting on upstreams
  size_t max_waiters = 64;    // clients waiting on one of them
  // TCP connections held at once, by all clients; each client's share is
  // the policy's [dns] max_tcp_connections_per_process / _per_uid, else a
  // quarter / a half of it (common/fair_share.h). Over it: closed at once,
  // an event (too-many-connections) and a log line through `warn` (none:
  // not logged), one a second after a burst of 10.
  size_t max_tcp_clients = 512;
  std::function<void(const std::string&)> warn;
  size_t max_tcp_queries = 16;                        // in flight per TCP connection (RFC 7766 pipelining)
  size_t max_tcp_output = 256 * 1024;                 // unread replies before a TCP client is dropped
  std::chrono::milliseconds tcp_idle_timeout{10000};  // RFC 7766 suggests seconds
  AnswerCache::Options cache;
  uint16_t udp_payload = 4096;  // the largest UDP reply (clients' EDNS sizes are capped by it)
  // Events: a token bucket each for denials (with their identity lookups)
  // and for malformed packets, so a flood costs neither the loop nor the log.
  double events_per_second = 1000, event_burst = 2000;
  double malformed_per_second = 10, malformed_burst = 50;
  // Which families have a default route (common/routes.h); null: both.
  // Must outlive the server.
  const RouteSource* routes = nullptr;
  uint32_t sinkhole_ttl = 10;  // seconds: short, so a policy that allows the name soon takes over
};

struct ServerStats {
  EGD_DNS_STATS(EGD_COUNTER_FIELD, )
  uint64_t queries = 0;  // not exported: every message, valid or not
};

class Server {
 public:
  using EventSink = std::function<void(const Event&)>;

  // Binds UDP and TCP on 127.0.0.1:port and [::1]:port (IPv6 optional, as
  // for the proxy: a netns without ::1 gets IPv4 only). Questions go to
  // `upstream`, which must outlive the server.
  static Result<std::unique_ptr<Server>> start(Loop& loop, UpstreamClient& upstream, ClientIdentity& identity,
                                               EventSink sink,
                                               std::shared_ptr<const decide::ActivePolicy> policy,
                                               ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // A new policy; the cache is emptied (its answers were filtered by the
  // old one). Exchanges in flight finish under the new one.
  void set_policy(std::shared_ptr<const decide::ActivePolicy> p);
  // The A/AAAA addresses a client was given for `name` (canonical or not),
  // while the answer is cached; nullopt if none is.
  std::optional<std::vector<IpAddr>> cached_addresses(std::string_view name) const;
  // Told of the A/AAAA answers forwarded from an upstream for names an
  // [[allow]] host rule names (the only ones the proxy asks about), as
  // clients get them (filtered): the question's name and type, and the
  // answer's addresses (from the one parse the cache's entry is made of).
  using AnswerObserver = std::function<void(std::string_view qname, uint16_t qtype, const AddressAnswer& answer)>;
  void observe_answers(AnswerObserver o) { answer_observer_ = std::move(o); }
  const ServerStats& stats() const { return stats_; }
  const decide::DecisionCounts& decisions() const { return recorder_.decisions(); }
  // The TCP connection caps in force (they follow the policy).
  ShareCaps tcp_share_caps() const;

 private:
  struct Listener;
  struct TcpClient;
  struct Waiter;
  struct Pending;
  using Bucket = TokenBucket;

  Server(Loop& loop, UpstreamClient& upstream, ClientIdentity& identity, EventSink sink,
         std::shared_ptr<const decide::ActivePolicy> p, ServerOptions o);
  Status bind_all();
  void on_udp(Listener& l);
  void on_accept(Listener& l);
  void pause_accepting(int err);  // out of descriptors or memory: accept again in 100 ms
  void refuse_excess(Listener& l, const sockaddr_storage& peer, std::shared_ptr<const decide::SteeredFlow> who,
                     const ShareClient& client, ShareCap cap);
  void tcp_io(TcpClient& c, uint32_t events);
  void tcp_read(TcpClient& c);
  void tcp_frames(TcpClient& c);
  void tcp_send(TcpClient& c, std::vector<uint8_t> message);
  void tcp_flush(TcpClient& c);
  void tcp_update_interest(TcpClient& c);
  void tcp_arm_idle(TcpClient& c);
  void tcp_close(TcpClient& c);

  void query(Waiter& w, std::span<const uint8_t> wire, Loop::Clock::time_point now);
  void reply(const Waiter& w, std::vector<uint8_t> message);
  // UDP replies wait in udp_out_ while a batch is open (batching_ > 0) and go
  // out with one sendmmsg when it closes or tx_ is full.
  std::vector<uint8_t>& udp_slot(const Waiter& w);  // the next reply's buffer, emptied
  void udp_commit();                                 // queue what udp_slot's buffer holds
  void flush_udp();
  void hold_udp();  // replies wait for the end of this turn of the loop
  void answered(const std::string& key, UpstreamReply&& r);
  std::vector<uint8_t> sinkhole(const QueryInfo& q);
  void record(const Waiter& w, const QueryInfo* q, uint8_t verdict, uint16_t reason, uint32_t rule_id);
  std::optional<decide::SteeredFlow> who(const Waiter& w);
  FamilyDrop family_drop() const;  // under the policy and routes in force
  void explain_refusals();         // the EDE texts, for the policy in force

  Loop& loop_;
  ClientIdentity& identity_;
  decide::Recorder recorder_;  // decisions per verdict and reason, events
  std::shared_ptr<const decide::ActivePolicy> policy_;
  ServerOptions opt_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool accept_paused_ = false;
  UpstreamClient& upstream_;
  AnswerCache cache_;
  std::unordered_map<std::string, std::unique_ptr<Pending>> pending_;  // by cache key
  uint64_t next_tcp_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<TcpClient>> tcp_;
  ConnectionShares tcp_shares_;  // the open TCP connections per client
  ThrottledLog excess_log_{1, 10}, pause_log_{1, 10};
  std::vector<uint8_t> rx_;  // one TCP read
  struct UdpIn;
  struct UdpOut;
  std::unique_ptr<UdpIn> udp_in_;    // recvmmsg's datagrams and their waiters
  std::unique_ptr<UdpOut> udp_out_;  // replies waiting for sendmmsg
  int batching_ = 0;
  bool udp_held_ = false;  // hold_udp's flush is due
  std::string key_;              // the cache key of the query at hand
  uint64_t policy_generation_ = 0;  // +1 with every set_policy
  Bucket events_, malformed_;
  std::string ede_name_, ede_type_, ede_sinkhole_;  // EXTRA-TEXT of the refusals (explain_refusals)
  std::optional<IpAddr> sinkhole4_, sinkhole6_;
  ServerStats stats_;
  AnswerObserver answer_observer_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace egressd::dns
