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

// For a client that opened with the HTTP/2 preface (prior knowledge): the
// server preface (an empty SETTINGS frame) and GOAWAY with last stream 0
// and HTTP_1_1_REQUIRED (RFC 9113 7), the reason as its debug data: the
// client's HTTP/2 stack reports an orderly refusal instead of garbage.
std::string http2_goaway_http11_required(std::string_view reason, std::string_view detail);

}  // namespace egressd::proxy
