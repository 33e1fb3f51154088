"""Scaffolding for the resolver tests (test_dns*.py): policies, DnsCase, and
helpers to run DNS clients in the fenced cgroup, parse dig, match the
resolver's events and read the upstream's (dnsmasq's) query log.

The world's dnsmasq (origins.py, 198.51.100.53) is the only upstream: egressd
gets it as --dns-upstream. It logs every query it receives, so "never
forwarded" is checked against its log, after a marker query (a fresh name
that is allowed, or a direct query when egressd is gone) has shown up there:
everything asked before the marker is in the log by then."""
import json
import os
import re
import secrets
import shutil
import time

from e2e_case import DEFAULT_POLICY_ALL_EVENTS, FenceCase
from proxy_case import require_tools
from world import HERE, LINK4_AGENT

# Host rules name what may be resolved; *.wild.test also carries the marker
# queries (m<hex>.wild.test: NXDOMAIN at dnsmasq, logged there).
DNS_POLICY = DEFAULT_POLICY_ALL_EVENTS + """
[[allow]]
host = "allowed.test"

[[allow]]
host = "alias.test"

[[allow]]
host = "v6only.test"

[[allow]]
host = "rebind.test"

[[allow]]
host = "rebind6.test"

[[allow]]
host = "*.wild.test"

[[allow]]
host = "ech.test"

[[allow]]
host = "big.test"
"""

DNS_POLICY_DENY_EVENTS = DNS_POLICY.replace('events = "all"', 'events = "deny"')

# Other resolver addresses a client may ask: none runs a DNS server (some
# run a UDP echo server on 53), private and loopback ones included.
OTHER_RESOLVERS = ["198.51.100.99", "10.0.0.1", "127.0.0.53", "203.0.113.10", "2001:db8:ff::99", "fd00::53",
                   "::1"]


def parse_dig(out):
    """dig's default output -> {"status", "answers": [[name, type, data]],
    "server", "ede"}."""
    res = {"status": None, "answers": [], "server": None, "ede": None, "truncated_retry": False}
    m = re.search(r"->>HEADER<<- opcode: \w+, status: (\w+)", out)
    if m:
        res["status"] = m.group(1)
    m = re.search(r"^;; SERVER: (.*)$", out, re.M)
    if m:
        res["server"] = m.group(1).strip()
    m = re.search(r"^; EDE: (\d+)", out, re.M)
    if m:
        res["ede"] = int(m.group(1))
    res["truncated_retry"] = "Truncated, retrying in TCP mode" in out
    in_answer = False
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION:"):
            in_answer = True
            continue
        if in_answer:
            if not line.strip() or line.startswith(";"):
                in_answer = False
                continue
            parts = line.split(None, 4)
            if len(parts) == 5:
                res["answers"].append([parts[0].rstrip("."), parts[3], parts[4]])
    return res


def addresses(parsed):
    return sorted(d for _, t, d in parsed["answers"] if t in ("A", "AAAA"))


class DnsCase(FenceCase):
    POLICY = DNS_POLICY
    TOOLS = ("dig", "getent")

    def setUp(self):
        require_tools(self, *self.TOOLS)
        super().setUp()
        dst = self.w.tmp / "dns_clients.py"
        shutil.copy(HERE / "dns_clients.py", dst)
        os.chmod(dst, 0o644)

    # -- clients ------------------------------------------------------------

    def dig(self, *args, server=None, cgroup="", user=None, tries=1, timeout=30):
        """dig in the fenced cgroup (the world's resolv.conf names
        198.51.100.53); .parsed is parse_dig of its output, .pid dig's pid."""
        cmd = ["dig", "+time=2", f"+tries={tries}"] + ([f"@{server}"] if server else []) + list(args)
        r = self.w.agent_run(cmd, cgroup=cgroup, user=user, timeout=timeout)
        r.parsed = parse_dig(r.stdout)
        return r

    def dnsq(self, *args, cgroup="", timeout=90):
        """dns_clients.py ARGS in the cgroup; its JSON (with "rc")."""
        r = self.w.agent_run([self.w.python, str(self.w.tmp / "dns_clients.py"), *map(str, args)], cgroup=cgroup,
                             timeout=timeout)
        lines = [l for l in r.stdout.split("\n") if l.startswith("{")]
        if not lines:
            raise AssertionError(f"dns_clients.py {args} printed nothing (rc={r.returncode}): {r.stdout}{r.stderr}")
        out = json.loads(lines[-1])
        out["rc"] = r.returncode
        return out

    def assertAnswer(self, r, addrs, status="NOERROR"):
        self.assertEqual((r.parsed["status"], addresses(r.parsed)), (status, sorted(addrs)),
                         f"dig rc={r.returncode}:\n{r.stdout}{r.stderr}\n--- egressd log (tail):\n"
                         f"{self.daemon.log()[-2000:] if self.daemon else ''}")

    # -- events -------------------------------------------------------------

    def dns_event(self, pid=None, timeout=10.0, **fields):
        """The first unclaimed resolver event from client process pid (its tgid)
        whose fields equal `fields` (world.Tail.hook_event)."""
        return self.tail.hook_event("dns", pid, timeout, **fields)

    # -- the upstream's query log --------------------------------------------

    def wait_upstream_log(self, needle, deadline=10.0):
        """dnsmasq's log once it contains needle (polled: the outcome is a
        line written by another process)."""
        end = time.monotonic() + deadline
        while True:
            log = self.w.dns_log()
            if needle in log:
                return log
            if time.monotonic() > end:
                raise AssertionError(f"{needle!r} not in the upstream's log within {deadline}s:\n{log[-3000:]}")
            time.sleep(0.05)

    def upstream_marker(self, via_egressd=True):
        """Asks a fresh name and waits for it in dnsmasq's log; returns the
        log. via_egressd: from the fenced cgroup (an allowed name, so the
        resolver forwards it), else straight from the agent netns outside
        the cgroup (when egressd is gone)."""
        name = f"m{secrets.token_hex(6)}.wild.test"
        if via_egressd:
            r = self.dig(name, tries=2)
            self.assertEqual(r.parsed["status"], "NXDOMAIN", f"marker {name} not answered:\n{r.stdout}{r.stderr}")
        else:
            r = self.dig(name, server=self.w.dns, cgroup=None, tries=2)
            self.assertEqual(r.parsed["status"], "NXDOMAIN", f"direct marker {name}:\n{r.stdout}{r.stderr}")
        return self.wait_upstream_log(f"query[A] {name} from ")

    def upstream_queries(self, log=None):
        """[(type, name)] of every query dnsmasq logged from the agent
        netns (egressd's forwards and direct queries alike)."""
        log = self.w.dns_log() if log is None else log
        return re.findall(r"query\[(\w+)\] (\S+) from " + re.escape(LINK4_AGENT), log)

    def assertNeverForwarded(self, *needles, via_egressd=True):
        log = self.upstream_marker(via_egressd)
        asked = [f"{t} {n}" for t, n in self.upstream_queries(log)]
        for needle in needles:
            hits = [q for q in asked if needle in q]
            self.assertFalse(hits, f"the upstream saw {needle!r}: {hits[:10]}")
        return log
