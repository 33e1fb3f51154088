#include "proxy/http_head.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "proxy/client_hello.h"  // canonical_host

namespace egressd::proxy {
namespace {

constexpr uint16_t kDefaultHttpPort = 80;
constexpr size_t kMaxContentLengthDigits = 18;  // < 2^63: no overflow

// RFC 9110 5.6.2 token characters.
bool is_tchar(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool is_hex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

uint8_t hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Methods are upper-case words ("GET", "VERSION-CONTROL"); the first byte is
// a letter so TLS (0x16) and most binary protocols fail on byte one, and
// "SSH-2.0-" on byte five.
bool is_method_char(uint8_t c, bool first) {
  if (c >= 'A' && c <= 'Z') return true;
  return !first && (c == '-' || c == '_');
}

// Printable ASCII but '#' (no fragment in a request-target) and '\' (some
// origins read it as '/', which would dodge path rules). '%' escapes are
// checked once the line is complete.
bool is_target_char(uint8_t c) { return c > 0x20 && c < 0x7f && c != '#' && c != '\\'; }

// RFC 9110 5.5 field-vchar, SP and HTAB (obs-text allowed); no CTL, no DEL.
bool is_value_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s.size(), '\0');
  std::transform(s.begin(), s.end(), out.begin(), ascii_lower);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each comma-separated element, OWS trimmed.
template <class Fn>
void for_each_list_element(std::string_view list, Fn fn) {
  while (true) {
    size_t comma = list.find(',');
    fn(trim_ows(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// 1..65535, decimal, no sign, no leading zero.
std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || s[0] == '0') return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

struct Authority {
  CanonicalHost host;
  std::optional<uint16_t> port;
};

// host [":" port], host a reg-name, IPv4 or "[" IPv6 "]" (no zone, no
// IPvFuture, no userinfo).
std::optional<Authority> parse_authority(std::string_view text) {
  std::string_view host, rest;
  bool bracketed = !text.empty() && text[0] == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (host.find(':') == std::string_view::npos) return std::nullopt;
  } else {
    size_t colon = text.find(':');
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : text.substr(colon);
  }
  Authority out;
  auto canonical = canonical_host(host, /*allow_ipv6=*/bracketed);
  if (!canonical) return std::nullopt;
  out.host = std::move(*canonical);
  if (!rest.empty()) {
    if (rest[0] != ':') return std::nullopt;
    out.port = parse_port(rest.substr(1));
    if (!out.port) return std::nullopt;
  }
  return out;
}

// Every '%' starts a %HH escape.
bool valid_percent_escapes(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
    i += 2;
  }
  return true;
}

std::string_view path_of(std::string_view path_and_query) {
  std::string_view path = path_and_query.substr(0, path_and_query.find('?'));
  return path.empty() ? std::string_view("/") : path;
}

// Does an Upgrade element (protocol-name ["/" protocol-version]) name
// HTTP/2? "h2c" is the registered token; "h2", drafts ("h2c-14") and
// "HTTP/2.0" are read as HTTP/2 by some servers too.
bool is_http2_protocol(std::string_view element) {
  std::string e = lower(element);
  std::string_view name = e, version;
  if (size_t slash = name.find('/'); slash != std::string_view::npos) {
    version = name.substr(slash + 1);
    name = name.substr(0, slash);
  }
  if (name == "h2c" || name == "h2" || name.starts_with("h2c-") || name.starts_with("h2-")) return true;
  return name == "http" && version.starts_with("2");
}

// Joins the non-empty elements of `list` for which keep(element) holds.
template <class Keep>
std::string filter_list(std::string_view list, Keep keep) {
  std::string out;
  for_each_list_element(list, [&](std::string_view e) {
    if (e.empty() || !keep(e)) return;
    if (!out.empty()) out += ", ";
    out += e;
  });
  return out;
}

// Is `name` one of the framing/routing headers spelled with '_' for '-'
// (or '_' alone)? Some stacks (CGI, WSGI, some proxies) map '_' to '-'.
bool underscore_alias(std::string_view name) {
  if (name.find('_') == std::string_view::npos) return false;
  std::string norm = lower(name);
  std::replace(norm.begin(), norm.end(), '_', '-');
  return norm == "host" || norm == "content-length" || norm == "transfer-encoding";
}

// One parse over a window of at most kMaxHttpHeadBytes. Checks run in stream
// order and each sees only bytes before its point, so verdicts are
// prefix-stable; a window that is full and still incomplete is TooLarge.
class HeadParser {
 public:
  HeadParser(std::span<const uint8_t> window, bool window_full) : w_(window), full_(window_full) {}

  HeadResult run() && {
    parse();
    return std::move(result_);
  }

 private:
  void parse() {
    size_t pos = 0;
    if (!request_line(pos)) return;
    while (true) {
      const void* lf = std::memchr(w_.data() + pos, '\n', w_.size() - pos);
      if (lf == nullptr) {
        more();
        return;
      }
      size_t end = static_cast<size_t>(static_cast<const uint8_t*>(lf) - w_.data());
      if (end == pos || w_[end - 1] != '\r') {
        stop(HeadStatus::Malformed, "bare LF line end");
        return;
      }
      std::string_view line(reinterpret_cast<const char*>(w_.data()) + pos, end - 1 - pos);
      pos = end + 1;
      if (line.empty()) {
        result_.head.head_bytes = pos;
        finish();
        return;
      }
      if (!header_line(line)) return;
    }
  }

  // Out of bytes: wait for more, unless the window is full.
  bool more() {
    if (full_)
      return stop(HeadStatus::TooLarge,
                  "request head does not end within " + std::to_string(kMaxHttpHeadBytes) + " bytes");
    return stop(HeadStatus::NeedMore, "");
  }

  bool stop(HeadStatus status, std::string error) {
    result_.status = status;
    result_.error = std::move(error);
    return false;
  }

  // METHOD SP target SP HTTP/1.x CRLF, scanned byte by byte so that a prefix
  // gets its verdict (NotHttp above all) as early as its bytes allow.
  bool request_line(size_t& i) {
    size_t n = w_.size();
    for (i = 0;; ++i) {
      if (i == n) return more();
      if (w_[i] == ' ' && i > 0) break;
      if (!is_method_char(w_[i], i == 0)) return stop(HeadStatus::NotHttp, "not an HTTP request line");
      if (i == kMaxHttpMethodBytes) return stop(HeadStatus::NotHttp, "no method within the first bytes");
    }
    std::string_view method(reinterpret_cast<const char*>(w_.data()), i);
    size_t start = ++i;
    for (;; ++i) {
      if (i == n) return more();
      if (w_[i] == ' ') break;
      if (w_[i] == '\r' || w_[i] == '\n') return stop(HeadStatus::Malformed, "request line without HTTP version");
      if (!is_target_char(w_[i])) return stop(HeadStatus::Malformed, "invalid byte in request target");
    }
    if (i == start) return stop(HeadStatus::Malformed, "empty request target");
    std::string_view target(reinterpret_cast<const char*>(w_.data()) + start, i - start);
    ++i;
    if (method == "PRI" && target == "*") {
      // RFC 9113 3.4: the preface starts "PRI * HTTP/2.0\r\n". Until the
      // bytes leave it, wait; where they do, the HTTP/1 checks below judge.
      static constexpr std::string_view kPrefaceVersion = "HTTP/2.0\r\n";
      size_t j = i, k = 0;
      while (k < kPrefaceVersion.size() && j < n && w_[j] == kPrefaceVersion[k]) ++j, ++k;
      if (k == kPrefaceVersion.size()) {
        result_.head.method = method;
        result_.head.target = target;
        result_.head.version = "HTTP/2.0";
        return stop(HeadStatus::Http2, "HTTP/2 connection preface (prior knowledge): cleartext HTTP/2 is not inspected");
      }
      if (j == n) return more();
    }
    static constexpr std::string_view kVersionPrefix = "HTTP/1.";
    size_t version_start = i;
    for (char expect : kVersionPrefix) {
      if (i == n) return more();
      if (w_[i++] != expect) return stop(HeadStatus::Malformed, "unsupported HTTP version");
    }
    if (i == n) return more();
    if (w_[i] != '0' && w_[i] != '1') return stop(HeadStatus::Malformed, "unsupported HTTP version");
    std::string_view version(reinterpret_cast<const char*>(w_.data()) + version_start, kVersionPrefix.size() + 1);
    ++i;
    if (i == n) return more();
    if (w_[i] == '\n') return stop(HeadStatus::Malformed, "bare LF line end");
    if (w_[i] != '\r') return stop(HeadStatus::Malformed, "junk after HTTP version");
    if (++i == n) return more();
    if (w_[i] != '\n') return stop(HeadStatus::Malformed, "CR without LF");
    ++i;
    return request_line_semantics(method, target, version);
  }

  bool request_line_semantics(std::string_view method, std::string_view target, std::string_view version) {
    HttpHead& h = result_.head;
    h.method = method;
    h.target = target;
    h.version = version;
    h.keep_alive = version == "HTTP/1.1";
    if (method == "CONNECT") return stop(HeadStatus::Malformed, "CONNECT: not a forward proxy");
    if (!valid_percent_escapes(target)) return stop(HeadStatus::Malformed, "bad percent-escape in request target");
    if (target == "*") {
      if (method != "OPTIONS") return stop(HeadStatus::Malformed, "asterisk-form target for a method but OPTIONS");
      h.path = "*";
      return true;
    }
    if (target[0] == '/') {
      h.path = path_of(target);
      return true;
    }
    static constexpr std::string_view kScheme = "http://";
    if (target.size() < kScheme.size() || !iequals(target.substr(0, kScheme.size()), kScheme))
      return stop(HeadStatus::Malformed, "request target is neither a path nor an http:// URI");
    std::string_view rest = target.substr(kScheme.size());
    size_t auth_end = rest.find_first_of("/?");
    auto authority = parse_authority(rest.substr(0, auth_end));
    if (!authority) return stop(HeadStatus::Malformed, "invalid authority in request target");
    h.absolute_form = true;
    target_authority_ = std::move(*authority);
    rest = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);
    h.path = rest.empty() || rest[0] == '?' ? std::string_view("/") : path_of(rest);
    return true;
  }

  bool header_line(std::string_view line) {
    if (line[0] == ' ' || line[0] == '\t') return stop(HeadStatus::Malformed, "obs-fold (line folding)");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return stop(HeadStatus::Malformed, "header line without ':'");
    std::string_view name = line.substr(0, colon);
    if (name.empty()) return stop(HeadStatus::Malformed, "empty header name");
    if (name.back() == ' ' || name.back() == '\t') return stop(HeadStatus::Malformed, "whitespace before ':'");
    for (char c : name)
      if (!is_tchar(static_cast<uint8_t>(c))) return stop(HeadStatus::Malformed, "invalid header name");
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if (!is_value_char(static_cast<uint8_t>(c))) return stop(HeadStatus::Malformed, "invalid byte in header value");

    if (iequals(name, "host")) return host_header(value);
    if (iequals(name, "content-length"))
      content_length(value);
    else if (iequals(name, "transfer-encoding"))
      transfer_encoding(value);
    else if (iequals(name, "connection"))
      connection(value);
    else if (iequals(name, "upgrade"))
      upgrade(value);
    else if (iequals(name, "http2-settings"))
      h2c_offer_ = true;
    else if (underscore_alias(name))
      smuggling("header " + std::string(name) + " spells a framing or Host header with '_'");
    else if (is_override_header(name))
      result_.head.has_override = true;
    return true;
  }

  bool host_header(std::string_view value) {
    if (host_seen_) return stop(HeadStatus::Malformed, "more than one Host header");
    host_seen_ = true;
    auto authority = parse_authority(value);
    if (!authority) return stop(HeadStatus::Malformed, "invalid Host header");
    host_authority_ = std::move(*authority);
    return true;
  }

  // RFC 9112 6.3: several Content-Lengths (lines or a list) are accepted
  // only if all equal; anything not plain digits is a framing error.
  void content_length(std::string_view value) {
    for_each_list_element(value, [&](std::string_view v) {
      if (v.empty() || v.size() > kMaxContentLengthDigits ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        smuggling("invalid Content-Length");
        return;
      }
      uint64_t n = 0;
      for (char c : v) n = n * 10 + static_cast<uint64_t>(c - '0');
      auto& cl = result_.head.content_length;
      if (cl && *cl != n) smuggling("differing Content-Length values");
      cl = n;
    });
  }

  void transfer_encoding(std::string_view value) {
    if (te_seen_) smuggling("more than one Transfer-Encoding header");
    te_seen_ = true;
    if (!iequals(value, "chunked")) smuggling("Transfer-Encoding other than chunked");
  }

  void upgrade(std::string_view value) {
    std::string kept = filter_list(value, [&](std::string_view e) {
      if (!is_http2_protocol(e)) return true;
      h2c_offer_ = true;
      return false;
    });
    if (kept.empty()) return;
    upgrade_ = upgrade_.empty() ? lower(kept) : upgrade_ + ", " + lower(kept);
  }

  void connection(std::string_view value) {
    for_each_list_element(value, [&](std::string_view token) {
      if (iequals(token, "close")) close_ = true;
      if (iequals(token, "keep-alive")) keep_alive_token_ = true;
      if (iequals(token, "upgrade")) upgrade_token_ = true;
      // A hop that honours Connection strips the headers it names: naming
      // framing or Host headers makes the next hop read another request.
      for (std::string_view h : {"host", "content-length", "transfer-encoding", "te", "trailer"})
        if (iequals(token, h)) smuggling("Connection names " + std::string(h));
    });
  }

  // Headers that frameworks honour to replace the method or the path the
  // request line names; they would defeat methods/paths rules.
  static bool is_override_header(std::string_view name) {
    for (std::string_view h : {"x-http-method-override", "x-http-method", "x-method-override", "x-original-url",
                               "x-rewrite-url"})
      if (iequals(name, h)) return true;
    return false;
  }

  // Only the first reason is kept; it is reported at the blank line so the
  // event carries the whole head.
  void smuggling(std::string reason) {
    if (smuggling_.empty()) smuggling_ = std::move(reason);
  }

  // Checks that need the whole head, in a fixed order.
  void finish() {
    HttpHead& h = result_.head;
    bool v11 = h.version == "HTTP/1.1";
    h.keep_alive = !close_ && (v11 || keep_alive_token_);
    if (upgrade_token_) h.upgrade = upgrade_;
    h.chunked = te_seen_;
    const Authority* host = host_seen_ ? &host_authority_ : (h.absolute_form ? &target_authority_ : nullptr);
    if (host != nullptr) {
      h.host = host->host.name;
      h.host_is_ip = host->host.is_ip;
      h.host_port = host->port;
    }
    result_.status = HeadStatus::Done;
    if (v11 && !host_seen_) {
      stop(HeadStatus::Malformed, "no Host header in HTTP/1.1");
    } else if (!smuggling_.empty()) {
      stop(HeadStatus::Smuggling, smuggling_);
    } else if (te_seen_ && h.content_length) {
      stop(HeadStatus::Smuggling, "both Content-Length and Transfer-Encoding");
    } else if (te_seen_ && !v11) {
      stop(HeadStatus::Smuggling, "Transfer-Encoding in HTTP/1.0");
    } else if (h.absolute_form && host_seen_ && !same_origin(target_authority_, host_authority_)) {
      stop(HeadStatus::Smuggling,
           "host mismatch: target names " + target_authority_.host.name + ", Host names " + host_authority_.host.name);
    }
    // After h2c the connection would carry HTTP/2 frames whose :authority
    // and :path this parser never sees: the origin must not be offered it.
    if (result_.status == HeadStatus::Done && h2c_offer_) h.rewritten = without_h2c_offer();
  }

  // The head (valid, CRLF lines) with the h2c offer taken out; see
  // parse_http_head.
  std::string without_h2c_offer() const {
    std::string_view head(reinterpret_cast<const char*>(w_.data()), result_.head.head_bytes);
    std::string out;
    out.reserve(head.size());
    size_t eol = head.find("\r\n");
    out.append(head.substr(0, eol + 2));  // the request line
    for (size_t pos = eol + 2;;) {
      eol = head.find("\r\n", pos);
      std::string_view line = head.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      size_t colon = line.find(':');
      std::string_view name = line.substr(0, colon), value = trim_ows(line.substr(colon + 1));
      std::string kept;
      if (iequals(name, "http2-settings")) continue;
      if (iequals(name, "upgrade")) {
        kept = filter_list(value, [](std::string_view e) { return !is_http2_protocol(e); });
      } else if (iequals(name, "connection")) {
        bool upgrade_left = !upgrade_.empty();
        kept = filter_list(value, [&](std::string_view t) {
          return !iequals(t, "http2-settings") && (upgrade_left || !iequals(t, "upgrade"));
        });
      } else {
        out.append(line).append("\r\n");
        continue;
      }
      if (kept.empty()) continue;
      out.append(name).append(": ").append(kept).append("\r\n");
    }
    out.append("\r\n");
    return out;
  }

  static bool same_origin(const Authority& a, const Authority& b) {
    return a.host.name == b.host.name && a.port.value_or(kDefaultHttpPort) == b.port.value_or(kDefaultHttpPort);
  }

  std::span<const uint8_t> w_;
  bool full_;
  HeadResult result_;
  Authority target_authority_;
  Authority host_authority_;
  bool host_seen_ = false;
  bool te_seen_ = false;
  bool close_ = false;
  bool keep_alive_token_ = false;
  bool upgrade_token_ = false;
  bool h2c_offer_ = false;  // an Upgrade element names HTTP/2, or an HTTP2-Settings line
  std::string upgrade_;     // the Upgrade elements but HTTP/2 ones, lower case
  std::string smuggling_;
};

}  // namespace

const char* to_string(HeadStatus status) {
  switch (status) {
    case HeadStatus::NeedMore: return "need-more";
    case HeadStatus::Done: return "done";
    case HeadStatus::NotHttp: return "not-http";
    case HeadStatus::Malformed: return "malformed";
    case HeadStatus::TooLarge: return "too-large";
    case HeadStatus::Smuggling: return "smuggling";
    case HeadStatus::Http2: return "http2";
  }
  return "?";
}

HeadResult parse_http_head(std::span<const uint8_t> data) {
  bool full = data.size() >= kMaxHttpHeadBytes;
  return HeadParser(data.first(std::min(data.size(), kMaxHttpHeadBytes)), full).run();
}

std::optional<uint64_t> fixed_body_length(const HttpHead& head) {
  if (head.chunked) return std::nullopt;
  return head.content_length.value_or(0);
}

// ---- ChunkedDecoder ----

bool ChunkedDecoder::fail(ChunkStatus status, std::string error) {
  status_ = status;
  error_ = std::move(error);
  return false;
}

bool ChunkedDecoder::step(uint8_t c) {
  bool in_size_line =
      state_ == State::SizeFirst || state_ == State::Size || state_ == State::Ext || state_ == State::SizeLf;
  if (in_size_line && ++line_bytes_ > kMaxLineBytes)
    return fail(ChunkStatus::TooLarge, "chunk size line longer than " + std::to_string(kMaxLineBytes) + " bytes");
  bool in_trailer = state_ >= State::TrailerStart && state_ <= State::FinalLf;
  if (in_trailer && ++trailer_bytes_ > kMaxHttpHeadBytes)
    return fail(ChunkStatus::TooLarge, "trailer section longer than " + std::to_string(kMaxHttpHeadBytes) + " bytes");

  switch (state_) {
    case State::SizeFirst:
      if (!is_hex(c)) return fail(ChunkStatus::Malformed, "chunk size is not hex");
      chunk_left_ = hex_value(c);
      size_digits_ = 1;
      state_ = State::Size;
      return true;
    case State::Size:
      if (is_hex(c)) {
        if (++size_digits_ > 16) return fail(ChunkStatus::Malformed, "chunk size longer than 16 hex digits");
        chunk_left_ = chunk_left_ << 4 | hex_value(c);
      } else if (c == ';') {
        state_ = State::Ext;
      } else if (c == '\r') {
        state_ = State::SizeLf;
      } else {
        return fail(ChunkStatus::Malformed, "invalid byte after chunk size");
      }
      return true;
    case State::Ext:
      if (c == '\r')
        state_ = State::SizeLf;
      else if (c != '\t' && (c < 0x20 || c >= 0x7f))
        return fail(ChunkStatus::Malformed, "invalid byte in chunk extension");
      return true;
    case State::SizeLf:
      if (c != '\n') return fail(ChunkStatus::Malformed, "chunk size line without LF");
      line_bytes_ = 0;
      state_ = chunk_left_ == 0 ? State::TrailerStart : State::Data;
      return true;
    case State::DataCr:
      if (c != '\r') return fail(ChunkStatus::Malformed, "chunk data not followed by CRLF");
      state_ = State::DataLf;
      return true;
    case State::DataLf:
      if (c != '\n') return fail(ChunkStatus::Malformed, "chunk data not followed by CRLF");
      state_ = State::SizeFirst;
      return true;
    case State::TrailerStart:
      if (c == '\r')
        state_ = State::FinalLf;
      else if (c == ' ' || c == '\t')
        return fail(ChunkStatus::Malformed, "obs-fold in trailer");
      else if (is_tchar(c))
        state_ = State::TrailerName;
      else
        return fail(ChunkStatus::Malformed, "invalid trailer field name");
      return true;
    case State::TrailerName:
      if (c == ':')
        state_ = State::TrailerValue;
      else if (!is_tchar(c))
        return fail(ChunkStatus::Malformed, "invalid trailer field name");
      return true;
    case State::TrailerValue:
      if (c == '\r')
        state_ = State::TrailerLf;
      else if (!is_value_char(c))
        return fail(ChunkStatus::Malformed, "invalid byte in trailer value");
      return true;
    case State::TrailerLf:
      if (c != '\n') return fail(ChunkStatus::Malformed, "trailer line without LF");
      state_ = State::TrailerStart;
      return true;
    case State::FinalLf:
      if (c != '\n') return fail(ChunkStatus::Malformed, "chunked body does not end with CRLF");
      state_ = State::End;
      status_ = ChunkStatus::Done;
      return true;
    case State::Data:
    case State::End: break;  // handled by feed()
  }
  return true;
}

ChunkedDecoder::Result ChunkedDecoder::feed(std::span<const uint8_t> data) {
  if (status_ != ChunkStatus::NeedMore) return {status_, 0};
  size_t i = 0;
  while (i < data.size() && status_ == ChunkStatus::NeedMore) {
    if (state_ == State::Data) {
      uint64_t take = std::min<uint64_t>(chunk_left_, data.size() - i);
      i += static_cast<size_t>(take);
      chunk_left_ -= take;
      data_bytes_ += take;
      if (chunk_left_ == 0) state_ = State::DataCr;
      continue;
    }
    if (!step(data[i])) break;  // the offending byte is not consumed
    ++i;
  }
  body_bytes_ += i;
  return {status_, i};
}

}  // namespace egressd::proxy
