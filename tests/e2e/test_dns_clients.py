"""Real clients and the resolver (issue 13, items 2 and 5).

- An IPv4-only agent (its IPv6 default route removed after attach, as on a
  default Docker container): names with A and AAAA records work for curl,
  git, Node and Python because the resolver stops offering AAAA (NODATA),
  and offers it again once the route is back (rtnetlink subscription).
- A denied name's NXDOMAIN carries an Extended DNS Error whose text names
  egressd, the reason and the policy file (dig shows it).
- [dns] denied = "sinkhole": a denied name resolves to the sinkhole
  address, so curl gets the proxy's 403 that names the rule over HTTP and a
  TLS access_denied alert over HTTPS; nothing reaches the upstream DNS or
  any origin.
- SRV of `_service._proto.<allowed name>` is forwarded and answered; of a
  denied name it is not.
"""
import json
import re
import time
import unittest

from dns_case import DNS_POLICY, DnsCase
from origins import SMALL_BODY
from proxy_case import ProxyCase
from world import ORIGIN_TOOLS, run

ALLOWED4, ALLOWED6 = "203.0.113.10", "2001:db8::10"
SINKHOLE4, SINKHOLE6 = "203.0.113.254", "2001:db8::e9d"
NO_V6_ROUTE = "routes changed: IPv4 routed, IPv6 no default route"

PYTHON_GET = """
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    body = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10).read().decode("latin-1")
    print(json.dumps({"status": 200, "body": body}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode("latin-1")}))
except Exception as e:
    print(json.dumps({"error": repr(e)}))
"""


def ede_text(dig_out):
    """The EXTRA-TEXT dig prints: `; EDE: 15 (Blocked): (TEXT)`."""
    m = re.search(r"^; EDE: \d+ \([^)]*\): \((.*)\)\s*$", dig_out, re.M)
    return m.group(1) if m else None


class ClientsCase(DnsCase, ProxyCase):
    WORLD = {"origins": True}
    TOOLS = ("dig", "getent", "curl", "git", "node") + ORIGIN_TOOLS

    def python_get(self, url):
        r = self.w.agent_run([self.w.python, "-c", PYTHON_GET, url, self.w.ca], timeout=30)
        lines = [l for l in r.stdout.split("\n") if l.startswith("{")]
        self.assertTrue(lines, f"python printed nothing: {r.stdout}{r.stderr}")
        return json.loads(lines[-1])

    def wait_log(self, needle, deadline=10.0):
        """The daemon's log once it holds needle (written by another process: polled)."""
        end = time.monotonic() + deadline
        while needle not in self.daemon.log():
            if time.monotonic() > end:
                raise AssertionError(f"{needle!r} not in the daemon's log:\n{self.daemon.log()[-2000:]}")
            time.sleep(0.05)


class Ipv4OnlyAgent(ClientsCase):
    def test_dual_stack_names_work_without_an_ipv6_route(self):
        self.assertAnswer(self.dig("allowed.test", "AAAA"), [ALLOWED6])  # both routes: AAAA offered
        self.assertIn("routes: IPv4 routed, IPv6 routed", self.daemon.log())
        run(["ip", "-n", self.w.agent_ns, "-6", "route", "del", "default"])
        self.wait_log(NO_V6_ROUTE)
        r = self.dig("allowed.test", "AAAA")  # the cached AAAA is not served
        self.assertAnswer(r, [])  # NODATA: NOERROR, no records
        self.assertAnswer(self.dig("allowed.test", "A"), [ALLOWED4])
        # glibc's view (what every client below gets): IPv4 only.
        got = self.w.agent_run(["getent", "ahosts", "allowed.test"]).stdout
        self.assertIn(ALLOWED4, got)
        self.assertNotIn(ALLOWED6, got)

        r = self.curl("https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        dest = self.w.tmp / "clone"
        r = self.git_clone("https://allowed.test/repo.git", dest)
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertTrue((dest / "README").exists())
        n = self.node_fetch("https://allowed.test/small.txt")
        self.assertEqual((n.get("status"), n.get("body")), (200, SMALL_BODY), n)
        p = self.python_get("https://allowed.test/small.txt")
        self.assertEqual(p, {"status": 200, "body": SMALL_BODY})
        self.assertNotIn(f"[{ALLOWED6}]", self.w.origin_log())

        # The route comes back: AAAA is offered again (the cached NODATA is not served).
        run(["ip", "-n", self.w.agent_ns, "-6", "route", "add", "default", "via", "2001:db8:ff::1"])
        self.wait_log("routes changed: IPv4 routed, IPv6 routed")
        self.assertAnswer(self.dig("allowed.test", "AAAA"), [ALLOWED6])


class Ipv4OnlyAgentSwitchOff(ClientsCase):
    POLICY = DNS_POLICY + "\n[dns]\ndrop_unroutable_families = false\n"

    def test_aaaa_still_offered_when_turned_off(self):
        run(["ip", "-n", self.w.agent_ns, "-6", "route", "del", "default"])
        self.wait_log(NO_V6_ROUTE)  # the daemon saw the change, and ignores it
        self.assertAnswer(self.dig("allowed.test", "AAAA"), [ALLOWED6])


class RefusalsExplained(ClientsCase):
    def test_denied_name_carries_an_extended_error_naming_egressd(self):
        for extra in ([], ["+dnssec"]):
            r = self.dig(*extra, "other.test")
            self.assertEqual((r.parsed["status"], r.parsed["ede"]), ("NXDOMAIN", 15), r.stdout)
            self.assertEqual(ede_text(r.stdout), f"egressd: dns-name-not-allowed by policy {self.policy_path}",
                             r.stdout)
        r = self.dig("+noedns", "other.test")  # no OPT in the query: none in the answer (RFC 8914)
        self.assertEqual((r.parsed["status"], r.parsed["ede"]), ("NXDOMAIN", None), r.stdout)
        self.assertNeverForwarded("other.test")

    def test_srv_of_an_allowed_name_is_answered(self):
        r = self.dig("_http._tcp.allowed.test", "SRV")
        self.assertEqual(r.parsed["status"], "NOERROR", r.stdout)
        self.assertEqual(r.parsed["answers"], [["_http._tcp.allowed.test", "SRV", "0 1 80 allowed.test."]], r.stdout)
        r = self.dig("_http._tcp.other.test", "SRV")
        self.assertEqual(r.parsed["status"], "NXDOMAIN", r.stdout)
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="_http._tcp.other.test")
        log = self.assertNeverForwarded("_http._tcp.other.test")
        self.assertIn("query[SRV] _http._tcp.allowed.test from", log)


class Sinkhole(ClientsCase):
    POLICY = DNS_POLICY + '\n[dns]\ndenied = "sinkhole"\n'

    def test_denied_name_leads_to_the_proxys_refusal(self):
        r = self.dig("other.test")
        self.assertAnswer(r, [SINKHOLE4])
        self.assertEqual(r.parsed["ede"], 15, r.stdout)
        self.assertAnswer(self.dig("other.test", "AAAA"), [SINKHOLE6])
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")

        # HTTP: the proxy's 403 names egressd, the reason and the policy.
        r = self.curl("-i", "http://other.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 403 Forbidden", r.stdout)
        self.assertIn("egressd: request to other.test:80 denied (host-not-allowed)", r.stdout)
        self.assertIn(f"policy: {self.policy_path}", r.stdout)
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")
        # HTTPS: a TLS access_denied alert.
        r = self.curl("https://other.test/")
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.assertIn("access denied", r.stderr)
        n = self.node_fetch("http://other.test/")
        self.assertEqual((n.get("status"), n.get("reason")), (403, "host-not-allowed"), n)
        p = self.python_get("http://other.test/")
        self.assertEqual(p.get("status"), 403, p)
        self.assertIn("host-not-allowed", p.get("body", ""))

        # Nothing went anywhere: no upstream query, no origin request.
        self.assertNeverForwarded("other.test")
        self.assertNotIn("other.test", self.w.origin_log())
        # Allowed names are untouched.
        r = self.curl("https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)


if __name__ == "__main__":
    unittest.main()
