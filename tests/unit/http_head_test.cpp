// Test the HTTP/1.x request head parser and the chunked decoder
// (proxy/http_head.h): the request smuggling defenses one by one, byte-at-a-
// time feeding, pipelined requests, the size bound, non-HTTP streams.
#include "proxy/http_head.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace egressd::proxy {
// gtest prints statuses by name.
void PrintTo(HeadStatus s, std::ostream* os) { *os << to_string(s); }
void PrintTo(ChunkStatus s, std::ostream* os) {
  static constexpr const char* kNames[] = {"need-more", "done", "malformed", "too-large"};
  *os << kNames[static_cast<int>(s)];
}
}  // namespace egressd::proxy

namespace {

using namespace std::string_view_literals;
using egressd::proxy::ChunkedDecoder;
using egressd::proxy::ChunkStatus;
using egressd::proxy::fixed_body_length;
using egressd::proxy::HeadResult;
using egressd::proxy::HeadStatus;
using egressd::proxy::HttpHead;
using egressd::proxy::kMaxHttpHeadBytes;
using egressd::proxy::parse_http_head;

std::span<const uint8_t> span_of(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

HeadResult parse(std::string_view s) { return parse_http_head(span_of(s)); }

// Every prefix is NeedMore until some length; from there on every prefix
// has the whole input's verdict, head and error.
void expect_prefix_stable(std::string_view s) {
  HeadResult full = parse(s);
  bool decided = false;
  for (size_t n = 0; n <= s.size(); ++n) {
    HeadResult r = parse(s.substr(0, n));
    if (!decided && r.status == HeadStatus::NeedMore) continue;
    decided = true;
    ASSERT_EQ(r.status, full.status) << "prefix " << n << ": " << r.error;
    ASSERT_EQ(r.error, full.error) << "prefix " << n;
    ASSERT_EQ(r.head, full.head) << "prefix " << n;
  }
}

HttpHead expect_done(std::string_view s) {
  HeadResult r = parse(s);
  EXPECT_EQ(r.status, HeadStatus::Done) << r.error << "\n" << s;
  EXPECT_TRUE(r.error.empty());
  expect_prefix_stable(s);
  return r.head;
}

void expect_status(std::string_view s, HeadStatus status, std::string_view error_part = "") {
  HeadResult r = parse(s);
  EXPECT_EQ(r.status, status) << r.error << "\n" << s;
  EXPECT_NE(r.error.find(error_part), std::string::npos) << r.error;
  expect_prefix_stable(s);
}

std::string get_with(std::string_view headers, std::string_view line = "GET / HTTP/1.1") {
  return std::string(line) + "\r\n" + std::string(headers) + "\r\n";
}

// ---- Well-formed heads ----

TEST(HttpHead, SimpleGet) {
  std::string s = "GET /index.html?q=1 HTTP/1.1\r\nHost: Example.COM\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";
  HttpHead h = expect_done(s);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/index.html?q=1");
  EXPECT_EQ(h.version, "HTTP/1.1");
  EXPECT_EQ(h.host, "example.com");
  EXPECT_FALSE(h.host_port);
  EXPECT_FALSE(h.host_is_ip);
  EXPECT_EQ(h.path, "/index.html");
  EXPECT_FALSE(h.absolute_form);
  EXPECT_FALSE(h.content_length);
  EXPECT_FALSE(h.chunked);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.upgrade, "");
  EXPECT_EQ(h.head_bytes, s.size());
  EXPECT_EQ(fixed_body_length(h), 0u);
}

TEST(HttpHead, RealCurlRequests) {
  std::string get =
      "GET /simple/requests/ HTTP/1.1\r\nHost: pypi.example.org:4436\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
  HttpHead h = expect_done(get);
  EXPECT_EQ(h.host, "pypi.example.org");
  EXPECT_EQ(h.host_port, 4436);
  EXPECT_EQ(h.path, "/simple/requests/");
  std::string post =
      "POST /v1/messages HTTP/1.1\r\nHost: api.example.com:4437\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
      "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"q\":1}";
  HeadResult r = parse(post);
  ASSERT_EQ(r.status, HeadStatus::Done) << r.error;
  EXPECT_EQ(r.head.method, "POST");
  EXPECT_EQ(r.head.content_length, 7u);
  EXPECT_EQ(r.head.head_bytes + 7, post.size());
  expect_prefix_stable(post);
}

TEST(HttpHead, HostForms) {
  HttpHead h = expect_done(get_with("Host: example.com:8080\r\n"));
  EXPECT_EQ(h.host, "example.com");
  EXPECT_EQ(h.host_port, 8080);
  h = expect_done(get_with("HOST: [2001:DB8::1]:443\r\n"));
  EXPECT_EQ(h.host, "2001:db8::1");
  EXPECT_TRUE(h.host_is_ip);
  EXPECT_EQ(h.host_port, 443);
  h = expect_done(get_with("host:203.0.113.5  \r\n"));
  EXPECT_EQ(h.host, "203.0.113.5");
  EXPECT_TRUE(h.host_is_ip);
  h = expect_done(get_with("Host: 127.1\r\n"));
  EXPECT_EQ(h.host, "127.0.0.1");
  EXPECT_TRUE(h.host_is_ip);
  h = expect_done(get_with("Host: example.com.:65535\r\n"));
  EXPECT_EQ(h.host, "example.com");
  EXPECT_EQ(h.host_port, 65535);
}

TEST(HttpHead, BadHostValues) {
  for (std::string_view v :
       {"", "a b", "example.com:", "example.com:0", "example.com:65536", "example.com:080", "example.com:+80",
        "user@example.com", "[::1", "[1.2.3.4]", "::1", "[::1]x", "exa%6dple.com", "example.com:80:80", "a..b",
        "[fe80::1%25eth0]", "[v1.x]", "example.com/path", "*.example.com"}) {
    expect_status(get_with("Host: " + std::string(v) + "\r\n"), HeadStatus::Malformed, "Host");
  }
}

TEST(HttpHead, AbsoluteFormMatchingHost) {
  HttpHead h = expect_done(get_with("Host: example.com\r\n", "GET http://Example.com/a/b?x=1 HTTP/1.1"));
  EXPECT_TRUE(h.absolute_form);
  EXPECT_EQ(h.host, "example.com");
  EXPECT_EQ(h.path, "/a/b");
  EXPECT_EQ(h.target, "http://Example.com/a/b?x=1");
  // The default port matches an absent one, both ways.
  expect_done(get_with("Host: example.com\r\n", "GET http://example.com:80/ HTTP/1.1"));
  expect_done(get_with("Host: example.com:80\r\n", "GET HTTP://EXAMPLE.COM HTTP/1.1"));
  h = expect_done(get_with("Host: example.com\r\n", "GET http://example.com?x HTTP/1.1"));
  EXPECT_EQ(h.path, "/");
  h = expect_done(get_with("Host: [2001:db8::1]:8080\r\n", "GET http://[2001:db8:0::1]:8080/x HTTP/1.1"));
  EXPECT_EQ(h.host, "2001:db8::1");
  EXPECT_EQ(h.path, "/x");
}

TEST(HttpHead, AbsoluteFormHostMismatchIsSmuggling) {
  expect_status(get_with("Host: good.example\r\n", "GET http://evil.example/ HTTP/1.1"), HeadStatus::Smuggling,
                "host mismatch");
  expect_status(get_with("Host: example.com:8080\r\n", "GET http://example.com/ HTTP/1.1"), HeadStatus::Smuggling,
                "host mismatch");
  expect_status(get_with("Host: example.com\r\n", "GET http://example.com:81/ HTTP/1.1"), HeadStatus::Smuggling,
                "host mismatch");
  // The head is complete in the result, for the event.
  HeadResult r = parse(get_with("Host: good.example\r\n", "POST http://evil.example/up HTTP/1.1"));
  EXPECT_EQ(r.head.method, "POST");
  EXPECT_EQ(r.head.path, "/up");
  EXPECT_EQ(r.head.host, "good.example");
}

TEST(HttpHead, AbsoluteFormInHttp10WithoutHostTakesTheTargetHost) {
  HttpHead h = expect_done("GET http://old.example:8000/p HTTP/1.0\r\n\r\n");
  EXPECT_EQ(h.host, "old.example");
  EXPECT_EQ(h.host_port, 8000);
  EXPECT_FALSE(h.keep_alive);
}

TEST(HttpHead, OtherTargetForms) {
  expect_status(get_with("Host: a\r\n", "GET https://a/ HTTP/1.1"), HeadStatus::Malformed, "neither a path");
  expect_status(get_with("Host: a\r\n", "GET ftp://a/ HTTP/1.1"), HeadStatus::Malformed, "neither a path");
  expect_status(get_with("Host: a\r\n", "GET http://user@a/ HTTP/1.1"), HeadStatus::Malformed, "authority");
  expect_status(get_with("Host: a\r\n", "GET http:///x HTTP/1.1"), HeadStatus::Malformed, "authority");
  expect_status(get_with("Host: a:443\r\n", "GET a:443 HTTP/1.1"), HeadStatus::Malformed, "neither a path");
  expect_status(get_with("Host: a:443\r\n", "CONNECT a:443 HTTP/1.1"), HeadStatus::Malformed, "CONNECT");
  HttpHead h = expect_done(get_with("Host: a\r\n", "OPTIONS * HTTP/1.1"));
  EXPECT_EQ(h.path, "*");
  expect_status(get_with("Host: a\r\n", "GET * HTTP/1.1"), HeadStatus::Malformed, "asterisk");
}

TEST(HttpHead, Methods) {
  for (std::string_view m :
       {"POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH", "BASELINE-CONTROL"}) {
    HttpHead h = expect_done(get_with("Host: a\r\n", std::string(m) + " /x HTTP/1.1"));
    EXPECT_EQ(h.method, m);
  }
}

TEST(HttpHead, TargetCharacters) {
  expect_done(get_with("Host: a\r\n", "GET /a%41b/~x-y_z.(1)!$&'*+,;=:@?q=[1]|^{} HTTP/1.1"));
  for (std::string_view t : std::initializer_list<std::string_view>{
           "/a#b", "/a\\b", "/%zz", "/%4", "/%", "/caf\xc3\xa9", "/a\tb", std::string_view("/a\0b", 4), "/a\x7f"}) {
    expect_status(get_with("Host: a\r\n", "GET " + std::string(t) + " HTTP/1.1"), HeadStatus::Malformed);
  }
}

// ---- Connection, Upgrade ----

TEST(HttpHead, KeepAlive) {
  EXPECT_TRUE(expect_done(get_with("Host: a\r\n")).keep_alive);
  EXPECT_FALSE(expect_done(get_with("Host: a\r\nConnection: close\r\n")).keep_alive);
  EXPECT_FALSE(expect_done(get_with("Host: a\r\nConnection: foo, Close\r\n")).keep_alive);
  EXPECT_FALSE(expect_done("GET / HTTP/1.0\r\n\r\n").keep_alive);
  EXPECT_TRUE(expect_done("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
  EXPECT_FALSE(expect_done("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
}

TEST(HttpHead, Upgrade) {
  HttpHead h = expect_done(get_with("Host: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n"));
  EXPECT_EQ(h.upgrade, "websocket");
  EXPECT_EQ(h.rewritten, "");  // forwarded as sent
  // Upgrade without the Connection token is not an upgrade (RFC 9110 7.8).
  EXPECT_EQ(expect_done(get_with("Host: a\r\nUpgrade: websocket\r\n")).upgrade, "");
}

// h2c would carry HTTP/2 frames whose :authority and :path are never
// parsed: the offer is taken out and the request goes on as HTTP/1.1.
TEST(HttpHead, H2cOfferIsStripped) {
  // What curl --http2 sends for http:// URLs.
  std::string curl =
      "GET / HTTP/1.1\r\nHost: allowed.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
  HttpHead h = expect_done(curl);
  EXPECT_EQ(h.host, "allowed.test");
  EXPECT_EQ(h.upgrade, "");  // nothing to wait for: no switch can come
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.head_bytes, curl.size());
  EXPECT_EQ(h.rewritten, "GET / HTTP/1.1\r\nHost: allowed.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
  HttpHead again = expect_done(h.rewritten);
  EXPECT_EQ(again.rewritten, "");
  EXPECT_EQ(again.host, h.host);
}

TEST(HttpHead, H2cStripKeepsTheRest) {
  // Other Connection tokens stay; HTTP/2 spellings all go.
  EXPECT_EQ(expect_done(get_with("Host: a\r\nConnection: close, Upgrade,HTTP2-Settings\r\nUpgrade: H2C\r\n")).rewritten,
            get_with("Host: a\r\nConnection: close\r\n"));
  for (const char* spelling : {"h2", "h2c-14", "HTTP/2.0", "http/2"})
    EXPECT_EQ(expect_done(get_with("Host: a\r\nConnection: upgrade\r\nUpgrade: " + std::string(spelling) + "\r\n"))
                  .rewritten,
              get_with("Host: a\r\n"))
        << spelling;
  // Another protocol offered beside h2c keeps its upgrade (and Connection's token).
  HttpHead ws = expect_done(get_with(
      "Host: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, websocket\r\nHTTP2-Settings: AA\r\n"));
  EXPECT_EQ(ws.upgrade, "websocket");
  EXPECT_EQ(ws.rewritten, get_with("Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"));
  // Without Connection's token the offer is still taken out (a lenient origin might switch).
  EXPECT_EQ(expect_done(get_with("Host: a\r\nUpgrade: h2c\r\n")).rewritten, get_with("Host: a\r\n"));
  EXPECT_EQ(expect_done(get_with("Host: a\r\nHTTP2-Settings: AA\r\nX-A: 1\r\n")).rewritten,
            get_with("Host: a\r\nX-A: 1\r\n"));
  // HTTP/1.1 and HTTP/1.0 alike; the body framing is unchanged.
  HttpHead post = expect_done(get_with("Host: a\r\nContent-Length: 3\r\nUpgrade: h2c\r\nConnection: upgrade\r\n",
                                       "POST /x HTTP/1.0"));
  EXPECT_EQ(post.rewritten, get_with("Host: a\r\nContent-Length: 3\r\n", "POST /x HTTP/1.0"));
  EXPECT_EQ(post.content_length, 3u);
  // Not an HTTP/2 name: kept as sent.
  EXPECT_EQ(expect_done(get_with("Host: a\r\nConnection: upgrade\r\nUpgrade: h3, tls/1.2\r\n")).rewritten, "");
}

TEST(HttpHead, Http2PrefaceHasItsOwnVerdict) {
  const std::string preface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00", 33);
  expect_status(preface, HeadStatus::Http2, "HTTP/2");
  HeadResult r = parse(preface);
  EXPECT_EQ(r.head.method, "PRI");
  EXPECT_EQ(r.head.version, "HTTP/2.0");
  // The verdict comes with the request line, before the rest of the preface.
  EXPECT_EQ(parse("PRI * HTTP/2.0\r").status, HeadStatus::NeedMore);
  EXPECT_EQ(parse("PRI * HTTP/2.0\r\n").status, HeadStatus::Http2);
  // Anything else after "PRI *" is judged as HTTP/1 was.
  expect_status("PRI * HTTP/1.1\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "asterisk-form");
  expect_status("PRI * HTTP/2.1\r\n\r\n", HeadStatus::Malformed, "unsupported HTTP version");
  expect_status("PRI / HTTP/2.0\r\n\r\n", HeadStatus::Malformed, "unsupported HTTP version");
  expect_status("GET * HTTP/2.0\r\n\r\n", HeadStatus::Malformed, "unsupported HTTP version");
}

// Test that Connection may not name framing or Host headers: a hop that
// honours it strips them and frames the request differently.
TEST(HttpHead, ConnectionNamingFramingHeadersIsSmuggling) {
  for (const char* h : {"content-length", "Transfer-Encoding", "host", "TE", "trailer"}) {
    SCOPED_TRACE(h);
    expect_status(get_with(std::string("Host: a\r\nConnection: ") + h + "\r\n"), HeadStatus::Smuggling,
                  "Connection names");
  }
  EXPECT_FALSE(expect_done(get_with("Host: a\r\nConnection: close\r\n")).keep_alive);
}

// Test that method/URL override headers are flagged for the rule check.
TEST(HttpHead, OverrideHeadersAreFlagged) {
  EXPECT_TRUE(expect_done(get_with("Host: a\r\nX-HTTP-Method-Override: DELETE\r\n")).has_override);
  EXPECT_TRUE(expect_done(get_with("Host: a\r\nx-original-url: /admin\r\n")).has_override);
  EXPECT_FALSE(expect_done(get_with("Host: a\r\nX-Forwarded-For: 1.2.3.4\r\n")).has_override);
}

// ---- Host count ----

TEST(HttpHead, HostRequiredInHttp11) {
  expect_status(get_with("User-Agent: x\r\n"), HeadStatus::Malformed, "no Host");
  HttpHead h = expect_done("GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n");
  EXPECT_EQ(h.host, "");
  EXPECT_FALSE(h.host_port);
}

TEST(HttpHead, TwoHostsAreMalformed) {
  expect_status(get_with("Host: a.example\r\nHost: b.example\r\n"), HeadStatus::Malformed, "more than one Host");
  expect_status(get_with("Host: a.example\r\nhost: a.example\r\n"), HeadStatus::Malformed, "more than one Host");
  expect_status("GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", HeadStatus::Malformed, "more than one Host");
}

// ---- Framing: Content-Length, Transfer-Encoding ----

TEST(HttpHead, ContentLength) {
  HttpHead h = expect_done(get_with("Host: a\r\nContent-Length: 42\r\n", "POST / HTTP/1.1"));
  EXPECT_EQ(h.content_length, 42u);
  EXPECT_EQ(fixed_body_length(h), 42u);
  EXPECT_EQ(expect_done(get_with("Host: a\r\nContent-Length: 0\r\n")).content_length, 0u);
  // Identical repeats are allowed (RFC 9112 6.3), as lines or as a list.
  EXPECT_EQ(expect_done(get_with("Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n")).content_length, 5u);
  EXPECT_EQ(expect_done(get_with("Host: a\r\nContent-Length: 5 ,5\r\n")).content_length, 5u);
  EXPECT_EQ(expect_done(get_with("Host: a\r\ncontent-length: 999999999999999999\r\n")).content_length,
            999999999999999999u);
}

TEST(HttpHead, BadContentLengthIsSmuggling) {
  expect_status(get_with("Host: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"), HeadStatus::Smuggling,
                "differing Content-Length");
  expect_status(get_with("Host: a\r\nContent-Length: 5, 6\r\n"), HeadStatus::Smuggling, "differing Content-Length");
  for (std::string_view v : {"+5", "-1", "0x5", "5 5", "", "1e3", "5,", ",5", "1234567890123456789", "5;"}) {
    expect_status(get_with("Host: a\r\nContent-Length: " + std::string(v) + "\r\n"), HeadStatus::Smuggling,
                  "invalid Content-Length");
  }
}

TEST(HttpHead, ContentLengthAndTransferEncodingIsSmuggling) {
  expect_status(get_with("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", "POST / HTTP/1.1"),
                HeadStatus::Smuggling, "both Content-Length and Transfer-Encoding");
  expect_status(get_with("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n", "POST / HTTP/1.1"),
                HeadStatus::Smuggling, "both Content-Length and Transfer-Encoding");
}

TEST(HttpHead, TransferEncodingChunked) {
  for (std::string_view v : {"chunked", "Chunked", "CHUNKED", "  chunked\t"}) {
    HttpHead h = expect_done(get_with("Host: a\r\nTransfer-Encoding: " + std::string(v) + "\r\n", "POST / HTTP/1.1"));
    EXPECT_TRUE(h.chunked);
    EXPECT_FALSE(h.content_length);
    EXPECT_FALSE(fixed_body_length(h));
  }
}

TEST(HttpHead, OtherTransferEncodingsAreSmuggling) {
  for (std::string_view v : {"gzip, chunked", "chunked, chunked", "xchunked", "chunked;q=1", "identity", "", "chunk",
                             "chunked, identity", "\"chunked\""}) {
    expect_status(get_with("Host: a\r\nTransfer-Encoding: " + std::string(v) + "\r\n", "POST / HTTP/1.1"),
                  HeadStatus::Smuggling, "Transfer-Encoding");
  }
  expect_status(get_with("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "POST / HTTP/1.1"),
                HeadStatus::Smuggling, "more than one Transfer-Encoding");
}

TEST(HttpHead, TransferEncodingInHttp10IsSmuggling) {
  expect_status("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", HeadStatus::Smuggling, "HTTP/1.0");
}

TEST(HttpHead, UnderscoreSpellingsOfFramingHeadersAreSmuggling) {
  for (std::string_view name : {"Content_Length", "transfer_encoding", "Transfer_Encoding", "HOST_"}) {
    HeadStatus expect = name == "HOST_" ? HeadStatus::Done : HeadStatus::Smuggling;
    HeadResult r = parse(get_with("Host: a\r\n" + std::string(name) + ": 5\r\n"));
    EXPECT_EQ(r.status, expect) << name << ": " << r.error;
  }
  expect_done(get_with("Host: a\r\nX_Custom_Header: 1\r\n"));
}

// ---- Line syntax ----

TEST(HttpHead, ObsFoldIsMalformed) {
  expect_status(get_with("Host: a\r\nX-Long: one\r\n two\r\n"), HeadStatus::Malformed, "obs-fold");
  expect_status(get_with("Host: a\r\n\tX: y\r\n"), HeadStatus::Malformed, "obs-fold");
  expect_status(get_with(" Host: a\r\n"), HeadStatus::Malformed, "obs-fold");
}

TEST(HttpHead, BareLineEndsAreMalformed) {
  expect_status("GET / HTTP/1.1\nHost: a\r\n\r\n", HeadStatus::Malformed, "bare LF");
  expect_status("GET / HTTP/1.1\r\nHost: a\n\r\n", HeadStatus::Malformed, "bare LF");
  expect_status("GET / HTTP/1.1\r\nHost: a\r\n\n", HeadStatus::Malformed, "bare LF");
  expect_status("GET / HTTP/1.1\r\nHost: a\r\nX: 1\rY: 2\r\n\r\n", HeadStatus::Malformed, "invalid byte");
  expect_status("GET / HTTP/1.1\rHost: a\r\n\r\n", HeadStatus::Malformed, "CR without LF");
  expect_status("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", HeadStatus::Malformed);
}

TEST(HttpHead, HeaderNameRules) {
  expect_status(get_with("Host : a\r\n"), HeadStatus::Malformed, "whitespace before ':'");
  expect_status(get_with("Host: a\r\nContent-Length\t: 5\r\n"), HeadStatus::Malformed, "whitespace before ':'");
  expect_status(get_with("Host: a\r\n: x\r\n"), HeadStatus::Malformed, "empty header name");
  expect_status(get_with("Host: a\r\nNoColon\r\n"), HeadStatus::Malformed, "without ':'");
  expect_status(get_with("Host: a\r\nX Y: 1\r\n"), HeadStatus::Malformed, "invalid header name");
  expect_status(get_with("Host: a\r\nX(Y): 1\r\n"), HeadStatus::Malformed, "invalid header name");
}

TEST(HttpHead, HeaderValueBytes) {
  expect_done(get_with("Host: a\r\nX: caf\xc3\xa9 \"q\" \t<>\r\nEmpty:\r\n"));
  expect_status(get_with("Host: a\r\n" + std::string("X: a\0b\r\n", 8)), HeadStatus::Malformed, "invalid byte");
  expect_status(get_with("Host: a\r\nX: a\x7f\r\n"), HeadStatus::Malformed, "invalid byte");
  expect_status(get_with("Host: a\r\nX: a\x01\r\n"), HeadStatus::Malformed, "invalid byte");
}

// ---- Request line ----

TEST(HttpHead, RequestLineShape) {
  expect_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "empty request target");
  expect_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "version");
  expect_status("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "version");
  expect_status("GET / http/1.1\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "version");
  expect_status("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HeadStatus::Malformed, "junk after");
  expect_status("GET / HTTP/1.10\r\nHost: a\r\n\r\n", HeadStatus::Malformed, "junk after");
  expect_status("GET /\r\n", HeadStatus::Malformed, "without HTTP version");
  expect_status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HeadStatus::Http2, "HTTP/2");  // see Http2PrefaceHasItsOwnVerdict
}

// ---- Not HTTP ----

TEST(HttpHead, NotHttpEarly) {
  std::string tls = "\x16\x03\x01\x02\x00\x01";
  EXPECT_EQ(parse(tls.substr(0, 1)).status, HeadStatus::NotHttp);
  std::string ssh = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
  EXPECT_EQ(parse(ssh.substr(0, 4)).status, HeadStatus::NeedMore);  // "SSH-" could start a method
  EXPECT_EQ(parse(ssh.substr(0, 5)).status, HeadStatus::NotHttp);
  expect_status(ssh, HeadStatus::NotHttp);
  for (std::string_view s : {"get / HTTP/1.1\r\n"sv, "\r\nGET / HTTP/1.1\r\n"sv, " GET / HTTP/1.1\r\n"sv, "GET\r\n"sv,
                             "G\x00T / HTTP/1.1\r\n"sv, "-GET / HTTP/1.1\r\n"sv, "\x80\x01"sv}) {
    expect_status(s, HeadStatus::NotHttp);
  }
  // A first word longer than any method: decided at byte 17.
  std::string word = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  EXPECT_EQ(parse(word.substr(0, 16)).status, HeadStatus::NeedMore);
  EXPECT_EQ(parse(word.substr(0, 17)).status, HeadStatus::NotHttp);
  EXPECT_EQ(parse("").status, HeadStatus::NeedMore);
}

// ---- Size bound ----

TEST(HttpHead, TooLarge) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (s.size() < kMaxHttpHeadBytes + 100) s += "X-Filler: " + std::string(100, 'f') + "\r\n";
  EXPECT_EQ(parse(s).status, HeadStatus::TooLarge);
  EXPECT_EQ(parse(std::string_view(s).substr(0, kMaxHttpHeadBytes)).status, HeadStatus::TooLarge);
  EXPECT_EQ(parse(std::string_view(s).substr(0, kMaxHttpHeadBytes - 1)).status, HeadStatus::NeedMore);
  std::string long_target = "GET /" + std::string(kMaxHttpHeadBytes, 'a');
  EXPECT_EQ(parse(long_target).status, HeadStatus::TooLarge);
}

TEST(HttpHead, LargestHeadThatFits) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
  s += std::string(kMaxHttpHeadBytes - s.size() - 4, 'v') + "\r\n\r\n";
  ASSERT_EQ(s.size(), kMaxHttpHeadBytes);
  HeadResult r = parse(s + "BODY");
  ASSERT_EQ(r.status, HeadStatus::Done) << r.error;
  EXPECT_EQ(r.head.head_bytes, kMaxHttpHeadBytes);
  std::string over = s;
  over.insert(over.size() - 4, "v");
  EXPECT_EQ(parse(over).status, HeadStatus::TooLarge);
}

// ---- Feeding and pipelining ----

TEST(HttpHead, ByteAtATimeIsNeedMoreUntilTheBlankLine) {
  std::string s = "POST /upload HTTP/1.1\r\nHost: up.example\r\nContent-Length: 3\r\n\r\nabc";
  HeadResult full = parse(s);
  ASSERT_EQ(full.status, HeadStatus::Done);
  for (size_t n = 0; n < full.head.head_bytes; ++n) ASSERT_EQ(parse(s.substr(0, n)).status, HeadStatus::NeedMore) << n;
  for (size_t n = full.head.head_bytes; n <= s.size(); ++n) {
    HeadResult r = parse(s.substr(0, n));
    ASSERT_EQ(r.status, HeadStatus::Done) << n;
    ASSERT_EQ(r.head, full.head) << n;
  }
}

// The proxy's loop: parse a head, skip its body, parse the next.
std::vector<HeadResult> parse_pipeline(std::string_view s) {
  std::vector<HeadResult> out;
  size_t pos = 0;
  while (pos < s.size()) {
    HeadResult r = parse(s.substr(pos));
    out.push_back(r);
    if (r.status != HeadStatus::Done) break;
    pos += r.head.head_bytes;
    if (auto body = fixed_body_length(r.head)) {
      pos += *body;
      continue;
    }
    ChunkedDecoder chunks;
    auto fed = chunks.feed(span_of(s.substr(pos)));
    if (fed.status != ChunkStatus::Done) break;
    pos += fed.consumed;
  }
  return out;
}

TEST(HttpHead, PipelinedRequestsAreEachChecked) {
  std::string s =
      "POST /a HTTP/1.1\r\nHost: allowed.example\r\nContent-Length: 5\r\n\r\nhello"
      "GET /b HTTP/1.1\r\nHost: evil.example\r\n\r\n"
      "POST /c HTTP/1.1\r\nHost: allowed.example\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: "
      "1\r\n\r\n"
      "GET /d HTTP/1.1\r\nHost: other.example\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto heads = parse_pipeline(s);
  ASSERT_EQ(heads.size(), 4u);
  EXPECT_EQ(heads[0].head.host, "allowed.example");
  EXPECT_EQ(heads[1].status, HeadStatus::Done);
  EXPECT_EQ(heads[1].head.host, "evil.example");
  EXPECT_EQ(heads[1].head.path, "/b");
  EXPECT_EQ(heads[2].head.path, "/c");
  EXPECT_TRUE(heads[2].head.chunked);
  EXPECT_EQ(heads[3].status, HeadStatus::Smuggling);
  EXPECT_EQ(heads[3].head.host, "other.example");
}

TEST(HttpHead, SecondRequestStillArriving) {
  std::string s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo";
  HeadResult first = parse(s);
  ASSERT_EQ(first.status, HeadStatus::Done);
  EXPECT_EQ(parse(std::string_view(s).substr(first.head.head_bytes)).status, HeadStatus::NeedMore);
}

// ---- ChunkedDecoder ----

ChunkedDecoder::Result feed_all(ChunkedDecoder& d, std::string_view s) { return d.feed(span_of(s)); }

TEST(Chunked, WholeBody) {
  std::string body = "5\r\nhello\r\n1A;name=\"v a\";x\r\n" + std::string(26, 'z') + "\r\n0\r\n\r\nNEXT";
  ChunkedDecoder d;
  auto r = feed_all(d, body);
  EXPECT_EQ(r.status, ChunkStatus::Done) << d.error();
  EXPECT_EQ(r.consumed, body.size() - 4);
  EXPECT_EQ(d.data_bytes(), 31u);
  EXPECT_EQ(d.body_bytes(), body.size() - 4);
  auto again = feed_all(d, "more");
  EXPECT_EQ(again.status, ChunkStatus::Done);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(Chunked, ByteAtATimeMatchesWhole) {
  std::string body = "a\r\n0123456789\r\nFf\r\n" + std::string(255, 'q') + "\r\n000;last\r\nTrailer-A: 1\r\nB:\r\n\r\n";
  ChunkedDecoder d;
  size_t consumed = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    ASSERT_EQ(d.status(), ChunkStatus::NeedMore) << i;
    auto r = d.feed(span_of(std::string_view(body).substr(i, 1)));
    consumed += r.consumed;
  }
  EXPECT_EQ(d.status(), ChunkStatus::Done) << d.error();
  EXPECT_EQ(consumed, body.size());
  EXPECT_EQ(d.data_bytes(), 265u);
}

TEST(Chunked, StrictSyntax) {
  for (std::string_view bad :
       {"5 \r\nhello\r\n0\r\n\r\n"sv, "0x5\r\nhello\r\n0\r\n\r\n"sv, "-5\r\n"sv, " 5\r\n"sv, "5\nhello"sv,
        "5\r\nhelloX\r\n"sv, "5\r\nhello\n0\r\n\r\n"sv, "\r\n"sv, "g\r\n"sv, "0\r\n\r\r"sv, "0\r\n X: 1\r\n\r\n"sv,
        "0\r\nX : 1\r\n\r\n"sv, "0\r\nX: a\x01\r\n\r\n"sv, "0\r\nX: 1\n\r\n"sv, "5;a\x00\r\n"sv, "5;a\nb\r\n"sv,
        "0\r\n:x\r\n\r\n"sv, "10000000000000000\r\n"sv, "0\r\n\r\nextra"sv}) {
    ChunkedDecoder d;
    auto r = feed_all(d, bad);
    if (bad == std::string_view("0\r\n\r\nextra")) {
      EXPECT_EQ(r.status, ChunkStatus::Done);
      EXPECT_EQ(r.consumed, 5u);
      continue;
    }
    EXPECT_EQ(r.status, ChunkStatus::Malformed) << bad;
    EXPECT_FALSE(d.error().empty());
  }
  // 16 hex digits is the most; leading zeros count.
  ChunkedDecoder d;
  EXPECT_EQ(feed_all(d, "0000000000000001\r\nx\r\n0\r\n\r\n").status, ChunkStatus::Done);
}

TEST(Chunked, Bounds) {
  ChunkedDecoder ext;
  EXPECT_EQ(feed_all(ext, "1;" + std::string(ChunkedDecoder::kMaxLineBytes, 'e')).status, ChunkStatus::TooLarge);
  ChunkedDecoder trailer;
  std::string t = "0\r\n";
  while (t.size() < kMaxHttpHeadBytes + 10) t += "X: " + std::string(60, 't') + "\r\n";
  EXPECT_EQ(feed_all(trailer, t).status, ChunkStatus::TooLarge);
  // A huge chunk is fine: its data is skipped, not buffered.
  ChunkedDecoder big;
  EXPECT_EQ(feed_all(big, "FFFFFFFFFFFFFFFF\r\n" + std::string(1000, 'd')).status, ChunkStatus::NeedMore);
  EXPECT_EQ(big.data_bytes(), 1000u);
}

TEST(HttpHead, StatusNames) {
  EXPECT_STREQ(to_string(HeadStatus::Smuggling), "smuggling");
  EXPECT_STREQ(to_string(HeadStatus::NotHttp), "not-http");
}

}  // namespace
