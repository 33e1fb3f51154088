#include "proxy/responses.h"

#include <algorithm>

namespace egressd::proxy {

std::string tls_access_denied_alert() {
  // ContentType alert(21), legacy_version TLS 1.2, length 2, fatal(2), access_denied(49).
  return std::string("\x15\x03\x03\x00\x02\x02\x31", 7);
}

std::string http_forbidden(std::string_view host, uint16_t port, std::string_view reason, std::string_view detail,
                           std::string_view policy_source) {
  std::string body = "egressd: request to " + std::string(host.empty() ? "(no host)" : host) + ":" +
                     std::to_string(port) + " denied (" + std::string(reason) + ")";
  if (!detail.empty()) body += ": " + std::string(detail);
  body += "\npolicy: " + std::string(policy_source.empty() ? "built-in default" : policy_source) + "\n";
  std::string r = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\nConnection: close\r\nX-Egressd-Reason: " + std::string(reason) +
                  "\r\n\r\n";
  return r + body;
}

std::string http2_goaway_http11_required(std::string_view reason, std::string_view detail) {
  constexpr uint8_t kSettings = 0x4, kGoaway = 0x7;
  constexpr uint32_t kHttp11Required = 0xd;
  auto frame = [](uint8_t type, std::string_view payload) {
    size_t n = payload.size();  // < 2^14, the default SETTINGS_MAX_FRAME_SIZE
    std::string f{static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n), static_cast<char>(type)};
    f.append(5, '\0');  // flags, stream 0
    return f.append(payload);
  };
  std::string debug = "egressd: " + std::string(reason) + ": " + std::string(detail);
  debug.resize(std::min<size_t>(debug.size(), 1024));
  std::string goaway(4, '\0');  // last stream id 0: nothing was processed
  for (int shift = 24; shift >= 0; shift -= 8) goaway += static_cast<char>(kHttp11Required >> shift);
  return frame(kSettings, "") + frame(kGoaway, goaway + debug);
}

}  // namespace egressd::proxy
