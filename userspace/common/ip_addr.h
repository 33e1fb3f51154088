// ip_addr.h: an IPv4 or IPv6 address as a value (resolver answers, original
// destinations, policy checks). IPv4 lives in the first 4 bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace egressd {

struct IpAddr {
  int family = 0;                   // AF_INET or AF_INET6; 0 = none
  std::array<uint8_t, 16> bytes{};  // network order

  static IpAddr v4(const void* four) {
    IpAddr a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), four, 4);
    return a;
  }
  static IpAddr v6(const void* sixteen) {
    IpAddr a;
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), sixteen, 16);
    return a;
  }
  static std::optional<IpAddr> parse(std::string_view text) {
    std::string s(text);
    uint8_t buf[16];
    if (inet_pton(AF_INET, s.c_str(), buf) == 1) return v4(buf);
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return v6(buf);
    return std::nullopt;
  }
  // ::ffff:a.b.c.d is a.b.c.d: the host a dual-stack socket reaches.
  IpAddr unmapped() const {
    static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && std::memcmp(bytes.data(), kPrefix, 12) == 0) return v4(bytes.data() + 12);
    return *this;
  }
  std::string to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family != AF_INET && family != AF_INET6) return "";
    inet_ntop(family, bytes.data(), buf, sizeof(buf));
    return buf;
  }
  // Socket address with `port` (host order).
  socklen_t to_sockaddr(uint16_t port, sockaddr_storage* ss) const {
    *ss = {};
    if (family == AF_INET) {
      auto* sa = reinterpret_cast<sockaddr_in*>(ss);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(port);
      std::memcpy(&sa->sin_addr, bytes.data(), 4);
      return sizeof(*sa);
    }
    auto* sa = reinterpret_cast<sockaddr_in6*>(ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    std::memcpy(&sa->sin6_addr, bytes.data(), 16);
    return sizeof(*sa);
  }
  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    if (a.family != b.family) return false;
    return std::memcmp(a.bytes.data(), b.bytes.data(), a.family == AF_INET ? 4 : 16) == 0;
  }
};

}  // namespace egressd

template <>
struct std::hash<egressd::IpAddr> {
  size_t operator()(const egressd::IpAddr& a) const noexcept {
    uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(a.family);
    size_t n = a.family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; ++i) h = (h ^ a.bytes[i]) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};
