// Test the renderings of `egressd status`: every field of an attachment is
// in the human text and in the JSON, and strings are escaped.
#include <gtest/gtest.h>

#include <string>

#include "cli/status_report.h"

namespace egressd::cli {
namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kNow = 1764524402ull * kSec;

size_t slot(unsigned verdict, unsigned reason) { return verdict * size_t{EGD_REASON__COUNT} + reason; }

AttachmentStatus attachment() {
  AttachmentStatus a;
  a.cgroup_id = 4242;
  a.cgroup = "/sys/fs/cgroup/claude.slice";
  a.policy = "/etc/egressd/policy.toml";
  a.generation = 3;
  a.policy_hash = 0xfeedfacecafebeefull;
  a.attached_unix_ns = kNow - 3 * 3600 * kSec;
  a.policy_loaded_unix_ns = kNow - 300 * kSec;
  a.allow_cidrs = 1;
  a.deny_cidrs = 2;
  a.host_rules = 5;
  a.links = a.links_expected = 13;
  a.fence.state = FenceCheck::State::kEnforcing;
  a.fence.attached = 13;
  a.daemon_pid = 4121;
  a.daemon_started_unix_ns = kNow - 90 * kSec;
  a.proxy_port = 40001;
  a.dns_port = 40002;
  a.dns_steered = true;
  a.counters[slot(EGD_VERDICT_DENY, EGD_REASON_PRIVATE)] = 3;
  a.counters[slot(EGD_VERDICT_DENY, EGD_REASON_PORT)] = 1;
  a.counters[slot(EGD_VERDICT_ALLOW, EGD_REASON_WEB_PORT)] = 7;
  a.counters[EGD_STAT_RING_DROPS] = 0;
  return a;
}

void expect_has(const std::string& text, const std::string& want) {
  EXPECT_NE(text.find(want), std::string::npos) << "no \"" << want << "\" in:\n" << text;
}

TEST(StatusText, EveryField) {
  StatusReport r;
  r.attachments.push_back(attachment());
  std::string t = status_text(r, kNow);
  expect_has(t, "/sys/fs/cgroup/claude.slice (cgroup id 4242)\n");
  expect_has(t, "  fence:      enforcing (13/13 programs attached)\n");
  expect_has(t, "  policy:     /etc/egressd/policy.toml (generation 3, hash feedfacecafebeef; 1 allow_cidr, 2 deny_cidr, "
                "5 host rules)\n");
  expect_has(t, "  since:      fenced 2025-11-30T14:40:02.000000Z (3h ago); policy installed "
                "2025-11-30T17:35:02.000000Z (5m ago)\n");
  expect_has(t, "  daemon:     running, pid 4121, started 2025-11-30T17:38:32.000000Z (90s ago)\n");
  expect_has(t, "  proxy:      127.0.0.1:40001 and [::1]:40001");
  expect_has(t, "  resolver:   127.0.0.1:40002 and [::1]:40002");
  expect_has(t, "  denied:     private 3, port 1\n");
  expect_has(t, "  allowed:    web-port 7\n");
  expect_has(t, "  ring drops: 0\n");
  EXPECT_EQ(t.find("audited:"), std::string::npos) << "audit line without audit counters:\n" << t;
}

TEST(StatusText, NoDaemonAuditAndDrops) {
  AttachmentStatus a = attachment();
  a.daemon_pid = 0;
  a.daemon_started_unix_ns = 0;
  a.proxy_port = a.dns_port = 0;
  a.links = 0;
  a.fence.state = FenceCheck::State::kUnfenced;
  a.fence.reason = "the cgroup at the path has id 99, not 4242";
  a.counters[slot(EGD_VERDICT_AUDIT, EGD_REASON_LINK_LOCAL)] = 2;
  a.counters[EGD_STAT_RING_DROPS] = 9;
  StatusReport r;
  r.attachments.push_back(a);
  std::string t = status_text(r, kNow);
  expect_has(t, "  fence:      UNFENCED: the cgroup at the path has id 99, not 4242\n");
  expect_has(t, "  daemon:     not running");
  expect_has(t, "  proxy:      none registered");
  expect_has(t, "  resolver:   none running");
  expect_has(t, "  audited:    link-local 2\n");
  expect_has(t, "  ring drops: 9 (events lost");
  EXPECT_EQ(status_text(StatusReport{}, kNow), "no cgroup is fenced by egressd\n");
}

TEST(StatusJson, EveryField) {
  StatusReport r;
  r.attachments.push_back(attachment());
  r.problems.push_back("/sys/fs/bpf/egressd/1: pins from ABI version 1");
  std::string j = status_json(r);
  for (const char* want :
       {"{\"attachments\":[{\"cgroup\":\"/sys/fs/cgroup/claude.slice\",\"cgroup_id\":4242,",
        "\"policy\":\"/etc/egressd/policy.toml\"", "\"policy_hash\":\"feedfacecafebeef\"", "\"generation\":3",
        "\"policy_rules\":{\"allow_cidr\":1,\"deny_cidr\":2,\"host\":5}",
        "\"attached_at\":\"2025-11-30T14:40:02.000000Z\"", "\"policy_loaded_at\":\"2025-11-30T17:35:02.000000Z\"",
        "\"links\":13,\"links_expected\":13,\"fenced\":true", "\"daemon_pid\":4121,\"daemon_running\":true",
        "\"daemon_started_at\":\"2025-11-30T17:38:32.000000Z\"", "\"proxy_port\":40001,\"dns_port\":40002",
        "\"dns_steered\":true", "\"allowed\":{\"web-port\":7}", "\"denied\":{\"private\":3,\"port\":1}",
        "\"audited\":{}", "\"ring_drops\":0}", "\"problems\":[\"/sys/fs/bpf/egressd/1: pins from ABI version 1\"]}\n"}) {
    expect_has(j, want);
  }
  AttachmentStatus a = attachment();
  a.cgroup = "/sys/fs/cgroup/we\"ird\\name";
  a.daemon_pid = 0;
  a.daemon_started_unix_ns = 0;
  r.attachments = {a};
  j = status_json(r);
  expect_has(j, "\"cgroup\":\"/sys/fs/cgroup/we\\\"ird\\\\name\"");
  expect_has(j, "\"daemon_pid\":0,\"daemon_running\":false,\"daemon_started_at\":null");
}

AttachmentStatus detached(size_t processes) {
  AttachmentStatus a;
  a.cgroup_id = 4243;
  a.cgroup = "/sys/fs/cgroup/claude.slice";
  a.policy = "/etc/egressd/policy.toml";
  a.detached_unix_ns = kNow - 600 * kSec;
  a.processes = processes;
  a.fence.state = FenceCheck::State::kUnfenced;
  a.fence.reason = detached_reason(a.detached_unix_ns, processes);
  a.fence.current_id = 4243;
  a.links_expected = 13;
  return a;
}

TEST(StatusDetached, ReasonSaysWhenHowManyAndWhatToDo) {
  EXPECT_EQ(detached_reason(kNow, 2), "detached at 2025-11-30T17:40:02.000000Z; 2 processes in it; new sessions "
                                      "run unfenced; stop the slice or attach again");
  expect_has(detached_reason(kNow, 1), "; 1 process in it;");
}

TEST(StatusDetached, TextShowsUnfencedWithTheReasonAndNothingFromPins) {
  StatusReport r;
  r.attachments.push_back(detached(2));
  EXPECT_EQ(r.unfenced(), 1);
  std::string t = status_text(r, kNow);
  EXPECT_EQ(t, "/sys/fs/cgroup/claude.slice (cgroup id 4243)\n"
               "  fence:      UNFENCED: detached at 2025-11-30T17:30:02.000000Z; 2 processes in it; new sessions run "
               "unfenced; stop the slice or attach again\n"
               "              (egressd attach --cgroup /sys/fs/cgroup/claude.slice fences it again)\n"
               "  policy:     none (was /etc/egressd/policy.toml)\n");
}

TEST(StatusDetached, JsonNextToAFencedAttachment) {
  StatusReport r;
  r.attachments.push_back(attachment());
  r.attachments.push_back(detached(0));
  std::string j = status_json(r);
  expect_has(j, "\"cgroup_id\":4242,\"detached\":false,");
  expect_has(j, ",{\"cgroup\":\"/sys/fs/cgroup/claude.slice\",\"cgroup_id\":4243,\"detached\":true,"
                "\"detached_at\":\"2025-11-30T17:30:02.000000Z\",\"processes\":0,"
                "\"policy\":\"/etc/egressd/policy.toml\",\"fenced\":false,\"state\":\"unfenced\","
                "\"reason\":\"detached at 2025-11-30T17:30:02.000000Z; 0 processes in it; new sessions run "
                "unfenced; stop the slice or attach again\",\"current_cgroup_id\":4243,\"links\":0,"
                "\"links_expected\":13,\"daemon_pid\":0,\"daemon_running\":false}],\"problems\":[]}\n");
}

}  // namespace
}  // namespace egressd::cli
