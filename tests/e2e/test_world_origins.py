"""The proxy tests' world without egressd: the DNS server answers only its own
names, and real clients (curl, openssl, python, node, git) reach the nginx
origins by name. If these fail, every test_proxy_* failure is suspect."""
import unittest

from origins import ALT_TLS_PORT, DNS_RECORDS, SMALL_BODY
from proxy_case import ProxyCase, dig, parse_http, sha256_file


class WorldOrigins(ProxyCase):
    ATTACH = False

    def test_dns_answers_its_names_over_udp_and_tcp(self):
        for proto in ("+notcp", "+tcp"):
            with self.subTest(proto=proto):
                r = dig(self.w, proto, "+short", "allowed.test", "A")
                self.assertEqual(r.stdout.split(), ["203.0.113.10"], r.stderr)
                r = dig(self.w, proto, "+short", "allowed.test", "AAAA")
                self.assertEqual(r.stdout.split(), ["2001:db8::10"], r.stderr)
        r = dig(self.w, "+short", "rebind.test", "A")
        self.assertEqual(r.stdout.split(), ["10.0.0.5"])
        r = dig(self.w, "+short", "alias.test", "A")
        self.assertEqual(r.stdout.split(), ["allowed.test.", "203.0.113.10"])
        self.assertEqual(dig(self.w, "+short", "v6only.test", "A").stdout.split(), [])
        self.assertEqual(dig(self.w, "+short", "v6only.test", "AAAA").stdout.split(), ["2001:db8::10"])
        self.assertIn("status: NXDOMAIN", dig(self.w, "unknown.test", "A").stdout)
        self.assertIn("status: NXDOMAIN", dig(self.w, "nodns.test", "A").stdout)
        # No upstream: anything outside its own names is refused, never forwarded.
        self.assertIn("status: REFUSED", dig(self.w, "example.com", "A").stdout)
        self.assertIn("query[A] allowed.test from 198.51.100.2", self.w.dns_log())

    def test_agent_processes_resolve_through_the_world(self):
        r = self.w.agent_run(["getent", "ahosts", "allowed.test"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual({l.split()[0] for l in r.stdout.splitlines()}, set(DNS_RECORDS["allowed.test"]))
        r = self.w.agent_run(["getent", "hosts", "example.com"])
        self.assertNotEqual(r.returncode, 0, f"resolved a name the world does not serve: {r.stdout}")

    def test_https_by_name_big_file(self):
        out = self.w.tmp / "big.out"
        r = self.curl("-o", str(out), "https://allowed.test/big.bin", max_time=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sha256_file(out), self.w.files["/big.bin"])
        r = self.curl("-6", "https://allowed.test/whoami")
        self.assertEqual(r.stdout, "host=allowed.test sni=allowed.test addr=2001:db8::10 port=443 scheme=https\n")
        r = self.curl("-4", "https://other.test/")
        self.assertEqual(r.stdout, "hello from 203.0.113.7 443\n", r.stderr)

    def test_plain_http_and_alt_port(self):
        r = self.curl("-4", "http://allowed.test/")
        self.assertEqual(r.stdout, "hello from 203.0.113.10 80\n", r.stderr)
        r = self.curl("-4", f"https://allowed.test:{ALT_TLS_PORT}/whoami")
        self.assertEqual(r.stdout, f"host=allowed.test sni=allowed.test addr=203.0.113.10 port={ALT_TLS_PORT} "
                                   "scheme=https\n", r.stderr)
        r = self.curl("-X", "POST", "http://allowed.test/other/x")
        self.assertEqual(r.stdout, "other POST /other/x\n")

    def test_keepalive_pipeline_is_served(self):
        reqs = ("GET /small.txt HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n"
                "GET / HTTP/1.1\\r\\nHost: other.test\\r\\nConnection: close\\r\\n\\r\\n")
        r = self.client("raw", "203.0.113.10", 80, "--send", reqs)
        got = parse_http(r["received"])
        self.assertEqual([s for s, _, _ in got], [200, 200], r)
        self.assertEqual(got[0][2].decode(), SMALL_BODY)

    def test_openssl_s_client(self):
        r = self.openssl("-connect", "allowed.test:443", "-servername", "allowed.test", "-quiet",
                         input="GET /small.txt HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(SMALL_BODY, r.stdout)

    def test_python_clients(self):
        r = self.client("urllib", "https://allowed.test/mid.bin", "--cafile", self.w.ca)
        self.assertEqual((r["status"], r["sha256"]), (200, self.w.files["/mid.bin"]), r)
        r = self.client("tls", "203.0.113.10", 443, "--sni", "allowed.test", "--cafile", self.w.ca, "--split",
                        "--path", "/mid.bin")
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["sha256"], self.w.files["/mid.bin"])
        r = self.client("peer", "::ffff:203.0.113.10", 443, "--dual")
        self.assertEqual(r["peer"], ["::ffff:203.0.113.10", 443], r)

    def test_node_fetch(self):
        r = self.node_fetch("https://allowed.test/small.txt")
        self.assertEqual((r.get("status"), r.get("body")), (200, SMALL_BODY), r)

    def test_git_clone_over_https(self):
        dest = self.w.tmp / "clone"
        r = self.git_clone("https://allowed.test/repo.git", dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = self.w.agent_run(["git", "-C", str(dest), "rev-parse", "HEAD"], cgroup=None).stdout.strip()
        self.assertEqual(head, self.w.git_head)

    def test_thousand_concurrent_tls(self):
        r = self.client("concurrent", "203.0.113.10", 443, "--sni", "allowed.test", "--cafile", self.w.ca,
                        "--n", 1000, "--sha256", self.w.files["/mid.bin"], timeout=150)
        self.assertEqual(r["ok"], 1000, r)


if __name__ == "__main__":
    unittest.main()
