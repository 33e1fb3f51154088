"""Real clients and the resolver (issue 13, items 2 and 5).

- An IPv4-only agent (its IPv6 default route removed after attach, as on a
  default Docker container): names with A and AAAA records work for curl,
  git, Node, Python and pip (a PEP 503 index on allowed.test) because the
  resolver stops offering AAAA (NODATA), and offers it again once the route
  is back (rtnetlink subscription). With that turned off pip still works:
  glibc's route probe sorts IPv4 first.
- A denied name's NXDOMAIN carries an Extended DNS Error whose text names
  egressd, the reason and the policy file (dig shows it; pip, npm and apt
  only say the name was not found).
- [dns] denied = "sinkhole": a denied name resolves to the sinkhole
  address, so curl gets the proxy's 403 that names the rule over HTTP and a
  TLS access_denied alert over HTTPS; pip, npm and apt print those; nothing
  reaches the upstream DNS or any origin.
- SRV of `_service._proto.<allowed name>` is forwarded and answered; of a
  denied name it is not.
"""
import json
import re
import subprocess
import time
import unittest

from dns_case import DNS_POLICY, DnsCase
from origins import SMALL_BODY
from pkg_index import MODULE_TEXT, NAME as PKG, WHEEL
from proxy_case import ProxyCase, require_tools
from world import ORIGIN_TOOLS, python_for_probes, run

ALLOWED4, ALLOWED6 = "203.0.113.10", "2001:db8::10"
SINKHOLE4, SINKHOLE6 = "203.0.113.254", "2001:db8::e9d"
NO_V6_ROUTE = "routes changed: IPv4 routed, IPv6 no default route"
PIP_HTTP_403 = ("Could not fetch URL http://other.test/simple/egdemo/: 403 Client Error: Forbidden for url: "
                "http://other.test/simple/egdemo/")

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


def require_pip(case):
    """pip for the probes' interpreter (Debian: python3-pip); a skip (a
    failure under CI=true) when it is missing."""
    r = subprocess.run([python_for_probes(), "-m", "pip", "--version"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        msg = "missing tools: pip (run scripts/install-deps.sh --test)"
        case.skipTest(msg)  # run.py fails it under CI=true


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

    def pip(self, command, index, *args, timeout=60):
        """`python3 -m pip COMMAND` of egdemo from `index` (and no other),
        trusting the world's CA; bounded (5 s socket timeout, no retries,
        no cache, no version check, no config file): nothing else is asked.
        A clean environment: the runner's PIP_* or REQUESTS_CA_BUNDLE would
        win over --cert and add indexes."""
        r = self.w.agent_run(["env", "-i", "PATH=/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK=1",
                              "PIP_CONFIG_FILE=/dev/null", "PIP_NO_INPUT=1", f"HOME={self.w.tmp}",
                              self.w.python, "-m", "pip", command,
                              "--no-cache-dir", "--index-url", index, "--cert", self.w.ca, "--timeout", "5",
                              "--retries", "0", *args, PKG], timeout=timeout)
        return r

    def npm(self, *args, timeout=60):
        """npm with a private HOME and cache, the world's CA, bounded
        (no retries, 5 s per request), in a clean environment."""
        return self.w.agent_run(["env", "-i", "PATH=/usr/bin:/bin", f"HOME={self.w.tmp}",
                                 f"npm_config_cache={self.w.tmp / 'npm-cache'}", "npm_config_update_notifier=false",
                                 "npm_config_audit=false", "npm_config_fund=false", "npm", *args, "--cafile", self.w.ca,
                                 "--fetch-retries=0", "--fetch-timeout=5000"], timeout=timeout)

    def apt_update(self, url):
        """`apt-get update` of one `[trusted=yes]` source at url, with its
        lists, cache and sources in the world's directory (the host's apt
        state is not written, its sources not read); bounded (no retries,
        5 s timeouts). Its `Err:` lines are on stdout, the `W:` and `E:`
        lines on stderr: .out has both."""
        d = self.w.tmp / f"apt-{len(list(self.w.tmp.glob('apt-*')))}"
        (d / "lists" / "partial").mkdir(parents=True)
        (d / "sources.list").write_text(f"deb [trusted=yes] {url} bookworm main\n")
        opts = {"Dir::Etc::sourcelist": d / "sources.list", "Dir::Etc::sourceparts": "-",
                "Dir::State::Lists": d / "lists", "Dir::Cache": d / "cache", "Debug::NoLocking": "1",
                "APT::Sandbox::User": "root", "Acquire::Retries": "0", "Acquire::http::Timeout": "5",
                "Acquire::https::Timeout": "5", "Acquire::https::CaInfo": self.w.ca}
        r = self.w.agent_run(["apt-get", "update", *[a for k, v in opts.items() for a in ("-o", f"{k}={v}")]],
                             timeout=60)
        r.out = r.stdout + r.stderr
        return r

    def assert_pip_works(self):
        """pip download and pip install --target of the world's index (a
        PEP 503 index on allowed.test, which has A and AAAA records)."""
        require_pip(self)
        dl, target = self.w.tmp / "pip-dl", self.w.tmp / "pip-target"
        r = self.pip("download", "https://allowed.test/simple/", "-d", str(dl))
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertTrue((dl / WHEEL).exists(), r.stdout)
        r = self.pip("install", "https://allowed.test/simple/", "--target", str(target))
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertIn(f"Successfully installed {PKG}-", r.stdout)
        self.assertEqual((target / PKG / "__init__.py").read_text(), MODULE_TEXT)
        self.assertIn(f"GET /packages/{WHEEL} HTTP/1.1\" 200", self.w.origin_log())

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
        self.assert_pip_works()
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
        # pip still works, though not thanks to the resolver: glibc's
        # address-sorting probe (a UDP connect, allowed by the fence) gets
        # ENETUNREACH for the IPv6 address, so RFC 6724 puts IPv4 first and
        # pip connects there (before the probe was allowed, IPv6 came first
        # and pip gave up: issue 13, item 2).
        got = self.w.agent_run(["getent", "ahosts", "allowed.test"]).stdout.split()
        self.assertIn(ALLOWED6, got)
        self.assertLess(got.index(ALLOWED4), got.index(ALLOWED6), got)
        self.assert_pip_works()
        self.assertNotIn(f"[{ALLOWED6}]", self.w.origin_log())


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

    def test_package_managers_show_name_not_found(self):
        """What pip, npm and apt print for a denied name by default
        (docs/policy.md, "What clients print"): a name that does not exist;
        none of them shows the EDE text."""
        require_pip(self)
        require_tools(self, "npm", "apt-get")
        r = self.pip("download", "https://other.test/simple/", "-d", str(self.w.tmp / "dl"))
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn("ERROR: No matching distribution found for egdemo", r.stderr)
        self.dns_event(r.pid, verdict="deny", reason="dns-name-not-allowed", host="other.test")
        r = self.npm("view", PKG, "--registry", "https://other.test/")
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn("npm error code ENOTFOUND", r.stderr)
        self.assertIn(f"request to https://other.test/{PKG} failed, reason: getaddrinfo ENOTFOUND other.test",
                      r.stderr)
        r = self.apt_update("http://other.test/debian")
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")  # a warning only
        self.assertIn("W: Failed to fetch http://other.test/debian/dists/bookworm/InRelease  Could not resolve "
                      "'other.test'", r.out)
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

    def test_package_managers_show_the_refusal(self):
        """What pip, npm and apt print for a denied registry (docs/policy.md,
        "What clients print"): the TLS access_denied alert over HTTPS, the
        proxy's 403 over HTTP."""
        require_pip(self)
        require_tools(self, "npm", "apt-get")
        r = self.pip("download", "https://other.test/simple/", "-d", str(self.w.tmp / "dl"))
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn("Could not fetch URL https://other.test/simple/egdemo/: There was a problem confirming the "
                      "ssl certificate", r.stdout)
        self.assertIn("[SSL: TLSV1_ALERT_ACCESS_DENIED] tlsv1 alert access denied", r.stdout)
        self.assertIn("ERROR: No matching distribution found for egdemo", r.stderr)
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")
        # Over HTTP pip reports an index page's 4xx only at debug level (-vv).
        r = self.pip("download", "http://other.test/simple/", "--trusted-host", "other.test", "-vv",
                     "-d", str(self.w.tmp / "dl"))
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn(PIP_HTTP_403, r.stdout + r.stderr, f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")

        r = self.npm("view", PKG, "--registry", "https://other.test/")
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn("npm error code ERR_SSL_TLSV1_ALERT_ACCESS_DENIED", r.stderr)
        self.assertIn("tlsv1 alert access denied", r.stderr)
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")
        r = self.npm("view", PKG, "--registry", "http://other.test/")
        self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
        self.assertIn("npm error code E403", r.stderr)
        self.assertIn(f"npm error 403 403 Forbidden - GET http://other.test/{PKG}", r.stderr)
        self.proxy_event(r.pid, verdict="deny", reason="host-not-allowed", host="other.test")

        r = self.apt_update("https://other.test/debian")
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")  # a warning only
        self.assertRegex(r.out, r"Could not handshake: A TLS fatal alert has been received\. \[IP: "
                         + f"({re.escape(SINKHOLE4)}|{re.escape(SINKHOLE6)}) 443\\]")
        r = self.apt_update("http://other.test/debian")
        self.assertEqual(r.returncode, 100, f"{r.stdout}{r.stderr}")
        self.assertRegex(r.out, r"E: Failed to fetch http://other\.test/debian/dists/bookworm/main/binary-\w+/"
                         + f"Packages  403  Forbidden \\[IP: ({re.escape(SINKHOLE4)}|{re.escape(SINKHOLE6)}) 80\\]")

        self.assertNeverForwarded("other.test")
        self.assertNotIn("other.test", self.w.origin_log())


if __name__ == "__main__":
    unittest.main()
