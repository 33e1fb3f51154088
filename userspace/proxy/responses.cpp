#include "proxy/responses.h"

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

}  // namespace egressd::proxy
