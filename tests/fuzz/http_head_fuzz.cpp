// Fuzz the HTTP/1.x head parser and the chunked decoder (proxy/http_head.h).
// Besides "no crash, no sanitizer report", it checks what the proxy relies on:
//  - prefix stability: a prefix's verdict, once not NeedMore, is the whole
//    input's verdict (same head, same error); no NeedMore after a verdict;
//  - the bound: kMaxHttpHeadBytes always get a verdict;
//  - Done ends exactly at head_bytes; a Done head is self-consistent;
//  - a head rewritten without its h2c offer is itself a Done head that
//    parses to the same request (no offer left, nothing else changed);
//  - pipelining: after each Done head its body is skipped (fixed length, or
//    the chunked decoder) and the next head parsed, as the proxy does;
//  - the chunked decoder gives the same verdict and length fed whole or in
//    pieces.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "proxy/client_hello.h"
#include "proxy/http_head.h"

namespace {

using egressd::proxy::ChunkedDecoder;
using egressd::proxy::ChunkStatus;
using egressd::proxy::HeadResult;
using egressd::proxy::HeadStatus;
using egressd::proxy::kMaxHttpHeadBytes;
using egressd::proxy::parse_http_head;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

bool same(const HeadResult& a, const HeadResult& b) {
  return a.status == b.status && a.error == b.error && a.head == b.head;
}

void check_done_head(const HeadResult& r, size_t size) {
  const auto& h = r.head;
  check(h.head_bytes >= 16 && h.head_bytes <= size && h.head_bytes <= kMaxHttpHeadBytes, "head_bytes in range");
  check(!h.method.empty() && h.method != "CONNECT", "method");
  check(h.version == "HTTP/1.0" || h.version == "HTTP/1.1", "version");
  check(!(h.chunked && h.content_length), "chunked with Content-Length");
  check(!h.path.empty(), "empty path");
  check(h.version == "HTTP/1.0" || !h.host.empty(), "HTTP/1.1 without host");
  check(h.version == "HTTP/1.1" || !h.chunked, "HTTP/1.0 chunked");
  if (!h.host.empty()) {
    auto again = egressd::proxy::canonical_host(h.host, true);
    check(again && again->name == h.host && again->is_ip == h.host_is_ip, "host is not canonical");
  }
}

// What the proxy forwards instead of a head that offered h2c.
void check_rewritten(const HeadResult& r) {
  const auto& h = r.head;
  if (h.rewritten.empty()) return;
  check(h.rewritten.size() < h.head_bytes, "rewritten head not shorter");
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(h.rewritten.data()), h.rewritten.size());
  HeadResult again = parse_http_head(bytes);
  check(again.status == HeadStatus::Done, "rewritten head does not parse");
  const auto& g = again.head;
  check(g.rewritten.empty(), "rewritten head still offers h2c");
  check(g.head_bytes == h.rewritten.size(), "rewritten head has trailing bytes");
  check(g.method == h.method && g.target == h.target && g.version == h.version && g.host == h.host &&
            g.host_port == h.host_port && g.path == h.path && g.content_length == h.content_length &&
            g.chunked == h.chunked && g.keep_alive == h.keep_alive && g.upgrade == h.upgrade &&
            g.has_override == h.has_override,
        "rewritten head reads as another request");
}

void check_head(std::span<const uint8_t> in) {
  HeadResult full = parse_http_head(in);
  check(full.status != HeadStatus::NeedMore || in.size() < kMaxHttpHeadBytes, "NeedMore past the bound");
  check((full.status == HeadStatus::Done || full.status == HeadStatus::NeedMore) == full.error.empty(),
        "error set exactly when there is a verdict other than Done");
  if (full.status == HeadStatus::Done) {
    check_done_head(full, in.size());
    check_rewritten(full);
    size_t end = full.head.head_bytes;
    check(same(parse_http_head(in.first(end)), full), "Done at head_bytes");
    check(parse_http_head(in.first(end - 1)).status == HeadStatus::NeedMore, "NeedMore before head_bytes");
  }
  // The first prefix with a verdict, by bisection (verdicts are monotone
  // if the parser is right); then every prefix before it must be NeedMore
  // and every one from it on must equal the whole: checked at the boundary
  // and at ~64 spread lengths.
  size_t first = in.size() + 1;
  if (full.status != HeadStatus::NeedMore) {
    size_t lo = 0, hi = in.size();
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (parse_http_head(in.first(mid)).status == HeadStatus::NeedMore)
        lo = mid + 1;
      else
        hi = mid;
    }
    first = lo;
    check(same(parse_http_head(in.first(first)), full), "first verdict differs from the whole input's");
    if (first > 0)
      check(parse_http_head(in.first(first - 1)).status == HeadStatus::NeedMore, "verdict before the first one");
  }
  check(in.size() < kMaxHttpHeadBytes || first <= kMaxHttpHeadBytes, "no verdict within the bound");
  size_t step = std::max<size_t>(1, in.size() / 64);
  for (size_t n = 0; n <= in.size(); n += step) {
    HeadResult r = parse_http_head(in.first(n));
    if (n < first) {
      check(r.status == HeadStatus::NeedMore, "verdict before the first one (spread)");
    } else {
      check(same(r, full), "prefix verdict differs from the whole input's");
    }
  }
}

// Whole, then in pieces whose sizes come from the data itself.
ChunkedDecoder::Result check_chunked(std::span<const uint8_t> in) {
  ChunkedDecoder whole;
  ChunkedDecoder::Result a = whole.feed(in);
  check(a.consumed <= in.size(), "chunked consumed in range");
  check(a.status != ChunkStatus::NeedMore || a.consumed == in.size(), "NeedMore left bytes");
  ChunkedDecoder pieces;
  size_t consumed = 0;
  for (size_t pos = 0; pos < in.size() && pieces.status() == ChunkStatus::NeedMore;) {
    size_t n = std::min<size_t>(in.size() - pos, (in[pos] % 7) + 1);
    auto r = pieces.feed(in.subspan(pos, n));
    consumed += r.consumed;
    pos += n;
  }
  check(pieces.status() == a.status, "chunked verdict depends on feeding");
  check(consumed == a.consumed, "chunked length depends on feeding");
  check(pieces.body_bytes() == whole.body_bytes() && pieces.data_bytes() == whole.data_bytes(), "chunked counters");
  if (pieces.status() != ChunkStatus::NeedMore) check(pieces.feed(in).consumed == 0, "feed after a verdict");
  return a;
}

// The proxy's loop over a kept-alive connection.
void check_pipeline(std::span<const uint8_t> in) {
  size_t pos = 0;
  for (int i = 0; i < 8 && pos < in.size(); ++i) {
    HeadResult r = parse_http_head(in.subspan(pos));
    if (r.status != HeadStatus::Done) return;
    pos += r.head.head_bytes;
    if (auto len = egressd::proxy::fixed_body_length(r.head)) {
      if (*len > in.size() - pos) return;
      pos += static_cast<size_t>(*len);
      continue;
    }
    ChunkedDecoder::Result c = check_chunked(in.subspan(pos));
    if (c.status != ChunkStatus::Done) return;
    pos += c.consumed;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  check_head(in);
  check_pipeline(in);
  check_chunked(in);
  return 0;
}
