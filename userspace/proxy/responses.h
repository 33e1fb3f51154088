// responses.h: what a refused client gets, as bytes. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace egressd::proxy {

// A fatal TLS alert record, access_denied (49): the client's TLS stack
// reports "access denied" instead of a bare reset.
std::string tls_access_denied_alert();

// "403 Forbidden" that names the host, why, and where the rule lives; the
// reason is also in X-Egressd-Reason for scripts. Connection: close.
std::string http_forbidden(std::string_view host, uint16_t port, std::string_view reason, std::string_view detail,
                           std::string_view policy_source);

}  // namespace egressd::proxy
