// client_hello.h: a pure parser for the first flight of a TLS connection, so
// the transparent proxy can read the SNI without terminating TLS (the Envoy
// TLS inspector approach). No sockets, no state between calls: the proxy
// appends what it reads to one buffer and calls again until the status is
// not NeedMore. Bounded: it never asks for more than kMaxClientHelloBytes of
// stream, never reads outside the span, never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy {

// Bound on the stream bytes (record headers included) buffered before
// deciding: a ClientHello that does not end within this many bytes of the
// stream is TooLarge. Real ones are 0.2-2 KiB (post-quantum key shares ~1.8).
inline constexpr size_t kMaxClientHelloBytes = 16 * 1024;

// Extension code points the parser looks at.
inline constexpr uint16_t kExtServerName = 0x0000;
inline constexpr uint16_t kExtAlpn = 0x0010;
inline constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;

enum class HelloStatus {
  NeedMore,   // a prefix of a possible ClientHello: read more, call again
  Done,       // a complete, well-formed ClientHello: see info
  NotTls,     // the stream does not start like a TLS handshake record
  Malformed,  // a TLS handshake that breaks the protocol (see error)
  TooLarge,   // the ClientHello would not end within kMaxClientHelloBytes
};

const char* to_string(HelloStatus status);

struct ClientHelloInfo {
  std::string sni;  // lower-cased host_name, trailing dot stripped; IP literals canonical; empty if none
  bool has_sni = false;
  bool sni_is_ip = false;         // IP literal in SNI (RFC 6066 forbids; we flag it)
  bool has_ech = false;           // extension 0xfe0d present; sni is then the outer (public) name
  std::vector<std::string> alpn;  // protocol names in the client's order, raw bytes
  uint16_t legacy_version = 0;    // ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3)
  size_t bytes_consumed = 0;      // stream bytes up to the end of the record holding the hello's last byte

  friend bool operator==(const ClientHelloInfo&, const ClientHelloInfo&) = default;
};

struct HelloResult {
  HelloStatus status = HelloStatus::NeedMore;
  ClientHelloInfo info;  // meaningful when status == Done
  std::string error;     // a short sentence when status is NotTls, Malformed or TooLarge
};

// `data` is everything received so far on the connection. The handshake
// message is reassembled across TLS records (type 22, each 1..2^14 bytes) and
// across reads (NeedMore until it is complete).
//
// Verdicts are prefix-stable: once a prefix of a stream gets a verdict other
// than NeedMore, every longer prefix gets the same one (Done with the same
// info). A stream of kMaxClientHelloBytes or more never gets NeedMore.
//
// The record holding the hello's last byte must end with it (a TLS 1.3 client
// sends nothing else before the server answers, except records of other
// types, which are left unread after bytes_consumed).
//
// SSLv2-compatible ClientHellos (first byte 0x80) are NotTls: no client of
// this decade sends one, and they carry no SNI.
HelloResult parse_client_hello(std::span<const uint8_t> data);

// A host name as the proxy compares it against policy, shared by the SNI and
// HTTP Host parsers.
struct CanonicalHost {
  std::string name;    // lower case, no trailing dot; IP literals in inet_ntop form
  bool is_ip = false;  // IPv4 (any form getaddrinfo takes as numeric, e.g. "127.1") or IPv6
};

// Validates a host name: DNS labels of [a-z0-9_-] (1..63 bytes each, one
// trailing dot allowed, at most 255 bytes in all), or an IPv4 address, or (if
// `allow_ipv6`) an IPv6 address without brackets or zone. nullopt if invalid.
std::optional<CanonicalHost> canonical_host(std::string_view raw, bool allow_ipv6);

}  // namespace egressd::proxy
