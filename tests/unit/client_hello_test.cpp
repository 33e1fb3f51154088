// Test the ClientHello parser (proxy/client_hello.h): hellos from the
// builder and from real clients, fed whole, a byte at a time and split into
// records; every kind of breakage; the size bound; non-TLS streams.
#include "proxy/client_hello.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../support/captured_client_hellos.h"
#include "../support/client_hello_builder.h"

namespace egressd::proxy {
// gtest prints statuses by name.
void PrintTo(HelloStatus s, std::ostream* os) { *os << to_string(s); }
}  // namespace egressd::proxy

namespace {

using egressd::proxy::canonical_host;
using egressd::proxy::ClientHelloInfo;
using egressd::proxy::HelloResult;
using egressd::proxy::HelloStatus;
using egressd::proxy::kMaxClientHelloBytes;
using egressd::proxy::parse_client_hello;
using egressd::testing::Bytes;
using egressd::testing::ClientHelloBuilder;
using egressd::testing::to_records;

HelloResult parse(const Bytes& b) { return parse_client_hello(b); }

template <size_t N>
Bytes bytes_of(const uint8_t (&a)[N]) {
  return Bytes(a, a + N);
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The handshake message inside a stream of records (test helper: undoes
// to_records for well-formed streams).
Bytes message_of(const Bytes& stream) {
  Bytes out;
  for (size_t pos = 0; pos + 5 <= stream.size();) {
    size_t len = static_cast<size_t>(stream[pos + 3]) << 8 | stream[pos + 4];
    out.insert(out.end(), stream.begin() + static_cast<std::ptrdiff_t>(pos + 5),
               stream.begin() + static_cast<std::ptrdiff_t>(pos + 5 + len));
    pos += 5 + len;
  }
  return out;
}

// Every prefix of a stream is NeedMore until some length, and from there
// on every prefix has the full stream's verdict (with the same info).
void expect_prefix_stable(const Bytes& stream) {
  HelloResult full = parse(stream);
  bool decided = false;
  for (size_t n = 0; n <= stream.size(); ++n) {
    HelloResult r = parse_client_hello(std::span<const uint8_t>(stream).first(n));
    if (!decided && r.status == HelloStatus::NeedMore) continue;
    decided = true;
    ASSERT_EQ(r.status, full.status) << "prefix " << n << " of " << stream.size() << ": " << r.error;
    ASSERT_EQ(r.error, full.error) << "prefix " << n;
    ASSERT_EQ(r.info, full.info) << "prefix " << n;
  }
}

// A Done stream: NeedMore for every shorter prefix, Done with the same info
// from bytes_consumed on.
void expect_done_exactly_at_end(const Bytes& stream) {
  HelloResult full = parse(stream);
  ASSERT_EQ(full.status, HelloStatus::Done) << full.error;
  for (size_t n = 0; n < full.info.bytes_consumed; ++n) {
    HelloResult r = parse_client_hello(std::span<const uint8_t>(stream).first(n));
    ASSERT_EQ(r.status, HelloStatus::NeedMore) << "prefix " << n << ": " << r.error;
  }
  expect_prefix_stable(stream);
}

// ---- Well-formed hellos ----

TEST(ClientHello, Sni) {
  Bytes b = ClientHelloBuilder().sni("api.example.com").bytes();
  HelloResult r = parse(b);
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(r.info.sni, "api.example.com");
  EXPECT_TRUE(r.info.has_sni);
  EXPECT_FALSE(r.info.sni_is_ip);
  EXPECT_FALSE(r.info.has_ech);
  EXPECT_TRUE(r.info.alpn.empty());
  EXPECT_EQ(r.info.legacy_version, 0x0303);
  EXPECT_EQ(r.info.bytes_consumed, b.size());
}

TEST(ClientHello, SniIsLowerCasedAndLosesItsTrailingDot) {
  HelloResult r = parse(ClientHelloBuilder().sni("API.Example.COM.").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "api.example.com");
}

TEST(ClientHello, SniWithUnderscoreAndHyphen) {
  HelloResult r = parse(ClientHelloBuilder().sni("_acme-challenge.my-host.example").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "_acme-challenge.my-host.example");
}

TEST(ClientHello, NoSni) {
  HelloResult r = parse(ClientHelloBuilder().alpn({"h2"}).bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_FALSE(r.info.has_sni);
  EXPECT_EQ(r.info.sni, "");
  EXPECT_EQ(r.info.alpn, std::vector<std::string>{"h2"});
}

TEST(ClientHello, NoExtensionsAtAll) {
  Bytes b = ClientHelloBuilder().no_extensions().bytes();
  HelloResult r = parse(b);
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_FALSE(r.info.has_sni);
  EXPECT_EQ(r.info.bytes_consumed, b.size());
}

TEST(ClientHello, EmptyExtensionsBlock) {
  HelloResult r = parse(ClientHelloBuilder().tls12().bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
}

TEST(ClientHello, Ipv4Sni) {
  HelloResult r = parse(ClientHelloBuilder().sni("203.0.113.7").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.info.has_sni);
  EXPECT_TRUE(r.info.sni_is_ip);
  EXPECT_EQ(r.info.sni, "203.0.113.7");
}

TEST(ClientHello, NumericFormsThatResolversTakeAsAddressesAreIps) {
  for (const char* sni : {"127.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.0.0.1."}) {
    HelloResult r = parse(ClientHelloBuilder().sni(sni).bytes());
    ASSERT_EQ(r.status, HelloStatus::Done) << sni << ": " << r.error;
    EXPECT_TRUE(r.info.sni_is_ip) << sni;
    EXPECT_EQ(r.info.sni, "127.0.0.1") << sni;
  }
  // Not numeric: a name whose labels merely look like numbers.
  HelloResult r = parse(ClientHelloBuilder().sni("1.2.3.256").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_FALSE(r.info.sni_is_ip);
}

TEST(ClientHello, Ipv6Sni) {
  HelloResult r = parse(ClientHelloBuilder().sni("2001:DB8:0::1").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.info.sni_is_ip);
  EXPECT_EQ(r.info.sni, "2001:db8::1");
}

TEST(ClientHello, Alpn) {
  HelloResult r = parse(ClientHelloBuilder().sni("a.example").alpn({"h2", "http/1.1"}).bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
}

TEST(ClientHello, EchFlagsAndKeepsTheOuterSni) {
  HelloResult r = parse(ClientHelloBuilder().sni("public.example.net").ech().bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.info.has_ech);
  EXPECT_EQ(r.info.sni, "public.example.net");
}

TEST(ClientHello, EchWithoutSni) {
  HelloResult r = parse(ClientHelloBuilder().ech(0).bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_TRUE(r.info.has_ech);
  EXPECT_FALSE(r.info.has_sni);
}

TEST(ClientHello, Tls12AndOlderVersions) {
  HelloResult r12 = parse(ClientHelloBuilder().tls12().sni("old.example").bytes());
  ASSERT_EQ(r12.status, HelloStatus::Done) << r12.error;
  EXPECT_EQ(r12.info.legacy_version, 0x0303);
  EXPECT_EQ(r12.info.sni, "old.example");
  HelloResult r10 = parse(ClientHelloBuilder().tls12().legacy_version(0x0301).record_version(0x0300).bytes());
  ASSERT_EQ(r10.status, HelloStatus::Done) << r10.error;
  EXPECT_EQ(r10.info.legacy_version, 0x0301);
  HelloResult r13 = parse(ClientHelloBuilder().sni("new.example").record_version(0x0303).bytes());
  ASSERT_EQ(r13.status, HelloStatus::Done) << r13.error;
  EXPECT_EQ(r13.info.legacy_version, 0x0303);
}

TEST(ClientHello, EmptySessionIdAndPadding) {
  HelloResult r = parse(ClientHelloBuilder().sni("p.example").session_id_bytes(0).padding(400).bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "p.example");
}

TEST(ClientHello, UnknownExtensionsAreSkipped) {
  HelloResult r = parse(ClientHelloBuilder()
                            .sni("x.example")
                            .extension(0x1a1a, {})            // GREASE
                            .extension(0x4469, {1, 2, 3, 4})  // application_settings
                            .bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "x.example");
}

TEST(ClientHello, LongestNames) {
  std::string label63(63, 'a');
  HelloResult r = parse(ClientHelloBuilder().sni(label63 + ".example").bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  // 255 bytes: labels of 63, 63, 63 and 62 bytes, their dots and a trailing dot.
  std::string name = label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b') + ".";
  ASSERT_EQ(name.size(), 255u);
  r = parse(ClientHelloBuilder().sni(name).bytes());
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, name.substr(0, 254));
}

// ---- Reassembly ----

TEST(ClientHello, ByteAtATimeIsNeedMoreUntilTheLastByte) {
  expect_done_exactly_at_end(ClientHelloBuilder().sni("api.example.com").alpn({"h2", "http/1.1"}).bytes());
  expect_done_exactly_at_end(ClientHelloBuilder().no_extensions().bytes());
  expect_done_exactly_at_end(ClientHelloBuilder().sni("e.example").ech().padding(100).bytes());
}

TEST(ClientHello, SplitAcrossRecordsGivesTheSameInfo) {
  ClientHelloBuilder base;
  base.sni("split.example.com").alpn({"h2", "http/1.1"}).ech(50);
  ClientHelloInfo whole = parse(base.bytes()).info;
  for (std::vector<size_t> sizes :
       std::vector<std::vector<size_t>>{{1}, {2}, {3}, {4}, {5}, {7}, {100}, {3, 1000}, {300, 1}}) {
    Bytes b = ClientHelloBuilder(base).record_sizes(sizes).bytes();
    HelloResult r = parse(b);
    ASSERT_EQ(r.status, HelloStatus::Done) << sizes[0] << ": " << r.error;
    ClientHelloInfo expect = whole;
    expect.bytes_consumed = b.size();
    EXPECT_EQ(r.info, expect) << sizes[0];
  }
}

TEST(ClientHello, OneByteRecordsFedOneByteAtATime) {
  expect_done_exactly_at_end(ClientHelloBuilder().sni("tiny.example").record_size(1).bytes());
}

TEST(ClientHello, BytesAfterTheHelloAreLeftAlone) {
  Bytes hello = ClientHelloBuilder().sni("api.example.com").bytes();
  // TLS 1.3 middlebox-compat ChangeCipherSpec, then 0-RTT application data.
  Bytes after = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb};
  HelloResult r = parse(concat(hello, after));
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.bytes_consumed, hello.size());
  expect_prefix_stable(concat(hello, after));
}

// ---- Real clients ----

struct Captured {
  const char* name;
  Bytes bytes;
  std::string sni;
  std::vector<std::string> alpn;
};

std::vector<Captured> captured() {
  using namespace egressd::testing;
  return {
      {"openssl-tls13", bytes_of(kOpensslTls13Hello), "api.example.com", {"h2", "http/1.1"}},
      {"openssl-tls12", bytes_of(kOpensslTls12Hello), "registry.example.org", {}},
      {"curl", bytes_of(kCurlHello), "pypi.example.org", {"h2", "http/1.1"}},
      {"python", bytes_of(kPythonHello), "files.example.net", {}},
  };
}

TEST(ClientHello, RealClients) {
  for (const auto& c : captured()) {
    HelloResult r = parse(c.bytes);
    ASSERT_EQ(r.status, HelloStatus::Done) << c.name << ": " << r.error;
    EXPECT_EQ(r.info.sni, c.sni) << c.name;
    EXPECT_TRUE(r.info.has_sni) << c.name;
    EXPECT_FALSE(r.info.sni_is_ip) << c.name;
    EXPECT_FALSE(r.info.has_ech) << c.name;
    EXPECT_EQ(r.info.alpn, c.alpn) << c.name;
    EXPECT_EQ(r.info.legacy_version, 0x0303) << c.name;
    EXPECT_EQ(r.info.bytes_consumed, c.bytes.size()) << c.name;
  }
}

TEST(ClientHello, RealClientsByteAtATimeAndResplit) {
  for (const auto& c : captured()) {
    SCOPED_TRACE(c.name);
    expect_done_exactly_at_end(c.bytes);
    Bytes message = message_of(c.bytes);
    for (size_t size : {1, 2, 16, 100}) {
      Bytes b = to_records(message, {size});
      HelloResult r = parse(b);
      ASSERT_EQ(r.status, HelloStatus::Done) << size << ": " << r.error;
      EXPECT_EQ(r.info.sni, c.sni);
      EXPECT_EQ(r.info.bytes_consumed, b.size());
    }
  }
}

// ---- Breakage: never a crash, never a wrong Done ----

// Every byte of the message set to 0x00, 0xff and +1, in one record and in
// 3-byte records: the verdict is whatever it is, but prefix-stable, and a
// Done only where the mutation kept the hello well-formed.
TEST(ClientHello, MutatedBytesNeverCrashAndStayPrefixStable) {
  std::vector<Bytes> messages = {
      ClientHelloBuilder().sni("m.example").alpn({"h2"}).ech(8).message(),
      message_of(bytes_of(egressd::testing::kOpensslTls13Hello)),
  };
  for (const Bytes& message : messages) {
    for (size_t i = 0; i < message.size(); ++i) {
      for (int op = 0; op < 3; ++op) {
        Bytes m = message;
        m[i] = op == 0 ? 0x00 : op == 1 ? 0xff : static_cast<uint8_t>(m[i] + 1);
        for (size_t record : {size_t{16384}, size_t{3}}) {
          Bytes stream = to_records(m, {record});
          HelloResult r = parse(stream);
          if (r.status == HelloStatus::Done) {
            EXPECT_LE(r.info.bytes_consumed, stream.size());
          }
          if (i % 7 == 0 && record == 3) expect_prefix_stable(stream);  // bounded test time
        }
      }
    }
  }
}

// A message whose handshake length stops short at every point of the body:
// Malformed, except right after compression_methods (an extension-less hello).
TEST(ClientHello, TruncatedAtEveryOffset) {
  Bytes body = ClientHelloBuilder().sni("t.example").alpn({"h2"}).body();
  size_t no_extensions_end = 2 + 32 + 1 + 32 + 2 + 6 + 2;
  for (size_t k = 0; k < body.size(); ++k) {
    Bytes message = {1, 0, static_cast<uint8_t>(k >> 8), static_cast<uint8_t>(k)};
    message.insert(message.end(), body.begin(), body.begin() + static_cast<std::ptrdiff_t>(k));
    // A zero-length message gets a record of 4 bytes: still one record.
    HelloResult r = parse(to_records(message, {16384}));
    if (k == no_extensions_end) {
      EXPECT_EQ(r.status, HelloStatus::Done) << k;
    } else {
      EXPECT_EQ(r.status, HelloStatus::Malformed) << k;
    }
  }
}

// The stream cut anywhere: NeedMore, never anything else.
TEST(ClientHello, StreamCutAnywhereIsNeedMore) {
  Bytes b = ClientHelloBuilder().sni("cut.example").alpn({"h2"}).record_sizes({10, 33, 1}).bytes();
  for (size_t n = 0; n < b.size(); ++n)
    EXPECT_EQ(parse_client_hello(std::span<const uint8_t>(b).first(n)).status, HelloStatus::NeedMore) << n;
}

// ---- Size bound ----

TEST(ClientHello, TooLargeAsSoonAsTheLengthIsKnown) {
  Bytes b = ClientHelloBuilder().sni("big.example").padding(17000).record_size(1000).bytes();
  HelloResult r = parse_client_hello(std::span<const uint8_t>(b).first(9));
  EXPECT_EQ(r.status, HelloStatus::TooLarge) << r.error;
  EXPECT_EQ(parse(b).status, HelloStatus::TooLarge);
}

// The bound counts stream bytes: record header + handshake header + body.
TEST(ClientHello, LargestHelloThatFits) {
  ClientHelloBuilder base;
  base.sni("edge.example");
  size_t fixed = 5 + ClientHelloBuilder(base).padding(0).message().size();
  size_t pad = kMaxClientHelloBytes - fixed;
  Bytes fits = ClientHelloBuilder(base).padding(pad).bytes();
  ASSERT_EQ(fits.size(), kMaxClientHelloBytes);
  HelloResult r = parse(fits);
  ASSERT_EQ(r.status, HelloStatus::Done) << r.error;
  EXPECT_EQ(r.info.sni, "edge.example");
  EXPECT_EQ(parse(ClientHelloBuilder(base).padding(pad + 1).bytes()).status, HelloStatus::TooLarge);
  // Same message in two records: 5 more bytes of stream, over the bound.
  Bytes two = ClientHelloBuilder(base).padding(pad).record_size(8192).bytes();
  EXPECT_EQ(parse(two).status, HelloStatus::TooLarge);
}

TEST(ClientHello, ManyTinyRecordsHitTheBound) {
  // 16 KiB of stream in 1-byte records holds ~2.7 KiB of message.
  Bytes b = ClientHelloBuilder().sni("many.example").padding(3000).record_size(1).bytes();
  HelloResult r = parse(b);
  EXPECT_EQ(r.status, HelloStatus::TooLarge) << r.error;
  // And it is decided within the bound: the first kMax bytes say so.
  EXPECT_EQ(parse_client_hello(std::span<const uint8_t>(b).first(kMaxClientHelloBytes)).status, HelloStatus::TooLarge);
}

// ---- Not TLS ----

TEST(ClientHello, NotTlsOnTheFirstByte) {
  for (std::string_view s : {"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x80\x2e\x01\x03\x01", "P", "\x17"}) {
    Bytes b = text(s);
    EXPECT_EQ(parse(b).status, HelloStatus::NotTls) << s;
    EXPECT_EQ(parse_client_hello(std::span<const uint8_t>(b).first(1)).status, HelloStatus::NotTls) << s;
  }
}

TEST(ClientHello, RecordVersionMajorMustBe3) {
  EXPECT_EQ(parse({}).status, HelloStatus::NeedMore);
  EXPECT_EQ(parse({0x16}).status, HelloStatus::NeedMore);
  EXPECT_EQ(parse({0x16, 0x02}).status, HelloStatus::NotTls);
  EXPECT_EQ(parse({0x16, 0x03}).status, HelloStatus::NeedMore);
  EXPECT_EQ(parse({0x16, 0x03, 0x01, 0x00}).status, HelloStatus::NeedMore);
}

// ---- Malformed ----

Bytes with_message(Bytes message) { return to_records(message, {16384}); }

Bytes with_body(const Bytes& body) {
  Bytes m = {1, 0, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  m.insert(m.end(), body.begin(), body.end());
  return with_message(m);
}

void expect_malformed(const Bytes& b, std::string_view error_part) {
  HelloResult r = parse(b);
  EXPECT_EQ(r.status, HelloStatus::Malformed) << r.error;
  EXPECT_NE(r.error.find(error_part), std::string::npos) << r.error;
  expect_prefix_stable(b);
}

TEST(ClientHello, NotAClientHello) {
  Bytes m = ClientHelloBuilder().message();
  m[0] = 2;  // ServerHello
  expect_malformed(with_message(m), "not ClientHello");
  // Decided on the handshake type byte.
  EXPECT_EQ(parse_client_hello(std::span<const uint8_t>(with_message(m)).first(9)).status, HelloStatus::Malformed);
}

TEST(ClientHello, OtherRecordTypesBeforeTheHelloEnds) {
  Bytes b = ClientHelloBuilder().sni("i.example").record_size(40).bytes();
  for (uint8_t type : {20, 21, 23, 24}) {
    Bytes bad = b;
    bad[5 + 40] = type;  // second record
    expect_malformed(bad, "before the ClientHello ended");
  }
  Bytes bad = b;
  bad[5 + 40 + 1] = 2;  // second record's version major
  expect_malformed(bad, "major");
}

TEST(ClientHello, BadRecordLengths) {
  Bytes b = ClientHelloBuilder().sni("r.example").record_size(40).bytes();
  Bytes empty = b;
  empty.insert(empty.begin() + 45, {22, 3, 1, 0, 0});  // a zero-length record between
  expect_malformed(empty, "empty handshake record");
  Bytes huge = {22, 3, 1, 0x40, 0x01};  // 2^14 + 1
  expect_malformed(huge, "longer than 2^14");
}

TEST(ClientHello, RecordRunsPastTheHello) {
  Bytes m = ClientHelloBuilder().sni("run.example").message();
  Bytes extra = m;
  extra.push_back(0);  // the handshake length still says m: the record holds one byte more
  expect_malformed(with_message(extra), "continues past");
  // Same, with the handshake header split across records.
  Bytes split = to_records(extra, {2, 16384});
  expect_malformed(split, "continues past");
}

TEST(ClientHello, BadFixedFields) {
  Bytes good = ClientHelloBuilder().no_extensions().body();
  auto mutate = [&](size_t at, std::initializer_list<uint8_t> bytes, size_t erase = 0) {
    Bytes b = good;
    b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + erase));
    b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), bytes);
    return with_body(b);
  };
  expect_malformed(mutate(0, {0x02, 0x00}, 2), "legacy_version");
  // session id 33 bytes
  Bytes sid33 = good;
  sid33[34] = 33;
  sid33.insert(sid33.begin() + 35, 1, 0x5a);
  expect_malformed(with_body(sid33), "legacy_session_id");
  // cipher suites: odd length, empty
  size_t suites = 2 + 32 + 1 + 32;
  expect_malformed(mutate(suites, {0x00, 0x05, 1, 2, 3, 4, 5}, 8), "cipher_suites");
  expect_malformed(mutate(suites, {0x00, 0x00}, 8), "cipher_suites");
  // no compression methods
  expect_malformed(mutate(suites + 8, {0x00}, 2), "compression");
  // one stray byte where the extensions length would be
  expect_malformed(with_body(concat(good, {0x00})), "extensions length");
}

TEST(ClientHello, BadExtensionLengths) {
  Bytes body = ClientHelloBuilder().no_extensions().body();
  // extensions block says 10, holds 4
  expect_malformed(with_body(concat(body, {0x00, 0x0a, 0x00, 0x00, 0x00, 0x00})), "extensions length");
  // one extension whose length runs past the block
  expect_malformed(with_body(concat(body, {0x00, 0x04, 0x12, 0x34, 0x00, 0x05})), "truncated extension");
  // three bytes: not even an extension header
  expect_malformed(with_body(concat(body, {0x00, 0x03, 0x12, 0x34, 0x00})), "truncated extension");
}

TEST(ClientHello, DuplicateExtensions) {
  Bytes sni_body = egressd::testing::server_name_body({{0, "other.example"}});
  expect_malformed(ClientHelloBuilder().sni("a.example").extension(0x0000, sni_body).bytes(),
                   "duplicate extension 0x0000");
  expect_malformed(ClientHelloBuilder().extension(0x1234, {}).extension(0x1234, {}).bytes(),
                   "duplicate extension 0x1234");
  expect_malformed(ClientHelloBuilder().ech().extension(0xfe0d, {0}).bytes(), "duplicate extension 0xfe0d");
}

TEST(ClientHello, ServerNameListRules) {
  expect_malformed(ClientHelloBuilder().server_names({{0, "a.example"}, {0, "b.example"}}).bytes(),
                   "more than one host_name");
  expect_malformed(ClientHelloBuilder().server_names({{0, "a.example"}, {0, "a.example"}}).bytes(),
                   "more than one host_name");
  expect_malformed(ClientHelloBuilder().server_names({{1, "a.example"}}).bytes(), "unknown name type");
  expect_malformed(ClientHelloBuilder().server_names({{0, "a.example"}, {7, "x"}}).bytes(), "unknown name type");
  expect_malformed(ClientHelloBuilder().server_names({}).bytes(), "empty list");
  // list length shorter than the extension
  Bytes body = egressd::testing::server_name_body({{0, "a.example"}});
  body.push_back(0);
  expect_malformed(ClientHelloBuilder().extension(0, body).bytes(), "bad list length");
  // entry truncated inside the list
  Bytes truncated = {0x00, 0x04, 0x00, 0x00, 0x09, 'a'};
  expect_malformed(ClientHelloBuilder().extension(0, truncated).bytes(), "truncated entry");
  // an empty extension body
  expect_malformed(ClientHelloBuilder().extension(0, {}).bytes(), "bad list length");
}

TEST(ClientHello, InvalidHostNames) {
  std::string nul("a\0b", 3);
  for (const std::string& name :
       {std::string(""), std::string("a/b"), std::string("a b"), nul, std::string("a:b"), std::string("[::1]"),
        std::string("a..b"), std::string(".a"), std::string("."), std::string("a.."), std::string("fe80::1%eth0"),
        std::string("h\xc3\xa9.example"), std::string(64, 'x') + ".example", std::string("a*.example"),
        std::string(300, 'a')}) {
    expect_malformed(ClientHelloBuilder().sni(name).bytes(), "invalid host_name");
  }
  // 256 bytes of otherwise valid labels
  std::string label63(63, 'a');
  std::string name256 = label63 + "." + label63 + "." + label63 + "." + std::string(63, 'b');
  ASSERT_EQ(name256.size(), 255u);
  expect_malformed(ClientHelloBuilder().sni(name256 + ".").bytes(), "invalid host_name");
}

TEST(ClientHello, AlpnRules) {
  expect_malformed(ClientHelloBuilder().alpn({"h2", ""}).bytes(), "ALPN");
  expect_malformed(ClientHelloBuilder().alpn({}).bytes(), "ALPN");
  Bytes overrun = {0x00, 0x03, 0x05, 'h', '2'};
  expect_malformed(ClientHelloBuilder().extension(0x10, overrun).bytes(), "ALPN");
}

// ---- canonical_host ----

TEST(CanonicalHost, NamesAndAddresses) {
  auto c = canonical_host("WWW.Example.ORG.", false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "www.example.org");
  EXPECT_FALSE(c->is_ip);
  c = canonical_host("10.1.2.3", false);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->is_ip);
  EXPECT_EQ(c->name, "10.1.2.3");
  EXPECT_FALSE(canonical_host("::1", false));
  c = canonical_host("::FFFF:10.0.0.1", true);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->is_ip);
  EXPECT_EQ(c->name, "::ffff:10.0.0.1");
  EXPECT_FALSE(canonical_host("1::2::3", true));
  EXPECT_FALSE(canonical_host(std::string(46, ':'), true));
  EXPECT_FALSE(canonical_host("", true));
  EXPECT_FALSE(canonical_host("localhost:80", true));
  c = canonical_host("localhost", false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->name, "localhost");
  EXPECT_FALSE(c->is_ip);
}

TEST(ClientHello, StatusNames) {
  EXPECT_STREQ(to_string(HelloStatus::NotTls), "not-tls");
  EXPECT_STREQ(to_string(HelloStatus::Done), "done");
}

}  // namespace
