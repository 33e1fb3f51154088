"""The proxy keeps what clients lose when their connect() lands on it.

Fallback: a fenced TCP connect always succeeds (it reaches egressd's proxy),
so a client whose first address is dead never tries the name's next one;
the proxy does, and one upstream-fallback event names the address that
failed, how, and the one that served (recorded with events = "deny" too).
Names (origins.py): refused.test (first address resets), unreach.test (no
route to it), silent.test (SYNs vanish), dead.test (every address dead).

Addresses that moved: a client that keeps an address past its TTL, after the
DNS answer moved, is still let through within [proxy] address_grace; an
address the name was never answered with is still sni-ip-mismatch.
"""
import json
import statistics
import sys
import time

from origins import DEAD_CLOSED, DEAD_SILENT, DEAD_UNREACH
from proxy_case import ProxyCase

LIVE = "203.0.113.10"

FALLBACK_POLICY = """\
version = 1
events = "deny"

[[allow]]
host = "refused.test"

[[allow]]
host = "unreach.test"

[[allow]]
host = "silent.test"

[[allow]]
host = "dead.test"

[[allow]]
host = "v4only.test"
"""

MOVING_TTL = 5
MOVING_POLICY = """\
version = 1
events = "deny"

[proxy]
address_grace = "2m"

[[allow]]
host = "moving.test"
"""


class Fallback(ProxyCase):
    POLICY = FALLBACK_POLICY

    def fallback_event(self, pid, name, dead, why):
        ev = self.proxy_event(pid, reason="upstream-fallback", host=name)
        self.assertEqual((ev["verdict"], ev["daddr"], ev.get("dial_error"), ev.get("upstream"), ev.get("dials")),
                         ("allow", dead, why, LIVE, 2), json.dumps(ev))
        return ev

    def test_curl_first_address_refused(self):
        r = self.curl("https://refused.test/")
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), r.stderr)
        self.fallback_event(r.pid, "refused.test", DEAD_CLOSED, "refused")
        self.tail.no_event(lambda e: e.get("tgid") == r.pid and e.get("reason") == "upstream-fallback", wait=0.5)

    def test_curl_first_address_unreachable(self):
        # Left to itself, glibc's RFC 6724 probe (a UDP connect, which the
        # fence lets through) learns there is no route and sorts the address
        # last, as it would unfenced: curl never dials it.
        r = self.curl("https://unreach.test/")
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), r.stderr)
        # A client that dials it all the same (its own order, a kept address)
        # reaches the proxy, whose dial fails at once: served by the next.
        r = self.curl("--resolve", f"unreach.test:443:{DEAD_UNREACH}", "https://unreach.test/")
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), r.stderr)
        self.fallback_event(r.pid, "unreach.test", DEAD_UNREACH, "unreachable")

    def test_curl_first_address_silent(self):
        t = time.monotonic()
        r = self.curl("https://silent.test/")
        took = time.monotonic() - t
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), r.stderr)
        self.fallback_event(r.pid, "silent.test", DEAD_SILENT, "timeout")
        # The silent address had the proxy's attempt delay (1 s), not a
        # kernel SYN timeout.
        self.assertLess(took, 5, f"took {took:.1f}s")

    def test_python_urllib_first_address_refused(self):
        r = self.client("urllib", "https://refused.test/", "--cafile", self.w.ca)
        self.assertEqual((r.get("status"), r.get("body")), (200, f"hello from {LIVE} 443\n"), r)
        self.fallback_event(r["pid"], "refused.test", DEAD_CLOSED, "refused")

    def test_git_clone_first_address_refused(self):
        dest = self.w.tmp / "clone"
        r = self.git_clone("https://refused.test/repo.git", dest)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = self.w.agent_run(["git", "-C", str(dest), "rev-parse", "HEAD"], cgroup=None).stdout.strip()
        self.assertEqual(head, self.w.git_head)
        # git-remote-https (a child of git) made the connections.
        self.fallback_event(None, "refused.test", DEAD_CLOSED, "refused")

    def test_every_address_dead_is_reset_with_one_event(self):
        r = self.curl("https://dead.test/")
        self.assertIn(r.returncode, (35, 56), f"{r.stdout}{r.stderr}")  # reset during the TLS handshake
        ev = self.proxy_event(r.pid, reason="upstream-failed", host="dead.test")
        # dnsmasq rotates the two addresses: either may be curl's first.
        why = {DEAD_CLOSED: "refused", DEAD_UNREACH: "unreachable"}
        self.assertIn(ev["daddr"], why, json.dumps(ev))
        self.assertEqual((ev["verdict"], ev.get("dial_error"), ev.get("dials"), ev.get("upstream")),
                         ("deny", why[ev["daddr"]], 2, None), json.dumps(ev))
        self.assertNotIn("dead.test", self.w.origin_log())


class FallbackTime(ProxyCase):
    """The time a dead first address adds, fenced (the proxy falls back)
    against unfenced (the client falls back itself), printed to stderr:
    median of curl's time_total over a few runs."""
    POLICY = FALLBACK_POLICY
    RUNS = 5

    def timed_curl(self, url, fenced, extra=()):
        cmd = ["curl", "--silent", "--show-error", "--cacert", self.w.ca, "-o", "/dev/null", "-w",
               "%{http_code} %{time_total}", *extra, url]
        r = self.w.agent_run(cmd, cgroup="" if fenced else None, timeout=60)
        self.assertEqual(r.returncode, 0, f"{'fenced' if fenced else 'unfenced'} {url}: {r.stdout}{r.stderr}")
        code, total = r.stdout.split()
        self.assertEqual(code, "200", r.stdout)
        return float(total)

    def median(self, url, fenced, runs, extra=()):
        return statistics.median(self.timed_curl(url, fenced, extra) for _ in range(runs))

    def test_added_time_against_the_clients_own_fallback(self):
        rows = []
        for name, runs, extra in (("v4only.test", self.RUNS, ()),  # one live address: the baseline
                                  ("refused.test", self.RUNS, ()), ("unreach.test", self.RUNS, ()),
                                  ("silent.test", 2, ("--connect-timeout", "10"))):
            fenced = self.median(f"https://{name}/", True, runs, extra)
            unfenced = self.median(f"https://{name}/", False, runs, extra)
            rows.append((name, fenced, unfenced))
        sys.stderr.write("\n  dead first address: median curl time_total, fenced (proxy falls back) vs "
                         "unfenced (curl falls back)\n")
        for name, f, u in rows:
            sys.stderr.write(f"    {name:14s} fenced {f * 1000:8.1f} ms   unfenced {u * 1000:8.1f} ms\n")
        by = {n: (f, u) for n, f, u in rows}
        # Refused and unreachable cost a round trip at most; a silent address
        # the proxy's attempt delay (1 s), where curl gives it half its
        # connect timeout.
        self.assertLess(by["refused.test"][0], by["refused.test"][1] + 0.5)
        self.assertLess(by["unreach.test"][0], by["unreach.test"][1] + 0.5)
        self.assertLess(by["silent.test"][0], 3.0)


class MovedAddress(ProxyCase):
    """A DNS answer that moves while a client keeps the old address."""
    ATTACH = False

    def setUp(self):
        super().setUp()
        upstream = self.w.start_moving_dns({"moving.test": LIVE}, ttl=MOVING_TTL)
        self.policy_path = self.w.write_policy(MOVING_POLICY)
        self.daemon = self.w.egressd_attach(self.policy_path, dns_upstream=upstream)
        self.tail = self.w.tail()

    def test_old_address_kept_past_ttl_still_served(self):
        # The client resolves the name through egressd (TTL 5 s) and uses it.
        r = self.curl("https://moving.test/")
        answered = time.monotonic()
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), r.stderr)
        # The answer moves; the client keeps the old address for twice the TTL.
        self.w.move_dns({"moving.test": "203.0.113.7"})
        time.sleep(max(0.0, answered + 2 * MOVING_TTL + 1 - time.monotonic()))  # the premise: time past the TTL
        r = self.curl("--resolve", f"moving.test:443:{LIVE}", "https://moving.test/")
        self.assertEqual((r.returncode, r.stdout), (0, f"hello from {LIVE} 443\n"), f"{r.stdout}{r.stderr}")
        self.tail.no_event(lambda e: e.get("tgid") == r.pid, wait=0.5)
        # The new address works too (a fresh lookup has it).
        r = self.curl("https://moving.test/")
        self.assertEqual((r.returncode, r.stdout), (0, "hello from 203.0.113.7 443\n"), r.stderr)
        # An address the name was never answered with is still refused.
        r = self.curl("--resolve", "moving.test:443:198.51.100.20", "https://moving.test/")
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")
        self.proxy_event(r.pid, verdict="deny", reason="sni-ip-mismatch", host="moving.test", daddr="198.51.100.20")
