// connect_bench: times socket()+connect()+accept()+close() on loopback, the
// per-connection path that egressd's cgroup/connect4|6 hooks sit on.
// Driven by scripts/bench-connect.sh; not a test (not registered with CTest).
//
//   connect_bench --family 4|6 --iterations N --warmup W [--max-seconds S]
//                 [--mode connect|denied] [--target ADDR] [--port P] [--fenced]
//
// connect (default): a listener on ADDR:P (default 127.0.0.1 / ::1, port 0 =
//   ephemeral); each iteration does socket, blocking connect, accept, then
//   closes the client with SO_LINGER 0 (an RST: no TIME_WAIT build-up) and
//   the accepted socket.
// denied: each iteration does socket, connect to ADDR:P (default 10.1.2.3:80
//   or 2001:db8:dead::3:80), expects EPERM from the cgroup hook, closes.
//
// Any ADDR that is not 127.0.0.1 / ::1, and the denied mode, need --fenced:
// it asserts the process is fenced by egressd and the program then checks it
// runs in a network namespace whose only interface is lo, so an unfenced
// connect finds no route (ENETUNREACH) and nothing can leave the host.
//
// Prints one JSON line:
//   {"family":4,"mode":"connect","target":"127.0.0.1","iterations":N,
//    "median_ns":..,"p99_ns":..,"mean_ns":..,"min_ns":..,"max_ns":..,"seconds":..}
// Exit codes: 0 ok, 2 usage, 3 safety check failed, 1 any other failure.
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  int family = 4;
  long iterations = 10000;
  long warmup = 1000;
  double max_seconds = 60.0;
  std::string mode = "connect";
  std::string target;  // empty: mode default
  int port = -1;       // -1: mode default
  bool fenced = false;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "connect_bench: %s\n"
               "usage: connect_bench --family 4|6 --iterations N --warmup W [--max-seconds S]\n"
               "                     [--mode connect|denied] [--target ADDR] [--port P] [--fenced]\n",
               msg);
  std::exit(2);
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "connect_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

long parse_long(const char* s, const char* name, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno || !end || *end || v < lo || v > hi) usage((std::string("bad value for ") + name).c_str());
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--family") {
      o.family = static_cast<int>(parse_long(value(), "--family", 4, 6));
      if (o.family != 4 && o.family != 6) usage("--family is 4 or 6");
    } else if (a == "--iterations") {
      o.iterations = parse_long(value(), "--iterations", 1, 100000000);
    } else if (a == "--warmup") {
      o.warmup = parse_long(value(), "--warmup", 0, 100000000);
    } else if (a == "--max-seconds") {
      o.max_seconds = std::strtod(value(), nullptr);
      if (!(o.max_seconds > 0 && o.max_seconds <= 3600)) usage("--max-seconds is in (0, 3600]");
    } else if (a == "--mode") {
      o.mode = value();
      if (o.mode != "connect" && o.mode != "denied") usage("--mode is connect or denied");
    } else if (a == "--target") {
      o.target = value();
    } else if (a == "--port") {
      o.port = static_cast<int>(parse_long(value(), "--port", 0, 65535));
    } else if (a == "--fenced") {
      o.fenced = true;
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (o.target.empty()) {
    if (o.mode == "connect")
      o.target = o.family == 4 ? "127.0.0.1" : "::1";
    else
      o.target = o.family == 4 ? "10.1.2.3" : "2001:db8:dead::3";
  }
  if (o.port < 0) o.port = o.mode == "connect" ? 0 : 80;
  if (o.mode == "denied" && o.port == 0) usage("--mode denied needs a non-zero --port");
  return o;
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int domain = 0;
};

Addr make_addr(const Options& o) {
  Addr a;
  if (o.family == 4) {
    auto* s = reinterpret_cast<sockaddr_in*>(&a.ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(static_cast<uint16_t>(o.port));
    if (inet_pton(AF_INET, o.target.c_str(), &s->sin_addr) != 1) usage("--target is not an IPv4 address");
    a.len = sizeof(sockaddr_in);
    a.domain = AF_INET;
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&a.ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(static_cast<uint16_t>(o.port));
    if (inet_pton(AF_INET6, o.target.c_str(), &s->sin6_addr) != 1) usage("--target is not an IPv6 address");
    a.len = sizeof(sockaddr_in6);
    a.domain = AF_INET6;
  }
  return a;
}

bool is_plain_loopback(const Addr& a) {
  if (a.domain == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
  return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr);
}

// The only guard this program needs before it connects anywhere but
// 127.0.0.1/::1: the network namespace has exactly one interface, lo.
void require_lo_only_netns() {
  struct if_nameindex* ifs = if_nameindex();
  if (!ifs) die("if_nameindex");
  int n = 0;
  bool only_lo = true;
  for (struct if_nameindex* i = ifs; i->if_index != 0; ++i, ++n)
    if (std::strcmp(i->if_name, "lo") != 0) {
      std::fprintf(stderr, "connect_bench: refusing: interface %s present (need a netns with only lo)\n", i->if_name);
      only_lo = false;
    }
  if_freenameindex(ifs);
  if (!only_lo || n != 1) {
    if (only_lo) std::fprintf(stderr, "connect_bench: refusing: expected exactly one interface (lo), found %d\n", n);
    std::exit(3);
  }
}

int new_socket(int domain) {
  int fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  return fd;
}

void close_with_rst(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

// One iteration of the connect mode. Returns false on a connect error (errno set).
bool one_connect(const Addr& dst, int listener) {
  int c = new_socket(dst.domain);
  if (connect(c, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) {
    int e = errno;
    close(c);
    errno = e;
    return false;
  }
  int s = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) die("accept");
  close_with_rst(c);
  close(s);
  return true;
}

// One iteration of the denied mode: the connect must fail with EPERM.
void one_denied(const Addr& dst) {
  int c = new_socket(dst.domain);
  int rc = connect(c, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len);
  int e = errno;
  close(c);
  if (rc == 0) {
    std::fprintf(stderr, "connect_bench: denied mode: connect to the target succeeded; expected EPERM\n");
    std::exit(1);
  }
  if (e != EPERM) {
    errno = e;
    std::fprintf(stderr, "connect_bench: denied mode: expected EPERM (fenced by egressd), got %s%s\n",
                 std::strerror(e), e == ENETUNREACH ? " (is this process in the fenced cgroup?)" : "");
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  Addr dst = make_addr(o);

  if (o.mode == "denied" || !is_plain_loopback(dst)) {
    if (!o.fenced) {
      std::fprintf(stderr,
                   "connect_bench: refusing: --mode denied and targets other than 127.0.0.1/::1 need --fenced "
                   "(run only inside the bench netns, in the fenced cgroup)\n");
      return 3;
    }
    require_lo_only_netns();
  }

  int listener = -1;
  if (o.mode == "connect") {
    listener = new_socket(dst.domain);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (dst.domain == AF_INET6) setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(listener, reinterpret_cast<const sockaddr*>(&dst.ss), dst.len) != 0) die("bind listener");
    if (listen(listener, 128) != 0) die("listen");
    // Connect to the port the kernel picked.
    if (getsockname(listener, reinterpret_cast<sockaddr*>(&dst.ss), &dst.len) != 0) die("getsockname");
  }

  const int64_t deadline = now_ns() + static_cast<int64_t>(o.max_seconds * 1e9);
  auto run_one = [&]() {
    if (o.mode == "denied") {
      one_denied(dst);
    } else if (!one_connect(dst, listener)) {
      std::fprintf(stderr, "connect_bench: connect to %s: %s%s\n", o.target.c_str(), std::strerror(errno),
                   errno == EPERM ? " (denied by the cgroup's egress policy)" : "");
      std::exit(1);
    }
  };

  for (long i = 0; i < o.warmup && now_ns() < deadline; ++i) run_one();

  std::vector<int64_t> samples;
  samples.reserve(static_cast<size_t>(o.iterations));
  const int64_t start = now_ns();
  for (long i = 0; i < o.iterations; ++i) {
    int64_t t0 = now_ns();
    run_one();
    int64_t t1 = now_ns();
    samples.push_back(t1 - t0);
    if (t1 >= deadline) break;
  }
  const int64_t elapsed = now_ns() - start;
  if (listener >= 0) close(listener);

  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  if (n == 0) {
    std::fprintf(stderr, "connect_bench: no samples (warm-up used up --max-seconds)\n");
    return 1;
  }
  long double sum = 0;
  for (int64_t s : samples) sum += s;
  auto pct = [&](double p) { return samples[std::min(n - 1, static_cast<size_t>(p * static_cast<double>(n - 1) + 0.5))]; };
  std::printf(
      "{\"family\":%d,\"mode\":\"%s\",\"target\":\"%s\",\"iterations\":%zu,\"median_ns\":%lld,\"p99_ns\":%lld,"
      "\"mean_ns\":%.0Lf,\"min_ns\":%lld,\"max_ns\":%lld,\"seconds\":%.3f}\n",
      o.family, o.mode.c_str(), o.target.c_str(), n, static_cast<long long>(pct(0.5)),
      static_cast<long long>(pct(0.99)), sum / static_cast<long double>(n), static_cast<long long>(samples.front()),
      static_cast<long long>(samples.back()), static_cast<double>(elapsed) / 1e9);
  if (n < static_cast<size_t>(o.iterations))
    std::fprintf(stderr, "connect_bench: stopped after %zu of %ld iterations (--max-seconds %.1f)\n", n,
                 o.iterations, o.max_seconds);
  return 0;
}
