// proxy.h: the transparent SNI/Host proxy the connect hooks steer web
// ports to. One epoll loop, no thread per connection: each accepted
// connection is a Session (session.h) that peeks at the first flight
// (ClientHello or HTTP request head), decides against the policy's host
// rules, checks the original destination against what the name resolves
// to, then dials it and relays bytes both ways.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/fair_share.h"
#include "common/ip_addr.h"
#include "common/loop.h"
#include "common/result.h"
#include "common/token_bucket.h"
#include "common/unique_fd.h"
#include "decide/active_policy.h"
#include "decide/recorder.h"
#include "decide/steered_flow.h"
#include "egressd_abi.h"
#include "events/event.h"
#include "policy/model.h"
#include "proxy/stats.h"

namespace egressd::proxy {

struct ResolveResult {
  std::vector<IpAddr> addrs;  // A and AAAA
  std::string error;          // empty if the upstream answered (addrs may still be empty)
};
using ResolveDone = std::function<void(const ResolveResult&)>;

// Injected: egressd's DNS client in the daemon, a table in tests.
class Resolver {
 public:
  virtual ~Resolver() = default;
  // `done` runs later from the loop, exactly once (never inside resolve()).
  virtual void resolve(const std::string& name, ResolveDone done) = 0;
  // A fresh answer already known, if any (for later requests on a kept-alive
  // connection, which are judged without waiting).
  virtual std::optional<ResolveResult> cached(const std::string& name) const = 0;
  // Addresses clients were given for `name` whose TTL ended at most `grace`
  // ago, or not yet (recent_answers.h): addresses that moved since.
  virtual std::vector<IpAddr> answered_within(const std::string& name, std::chrono::seconds grace) const {
    (void)name, (void)grace;
    return {};
  }
};

struct ProxyOptions {
  uint16_t port = 0;                                   // 0: any free port (the same for both families)
  std::chrono::milliseconds inspect_timeout{10000};    // accept -> decision
  std::chrono::milliseconds connect_timeout{10000};    // upstream connect, every address of the name included
  std::chrono::milliseconds dial_attempt_delay{1000};  // an address silent this long: the next one is dialed too
  std::chrono::milliseconds idle_timeout{600000};      // no byte either way while relaying
  // Connections held at once, by all clients (the daemon lowers it to fit
  // its file limit); each client's share is the policy's [proxy]
  // max_connections_per_process / _per_uid, else a quarter / a half of it
  // (common/fair_share.h).
  size_t max_sessions = 40000;
  // A connection over a share is refused (too-many-connections): an event,
  // rate-limited like the resolver's denials, and a log line through
  // `warn` (none: not logged), one a second after a burst of 10.
  double excess_events_per_second = 1000, excess_event_burst = 2000;
  std::function<void(const std::string&)> warn;
};

struct ProxyStats {
  EGD_PROXY_STATS(EGD_COUNTER_FIELD, )
  uint64_t head_bytes_parsed = 0;  // not exported: request-head bytes handed to the HTTP parser, re-parses included
};

class Session;
struct DialResult;

class Proxy {
 public:
  using EventSink = std::function<void(const Event&)>;

  // Binds 127.0.0.1:port and [::1]:port (IPv6 is optional: a netns without
  // ::1 gets IPv4 only, and steered IPv6 connects are refused there).
  static Result<std::unique_ptr<Proxy>> start(Loop& loop, decide::SteeredTable& orig, Resolver& resolver,
                                              EventSink sink, std::shared_ptr<const decide::ActivePolicy> policy,
                                              ProxyOptions options);
  ~Proxy();

  uint16_t port() const { return port_; }
  void set_policy(std::shared_ptr<const decide::ActivePolicy> p) { policy_ = std::move(p); }
  const ProxyStats& stats() const { return stats_; }
  const decide::DecisionCounts& decisions() const { return recorder_.decisions(); }
  // The connection caps in force (they follow the policy).
  ShareCaps share_caps() const;
  const ConnectionShares& shares() const { return shares_; }

 private:
  friend class Session;
  struct Listener : Loop::Watcher {
    Proxy* proxy = nullptr;
    UniqueFd fd;
    void on_io(uint32_t events) override;
  };
  Proxy(Loop& loop, decide::SteeredTable& orig, Resolver& resolver, EventSink sink,
        std::shared_ptr<const decide::ActivePolicy> p, ProxyOptions o);
  void accept_from(Listener& l);
  void pause_listeners(int err);  // out of descriptors or memory: accept again in 100 ms
  void refuse_excess(const decide::SteeredFlow& orig, const ShareClient& client, ShareCap cap);
  void finished(uint64_t id);  // a session is done; freed after the loop batch
  void record(const Session& s, unsigned verdict, unsigned reason, const std::string& l7, const std::string& host,
              const std::string& method, const std::string& path, uint32_t rule_id,
              const DialResult* dial = nullptr);

  Loop& loop_;
  decide::SteeredTable& orig_;
  Resolver& resolver_;
  decide::Recorder recorder_;  // decisions per verdict and reason, events
  std::shared_ptr<const decide::ActivePolicy> policy_;
  ProxyOptions opt_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool paused_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  ConnectionShares shares_;  // the live sessions per client
  TokenBucket excess_events_;
  ThrottledLog excess_log_{1, 10}, pause_log_{1, 10};
  ProxyStats stats_;
  std::vector<char> scratch_;  // one read buffer for every relay: idle sessions hold no buffer
  // Callbacks that may run after the proxy is gone (resolver answers,
  // deferred erases) hold a weak_ptr to this and do nothing once it expired.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  Loop::TimerId pause_timer_ = 0;
};

}  // namespace egressd::proxy
