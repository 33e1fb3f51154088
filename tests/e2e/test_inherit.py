"""The fence covers descendants: child cgroups and forked children."""
import json
import os
import subprocess
import unittest

from e2e_case import DEFAULT_POLICY, PUBLIC_HOST_RULE, FenceCase
from world import _LineReader


class NestedCgroups(FenceCase):
    POLICY = DEFAULT_POLICY + PUBLIC_HOST_RULE  # web traffic passes the proxy by name
    def test_child_cgroup_created_after_attach(self):
        child = self.w.cgroup_path("child")  # created now, after attach
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="child", reason="private",
                               cgroup_id=os.stat(child).st_ino)

    def test_grandchild_cgroup(self):
        self.w.cgroup_path("a/b")
        self.assertProbeDenied("connect", "tcp", "192.168.1.5", 80, cgroup="a/b", reason="private")
        self.assertProbeDenied("socket", "inet", "raw", "icmp", cgroup="a/b", reason="raw-socket")

    def test_child_cgroup_allowed_traffic(self):
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 80, "--http", "--host", "public.test", cgroup="child",
                           expect="hello from 203.0.113.10 80")

    def test_outside_the_cgroup_is_not_fenced(self):
        # Control: the same netns, a process outside the cgroup.
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", cgroup=None, expect="hello from 10.0.0.5")


class Forks(FenceCase):
    ATTACH = False

    def test_child_forked_after_attach(self):
        # The parent starts in the cgroup before egressd attaches, waits, and
        # forks only after the fence is up; the child connects.
        p = self.w.agent([self.w.python, str(self.w.tmp / "probe.py"), "fork", "--wait-stdin", "--",
                          "connect", "tcp", "10.0.0.5", "80"], stdin=subprocess.PIPE)
        out = _LineReader(p.stdout, "fork")
        first = out.get(10)
        self.assertTrue(first and '"waiting"' in first, f"probe fork did not start: {first!r}")
        self.attach(DEFAULT_POLICY)
        self.tail = self.w.tail()
        p.stdin.write("go\n")
        p.stdin.flush()
        line = out.get(20)
        self.assertTrue(line, f"no result from the forked child (rc={p.poll()})")
        r = json.loads(line)
        self.assertNotEqual(r["pid"], r["parent_pid"])
        self.assertEqual(r["errno"], "EPERM", r)
        ev = self.tail.expect_event(lambda e: e["tgid"] == r["pid"], what="event from the forked child")
        self.assertEqual(ev["reason"], "private", ev)
        p.wait(timeout=10)

    def probe_across_attach(self, name, *args):
        """Starts probe.py ARGS, which waits on stdin after its setup; attaches
        egressd; lets it go; returns its JSON result."""
        p = self.w.agent([self.w.python, str(self.w.tmp / "probe.py"), *args], stdin=subprocess.PIPE)
        out = _LineReader(p.stdout, name)
        first = out.get(10)
        self.assertTrue(first and '"waiting"' in first, f"probe {name} did not start: {first!r}")
        self.attach(DEFAULT_POLICY)
        p.stdin.write("go\n")
        p.stdin.flush()
        line = out.get(20)
        self.assertTrue(line, "no result")
        p.wait(timeout=10)
        return json.loads(line), line

    def test_process_started_before_attach_is_fenced(self):
        # A process already in the cgroup, whose socket is created after attach.
        r, line = self.probe_across_attach("fork", "fork", "--wait-stdin", "--", "connect", "tcp", "203.0.113.10", "22")
        self.assertEqual(r["errno"], "EPERM", line)

    def test_socket_created_before_attach(self):
        # The socket exists before the fence; its connect() comes after.
        r, line = self.probe_across_attach("presock", "presock", "tcp", "10.0.0.5", "80")
        self.assertEqual(r["errno"], "EPERM", line)


if __name__ == "__main__":
    unittest.main()
