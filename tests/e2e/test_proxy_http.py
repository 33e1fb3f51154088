"""The transparent proxy on plain HTTP (port 80): the Host decides, every
request of a kept-alive connection is judged, refusals are a 403 with
X-Egressd-Reason and a body naming the host and the policy file."""
import json
import os
import time
import unittest

from origins import SMALL_BODY
from proxy_case import AUDIT_POLICY, LIMITS_POLICY, RULE, ProxyCase, parse_http, sha256_file
from world import _LineReader

HTTP_EVENT_KEYS = {"hook", "verdict", "reason", "daddr", "dport", "host", "l7", "method", "path", "pid", "tgid",
                   "comm", "time"}


def request(method, path, host, extra=""):
    return f"{method} {path} HTTP/1.1\\r\\nHost: {host}\\r\\n{extra}\\r\\n"


class HttpAllowed(ProxyCase):
    def test_curl_big_download_is_byte_identical(self):
        out = self.w.tmp / "big.out"
        r = self.curl("-4", "-o", str(out), "http://allowed.test/big.bin", max_time=60, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256_file(out), self.w.files["/big.bin"], "the download differs from the origin's file")
        ev = self.proxy_event(r.pid, verdict="allow", l7="http", host="allowed.test")
        self.assertEqual((ev["reason"], ev["daddr"], ev["dport"], ev["method"], ev["path"], ev["comm"]),
                         ("host-rule", "203.0.113.10", 80, "GET", "/big.bin", "curl"), json.dumps(ev))
        self.assertEqual(ev.get("rule"), RULE["allowed.test"], json.dumps(ev))
        self.assertFalse(HTTP_EVENT_KEYS - set(ev), f"event lacks {sorted(HTTP_EVENT_KEYS - set(ev))}: {ev}")

    def test_python_urllib_and_node_fetch(self):
        r = self.client("urllib", "http://allowed.test/mid.bin")
        self.assertEqual((r["status"], r.get("sha256")), (200, self.w.files["/mid.bin"]), r)
        self.proxy_event(r["pid"], verdict="allow", reason="host-rule", l7="http", path="/mid.bin")
        n = self.node_fetch("http://allowed.test/small.txt")
        self.assertEqual((n.get("status"), n.get("body")), (200, SMALL_BODY), n)
        self.proxy_event(n["pid"], verdict="allow", reason="host-rule", l7="http", path="/small.txt")

    def test_ipv6_and_v4_mapped(self):
        r = self.curl("-6", "http://allowed.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 2001:db8::10 80\n"), r.stderr)
        self.proxy_event(r.pid, verdict="allow", daddr="2001:db8::10", dport=80, l7="http")
        r = self.client("raw", "::ffff:203.0.113.10", 80, "--family", "dual",
                        "--send", request("GET", "/", "allowed.test", "Connection: close\\r\\n"))
        got = parse_http(r["received"])
        self.assertEqual([(s, b) for s, _, b in got], [(200, b"hello from 203.0.113.10 80\n")], r)
        self.assertEqual(r["peer"], ["::ffff:203.0.113.10", 80], r)

    def test_host_with_port(self):
        r = self.client("raw", "203.0.113.10", 80,
                        "--send", request("GET", "/small.txt", "allowed.test:80", "Connection: close\\r\\n"))
        got = parse_http(r["received"])
        self.assertEqual([(s, b.decode()) for s, _, b in got], [(200, SMALL_BODY)], r)

    def test_keep_alive_requests_to_the_same_host(self):
        reqs = request("GET", "/small.txt", "allowed.test") + request("GET", "/", "allowed.test",
                                                                        "Connection: close\\r\\n")
        r = self.client("raw", "203.0.113.10", 80, "--send", reqs)
        got = parse_http(r["received"])
        self.assertEqual([(s, b) for s, _, b in got],
                         [(200, SMALL_BODY.encode()), (200, b"hello from 203.0.113.10 80\n")], r)


class HttpRefused(ProxyCase):
    def assert403(self, raw, reason):
        got = parse_http(raw)
        self.assertTrue(got, f"no HTTP response: {raw!r}")
        status, headers, body = got[-1]
        self.assertEqual(status, 403, raw)
        self.assertEqual(headers.get("x-egressd-reason"), reason, raw)
        return body.decode("latin-1")

    def test_forbidden_host_gets_403_naming_host_and_policy(self):
        r = self.curl("-i", "--resolve", "other.test:80:203.0.113.7", "http://other.test/some/path?q=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        body = self.assert403(r.stdout, "host-not-allowed")
        self.assertIn("other.test", body)
        self.assertIn(os.path.basename(self.policy_path), body)
        ev = self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed")
        self.assertEqual((ev["host"], ev["daddr"], ev["dport"], ev["l7"], ev["method"], ev["comm"]),
                         ("other.test", "203.0.113.7", 80, "http", "GET", "curl"), json.dumps(ev))
        self.assertTrue(ev["path"].startswith("/some/path"), json.dumps(ev))
        self.assertOriginNeverSaw("/some/path")
        self.assertNotIn("other.test", self.w.dns_log(), "a refused name was resolved")

    def test_pipelined_second_request_to_another_host(self):
        # One write: the first request is allowed and served, the second
        # names a host that is not allowed and gets the 403.
        reqs = request("GET", "/small.txt", "allowed.test") + request("GET", "/other/x", "other.test")
        r = self.client("raw", "203.0.113.10", 80, "--send", reqs)
        got = parse_http(r["received"])
        self.assertEqual([s for s, _, _ in got], [200, 403], r)
        self.assertEqual(got[0][2].decode(), SMALL_BODY)
        self.assertEqual(got[1][1].get("x-egressd-reason"), "host-not-allowed", got[1])
        self.assertTrue(r["eof"], f"the connection stayed open after the refusal: {r}")
        self.proxy_event(r["pid"], verdict="allow", host="allowed.test", path="/small.txt")
        self.proxy_event(r["pid"], verdict="deny", reason="host-not-allowed", host="other.test", path="/other/x")
        self.assertOriginSaw('"GET /small.txt HTTP/1.1"')
        self.assertOriginNeverSaw("/other/x")

    def test_content_length_with_transfer_encoding_is_smuggling(self):
        req = request("POST", "/allowed/x", "allowed.test",
                      "Content-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n") + "0\\r\\n\\r\\n"
        r = self.client("raw", "203.0.113.10", 80, "--send", req)
        got = parse_http(r["received"])
        self.assertTrue(got, r)
        self.assertIn(got[0][0], (400, 403), r)
        self.assertEqual(got[0][1].get("x-egressd-reason"), "smuggling", r)
        self.proxy_event(r["pid"], verdict="deny", reason="smuggling", l7="http")
        self.assertOriginNeverSaw("/allowed/x")

    def test_sni_ip_mismatch_and_rebind(self):
        r = self.curl("-i", "--resolve", "allowed.test:80:203.0.113.7", "http://allowed.test/")
        self.assert403(r.stdout, "sni-ip-mismatch")
        self.proxy_event(r.pid, verdict="deny", reason="sni-ip-mismatch", daddr="203.0.113.7", l7="http")
        r = self.curl("-i", "--resolve", "rebind.test:80:203.0.113.10", "http://rebind.test/")
        self.assert403(r.stdout, "rebind")
        self.proxy_event(r.pid, verdict="deny", reason="rebind", host="rebind.test", l7="http")
        self.assertOriginNeverSaw("GET")

    def test_ip_literal_host(self):
        r = self.curl("-i", "http://203.0.113.10/")
        self.assert403(r.stdout, "host-not-allowed")

    def test_ssh_bytes_on_80_are_not_http(self):
        r = self.client("raw", "203.0.113.10", 80, "--send", "SSH-2.0-x\\r\\n")
        self.assertTrue(r["connected"], r)
        self.assertNotIn("hello from", r["received"], r)
        self.proxy_event(r["pid"], verdict="deny", reason="not-http", dport=80)
        self.assertOriginNeverSaw("SSH-2.0")


class Http2(ProxyCase):
    """HTTP/2 on port 80: curl's h2c upgrade offer is taken out (the origin
    answers HTTP/1.1, every request stays judged); prior knowledge is
    refused with reason http2-cleartext."""

    def test_curl_http2_upgrade_offer_is_stripped(self):
        r = self.curl("-4", "--http2", "-w", "\\n%{http_code} %{http_version}", "http://allowed.test/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, status = r.stdout.rsplit("\n", 1)
        self.assertEqual((status, body), ("200 1.1", SMALL_BODY), r.stdout)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", l7="http", host="allowed.test",
                         path="/small.txt")
        # The origin got the request without the offer (nginx logs "-" for a missing header).
        line = self.origin_line('"GET /small.txt HTTP/1.1"')
        self.assertTrue(line.endswith(" upgrade=- http2_settings=-"), line)

    def origin_line(self, needle, deadline=5.0):
        """The origin's last log line containing needle (nginx writes it as
        the request ends: polled with a deadline)."""
        end = time.monotonic() + deadline
        while True:
            lines = [l for l in self.w.origin_log().splitlines() if needle in l]
            if lines:
                return lines[-1]
            if time.monotonic() > end:
                raise AssertionError(f"{needle!r} not in the origin's log:\n{self.w.origin_log()[-2000:]}")
            time.sleep(0.05)

    def test_offer_on_a_later_request_is_stripped_and_still_judged(self):
        offer = "Connection: Upgrade, HTTP2-Settings\\r\\nUpgrade: h2c\\r\\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\\r\\n"
        reqs = (request("GET", "/small.txt", "allowed.test", offer)
                + request("GET", "/allowed/two", "allowed.test", offer)
                + request("GET", "/other/x", "other.test", offer))
        r = self.client("raw", "203.0.113.10", 80, "--send", reqs)
        got = parse_http(r["received"])
        self.assertEqual([s for s, _, _ in got], [200, 200, 403], r)
        self.assertEqual(got[2][1].get("x-egressd-reason"), "host-not-allowed", got[2])
        self.proxy_event(r["pid"], verdict="deny", reason="host-not-allowed", host="other.test")
        self.assertOriginNeverSaw("/other/x")
        for path in ("/small.txt", "/allowed/two"):
            self.assertTrue(self.origin_line(f'"GET {path} HTTP/1.1"').endswith(" upgrade=- http2_settings=-"))

    def test_http2_prior_knowledge_gets_its_reason(self):
        r = self.curl("-4", "--http2-prior-knowledge", "-v", "http://allowed.test/small.txt")
        # An orderly HTTP/2 refusal: GOAWAY with HTTP_1_1_REQUIRED (13), curl exit 16.
        self.assertEqual(r.returncode, 16, r.stderr)
        self.assertRegex(r.stderr, r"GOAWAY, error=13\b", r.stderr)
        self.assertNotIn(SMALL_BODY, r.stdout)
        ev = self.proxy_event(r.pid, verdict="deny", reason="http2-cleartext", l7="http", dport=80)
        self.assertEqual((ev["method"], ev["comm"]), ("PRI", "curl"), json.dumps(ev))
        self.assertOriginNeverSaw("PRI")


class HttpTimeout(ProxyCase):
    ATTACH_ARGS = ("--proxy-timeout-ms", "2000")

    def test_partial_request_head_times_out(self):
        # A slowloris-style head that never ends, while another client is served.
        p = self.w.agent([self.w.python, str(self.w.tmp / "clients.py"), "idle", "203.0.113.10", "80",
                          "--seconds", "20"])
        out = _LineReader(p.stdout, "idle")
        first = out.get(10)
        self.assertTrue(first and json.loads(first).get("connected"), f"idle client: {first!r}")
        r = self.curl("http://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        self.assertIsNone(p.poll(), "the silent client was dropped before its timeout")
        last = out.get(25)
        self.assertTrue(last, f"the silent client was never dropped (rc={p.poll()})")
        res = json.loads(last)
        self.assertGreaterEqual(res["closed_after"], 1.5, res)
        self.assertLess(res["closed_after"], 15.0, res)
        self.proxy_event(p.pid, verdict="deny", reason="timeout", dport=80)
        p.wait(timeout=10)
        t0 = time.monotonic()
        r = self.client("raw", "203.0.113.10", 80, "--send", "GET / HTTP/1.1\\r\\nHost: allo", "--timeout", "15")
        self.assertLess(time.monotonic() - t0, 12, r)
        self.assertNotIn("hello from", r["received"], r)
        self.proxy_event(r["pid"], verdict="deny", reason="timeout", dport=80)


class HttpMethodsAndPaths(ProxyCase):
    POLICY = LIMITS_POLICY

    def test_method_and_path_rules(self):
        r = self.curl("-i", "http://allowed.test/allowed/x")
        got = parse_http(r.stdout)
        self.assertEqual([(s, b) for s, _, b in got], [(200, b"allowed GET /allowed/x\n")], r.stdout)
        self.proxy_event(r.pid, verdict="allow", reason="host-rule", method="GET", path="/allowed/x")

        r = self.curl("-i", "-X", "POST", "--data", "x=1", "http://allowed.test/allowed/x")
        status, headers, body = parse_http(r.stdout)[-1]
        self.assertEqual((status, headers.get("x-egressd-reason")), (403, "method-not-allowed"), r.stdout)
        self.assertIn("allowed.test", body.decode())
        self.proxy_event(r.pid, verdict="deny", reason="method-not-allowed", method="POST", path="/allowed/x")

        r = self.curl("-i", "http://allowed.test/other/x")
        status, headers, _ = parse_http(r.stdout)[-1]
        self.assertEqual((status, headers.get("x-egressd-reason")), (403, "path-not-allowed"), r.stdout)
        self.proxy_event(r.pid, verdict="deny", reason="path-not-allowed", method="GET", path="/other/x")

        r = self.curl("-i", "http://allowed.test/allowed/../other/x", "--path-as-is")
        status, headers, _ = parse_http(r.stdout)[-1]
        self.assertEqual((status, headers.get("x-egressd-reason")), (403, "path-not-allowed"), r.stdout)
        self.assertOriginNeverSaw("POST")
        self.assertOriginNeverSaw("/other/x")


class HttpAudit(ProxyCase):
    POLICY = AUDIT_POLICY

    def test_audit_lets_a_not_allowed_host_through(self):
        r = self.curl("http://other.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 203.0.113.7 80\n"), r.stderr)
        self.proxy_event(r.pid, verdict="audit", reason="host-not-allowed", host="other.test", l7="http")


if __name__ == "__main__":
    unittest.main()
