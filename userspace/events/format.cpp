#include "events/format.h"

#include <sys/socket.h>
#include <time.h>

#include <cstdio>

#include "common/dns_types.h"

namespace egressd {
namespace {

std::string family_name(int family) {
  if (family == AF_INET) return "inet";
  if (family == AF_INET6) return "inet6";
  return std::to_string(family);
}

std::string destination(const Event& e) {
  if (e.daddr.empty()) return "-";
  if (e.family == AF_INET6) return "[" + e.daddr + "]:" + std::to_string(e.dport);
  return e.daddr + ":" + std::to_string(e.dport);
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {  // comm is arbitrary bytes: keep the output ASCII JSON
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string iso8601(uint64_t unix_ns) {
  time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<unsigned>((unix_ns % 1000000000) / 1000));
  return buf;
}

// Who sent it; "unknown" reads as unknown (null, "?"), never as pid 0/root.
static std::string json_sender(const Event& e) {
  if (!e.sender_known) return ",\"pid\":null,\"tgid\":null,\"uid\":null,\"comm\":null";
  return ",\"pid\":" + std::to_string(e.pid) + ",\"tgid\":" + std::to_string(e.tgid) +
         ",\"uid\":" + std::to_string(e.uid) + ",\"comm\":\"" + json_escape(e.comm) + "\"";
}

std::string to_json(const Event& e) {
  std::string s = "{\"time\":\"" + iso8601(e.unix_ns) + "\"";
  s += json_sender(e);
  s += ",\"cgroup_id\":" + std::to_string(e.cgroup_id);
  s += ",\"hook\":\"" + std::string(hook_name(e.hook)) + "\"";
  s += ",\"family\":\"" + family_name(e.family) + "\"";
  s += ",\"proto\":\"" + proto_name(e.protocol) + "\"";
  if (!e.daddr.empty()) {
    s += ",\"daddr\":\"" + e.daddr + "\"";
    s += ",\"dport\":" + std::to_string(e.dport);
  }
  if (e.judged) s += ",\"judged\":\"" + *e.judged + "\"";
  if (!e.l7.empty()) {
    s += ",\"l7\":\"" + e.l7 + "\"";
    s += ",\"host\":\"" + json_escape(e.host) + "\"";
    if (!e.method.empty()) s += ",\"method\":\"" + json_escape(e.method) + "\"";
    if (!e.path.empty()) s += ",\"path\":\"" + json_escape(e.path) + "\"";
    if (e.qtype) s += ",\"qtype\":\"" + dns::type_name(e.qtype) + "\"";
    if (e.qclass) s += ",\"qclass\":\"" + dns::class_name(e.qclass) + "\"";
  }
  if (e.dial_error != DialError::NONE) s += ",\"dial_error\":\"" + std::string(dial_error_name(e.dial_error)) + "\"";
  if (!e.upstream.empty()) s += ",\"upstream\":\"" + e.upstream + "\"";
  if (e.dials) s += ",\"dials\":" + std::to_string(e.dials);
  s += ",\"verdict\":\"" + std::string(verdict_name(e.verdict)) + "\"";
  s += ",\"reason\":\"" + std::string(reason_name(e.reason)) + "\"";
  if (e.rule_id) s += ",\"rule\":" + std::to_string(e.rule_id);
  s += "}";
  return s;
}

std::string to_text(const Event& e) {
  std::string s = iso8601(e.unix_ns) + " " +
                  (e.sender_known ? json_escape(e.comm) + "[" + std::to_string(e.tgid) + "] " : std::string("?[?] "));
  s += std::string(verdict_name(e.verdict)) + " " + proto_name(e.protocol) + " " + destination(e);
  if (e.judged) s += " (as " + *e.judged + ")";
  if (!e.l7.empty()) {
    s += " " + e.l7 + " " + (e.host.empty() ? std::string("-") : json_escape(e.host));
    if (!e.method.empty()) s += " " + json_escape(e.method) + " " + json_escape(e.path);
    if (e.qclass && e.qclass != dns::kClassIN) s += " " + dns::class_name(e.qclass);  // "CH TXT", as dig writes it
    if (e.qtype) s += " " + dns::type_name(e.qtype);
  }
  s += " " + std::string(reason_name(e.reason));
  if (e.dial_error != DialError::NONE || !e.upstream.empty()) {
    s += " (dial " + std::string(dial_error_name(e.dial_error));
    if (!e.upstream.empty()) s += ", served by " + e.upstream;
    s += ", " + std::to_string(e.dials) + (e.dials == 1 ? " address dialed)" : " addresses dialed)");
  }
  if (e.rule_id) s += " rule " + std::to_string(e.rule_id);
  s += " via " + std::string(hook_name(e.hook)) + " uid " + (e.sender_known ? std::to_string(e.uid) : std::string("?"));
  return s;
}

}  // namespace egressd
