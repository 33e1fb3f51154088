// http_head.h: a pure, strict parser for an HTTP/1.x request head, so the
// transparent proxy can judge the Host of every request on a plain-HTTP
// connection; plus a chunked-body decoder to find where a chunked request
// ends and the next pipelined one starts.
//
// Strict on purpose (RFC 9112, request smuggling): whatever we accept must be
// read the same way by any origin. Anything ambiguous is Malformed (a broken
// head) or Smuggling (framing or host that an origin could read otherwise).
// No sockets, no state between calls, no exceptions, bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace egressd::proxy {

// Bound on a request head, the blank line included.
inline constexpr size_t kMaxHttpHeadBytes = 32 * 1024;
// Longest method accepted ("BASELINE-CONTROL"); a longer first word is NotHttp.
inline constexpr size_t kMaxHttpMethodBytes = 16;

enum class HeadStatus {
  NeedMore,   // a prefix of a possible request head: read more, call again
  Done,       // a complete head that passed every check: see head
  NotHttp,    // the first line does not start like a request line
  Malformed,  // a request head that breaks the grammar or our rules (see error)
  TooLarge,   // no blank line within kMaxHttpHeadBytes
  Smuggling,  // framing or host an origin could read differently (see error)
  Http2,      // the HTTP/2 connection preface "PRI * HTTP/2.0" (prior knowledge): frames, not a head
};

const char* to_string(HeadStatus status);

struct HttpHead {
  std::string method, target, version;  // version "HTTP/1.0" or "HTTP/1.1"
  // From Host (or, in HTTP/1.0 without Host, the absolute-form authority):
  // lower case, no trailing dot, no port, IPv6 without brackets; IP literals
  // canonical (see canonical_host in client_hello.h). Empty only in HTTP/1.0.
  std::string host;
  std::optional<uint16_t> host_port;  // the port written after the host, if any
  bool host_is_ip = false;            // host is an IP literal
  std::string path;                   // target's path, raw (no query, no dot-segment or %-decoding); "*" for OPTIONS *
  bool absolute_form = false;         // target was http://authority/path
  std::optional<uint64_t> content_length;
  bool chunked = false;    // Transfer-Encoding: chunked (then no content_length)
  bool keep_alive = true;  // per version and Connection
  std::string upgrade;     // lower-cased Upgrade value (h2c left out) if Connection names "upgrade", else empty
  // Non-empty when the head offered an upgrade to HTTP/2 (h2c): the head
  // to send the origin instead, with that offer removed (see strip rules
  // below), so the origin answers in HTTP/1.1 and every request stays
  // judged. Empty: forward the client's head_bytes unchanged.
  std::string rewritten;
  bool has_override = false;  // X-HTTP-Method-Override, X-Original-URL, ...: methods/paths rules cannot trust the request line
  size_t head_bytes = 0;   // bytes up to and including the blank line

  friend bool operator==(const HttpHead&, const HttpHead&) = default;
};

struct HeadResult {
  HeadStatus status = HeadStatus::NeedMore;
  HttpHead head;      // Done: complete. Smuggling, and Malformed found at the blank line: complete too (for the event)
  std::string error;  // a short sentence unless Done or NeedMore
};

// `data` is everything received since the start of this request (the
// proxy appends and calls again). Verdicts are prefix-stable: once a prefix
// gets a verdict other than NeedMore, every longer prefix gets the same one.
// A buffer of kMaxHttpHeadBytes or more never gets NeedMore.
//
// Rules beyond the grammar: CRLF line ends only (bare LF or CR: Malformed);
// no obs-fold; no space before ':'; exactly one Host in HTTP/1.1 (at most one
// in 1.0), a reg-name of [a-z0-9._-] or an IPv4 or [IPv6], optional port
// 1..65535; absolute-form http:// targets must name the Host's host and port
// (else Smuggling "host mismatch"); CONNECT is Malformed (we are not a
// forward proxy); Content-Length with Transfer-Encoding, differing
// Content-Lengths, a Transfer-Encoding other than exactly "chunked",
// Transfer-Encoding in HTTP/1.0, and header names that spell Host,
// Content-Length or Transfer-Encoding with '_' are Smuggling. A request
// line "PRI * HTTP/2.0" (the HTTP/2 preface) is Http2.
//
// The h2c offer (RFC 7540 3.2) is taken out, not refused: Upgrade elements
// naming HTTP/2 (h2c, h2, their drafts h2c-NN, HTTP/2.x) are removed (the
// Upgrade line with them if nothing is left), every HTTP2-Settings line
// goes, and Connection loses its HTTP2-Settings token and, if no Upgrade
// element is left, its Upgrade token (the line too if empty). Other lines
// are kept byte for byte; see HttpHead::rewritten.
HeadResult parse_http_head(std::span<const uint8_t> data);

// Length of the request body when it is known from the head: 0 without
// Content-Length or Transfer-Encoding (RFC 9112 6.3: a request has no body
// then), the Content-Length otherwise; nullopt if chunked, when a
// ChunkedDecoder must find the end. The next pipelined request starts at
// head_bytes + this.
std::optional<uint64_t> fixed_body_length(const HttpHead& head);

enum class ChunkStatus { NeedMore, Done, Malformed, TooLarge };

// Finds the end of a chunked body (RFC 9112 7.1), fed in pieces as they
// arrive. Strict: chunk sizes are 1..16 hex digits, nothing but ';' after
// them (no whitespace), extensions printable ASCII, CRLF everywhere, the
// size line at most kMaxLineBytes, trailers are field lines (no obs-fold)
// totalling at most kMaxHttpHeadBytes.
class ChunkedDecoder {
 public:
  static constexpr size_t kMaxLineBytes = 4096;

  struct Result {
    ChunkStatus status;
    size_t consumed;  // bytes of this call's data that belong to the body (on Done: up to its end)
  };

  // After Done, Malformed or TooLarge every call returns that, consuming nothing.
  Result feed(std::span<const uint8_t> data);

  ChunkStatus status() const { return status_; }
  const std::string& error() const { return error_; }
  uint64_t data_bytes() const { return data_bytes_; }  // chunk-data bytes so far
  uint64_t body_bytes() const { return body_bytes_; }  // all body bytes consumed so far

 private:
  enum class State : uint8_t {
    SizeFirst,
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    End,
  };
  bool step(uint8_t c);  // one byte outside chunk data; false on a verdict
  bool fail(ChunkStatus status, std::string error);

  State state_ = State::SizeFirst;
  ChunkStatus status_ = ChunkStatus::NeedMore;
  std::string error_;
  uint64_t chunk_left_ = 0;
  size_t size_digits_ = 0;
  size_t line_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  uint64_t body_bytes_ = 0;
};

}  // namespace egressd::proxy
