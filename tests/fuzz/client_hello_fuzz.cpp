// Fuzz the ClientHello parser (proxy/client_hello.h). Besides "no crash, no
// sanitizer report", it checks what the proxy relies on:
//  - prefix stability: a prefix's verdict, once not NeedMore, is the whole
//    input's verdict (same info, same error); no NeedMore after a verdict;
//  - the bound: kMaxClientHelloBytes of stream always get a verdict;
//  - Done ends exactly at bytes_consumed (NeedMore one byte earlier);
//  - record splitting does not change what the hello says: the input minus
//    its first byte is wrapped as a ClientHello body, in one record and in
//    records of 1..16 bytes (chosen by the first byte), and both must agree.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "proxy/client_hello.h"

namespace {

using egressd::proxy::HelloResult;
using egressd::proxy::HelloStatus;
using egressd::proxy::kMaxClientHelloBytes;
using egressd::proxy::parse_client_hello;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

bool same(const HelloResult& a, const HelloResult& b) {
  return a.status == b.status && a.error == b.error && a.info == b.info;
}

void check_stream(std::span<const uint8_t> in) {
  HelloResult full = parse_client_hello(in);
  check(full.status != HelloStatus::NeedMore || in.size() < kMaxClientHelloBytes, "NeedMore past the bound");
  check((full.status == HelloStatus::Done || full.status == HelloStatus::NeedMore) == full.error.empty(),
        "error set exactly when there is a verdict other than Done");
  if (full.status == HelloStatus::Done) {
    size_t end = full.info.bytes_consumed;
    check(end > 0 && end <= in.size() && end <= kMaxClientHelloBytes, "bytes_consumed in range");
    check(same(parse_client_hello(in.first(end)), full), "Done at bytes_consumed");
    check(parse_client_hello(in.first(end - 1)).status == HelloStatus::NeedMore, "NeedMore before bytes_consumed");
    check(!full.info.has_sni || !full.info.sni.empty(), "has_sni with an empty name");
    check(full.info.has_sni || (!full.info.sni_is_ip && full.info.sni.empty()), "SNI fields without has_sni");
  }
  // The first prefix with a verdict, by bisection (verdicts are monotone
  // if the parser is right); then every prefix before it must be NeedMore
  // and every one from it on must equal the whole: checked at the boundary
  // and at ~64 spread lengths.
  size_t first = in.size() + 1;
  if (full.status != HelloStatus::NeedMore) {
    size_t lo = 0, hi = in.size();
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (parse_client_hello(in.first(mid)).status == HelloStatus::NeedMore)
        lo = mid + 1;
      else
        hi = mid;
    }
    first = lo;
    check(same(parse_client_hello(in.first(first)), full), "first verdict differs from the whole input's");
    if (first > 0)
      check(parse_client_hello(in.first(first - 1)).status == HelloStatus::NeedMore, "verdict before the first one");
  }
  check(in.size() < kMaxClientHelloBytes || first <= kMaxClientHelloBytes, "no verdict within the bound");
  size_t step = std::max<size_t>(1, in.size() / 64);
  for (size_t n = 0; n <= in.size(); n += step) {
    HelloResult r = parse_client_hello(in.first(n));
    if (n < first) {
      check(r.status == HelloStatus::NeedMore, "verdict before the first one (spread)");
    } else {
      check(same(r, full), "prefix verdict differs from the whole input's");
    }
  }
}

std::vector<uint8_t> records(std::span<const uint8_t> body, size_t fragment) {
  std::vector<uint8_t> message = {1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
                                  static_cast<uint8_t>(body.size())};
  message.insert(message.end(), body.begin(), body.end());
  std::vector<uint8_t> out;
  for (size_t pos = 0; pos < message.size(); pos += fragment) {
    size_t n = std::min(fragment, message.size() - pos);
    out.insert(out.end(), {22, 3, 1, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    out.insert(out.end(), message.begin() + static_cast<std::ptrdiff_t>(pos),
               message.begin() + static_cast<std::ptrdiff_t>(pos + n));
  }
  return out;
}

void check_resplit(std::span<const uint8_t> in) {
  if (in.empty() || in.size() > 16000) return;
  std::span<const uint8_t> body = in.subspan(1);
  std::vector<uint8_t> one = records(body, 16384);
  std::vector<uint8_t> split = records(body, static_cast<size_t>(in[0] % 16) + 1);
  HelloResult a = parse_client_hello(one);
  HelloResult b = parse_client_hello(split);
  if (one.size() <= kMaxClientHelloBytes) check(a.status != HelloStatus::NeedMore, "complete record is NeedMore");
  if (b.status == HelloStatus::Done) {
    check(a.status == HelloStatus::Done, "split Done but whole not");
  }
  if (a.status == HelloStatus::Done && split.size() <= kMaxClientHelloBytes) {
    check(b.status == HelloStatus::Done, "whole Done but split not");
  }
  if (a.status == HelloStatus::Done && b.status == HelloStatus::Done) {
    check(b.info.bytes_consumed == split.size(), "split bytes_consumed");
    b.info.bytes_consumed = a.info.bytes_consumed;
    check(a.info == b.info, "split info differs");
  }
  if (a.status == HelloStatus::Malformed && b.status != HelloStatus::TooLarge) {
    check(b.status == HelloStatus::Malformed && a.error == b.error, "whole Malformed, split not the same");
  }
  check_stream(split);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  check_stream(in);
  check_resplit(in);
  return 0;
}
