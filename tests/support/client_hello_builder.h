// client_hello_builder.h: makes TLS ClientHello bytes for tests: SNI, ALPN,
// ECH (0xfe0d), TLS 1.2 / 1.3 shapes, padding, raw extensions (duplicates,
// odd server_name lists), and record splitting. Header-only.
//
//   auto bytes = ClientHelloBuilder().sni("api.example.com").alpn({"h2"}).record_size(100).bytes();
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::testing {

using Bytes = std::vector<uint8_t>;

inline void put_u8(Bytes& out, unsigned v) { out.push_back(static_cast<uint8_t>(v)); }
inline void put_u16(Bytes& out, unsigned v) {
  put_u8(out, v >> 8);
  put_u8(out, v);
}
inline void put_u24(Bytes& out, unsigned v) {
  put_u8(out, v >> 16);
  put_u16(out, v & 0xffff);
}
inline void put_bytes(Bytes& out, const Bytes& b) { out.insert(out.end(), b.begin(), b.end()); }
inline void put_text(Bytes& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

inline Bytes u8_prefixed(const Bytes& b) {
  Bytes out;
  put_u8(out, static_cast<unsigned>(b.size()));
  put_bytes(out, b);
  return out;
}
inline Bytes u16_prefixed(const Bytes& b) {
  Bytes out;
  put_u16(out, static_cast<unsigned>(b.size()));
  put_bytes(out, b);
  return out;
}

inline Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Handshake message -> TLS records (content type 22) of the given fragment
// sizes in turn; the last size repeats until the message is used up.
inline Bytes to_records(const Bytes& message, std::vector<size_t> sizes, unsigned record_version = 0x0301) {
  Bytes out;
  size_t pos = 0;
  for (size_t i = 0; pos < message.size(); ++i) {
    size_t n = std::min(sizes[std::min(i, sizes.size() - 1)], message.size() - pos);
    put_u8(out, 22);
    put_u16(out, record_version);
    put_u16(out, static_cast<unsigned>(n));
    out.insert(out.end(), message.begin() + static_cast<std::ptrdiff_t>(pos),
               message.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return out;
}

// A server_name extension body (RFC 6066 3) from raw (name_type, name) entries.
inline Bytes server_name_body(const std::vector<std::pair<uint8_t, std::string>>& entries) {
  Bytes list;
  for (const auto& [type, name] : entries) {
    put_u8(list, type);
    put_bytes(list, u16_prefixed(bytes_of(name)));
  }
  return u16_prefixed(list);
}

// An ALPN extension body (RFC 7301 3.1).
inline Bytes alpn_body(const std::vector<std::string>& protocols) {
  Bytes list;
  for (const auto& p : protocols) put_bytes(list, u8_prefixed(bytes_of(p)));
  return u16_prefixed(list);
}

class ClientHelloBuilder {
 public:
  static constexpr uint16_t kServerName = 0x0000;
  static constexpr uint16_t kSupportedGroups = 0x000a;
  static constexpr uint16_t kSignatureAlgorithms = 0x000d;
  static constexpr uint16_t kAlpn = 0x0010;
  static constexpr uint16_t kPadding = 0x0015;
  static constexpr uint16_t kSupportedVersions = 0x002b;
  static constexpr uint16_t kKeyShare = 0x0033;
  static constexpr uint16_t kEch = 0xfe0d;

  ClientHelloBuilder& sni(const std::string& host) { return server_names({{0, host}}); }
  // Raw server_name entries: several host_names, other name types, empty list.
  ClientHelloBuilder& server_names(const std::vector<std::pair<uint8_t, std::string>>& entries) {
    return set(kServerName, server_name_body(entries));
  }
  ClientHelloBuilder& alpn(const std::vector<std::string>& protocols) { return set(kAlpn, alpn_body(protocols)); }
  // An outer ECH extension (draft-ietf-tls-esni, type 0 "outer"): kdf, aead,
  // config id, enc and payload, all made-up bytes.
  ClientHelloBuilder& ech(size_t payload_bytes = 200) {
    Bytes body;
    put_u8(body, 0);                                            // ECHClientHelloType outer
    put_u16(body, 0x0001);                                      // HKDF-SHA256
    put_u16(body, 0x0001);                                      // AES-128-GCM
    put_u8(body, 0x2a);                                         // config_id
    put_bytes(body, u16_prefixed(Bytes(32, 0xee)));             // enc
    put_bytes(body, u16_prefixed(Bytes(payload_bytes, 0xcc)));  // payload
    return set(kEch, body);
  }
  // TLS 1.2 shape: no supported_versions and no key_share.
  ClientHelloBuilder& tls12() {
    tls13_ = false;
    return *this;
  }
  ClientHelloBuilder& legacy_version(uint16_t v) {
    legacy_version_ = v;
    return *this;
  }
  ClientHelloBuilder& record_version(uint16_t v) {
    record_version_ = v;
    return *this;
  }
  ClientHelloBuilder& session_id_bytes(size_t n) {
    session_id_ = n;
    return *this;
  }
  // A padding extension (RFC 7685) with n zero bytes.
  ClientHelloBuilder& padding(size_t n) { return set(kPadding, Bytes(n, 0)); }
  // Appends an extension as is, even if one of the type exists.
  ClientHelloBuilder& extension(uint16_t type, Bytes body) {
    extra_.emplace_back(type, std::move(body));
    return *this;
  }
  // No extensions block at all (a pre-RFC 3546 hello).
  ClientHelloBuilder& no_extensions() {
    no_extensions_ = true;
    return *this;
  }
  // Split the message into records of at most n bytes (default 2^14).
  ClientHelloBuilder& record_size(size_t n) { return record_sizes({n}); }
  // Fragment sizes in turn; the last one repeats.
  ClientHelloBuilder& record_sizes(std::vector<size_t> sizes) {
    record_sizes_ = std::move(sizes);
    return *this;
  }

  Bytes extensions() const {
    Bytes out;
    for (const auto& [type, body] : ordered()) {
      put_u16(out, type);
      put_bytes(out, u16_prefixed(body));
    }
    return out;
  }

  // The ClientHello body: what follows the 4-byte handshake header.
  Bytes body() const {
    Bytes out;
    put_u16(out, legacy_version_);
    for (int i = 0; i < 32; ++i) put_u8(out, 0x40 + i);  // random
    put_bytes(out, u8_prefixed(Bytes(session_id_, 0x5a)));
    put_bytes(out, u16_prefixed({0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f}));  // cipher suites
    put_bytes(out, u8_prefixed({0x00}));                                 // compression: null
    if (!no_extensions_) put_bytes(out, u16_prefixed(extensions()));
    return out;
  }

  // Handshake header (type 1, u24 length) + body.
  Bytes message() const {
    Bytes b = body();
    Bytes out;
    put_u8(out, 1);
    put_u24(out, static_cast<unsigned>(b.size()));
    put_bytes(out, b);
    return out;
  }

  // The stream: the message in records.
  Bytes bytes() const { return to_records(message(), record_sizes_, record_version_); }

 private:
  using Ext = std::pair<uint16_t, Bytes>;

  ClientHelloBuilder& set(uint16_t type, Bytes body) {
    for (auto& e : named_)
      if (e.first == type) {
        e.second = std::move(body);
        return *this;
      }
    named_.emplace_back(type, std::move(body));
    return *this;
  }

  // server_name and ALPN first (like browsers), then the TLS 1.3 basics,
  // then ECH, raw extras, and padding last (RFC 7685 likes it last).
  std::vector<Ext> ordered() const {
    std::vector<Ext> out;
    auto take = [&](uint16_t type) {
      for (const auto& e : named_)
        if (e.first == type) out.push_back(e);
    };
    take(kServerName);
    take(kAlpn);
    out.emplace_back(kSupportedGroups, u16_prefixed({0x00, 0x1d, 0x00, 0x17}));
    out.emplace_back(kSignatureAlgorithms, u16_prefixed({0x04, 0x03, 0x08, 0x04}));
    if (tls13_) {
      out.emplace_back(kSupportedVersions, u8_prefixed({0x03, 0x04, 0x03, 0x03}));
      Bytes share;
      put_u16(share, 0x001d);  // x25519
      put_bytes(share, u16_prefixed(Bytes(32, 0x77)));
      out.emplace_back(kKeyShare, u16_prefixed(share));
    }
    take(kEch);
    for (const auto& e : extra_) out.push_back(e);
    take(kPadding);
    return out;
  }

  std::vector<Ext> named_;
  std::vector<Ext> extra_;
  bool tls13_ = true;
  bool no_extensions_ = false;
  uint16_t legacy_version_ = 0x0303;
  uint16_t record_version_ = 0x0301;
  size_t session_id_ = 32;
  std::vector<size_t> record_sizes_{16384};
};

}  // namespace egressd::testing
