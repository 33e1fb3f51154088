"""Shared unittest scaffolding for the e2e tests: policies and FenceCase.

Every test method gets its own World (netns pair, servers, cgroup) and, unless
the class says otherwise, its own `egressd attach` and `egressd tail`, so
tests never depend on each other or on their order.
"""
import json
import os
import re
import subprocess
import sys
import time
import unittest
from datetime import datetime

from world import World, _LineReader, _kill_proc

# The documented default: loopback allowed, the blocked categories denied,
# TCP 80/443 and UDP 53 to public addresses, nothing else.
DEFAULT_POLICY = """\
version = 1
events = "deny"

[network]
loopback = "allow"
private = "deny"
link_local = "deny"
"""

# Same, but allow decisions are events too (to see allow reasons).
DEFAULT_POLICY_ALL_EVENTS = DEFAULT_POLICY.replace('events = "deny"', 'events = "all"')

# policies/strict.toml style: loopback denied.
STRICT_POLICY = """\
version = 1
events = "all"

[network]
loopback = "deny"
private = "deny"
link_local = "deny"
"""

ALLOW_PG_POLICY = DEFAULT_POLICY_ALL_EVENTS + """
[[allow_cidr]]
cidr = "10.0.0.5/32"
ports = [5432]
proto = "tcp"
"""

DENY_CIDR_POLICY = """\
version = 1

[network]
private = "deny"
link_local = "deny"

[[deny_cidr]]
cidr = "203.0.113.7/32"
"""

# TCP 80/443 (and host-rule ports) go through egressd's proxy, which admits
# only names an [[allow]] rule lists and that resolve (through the world's DNS
# server) to the address connected to. Tests that need web traffic to get
# through add this rule and name public.test (203.0.113.10, 2001:db8::10):
# curl https://public.test/, probe.py connect ... --http --host public.test.
PUBLIC_HOST_RULE = """
[[allow]]
host = "public.test"
"""

# Adds a deny_cidr for the TLS host, so 203.0.113.10:443 flips to deny-cidr.
DENY_TLS_HOST_POLICY = DEFAULT_POLICY + """
[[deny_cidr]]
cidr = "203.0.113.10/32"
"""

# Line 6, column 11 holds the bad value (the key starts at column 1).
BROKEN_POLICY = """\
version = 1
events = "deny"

[network]
loopback = "allow"
private = "maybe"
"""
BROKEN_POLICY_LINE = 6

BROKEN_SYNTAX_POLICY = """\
version = 1

[network]
loopback = "allow"
private = = "deny"
"""
BROKEN_SYNTAX_LINE = 5

# "rule" appears only when a numbered rule decided ([[allow_cidr]]/[[deny_cidr]]),
# "judged" only for v6 forms judged as IPv4.
EVENT_KEYS = {"time", "pid", "tgid", "uid", "comm", "cgroup_id", "hook", "family", "proto", "daddr", "dport",
              "verdict", "reason"}


class Loop:
    """probe.py loop: connects in a tight loop until told to stop."""

    def __init__(self, world, addr, port, cgroup="", max_attempts=200000):
        self.p = world.agent([world.python, str(world.tmp / "probe.py"), "loop", "tcp", addr, str(port),
                              "--seconds", "60", "--max", str(max_attempts)], cgroup=cgroup, stdin=subprocess.PIPE)
        self.out = _LineReader(self.p.stdout, "loop")
        end = time.monotonic() + 10
        while time.monotonic() < end:
            line = self.out.get(0.2)
            if line is None:
                raise AssertionError(f"probe loop exited early: {self.p.stderr.read()}")
            if line and '"looping"' in line:
                return
        raise AssertionError("probe loop did not start")

    def wait_done(self, deadline):
        """Waits for the loop to end by itself (--max); returns its summary."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            line = self.out.get(0.2)
            if line is None:
                break
            if line and '"attempts"' in line:
                return json.loads(line)
        return self.stop()

    def stop(self):
        try:
            self.p.stdin.write("stop\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        end = time.monotonic() + 10
        while time.monotonic() < end:
            line = self.out.get(0.2)
            if line is None:
                break
            if line and '"attempts"' in line:
                res = json.loads(line)
                sys.stderr.write(f"  (probe loop: {line.strip()})\n")
                return res
        _kill_proc(self.p, 1)
        raise AssertionError("probe loop gave no summary")


class FenceCase(unittest.TestCase):
    POLICY = DEFAULT_POLICY
    ATTACH = True   # attach egressd with POLICY in setUp
    TAIL = True     # and follow its events
    WORLD = {}      # World(**WORLD), e.g. {"origins": True}
    ATTACH_ARGS = ()  # more `egressd attach` arguments
    maxDiff = None

    def setUp(self):
        self.w = World(**self.WORLD)
        self.addCleanup(self.w.close)
        self.w.start()
        self.daemon = None
        self.tail = None
        if self.ATTACH:
            self.attach(self.POLICY)
            if self.TAIL:
                self.tail = self.w.tail()

    def attach(self, policy_text, extra=None):
        self.policy_path = self.w.write_policy(policy_text)
        self.daemon = self.w.egressd_attach(self.policy_path, extra=self.ATTACH_ARGS if extra is None else extra)
        return self.daemon

    # -- assertions ---------------------------------------------------------

    def assertProbeDenied(self, *args, reason=None, hook=None, daddr=None, dport=None, proto=None, family=None,
                          judged=None, step=None, cgroup="", user=None, rule=None, cgroup_id=None, uid=None):
        """Runs probe.py ARGS; expects EPERM and a deny event from that
        process whose fields equal the given ones (None: not checked).
        Returns (probe result, event)."""
        r = self.w.probe(*args, cgroup=cgroup, user=user)
        self.assertFalse(r["ok"], f"probe {args} was not refused: {r}")
        self.assertEqual(r["errno"], "EPERM", f"probe {args}: {r}")
        if step:
            self.assertEqual(r["step"], step, r)
        if self.tail is None:
            return r, None
        ev = self.tail.expect_event(lambda e: e.get("tgid") == r["pid"] and e.get("verdict") == "deny",
                                    what=f"deny event for pid {r['pid']} ({' '.join(map(str, args))})")
        want = {"reason": reason, "hook": hook, "daddr": daddr, "dport": dport, "proto": proto,
                "family": family, "judged": judged, "rule": rule, "cgroup_id": cgroup_id, "uid": uid}
        got = {k: ev.get(k) for k, v in want.items() if v is not None}
        self.assertEqual(got, {k: v for k, v in want.items() if v is not None}, f"event: {json.dumps(ev)}")
        return r, ev

    def assertProbeOk(self, *args, expect=None, cgroup="", user=None):
        r = self.w.probe(*args, cgroup=cgroup, user=user)
        self.assertTrue(r["ok"], f"probe {args} failed: {r}")
        if expect is not None:
            self.assertIn(expect, r["received"], f"probe {args}: {r}")
        return r

    def assertEventSchema(self, ev):
        missing = EVENT_KEYS - set(ev)
        self.assertFalse(missing, f"event lacks {sorted(missing)}: {json.dumps(ev)}")
        for k in ("pid", "tgid", "uid", "cgroup_id", "dport", "rule"):
            if k in ev:
                self.assertIsInstance(ev[k], int, f"{k} in {json.dumps(ev)}")
        ts = ev["time"]
        self.assertRegex(ts, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        self.assertLess(abs(t.timestamp() - time.time()), 300, f"event time {ts} is not now")

    def assertPolicyError(self, result, path, line):
        """Non-zero exit and "FILE:LINE:COL: ..." on stderr."""
        self.assertNotEqual(result.returncode, 0, f"accepted a broken policy:\n{result.stdout}{result.stderr}")
        m = re.search(re.escape(path) + r":(\d+):(\d+): ", result.stderr)
        self.assertIsNotNone(m, f"no {path}:LINE:COL: in stderr:\n{result.stderr}")
        self.assertEqual(int(m.group(1)), line, result.stderr)
        self.assertGreater(int(m.group(2)), 0, result.stderr)

    def status_for_cgroup(self):
        st = self.w.status_json()
        ino = os.stat(self.w.cgroup).st_ino
        for a in st.get("attachments", []):
            if a.get("cgroup_id") == ino or a.get("cgroup") == self.w.cgroup:
                return a
        return None
