"""The transparent proxy on TLS (ports 443 and host-rule ports): real clients
in the fenced cgroup reach allowed names byte for byte; everything else gets
a fatal access_denied alert and a proxy event with the reason."""
import json
import time
import unittest

from origins import ALT_TLS_PORT, SMALL_BODY
from proxy_case import AUDIT_POLICY, LIMITS_POLICY, RULE, ProxyCase, sha256_file
from world import _LineReader

ACCESS_DENIED = [2, 49]  # fatal alert, access_denied
PROXY_EVENT_KEYS = {"hook", "verdict", "reason", "daddr", "dport", "host", "l7", "pid", "tgid", "comm", "time"}


class TlsAllowed(ProxyCase):
    def test_curl_big_download_is_byte_identical(self):
        out = self.w.tmp / "big.out"
        r = self.curl("-4", "-o", str(out), "https://allowed.test/big.bin", max_time=60, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256_file(out), self.w.files["/big.bin"], "the download differs from the origin's file")
        ev = self.proxy_event(r.pid, verdict="allow", l7="tls", host="allowed.test")
        self.assertEqual((ev["reason"], ev["daddr"], ev["dport"], ev["comm"]),
                         ("host-rule", "203.0.113.10", 443, "curl"), json.dumps(ev))
        self.assertEqual(ev.get("rule"), RULE["allowed.test"], json.dumps(ev))
        self.assertFalse(PROXY_EVENT_KEYS - set(ev), f"event lacks {sorted(PROXY_EVENT_KEYS - set(ev))}: {ev}")
        self.assertOriginSaw('203.0.113.10:443 host=allowed.test sni=allowed.test "GET /big.bin')

    def test_proxy_resolves_through_the_upstream(self):
        # curl does not resolve (--resolve); the query in the DNS server's log
        # is the proxy's.
        r = self.curl("--resolve", "allowed.test:443:203.0.113.10", "https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        self.assertIn("allowed.test from 198.51.100.2", self.w.dns_log())

    def test_openssl_s_client(self):
        r = self.openssl("-connect", "allowed.test:443", "-servername", "allowed.test", "-quiet",
                         input="GET /small.txt HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(SMALL_BODY, r.stdout)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", host="allowed.test", comm="openssl")

    def test_python_urllib(self):
        r = self.client("urllib", "https://allowed.test/mid.bin", "--cafile", self.w.ca)
        self.assertEqual((r["status"], r.get("sha256")), (200, self.w.files["/mid.bin"]), r)
        self.proxy_event(r["pid"], verdict="allow", reason="host-rule", host="allowed.test", l7="tls")

    def test_node_fetch(self):
        r = self.node_fetch("https://allowed.test/mid.bin")
        self.assertEqual((r.get("status"), r.get("sha256")), (200, self.w.files["/mid.bin"]), r)
        self.proxy_event(r["pid"], verdict="allow", reason="host-rule", host="allowed.test", l7="tls")

    def test_git_clone_over_https(self):
        dest = self.w.tmp / "clone"
        r = self.git_clone("https://allowed.test/repo.git", dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = self.w.agent_run(["git", "-C", str(dest), "rev-parse", "HEAD"], cgroup=None).stdout.strip()
        self.assertEqual(head, self.w.git_head)
        # git-remote-https (a child of git) made the connection.
        self.proxy_event(None, verdict="allow", reason="host-rule", host="allowed.test", l7="tls")

    def test_cname_and_wildcard(self):
        r = self.curl("https://alias.test/whoami")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("host=alias.test sni=alias.test", r.stdout)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", host="alias.test")
        r = self.curl("https://a.wild.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 203.0.113.10 443\n"), r.stderr)
        # "*.wild.test" covers names below it only (the resolver does not
        # answer wild.test; given an address, the proxy refuses it).
        r = self.curl("--resolve", "wild.test:443:203.0.113.10", "https://wild.test/")
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="wild.test")

    def test_ipv6_destination(self):
        r = self.curl("-6", "https://allowed.test/whoami")
        self.assertEqual(r.stdout, "host=allowed.test sni=allowed.test addr=2001:db8::10 port=443 scheme=https\n",
                         r.stderr)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", daddr="2001:db8::10", dport=443)
        r = self.curl("https://v6only.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 2001:db8::10 443\n"), r.stderr)

    def test_v4_mapped_destination_from_a_dual_stack_socket(self):
        r = self.client("tls", "::ffff:203.0.113.10", 443, "--family", "dual", "--sni", "allowed.test",
                        "--cafile", self.w.ca, "--path", "/whoami")
        self.assertTrue(r["ok"], r)
        self.assertIn("addr=203.0.113.10 port=443", r["body"])
        self.assertEqual(r["peer"], ["::ffff:203.0.113.10", 443], r)
        self.proxy_event(r["pid"], verdict="allow", reason="host-rule",
                         daddr=("203.0.113.10", "::ffff:203.0.113.10"))

    def test_getpeername_shows_the_original_destination(self):
        for addr in ("203.0.113.10", "2001:db8::10", "203.0.113.7"):
            with self.subTest(addr=addr):
                r = self.client("peer", addr, 443)
                self.assertTrue(r["ok"], r)
                self.assertEqual(r["peer"], [addr, 443], r)

    def test_client_hello_in_one_byte_writes(self):
        r = self.client("tls", "203.0.113.10", 443, "--sni", "allowed.test", "--cafile", self.w.ca, "--split",
                        "--path", "/mid.bin")
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["sha256"], self.w.files["/mid.bin"], r)
        self.proxy_event(r["pid"], verdict="allow", reason="host-rule", host="allowed.test")

    def test_thousand_concurrent_connections(self):
        r = self.client("concurrent", "203.0.113.10", 443, "--sni", "allowed.test", "--cafile", self.w.ca,
                        "--n", 1000, "--sha256", self.w.files["/mid.bin"], timeout=150)
        self.assertEqual(r["ok"], 1000, f"{r}\n--- egressd log (tail):\n{self.daemon.log()[-3000:]}")
        self.assertEqual(r["connected_at_once"], 1000, r)
        self.assertIsNone(self.daemon.proc.poll(), f"egressd exited:\n{self.daemon.log()[-3000:]}")


class TlsRefused(ProxyCase):
    def assertRefusedCurl(self, r):
        self.assertEqual(r.returncode, 35, f"curl should see the alert (exit 35): rc={r.returncode} "
                                           f"{r.stdout}{r.stderr}")

    def test_host_not_allowed(self):
        # --resolve: curl does not look the name up, so the DNS log shows
        # whether the proxy did (a refused name is never resolved).
        r = self.curl("--resolve", "other.test:443:203.0.113.7", "https://other.test/")
        self.assertRefusedCurl(r)
        ev = self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed")
        self.assertEqual((ev["host"], ev["daddr"], ev["dport"], ev["l7"], ev["comm"]),
                         ("other.test", "203.0.113.7", 443, "tls", "curl"), json.dumps(ev))
        self.assertNotIn("rule", ev)
        self.assertFalse(PROXY_EVENT_KEYS - set(ev), f"event lacks {sorted(PROXY_EVENT_KEYS - set(ev))}: {ev}")
        self.assertOriginNeverSaw("sni=other.test")
        self.assertNotIn("other.test", self.w.dns_log(), "a refused name was resolved")

    def test_openssl_sees_access_denied(self):
        r = self.openssl("-connect", "203.0.113.7:443", "-servername", "other.test")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("alert access denied", (r.stdout + r.stderr).lower(), f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")

    def test_sni_ip_mismatch(self):
        # An allowed name, sent to an address it does not resolve to.
        r = self.curl("--resolve", "allowed.test:443:203.0.113.7", "https://allowed.test/")
        self.assertRefusedCurl(r)
        self.proxy_event(r.pid, verdict="deny", reason="sni-ip-mismatch", host="allowed.test", daddr="203.0.113.7")
        self.assertOriginNeverSaw("203.0.113.7:443")

    def test_rebind(self):
        # Allowed names whose records point at blocked ranges.
        for name, addr, flag in (("rebind.test", "203.0.113.10", "-4"), ("rebind6.test", "[2001:db8::10]", "-6"),
                                 ("meta.test", "203.0.113.10", "-4")):
            with self.subTest(name=name):
                r = self.curl(flag, "--resolve", f"{name}:443:{addr}", f"https://{name}/")
                self.assertRefusedCurl(r)
                self.proxy_event(r.pid, verdict="deny", reason="rebind", host=name)
        self.assertOriginNeverSaw("rebind")

    def test_name_that_does_not_resolve(self):
        r = self.curl("--resolve", "nodns.test:443:203.0.113.10", "https://nodns.test/")
        self.assertRefusedCurl(r)
        self.proxy_event(r.pid, verdict="deny", reason="resolve-failed", host="nodns.test")

    def test_ssh_bytes_on_443_are_not_tls(self):
        r = self.client("raw", "203.0.113.10", 443, "--send", "SSH-2.0-x\\r\\n")
        self.assertTrue(r["connected"], r)
        self.assertNotIn("SSH", r["received"], r)
        self.assertTrue(r["eof"] or r["errno"] == "ECONNRESET", f"the proxy kept the connection open: {r}")
        # l7 names what was due on 443 (TLS), not "http": the bytes were neither.
        self.proxy_event(r["pid"], verdict="deny", reason="not-tls", dport=443, l7="tls")
        self.assertOriginNeverSaw("SSH-2.0")

    def test_client_hello_without_sni(self):
        r = self.client("hello", "203.0.113.10", 443, "--no-sni")
        self.assertEqual(r["alert"], ACCESS_DENIED, r)
        self.proxy_event(r["pid"], verdict="deny", reason="no-sni")
        r = self.openssl("-connect", "203.0.113.10:443", "-noservername")
        self.assertIn("alert access denied", (r.stdout + r.stderr).lower(), f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="no-sni")

    def test_encrypted_client_hello(self):
        r = self.client("hello", "203.0.113.10", 443, "--sni", "allowed.test", "--ech")
        self.assertEqual(r["alert"], ACCESS_DENIED, r)
        self.proxy_event(r["pid"], verdict="deny", reason="ech")

    def test_crafted_hello_with_allowed_sni_is_relayed(self):
        # Control for the two above: the same crafted hello with an allowed
        # SNI reaches nginx, which answers with a handshake record (22).
        r = self.client("hello", "203.0.113.10", 443, "--sni", "allowed.test")
        self.assertEqual(r["record_type"], 22, r)

    def test_direct_connect_to_the_proxy_listener(self):
        addr, port = self.proxy_port()
        target = "::1" if addr == "::1" else "127.0.0.1"
        r = self.client("hello", target, port, "--sni", "allowed.test")
        self.assertTrue(r["connected"], r)
        self.assertNotEqual(r["record_type"], 22, f"the proxy relayed a connection it has no record for: {r}")
        # Without a record the proxy cannot name the client: match by reason.
        self.proxy_event(None, verdict="deny", reason="no-record")
        self.assertOriginNeverSaw("GET")

    def test_private_destinations_stay_eperm(self):
        for addr, port, reason in (("10.0.0.5", 443, "private"), ("fd00::10", 443, "private"),
                                   ("169.254.169.254", 80, "link-local"), ("10.0.0.5", 80, "private")):
            with self.subTest(addr=addr, port=port):
                self.assertProbeDenied("connect", "tcp", addr, port, reason=reason, dport=port)
        # rebind.test is 10.0.0.5: egressd's resolver leaves that address
        # out (curl cannot resolve it), and given it, connect() is refused.
        r = self.curl("https://rebind.test/")
        self.assertEqual(r.returncode, 6, f"{r.stdout}{r.stderr}")
        r = self.curl("--resolve", "rebind.test:443:10.0.0.5", "https://rebind.test/")
        self.assertEqual(r.returncode, 7, f"{r.stdout}{r.stderr}")


class TlsTimeout(ProxyCase):
    ATTACH_ARGS = ("--proxy-timeout-ms", "3000")

    def test_silent_client_times_out_while_others_are_served(self):
        p = self.w.agent([self.w.python, str(self.w.tmp / "clients.py"), "idle", "203.0.113.10", "443",
                          "--seconds", "20"])
        out = _LineReader(p.stdout, "idle")
        first = out.get(10)
        self.assertTrue(first and json.loads(first).get("connected"), f"idle client: {first!r}")
        t0 = time.monotonic()
        r = self.curl("https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        self.assertLess(time.monotonic() - t0, 2.5, "a silent client held up another one")
        self.assertIsNone(p.poll(), "the silent client was dropped before its timeout")
        last = out.get(25)
        self.assertTrue(last, f"the silent client was never dropped (rc={p.poll()})")
        res = json.loads(last)
        self.assertTrue(res["eof"] or res["errno"] == "ECONNRESET", res)
        self.assertGreaterEqual(res["closed_after"], 2.0, res)
        self.assertLess(res["closed_after"], 15.0, res)
        self.proxy_event(p.pid, verdict="deny", reason="timeout", dport=443)
        p.wait(timeout=10)


class TlsPorts(ProxyCase):
    POLICY = LIMITS_POLICY

    def test_host_rule_port(self):
        r = self.curl(f"https://v4only.test:{ALT_TLS_PORT}/whoami")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"port={ALT_TLS_PORT}", r.stdout)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", dport=ALT_TLS_PORT, host="v4only.test")
        r = self.curl("https://v4only.test/")  # 443 is steered, but this rule names 8443 only
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="port-not-allowed", dport=443, host="v4only.test")

    def test_rule_with_methods_never_admits_https(self):
        r = self.curl("https://allowed.test/allowed/x")
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="inspection-needs-http", host="allowed.test", l7="tls")


class TlsAudit(ProxyCase):
    POLICY = AUDIT_POLICY

    def test_audit_lets_a_not_allowed_host_through(self):
        r = self.curl("https://other.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 203.0.113.7 443\n"), r.stderr)
        self.proxy_event(r.pid, verdict="audit", reason="host-not-allowed", host="other.test")
        r = self.curl("https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", host="allowed.test")


if __name__ == "__main__":
    unittest.main()
