#include "proxy/client_hello.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdio>
#include <cstring>

namespace egressd::proxy {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kHandshakeHeaderBytes = 4;
constexpr size_t kMaxRecordBytes = 16384;  // TLSPlaintext.length <= 2^14 (RFC 8446 5.1)
constexpr uint8_t kNameTypeHostName = 0;

// Bounds-checked big-endian reads over a span. Every read either succeeds
// whole or fails leaving the position unchanged; nothing reads past the end.
class Reader {
 public:
  Reader() = default;
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }

  bool u8(uint8_t& out) {
    if (remaining() < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool u16(uint16_t& out) {
    if (remaining() < 2) return false;
    out = static_cast<uint16_t>(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u24(uint32_t& out) {
    if (remaining() < 3) return false;
    out = static_cast<uint32_t>(data_[pos_] << 16 | data_[pos_ + 1] << 8 | data_[pos_ + 2]);
    pos_ += 3;
    return true;
  }
  bool bytes(size_t n, std::span<const uint8_t>& out) {
    if (remaining() < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    std::span<const uint8_t> ignored;
    return bytes(n, ignored);
  }
  // Everything left, consumed.
  std::string_view rest_as_text() {
    std::span<const uint8_t> rest = data_.subspan(pos_);
    pos_ = data_.size();
    return {reinterpret_cast<const char*>(rest.data()), rest.size()};
  }
  // A vector with an 8- or 16-bit length prefix, as its own Reader.
  bool vec8(Reader& out) {
    uint8_t n = 0;
    std::span<const uint8_t> body;
    size_t start = pos_;
    if (!u8(n) || !bytes(n, body)) return rewind(start);
    out = Reader(body);
    return true;
  }
  bool vec16(Reader& out) {
    uint16_t n = 0;
    std::span<const uint8_t> body;
    size_t start = pos_;
    if (!u16(n) || !bytes(n, body)) return rewind(start);
    out = Reader(body);
    return true;
  }

 private:
  bool rewind(size_t pos) {
    pos_ = pos;
    return false;
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

std::string hex16(unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%04x", v & 0xffff);
  return buf;
}

HelloResult fail(HelloStatus status, std::string error) { return HelloResult{status, {}, std::move(error)}; }

// ---- Record layer: gather the handshake message out of its records. ----

struct Assembly {
  HelloStatus status = HelloStatus::NeedMore;
  std::string error;
  size_t message_bytes = 0;  // handshake header + body, gathered in the buffer (Done only)
  size_t stream_end = 0;     // stream offset just past the last record (Done only)
};

Assembly assembly_fail(HelloStatus status, std::string error) { return Assembly{status, std::move(error), 0, 0}; }

// Walks records from the start of the stream, copying their fragments into
// `buf` (kMaxClientHelloBytes: everything gathered lies inside that much
// stream). Each check runs at a fixed point of the stream and sees only bytes
// before it, so a verdict on a prefix holds for every longer prefix.
Assembly assemble(std::span<const uint8_t> data, std::span<uint8_t> buf) {
  size_t pos = 0;   // stream offset of the current record header
  size_t have = 0;  // handshake bytes gathered so far
  size_t need = 0;  // 4 + handshake length, once the handshake header is in; 0 before
  for (bool first = true;; first = false) {
    // A record starting here would end past the bound.
    if (pos + kRecordHeaderBytes >= kMaxClientHelloBytes)
      return assembly_fail(HelloStatus::TooLarge, "ClientHello does not end within the first " +
                                                      std::to_string(kMaxClientHelloBytes) + " bytes");
    size_t header_avail = std::min(kRecordHeaderBytes, data.size() - pos);
    // Decide "not TLS" on the first byte or two, so HTTP or SSH bytes are told
    // apart at once; later records get Malformed (interleaved content).
    if (header_avail >= 1 && data[pos] != kContentHandshake) {
      if (first) return assembly_fail(HelloStatus::NotTls, "first byte is not a TLS handshake record");
      return assembly_fail(HelloStatus::Malformed,
                           "record of content type " + std::to_string(data[pos]) + " before the ClientHello ended");
    }
    if (header_avail >= 2 && data[pos + 1] != 3) {
      if (first) return assembly_fail(HelloStatus::NotTls, "record version major is not 3");
      return assembly_fail(HelloStatus::Malformed, "record version major is not 3");
    }
    if (header_avail < kRecordHeaderBytes) return {};
    size_t len = static_cast<size_t>(data[pos + 3]) << 8 | data[pos + 4];
    // RFC 8446 5.1: no zero-length handshake fragments, none above 2^14.
    if (len == 0) return assembly_fail(HelloStatus::Malformed, "empty handshake record");
    if (len > kMaxRecordBytes) return assembly_fail(HelloStatus::Malformed, "record longer than 2^14 bytes");
    if (need != 0 && len > need - have)
      return assembly_fail(HelloStatus::Malformed, "record continues past the end of the ClientHello");
    size_t body = pos + kRecordHeaderBytes;
    size_t record_end = body + len;
    if (record_end > kMaxClientHelloBytes)
      return assembly_fail(HelloStatus::TooLarge, "ClientHello does not end within the first " +
                                                      std::to_string(kMaxClientHelloBytes) + " bytes");
    size_t got = std::min(len, data.size() - body);
    std::memcpy(buf.data() + have, data.data() + body, got);  // have + got <= record_end - 5
    size_t before = have;
    have += got;
    if (need == 0 && before < kHandshakeHeaderBytes && have >= kHandshakeHeaderBytes) {
      // The handshake header just completed, at stream offset header_end.
      if (buf[0] != kHandshakeClientHello)
        return assembly_fail(HelloStatus::Malformed,
                             "handshake message type " + std::to_string(buf[0]) + " is not ClientHello");
      size_t msg_len = static_cast<size_t>(buf[1]) << 16 | static_cast<size_t>(buf[2]) << 8 | buf[3];
      size_t header_end = body + (kHandshakeHeaderBytes - before);
      if (header_end + msg_len > kMaxClientHelloBytes)
        return assembly_fail(HelloStatus::TooLarge, "ClientHello of " + std::to_string(msg_len) +
                                                        " bytes does not end within the first " +
                                                        std::to_string(kMaxClientHelloBytes) + " bytes");
      need = kHandshakeHeaderBytes + msg_len;
      if (before + len > need)
        return assembly_fail(HelloStatus::Malformed, "record continues past the end of the ClientHello");
    }
    if (got < len) return {};  // the record is still arriving
    pos = record_end;
    if (need != 0 && have == need) return Assembly{HelloStatus::Done, {}, need, pos};
  }
}

// ---- Handshake layer: the ClientHello body (RFC 8446 4.1.2). ----

bool parse_server_name(Reader ext, ClientHelloInfo& info, std::string& error) {
  Reader list;
  if (!ext.vec16(list) || !ext.empty()) {
    error = "server_name extension: bad list length";
    return false;
  }
  if (list.empty()) {
    error = "server_name extension: empty list";
    return false;
  }
  while (!list.empty()) {
    uint8_t type = 0;
    Reader name;
    if (!list.u8(type) || !list.vec16(name)) {
      error = "server_name extension: truncated entry";
      return false;
    }
    // OpenSSL and BoringSSL accept host_name only; a type they would reject
    // is one the origin and we could read differently.
    if (type != kNameTypeHostName) {
      error = "server_name extension: unknown name type " + std::to_string(type);
      return false;
    }
    if (info.has_sni) {
      error = "server_name extension: more than one host_name";
      return false;
    }
    auto host = canonical_host(name.rest_as_text(), /*allow_ipv6=*/true);
    if (!host) {
      error = "server_name extension: invalid host_name";
      return false;
    }
    info.sni = std::move(host->name);
    info.sni_is_ip = host->is_ip;
    info.has_sni = true;
  }
  return true;
}

bool parse_alpn(Reader ext, ClientHelloInfo& info, std::string& error) {
  Reader list;
  if (!ext.vec16(list) || !ext.empty() || list.empty()) {
    error = "ALPN extension: bad list length";
    return false;
  }
  while (!list.empty()) {
    Reader name;
    // RFC 7301 3.1: empty protocol names MUST NOT be included.
    if (!list.vec8(name) || name.empty()) {
      error = "ALPN extension: bad protocol name";
      return false;
    }
    info.alpn.emplace_back(name.rest_as_text());
  }
  return true;
}

bool parse_extensions(Reader& hello, ClientHelloInfo& info, std::string& error) {
  // A hello from before RFC 3546 may end after compression_methods.
  if (hello.empty()) return true;
  Reader exts;
  if (!hello.vec16(exts) || !hello.empty()) {
    error = "extensions length does not match the ClientHello length";
    return false;
  }
  std::bitset<65536> seen;  // 8 KiB on the stack: duplicate check in O(1)
  while (!exts.empty()) {
    uint16_t type = 0;
    Reader ext;
    if (!exts.u16(type) || !exts.vec16(ext)) {
      error = "truncated extension";
      return false;
    }
    // RFC 8446 4.2: no two extensions of one type. Two server_names could be
    // read one way by us and another by the origin.
    if (seen.test(type)) {
      error = "duplicate extension " + hex16(type);
      return false;
    }
    seen.set(type);
    if (type == kExtServerName && !parse_server_name(ext, info, error)) return false;
    if (type == kExtAlpn && !parse_alpn(ext, info, error)) return false;
    if (type == kExtEncryptedClientHello) info.has_ech = true;
  }
  return true;
}

bool parse_hello_body(Reader hello, ClientHelloInfo& info, std::string& error) {
  uint8_t session_id_len = 0;
  uint16_t suites_len = 0;
  uint8_t compression_len = 0;
  if (!hello.u16(info.legacy_version)) {
    error = "truncated legacy_version";
    return false;
  }
  if (info.legacy_version >> 8 != 3) {
    error = "legacy_version " + hex16(info.legacy_version) + " is not TLS";
    return false;
  }
  if (!hello.skip(32)) {
    error = "truncated random";
    return false;
  }
  if (!hello.u8(session_id_len) || session_id_len > 32 || !hello.skip(session_id_len)) {
    error = "bad legacy_session_id";
    return false;
  }
  if (!hello.u16(suites_len) || suites_len < 2 || suites_len % 2 != 0 || !hello.skip(suites_len)) {
    error = "bad cipher_suites";
    return false;
  }
  if (!hello.u8(compression_len) || compression_len < 1 || !hello.skip(compression_len)) {
    error = "bad legacy_compression_methods";
    return false;
  }
  return parse_extensions(hello, info, error);
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::optional<CanonicalHost> canonical_ipv6(std::string_view raw) {
  char text[INET6_ADDRSTRLEN] = {};
  if (raw.size() >= sizeof(text)) return std::nullopt;
  std::memcpy(text, raw.data(), raw.size());
  in6_addr addr{};
  if (inet_pton(AF_INET6, text, &addr) != 1) return std::nullopt;
  char out[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &addr, out, sizeof(out));
  return CanonicalHost{out, true};
}

}  // namespace

const char* to_string(HelloStatus status) {
  switch (status) {
    case HelloStatus::NeedMore: return "need-more";
    case HelloStatus::Done: return "done";
    case HelloStatus::NotTls: return "not-tls";
    case HelloStatus::Malformed: return "malformed";
    case HelloStatus::TooLarge: return "too-large";
  }
  return "?";
}

std::optional<CanonicalHost> canonical_host(std::string_view raw, bool allow_ipv6) {
  if (raw.empty() || raw.size() > 255) return std::nullopt;
  if (raw.find(':') != std::string_view::npos) {
    if (!allow_ipv6) return std::nullopt;
    return canonical_ipv6(raw);
  }
  std::string_view name = raw;
  if (name.back() == '.') name.remove_suffix(1);
  // Labels of 1..63 host characters; no empty label (leading dot, "a..b").
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    if (!host_char(c) || ++label > 63) return std::nullopt;
  }
  if (label == 0) return std::nullopt;
  CanonicalHost out;
  out.name.resize(name.size());
  std::transform(name.begin(), name.end(), out.name.begin(), ascii_lower);
  // getaddrinfo reads "127.1", "0x7f.1" and "2130706433" as addresses, not
  // names: flag every form inet_aton takes, and give the dotted quad.
  in_addr v4{};
  if (inet_aton(out.name.c_str(), &v4) != 0) {
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &v4, text, sizeof(text));
    out.name = text;
    out.is_ip = true;
  }
  return out;
}

HelloResult parse_client_hello(std::span<const uint8_t> data) {
  std::array<uint8_t, kMaxClientHelloBytes> buf;  // left uninitialized: only gathered bytes are read
  Assembly assembled = assemble(data, buf);
  if (assembled.status != HelloStatus::Done) return fail(assembled.status, std::move(assembled.error));

  HelloResult result;
  auto body =
      std::span<const uint8_t>(buf).subspan(kHandshakeHeaderBytes, assembled.message_bytes - kHandshakeHeaderBytes);
  if (!parse_hello_body(Reader(body), result.info, result.error)) {
    return fail(HelloStatus::Malformed, std::move(result.error));
  }
  result.status = HelloStatus::Done;
  result.info.bytes_consumed = assembled.stream_end;
  return result;
}

}  // namespace egressd::proxy
