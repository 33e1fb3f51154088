"""A fair share of connections per client: one fenced process flooding the
proxy (or the resolver over TCP) with idle connections gets the excess
refused with reason too-many-connections (an event, a log line naming it and
the cap, the counters), while another fenced process is served meanwhile.
The caps are set small in the policy, so the floods stay a few connections."""
import json
import resource
import subprocess
import time

import metrics_client as mc
from dns_case import DNS_POLICY, DnsCase
from origins import SMALL_BODY
from proxy_case import PROXY_POLICY, ProxyCase
from world import _LineReader

PROXY_CAP = 8
DNS_CAP = 4
EXCESS = 4


class Flood:
    """clients.py hold in the fenced cgroup: `n` idle connections to
    addr:port, opened one after another; `.first` is its report once
    `expect_closed` of them were closed by the peer (or 10 s passed)."""

    def __init__(self, world, addr, port, n, expect_closed):
        self.p = world.agent([world.python, str(world.tmp / "clients.py"), "hold", addr, str(port), "--n", str(n),
                              "--expect-closed", str(expect_closed), "--wait", "10", "--seconds", "60"],
                             stdin=subprocess.PIPE)
        self.out = _LineReader(self.p.stdout, "hold")
        self.first = self.line(30)

    @property
    def pid(self):
        return self.p.pid

    def line(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.out.get(0.2)
            if got is None:
                raise AssertionError(f"clients.py hold exited ({self.p.poll()}): {self.p.stderr.read()}")
            if got.startswith("{"):
                return json.loads(got)
        raise AssertionError(f"clients.py hold said nothing within {timeout}s")

    def status(self):
        self.p.stdin.write("status\n")
        self.p.stdin.flush()
        return self.line(10)

    def stop(self):
        try:
            self.p.stdin.write("stop\n")
            self.p.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        self.p.wait(timeout=10)


class FairShareCase:
    """Attaches with the case's POLICY and a metrics socket, from a test
    runner whose soft open-file limit is lowered, so the daemon raises its own."""
    ATTACH = False

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        low = min(soft, 1024)
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        self.sock = str(self.w.tmp / "metrics.sock")
        try:
            self.attach(self.POLICY, extra=list(self.ATTACH_ARGS) + ["--metrics", f"unix:{self.sock}"])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.nofile = (low, hard)
        self.tail = self.w.tail()

    def flood(self, addr, port, cap):
        f = Flood(self.w, addr, port, cap + EXCESS, EXCESS)
        self.addCleanup(f.stop)
        self.assertEqual((f.first["opened"], f.first["open"], f.first["closed"], f.first["errors"]),
                         (cap + EXCESS, cap, EXCESS, {}), f"flood: {f.first}\n{self.daemon.log()[-3000:]}")
        return f

    def assertDaemonRaisedItsFileLimit(self):
        low, hard = self.nofile
        limits = open(f"/proc/{self.daemon.pid}/limits").read()
        row = [l for l in limits.splitlines() if l.startswith("Max open files")][0].split()
        self.assertEqual(row[3], row[4], f"soft limit not raised to the hard limit: {row}")
        if low < hard:
            self.assertIn(f"open files: soft limit raised from {low} to {hard} (the hard limit)", self.daemon.stderr())

    def assertLogged(self, server, pid, cap, total):
        log = self.daemon.stderr()
        want = f"{server}: refused a connection of pid {pid} ("
        lines = [l for l in log.splitlines() if want in l]
        self.assertTrue(lines, f"no log line {want!r}:\n{log[-3000:]}")
        self.assertIn(f"too-many-connections: it holds {cap}, the per-process cap (caps: {cap} per process", lines[0])
        self.assertIn(f"{total} in total)", lines[0])

    def decisions(self, hook, reason):
        _, _, body = mc.curl(["--unix-socket", self.sock, "http://localhost/metrics"])
        return mc.value(mc.parse(body), "egressd_decisions_total", cgroup=self.w.cgroup, hook=hook, verdict="deny",
                        reason=reason)


class ProxyFairShare(FairShareCase, ProxyCase):
    POLICY = PROXY_POLICY + f"\n[proxy]\nmax_connections_per_process = {PROXY_CAP}\n"
    # Held connections stay in inspection for the whole test.
    ATTACH_ARGS = ("--proxy-timeout-ms", "60000")

    def test_flooding_process_refused_while_another_is_served(self):
        self.assertIn("connections held at once: proxy", self.daemon.stderr())
        self.assertIn(f"({PROXY_CAP} per process,", self.daemon.stderr())
        self.assertDaemonRaisedItsFileLimit()
        f = self.flood("203.0.113.10", 443, PROXY_CAP)
        ev = self.proxy_event(f.pid, verdict="deny", reason="too-many-connections")
        self.assertEqual((ev["daddr"], ev["dport"], ev["uid"]), ("203.0.113.10", 443, 0), json.dumps(ev))
        # Another process is served while the flood holds its share.
        t0 = time.monotonic()
        r = self.curl("https://allowed.test/small.txt")
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        self.assertLess(time.monotonic() - t0, 5, "the flood held up another process")
        self.proxy_event(r.pid, verdict="allow", host="allowed.test")
        self.assertEqual(f.status()["open"], PROXY_CAP, "the flood's own share was dropped")
        total = [l for l in self.daemon.stderr().splitlines() if "connections held at once: proxy " in l][0]
        self.assertLogged("proxy", f.pid, PROXY_CAP, total.split("proxy ", 1)[1].split(" ", 1)[0])
        self.assertEqual(self.decisions("proxy", "too-many-connections"), EXCESS)


class DnsTcpFairShare(FairShareCase, DnsCase):
    POLICY = DNS_POLICY + f"\n[dns]\nmax_tcp_connections_per_process = {DNS_CAP}\n"

    def test_flooding_process_refused_while_another_is_served(self):
        self.assertIn(f"resolver TCP 512 ({DNS_CAP} per process,", self.daemon.stderr())
        # Idle resolver connections are closed after 10 s: all of this
        # happens well within that.
        f = self.flood(self.w.dns, 53, DNS_CAP)
        ev = self.dns_event(f.pid, verdict="deny", reason="too-many-connections")
        self.assertEqual((ev["proto"], ev["daddr"], ev["dport"]), ("tcp", self.w.dns, 53), json.dumps(ev))
        r = self.dig("+tcp", "allowed.test", "A")
        self.assertAnswer(r, ["203.0.113.10"])
        self.assertEqual(f.status()["open"], DNS_CAP, "the flood's own share was dropped")
        self.assertLogged("resolver (TCP)", f.pid, DNS_CAP, 512)
        self.assertEqual(self.decisions("dns", "too-many-connections"), EXCESS)
