// Fuzz the resolver's answer path over arbitrary upstream responses:
// parse -> filter (dns/filter.h, the default policy's blocked addresses,
// ECH stripped) -> reparse, then the cache and the per-client reply. Besides
// "no crash, no sanitizer report" it checks what the resolver promises:
//  - a filtered answer always parses again, with the same header and
//    questions, and every input record is either kept or accounted for
//    (removed address, OPT/TSIG, unparseable HTTPS/SVCB);
//  - no A/AAAA record and no ipv4hint/ipv6hint address in it is blocked,
//    and no HTTPS/SVCB record carries "ech";
//  - filtering twice changes nothing more (the output is a fixed point);
//  - with a family left out, none of its addresses remain;
//  - a cached copy and the reply built for a client parse too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "decide/l3_check.h"
#include "dns/answer_cache.h"
#include "dns/filter.h"
#include "dns/message.h"
#include "dns/reply.h"
#include "policy/model.h"

namespace {

using namespace egressd;
using namespace egressd::dns;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

const policy::Policy& default_policy() {
  static const policy::Policy p;  // every default: private, link-local, ... denied
  return p;
}

size_t records(const Message& m) { return m.answers.size() + m.authority.size() + m.additional.size(); }

// The SvcParams of an HTTPS/SVCB record that filter_answer wrote (the
// target name is uncompressed there).
void check_svcb(std::span<const uint8_t> msg, const Record& r, const decide::L3Check& l3) {
  size_t at = r.rdata_offset + 2;
  while (at < r.end && msg[at] != 0) at += 1 + msg[at];
  at += 1;
  check(at <= r.end, "svcb target inside rdata");
  while (at < r.end) {
    check(at + 4 <= r.end, "svcb param header");
    uint16_t key = be16(&msg[at]), len = be16(&msg[at + 2]);
    at += 4;
    check(at + len <= r.end, "svcb param value");
    check(key != kSvcKeyEch, "ech left in an answer");
    if (key == kSvcKeyIpv4Hint || key == kSvcKeyIpv6Hint) {
      size_t width = key == kSvcKeyIpv4Hint ? 4 : 16;
      check(len > 0 && len % width == 0, "hint shape");
      for (size_t i = 0; i < len; i += width) {
        IpAddr a = width == 4 ? IpAddr::v4(&msg[at + i]) : IpAddr::v6(&msg[at + i]);
        check(l3.reachable(a), "blocked address in a hint");
      }
    }
    at += len;
  }
}

void run(std::span<const uint8_t> in) {
  ParseResult p = parse_message(in);
  if (p.status != ParseStatus::Ok) return;
  const Message& m = p.message;
  static const decide::L3Check l3(default_policy());
  FilterOptions o;
  o.blocked = [](const IpAddr& a) { return !l3.reachable(a); };
  o.strip_ech = true;
  FilterResult f = filter_answer(in, m, o);
  check(f.ok == f.error.empty(), "error set exactly when not ok");
  FilterResult plain = filter_answer(in, m, FilterOptions{});
  check(!plain.ok || plain.removed.empty(), "nothing removed without a predicate");
  if (!f.ok) return;

  ParseResult again = parse_message(f.message);
  check(again.status == ParseStatus::Ok, "filtered answer does not parse");
  const Message& n = again.message;
  check(n.end == f.message.size(), "filtered answer has trailing bytes");
  check(!n.edns, "OPT left in");
  check(n.header.id == m.header.id && n.header.qr == m.header.qr && n.header.tc == m.header.tc &&
            n.header.rcode == (m.header.rcode & 0x0f),
        "header changed");
  check(n.questions.size() == m.questions.size(), "question count");
  for (size_t i = 0; i < m.questions.size(); ++i)
    check(n.questions[i].name == m.questions[i].name && n.questions[i].type == m.questions[i].type, "question changed");
  size_t dropped = 0;
  for (const auto* s : {&m.answers, &m.authority, &m.additional})
    for (const Record& r : *s)
      if (r.type == kTypeOPT || r.type == kTypeTSIG || (r.addr && o.blocked(*r.addr))) ++dropped;
  check(records(n) + dropped + f.dropped_svcb == records(m), "records lost or invented");
  for (const auto* s : {&n.answers, &n.authority, &n.additional}) {
    for (const Record& r : *s) {
      if (r.addr) check(l3.reachable(*r.addr), "blocked address in an answer");
      if ((r.type == kTypeHTTPS || r.type == kTypeSVCB) && r.klass == kClassIN) check_svcb(f.message, r, l3);
    }
  }

  FilterResult twice = filter_answer(f.message, n, o);
  check(twice.ok && twice.removed.empty() && twice.ech_stripped == 0 && twice.dropped_svcb == 0,
        "filtering twice removed more");
  ParseResult third = parse_message(twice.message);
  check(third.status == ParseStatus::Ok && records(third.message) == records(n), "second filter changed counts");

  // A family left out (dns/families.h): none of its addresses remain, the
  // answer parses, and filtering again leaves out nothing more.
  FilterOptions fam = o;
  fam.drop_v6 = (in.size() & 1) != 0;
  fam.drop_v4 = !fam.drop_v6;
  FilterResult g = filter_answer(in, m, fam);
  check(g.ok, "leaving a family out fails where the policy filter did not");
  ParseResult gp = parse_message(g.message);
  check(gp.status == ParseStatus::Ok, "answer without a family does not parse");
  int gone = fam.drop_v6 ? AF_INET6 : AF_INET;
  for (const auto* s : {&gp.message.answers, &gp.message.authority, &gp.message.additional})
    for (const Record& r : *s) check(!r.addr || r.addr->family != gone, "address of a dropped family left in");
  FilterResult g2 = filter_answer(g.message, gp.message, fam);
  check(g2.ok && g2.family_dropped == 0 && g2.removed.empty(), "leaving a family out twice removed more");

  if (n.questions.size() != 1) return;
  AnswerCache cache;
  AnswerCache::Clock::time_point t0{};
  std::string key = AnswerCache::key(n.questions[0].name, n.questions[0].type, n.questions[0].klass, false, false);
  if (cache.put(key, n.questions[0].name, f.message, t0)) {
    auto hit = cache.get(key, t0 + std::chrono::seconds(3));
    check(hit.has_value(), "fresh entry missing");
    check(parse_message(*hit).status == ParseStatus::Ok, "cached copy does not parse");
    auto q = query_info(f.message, n);
    check(q.has_value(), "question of a filtered answer");
    q->edns = true;
    q->udp_size = 1232;
    std::vector<uint8_t> out = answer_reply(*q, *hit, 4096, 1232);
    check(!out.empty(), "reply to the very question");
    check(out.size() <= 1232, "reply over the client's limit");
    ParseResult r = parse_message(out);
    check(r.status == ParseStatus::Ok && r.message.edns.has_value(), "reply does not parse");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(std::span<const uint8_t>(data, size));
  return 0;
}
