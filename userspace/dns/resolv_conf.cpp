#include "dns/resolv_conf.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/ip_addr.h"
#include "common/unique_fd.h"

namespace egressd::dns {
namespace {

constexpr size_t kMaxResolvConfBytes = 64 * 1024;
constexpr size_t kMaxNameservers = 3;  // glibc's MAXNS

}  // namespace

std::vector<sockaddr_storage> parse_resolv_conf(std::string_view text) {
  std::vector<sockaddr_storage> out;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty() && out.size() < kMaxNameservers) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto next_word = [&]() {
      while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
      size_t n = 0;
      while (n < line.size() && !is_space(line[n])) ++n;
      std::string_view w = line.substr(0, n);
      line.remove_prefix(n);
      return w;
    };
    std::string_view key = next_word();
    if (key != "nameserver") continue;  // also skips '#' and ';' comments
    std::string addr(next_word());
    uint32_t scope = 0;
    if (size_t pct = addr.find('%'); pct != std::string::npos) {
      std::string_view digits = std::string_view(addr).substr(pct + 1);
      if (digits.empty() || digits.size() > 9) continue;  // interface names need I/O: not here
      bool numeric = true;
      for (char c : digits) {
        numeric = numeric && c >= '0' && c <= '9';
        scope = scope * 10 + static_cast<uint32_t>(c - '0');
      }
      if (!numeric) continue;
      addr.resize(pct);
    }
    auto ip = IpAddr::parse(addr);
    if (!ip || (scope && ip->family != AF_INET6)) continue;
    sockaddr_storage ss;
    ip->to_sockaddr(53, &ss);
    if (ip->family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_scope_id = scope;
    out.push_back(ss);
  }
  return out;
}

Result<std::vector<sockaddr_storage>> read_resolv_conf(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error("open " + path);
  std::string text(kMaxResolvConfBytes, '\0');
  size_t have = 0;
  while (have < text.size()) {  // bounded by the size cap
    ssize_t n = read(fd.get(), text.data() + have, text.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read " + path);
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  text.resize(have);
  auto servers = parse_resolv_conf(text);
  if (servers.empty()) return logic_error(path + " names no nameserver");
  return servers;
}

std::string to_string(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
    return IpAddr::v4(&sa->sin_addr).to_string() + ":" + std::to_string(ntohs(sa->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    return "[" + IpAddr::v6(&sa->sin6_addr).to_string() + "]:" + std::to_string(ntohs(sa->sin6_port));
  }
  return "?";
}

}  // namespace egressd::dns
