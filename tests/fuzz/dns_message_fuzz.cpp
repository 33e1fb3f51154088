// Fuzz the DNS codec (dns/message.h, dns/builder.h). Besides "no crash, no
// sanitizer report", it checks what the resolver and a rewriting proxy rely on:
//  - status Ok exactly when error is empty;
//  - records tile the message: each starts where the previous one ended,
//    rdata ranges lie inside the message, end <= size;
//  - the parse depends only on the first `end` bytes;
//  - addresses_for stays inside the answer section and its bounds;
//  - rebuilding a parsed message with MessageBuilder (names compressed
//    anew) parses back to the same questions and records;
//  - build_query on the input as a name either refuses it or produces a
//    query that parses back to that name;
//  - the resolver's fast query reader (fast_query_info) takes only what the
//    full parser takes as a one-question query, and reads it the same
//    (every field of QueryInfo), also into buffers holding an older query;
//  - the local answers to such a query (bare_reply with an Extended DNS
//    Error, address_reply) parse and stay within their bounds.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dns/builder.h"
#include "dns/message.h"
#include "dns/reply.h"

namespace {

using namespace egressd::dns;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

bool same_record(const Record& a, const Record& b, std::span<const uint8_t> ma, std::span<const uint8_t> mb) {
  if (a.name != b.name || a.type != b.type || a.klass != b.klass || a.addr != b.addr || a.target != b.target)
    return false;
  if (a.type == kTypeOPT) return true;
  if (a.ttl != b.ttl) return false;
  if (a.type == kTypeCNAME && a.klass == kClassIN) return true;  // target compared; its bytes may differ
  return ma.subspan(a.rdata_offset, a.rdata_length).size() == mb.subspan(b.rdata_offset, b.rdata_length).size() &&
         std::equal(ma.begin() + static_cast<std::ptrdiff_t>(a.rdata_offset),
                    ma.begin() + static_cast<std::ptrdiff_t>(a.end), mb.begin() + static_cast<std::ptrdiff_t>(b.rdata_offset));
}

void check_layout(const Message& m, size_t size) {
  check(m.end <= size, "end past the input");
  size_t prev = 0;
  for (const Question& q : m.questions) {
    check(prev ? q.offset > prev : q.offset == kHeaderBytes, "question offsets");
    check(q.offset < m.end, "question offset past end");
    check(q.name.size() <= 4 * kMaxNameWireBytes, "question name length");
    prev = q.offset;
  }
  size_t prev_end = 0;
  for (const auto* section : {&m.answers, &m.authority, &m.additional}) {
    for (const Record& r : *section) {
      check(prev_end ? r.offset == prev_end : r.offset > prev || (prev == 0 && r.offset == kHeaderBytes),
            "records not contiguous");
      check(r.offset < r.rdata_offset && r.rdata_offset + r.rdata_length == r.end, "record ranges");
      check(r.end <= m.end, "record past end");
      check(r.name.size() <= 4 * kMaxNameWireBytes && r.target.size() <= 4 * kMaxNameWireBytes, "name length");
      check(!r.addr || r.type == kTypeA || r.type == kTypeAAAA, "addr on a non-address record");
      check(r.ttl <= 0x7fffffffu, "ttl top bit");
      prev_end = r.end;
    }
  }
  if (prev_end) check(prev_end == m.end, "last record does not end the message");
  check(m.edns.has_value() == std::any_of(m.additional.begin(), m.additional.end(),
                                          [](const Record& r) { return r.type == kTypeOPT; }),
        "edns without OPT");
}

// Names the builder can write back: labels of plain characters.
bool plain(const std::string& name) {
  if (name.empty()) return true;
  std::vector<uint8_t> scratch;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  return append_name(scratch, name);
}

void check_rebuild(const Message& m, std::span<const uint8_t> in) {
  for (const Question& q : m.questions)
    if (!plain(q.name)) return;
  for (const auto* section : {&m.answers, &m.authority, &m.additional})
    for (const Record& r : *section)
      if (!plain(r.name) || !plain(r.target)) return;
  Header h = m.header;
  MessageBuilder b(h);
  for (const Question& q : m.questions) check(b.question(q.name, q.type, q.klass), "rebuild question");
  for (const auto* section : {&m.answers, &m.authority, &m.additional}) {
    for (const Record& r : *section) {
      bool ok;
      if (r.type == kTypeOPT)
        ok = b.opt(m.edns->udp_size, m.header.rcode);
      else if (r.type == kTypeCNAME && r.klass == kClassIN)
        ok = b.cname(r.section, r.name, r.ttl, r.target);
      else
        ok = b.record(r.section, r.name, r.type, r.ttl, in.subspan(r.rdata_offset, r.rdata_length), r.klass);
      check(ok, "rebuild record");
    }
  }
  std::span<const uint8_t> out(b.bytes());
  ParseResult again = parse_message(out);
  if (again.status != ParseStatus::Ok) {
    // Uncompressed rdata can push a 16-bit count or the size past its limit; nothing else may fail.
    check(out.size() > kMaxMessageBytes, "rebuilt message does not parse");
    return;
  }
  const Message& n = again.message;
  check(n.header.id == m.header.id && n.header.rcode == m.header.rcode && n.header.qr == m.header.qr &&
            n.header.tc == m.header.tc,
        "rebuilt header");
  check(n.questions.size() == m.questions.size(), "rebuilt question count");
  for (size_t i = 0; i < m.questions.size(); ++i)
    check(n.questions[i].name == m.questions[i].name && n.questions[i].type == m.questions[i].type &&
              n.questions[i].klass == m.questions[i].klass,
          "rebuilt question");
  const std::vector<Record>* ms[] = {&m.answers, &m.authority, &m.additional};
  const std::vector<Record>* ns[] = {&n.answers, &n.authority, &n.additional};
  for (int s = 0; s < 3; ++s) {
    check(ms[s]->size() == ns[s]->size(), "rebuilt record count");
    for (size_t i = 0; i < ms[s]->size(); ++i)
      check(same_record((*ms[s])[i], (*ns[s])[i], in, out), "rebuilt record");
  }
}

void check_message(std::span<const uint8_t> in) {
  ParseResult r = parse_message(in);
  check((r.status == ParseStatus::Ok) == r.error.empty(), "error set exactly when not Ok");
  if (r.status != ParseStatus::Ok) return;
  const Message& m = r.message;
  check_layout(m, in.size());
  ParseResult prefix = parse_message(in.first(m.end));
  check(prefix.status == ParseStatus::Ok && prefix.message.end == m.end &&
            prefix.message.answers.size() == m.answers.size(),
        "parse depends on bytes after end");
  for (const Question& q : m.questions) {
    AddressAnswer a = addresses_for(m, q.name);
    check(a.addrs.size() <= m.answers.size(), "more addresses than answers");
    check(a.cname_hops <= kMaxCnameHops, "hop bound");
    check(!a.chain_too_long || a.addrs.empty(), "addresses from a chain that was too long");
  }
  check_rebuild(m, in);
}

void check_query(std::span<const uint8_t> in) {
  if (in.size() > 300) return;
  std::string_view name(reinterpret_cast<const char*>(in.data()), in.size());
  std::vector<uint8_t> q = build_query(0x1234, name, kTypeA);
  if (q.empty()) return;
  ParseResult r = parse_message(q);
  check(r.status == ParseStatus::Ok, "built query does not parse");
  check(r.message.questions.size() == 1 && r.message.edns.has_value(), "built query shape");
  if (name != "." && name.find('\\') == std::string_view::npos)
    check(r.message.questions[0].name == canonical_name(name), "built query name");
}

void check_fast_query(std::span<const uint8_t> in) {
  QueryInfo fast;
  // Stale contents, longer than any real name: none may survive.
  fast.question.assign(300, 0xee);
  fast.qname_wire.assign(300, 0xee);
  fast.qname.assign(1100, 'x');
  fast.edns = fast.dnssec_ok = fast.rd = fast.cd = true;
  fast.udp_size = 9;
  fast.edns_version = 9;
  if (!fast_query_info(in, fast)) return;
  ParseResult r = parse_message(in);
  check(r.status == ParseStatus::Ok && !r.message.header.qr && r.message.questions.size() == 1,
        "fast query reader took what the parser refuses as a query");
  auto slow = query_info(in, r.message);
  check(slow.has_value(), "fast query reader took what query_info refuses");
  check(fast.id == slow->id && fast.opcode == slow->opcode && fast.rd == slow->rd && fast.cd == slow->cd,
        "fast query header");
  check(fast.question == slow->question && fast.qname_wire == slow->qname_wire && fast.qname == slow->qname,
        "fast query name");
  check(fast.qtype == slow->qtype && fast.qclass == slow->qclass, "fast query type/class");
  check(fast.edns == slow->edns && fast.edns_version == slow->edns_version && fast.dnssec_ok == slow->dnssec_ok &&
            fast.udp_size == slow->udp_size,
        "fast query EDNS");

  // The resolver's local answers to it (refusal with an Extended DNS Error,
  // sinkhole address) parse, echo the question, and carry the EDE only if
  // the query had EDNS.
  std::string text(static_cast<size_t>(fast.id % 300), 'e');
  std::vector<uint8_t> refusal = bare_reply(fast, kRcodeNxDomain, 4096, false, kEdeBlocked, text);
  ParseResult rp = parse_message(refusal);
  check(rp.status == ParseStatus::Ok && rp.message.questions.size() == 1 && rp.message.answers.empty(),
        "refusal does not parse");
  check(rp.message.edns.has_value() == fast.edns, "refusal OPT iff the query had EDNS");
  check(refusal.size() <= kHeaderBytes + fast.question.size() + 11 + 6 + kMaxEdeText, "refusal over its bound");
  if (fast.qtype == kTypeA || fast.qtype == kTypeAAAA) {
    egressd::IpAddr a = fast.qtype == kTypeA ? *egressd::IpAddr::parse("203.0.113.254")
                                             : *egressd::IpAddr::parse("2001:db8::e9d");
    std::vector<uint8_t> sink = address_reply(fast, a, 10, 4096, kEdeBlocked, text);
    ParseResult sp = parse_message(sink);
    check(sp.status == ParseStatus::Ok && sp.message.answers.size() == 1 && sp.message.answers[0].addr == a,
          "sinkhole answer does not parse or lost its address");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  check_message(in);
  check_query(in);
  check_fast_query(in);
  return 0;
}
