"""The resolver under other policies and conditions: [dns] denied and allow,
audit mode, ECH kept for outer-SNI, a tunnelling burst, the daemon killed
(DNS fails closed), and the proxy using the resolver's answer end to end."""
import json
import os
import signal
import unittest
from pathlib import Path

from dns_case import DNS_POLICY, DNS_POLICY_DENY_EVENTS, DnsCase
from origins import SMALL_BODY
from world import ORIGIN_TOOLS

ALLOWED4 = "203.0.113.10"
OTHER4 = "203.0.113.7"


class DeniedRefused(DnsCase):
    POLICY = DNS_POLICY + '\n[dns]\ndenied = "refused"\n'

    def test_refused_instead_of_nxdomain(self):
        r = self.dig("other.test")
        self.assertEqual((r.parsed["status"], r.parsed["answers"]), ("REFUSED", []), r.stdout)
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test", qtype="A")
        r = self.dig("+tcp", "other.test", "TXT", server="10.0.0.1")
        self.assertEqual(r.parsed["status"], "REFUSED", r.stdout)
        self.assertAnswer(self.dig("allowed.test"), [ALLOWED4])
        self.assertNeverForwarded("other.test")


class DnsAllowList(DnsCase):
    POLICY = DNS_POLICY + '\n[dns]\nallow = ["other.test", "*.svc.test"]\n'

    def test_dns_allow_resolves_without_a_host_rule(self):
        r = self.dig("other.test")
        self.assertAnswer(r, [OTHER4])
        self.dns_event(r.pid, verdict="allow", reason="dns-name-allowed", host="other.test")
        r = self.dig("x.svc.test", "SRV")  # forwarded: dnsmasq has no such name
        self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
        r = self.dig("svc.test")  # the wildcard covers names below it only
        self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="svc.test")
        log = self.assertNeverForwarded("A svc.test")
        self.assertIn("query[A] other.test from 198.51.100.2", log)
        self.assertIn("query[SRV] x.svc.test from 198.51.100.2", log)

    def test_resolvable_is_not_reachable(self):
        # [dns] allow gives a name, not a connection: the proxy still
        # refuses other.test (no host rule).
        r = self.w.agent_run(["curl", "--silent", "--show-error", "--max-time", "5", "--cacert", self.w.ca,
                              "https://other.test/"])
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.tail.expect_event(lambda e: e.get("tgid") == r.pid and e.get("hook") == "proxy"
                               and e.get("reason") == "host-not-allowed", what="proxy deny for other.test")
        self.dns_event(r.pid, verdict="allow", host="other.test")


class Audit(DnsCase):
    POLICY = DNS_POLICY.replace("version = 1\n", 'version = 1\nmode = "audit"\n', 1)

    def test_audit_forwards_and_records(self):
        r = self.dig("other.test")
        self.assertAnswer(r, [OTHER4])
        ev = self.dns_event(r.pid, verdict="audit", reason="dns-name-not-allowed", host="other.test", qtype="A")
        self.assertEqual(ev["daddr"], "198.51.100.53", json.dumps(ev))
        r = self.dig("allowed.test", "ANY")
        self.assertEqual(r.parsed["status"], "NOERROR", r.stdout)
        self.dns_event(r.pid, verdict="audit", reason="dns-type-not-allowed", host="allowed.test", qtype="ANY")
        r = self.dig("rebind.test")  # unfiltered in audit mode
        self.assertAnswer(r, ["10.0.0.5"])
        r = self.dig("allowed.test")
        self.assertAnswer(r, [ALLOWED4])
        self.dns_event(r.pid, verdict="allow", reason="dns-name-allowed", host="allowed.test")
        log = self.upstream_marker()
        self.assertIn("query[A] other.test from 198.51.100.2", log)
        self.assertIn("query[ANY] allowed.test from 198.51.100.2", log)


class EchOuterSni(DnsCase):
    POLICY = DNS_POLICY + '\n[proxy]\nech = "outer-sni"\n'

    def test_ech_config_is_kept_when_the_proxy_can_judge_the_outer_name(self):
        r = self.dig("ech.test", "HTTPS")
        rec = [d for _, t, d in r.parsed["answers"] if t == "HTTPS"]
        self.assertEqual(len(rec), 1, r.stdout)
        self.assertIn("ech=ABD+DQAMAAEAAQIDBAUGBwgJCg==", rec[0])
        self.assertNotIn("10.0.0.5", rec[0])  # the hints are still filtered


class TunnelBurst(DnsCase):
    POLICY = DNS_POLICY_DENY_EVENTS
    N = 500

    def test_random_labels_under_a_denied_zone_never_leave(self):
        zone = "t.exfil.example"
        r = self.dnsq("burst", "198.51.100.53", zone, "--n", self.N, "--timeout", "2", "--seconds", "60")
        self.assertEqual((r["n"], r["rcodes"], r["timeouts"], r["errors"]), (self.N, {"NXDOMAIN": self.N}, 0, {}),
                         {k: v for k, v in r.items() if k != "names"})
        names = set(r["names"])
        seen = {}
        for _ in range(self.N):
            ev = self.dns_event(r["pid"], timeout=20, verdict="deny", reason="dns-name-not-allowed")
            seen[ev["host"]] = ev
        self.assertEqual(set(seen), names, "events do not name every query")
        for ev in seen.values():
            self.assertTrue(ev["comm"].startswith("python"), json.dumps(ev))
            self.assertIn(ev["qtype"], ("A", "TXT"), json.dumps(ev))
        # dig in batch mode: another 100, from another process.
        batch = Path(self.w.tmp) / "batch.txt"
        dig_names = [f"d{i}x{os.urandom(8).hex()}.{zone}" for i in range(100)]
        batch.write_text("".join(f"{n} TXT\n" for n in dig_names))
        os.chmod(batch, 0o644)
        d = self.dig("+short", "-f", str(batch), timeout=120)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.dns_event(d.pid, verdict="deny", reason="dns-name-not-allowed", host=dig_names[-1], timeout=20)
        log = self.assertNeverForwarded("exfil.example")
        self.assertNotIn("exfil", log)
        self.assertIsNone(self.daemon.proc.poll(), f"egressd exited:\n{self.daemon.log()[-3000:]}")


class FailClosed(DnsCase):
    def test_dns_fails_closed_when_the_daemon_is_killed(self):
        self.assertAnswer(self.dig("allowed.test"), [ALLOWED4])  # working before
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.assertIsNotNone(self.daemon.wait_exit(10), "egressd survived SIGKILL")
        before = self.upstream_marker(via_egressd=False)
        asked_before = len(self.upstream_queries(before))
        for server, extra in ((None, []), (None, ["+tcp"]), ("198.51.100.99", []), ("10.0.0.1", ["+tcp"]),
                              ("2001:db8:ff::99", [])):
            with self.subTest(server=server, extra=extra):
                r = self.dig(*extra, "allowed.test", server=server)
                self.assertIsNone(r.parsed["status"], f"an answer without egressd:\n{r.stdout}")
                self.assertNotEqual(r.returncode, 0, r.stdout)
        r = self.w.agent_run(["getent", "hosts", "allowed.test"], timeout=60)
        self.assertNotEqual(r.returncode, 0, f"glibc resolved without egressd: {r.stdout}")
        r = self.dnsq("query", "198.51.100.53", "allowed.test", "--timeout", "2")
        self.assertIsNone(r.get("rcode"), f"an answer without egressd: {r}")
        after = self.upstream_marker(via_egressd=False)
        new = self.upstream_queries(after)[asked_before:]
        self.assertEqual(len(new), 1, f"queries reached the upstream without egressd: {new}")
        # A new daemon takes over and answers again.
        self.attach(self.POLICY)
        self.assertAnswer(self.dig("allowed.test"), [ALLOWED4])


class ThroughTheProxy(DnsCase):
    """curl resolves through egressd, then connects through its proxy."""
    WORLD = {"origins": True}
    TOOLS = ("dig", "getent", "curl") + ORIGIN_TOOLS

    def curl(self, *args):
        r = self.w.agent_run(["curl", "--silent", "--show-error", "--max-time", "10", "--cacert", self.w.ca, *args],
                             timeout=30)
        return r

    def test_https_by_name_end_to_end(self):
        r = self.curl("-4", "https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), f"{r.stderr}\n{self.daemon.log()[-2000:]}")
        self.dns_event(r.pid, verdict="allow", reason="dns-name-allowed", host="allowed.test", qtype="A")
        self.tail.expect_event(lambda e: e.get("tgid") == r.pid and e.get("hook") == "proxy"
                               and e.get("verdict") == "allow" and e.get("host") == "allowed.test",
                               what="proxy allow for curl")
        # The proxy checked the connection against the answer curl got (the
        # resolver's cache): the upstream was asked once.
        log = self.upstream_marker()
        self.assertEqual(log.count("query[A] allowed.test from 198.51.100.2"), 1, log[-3000:])
        self.assertIn("203.0.113.10:443 host=allowed.test sni=allowed.test", self.w.origin_log())

    def test_not_allowed_name_fails_at_dns(self):
        r = self.curl("https://other.test/")
        self.assertEqual(r.returncode, 6, f"curl should fail to resolve: {r.stdout}{r.stderr}")
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")
        self.assertNeverForwarded("other.test")
        self.assertNotIn("other.test", self.w.origin_log())


if __name__ == "__main__":
    unittest.main()
