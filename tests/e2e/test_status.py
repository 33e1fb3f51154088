"""egressd status --json reflects the attachment and its counters."""
import os
import unittest

from e2e_case import FenceCase


class Status(FenceCase):
    TAIL = True

    def test_status_shows_attachment_and_deny_counters(self):
        for _ in range(3):
            self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 22, reason="port")
        st = self.status_for_cgroup()
        self.assertIsNotNone(st, f"cgroup {self.w.cgroup} not in status: {self.w.status_json()}")
        self.assertEqual(st["cgroup_id"], os.stat(self.w.cgroup).st_ino, st)
        self.assertTrue(st["fenced"], st)
        self.assertEqual(st["daemon_pid"], self.daemon.pid, st)
        self.assertGreaterEqual(st["denied"].get("private", 0), 3, st)
        self.assertGreaterEqual(st["denied"].get("port", 0), 1, st)
        self.assertEqual(st["ring_drops"], 0, st)
        self.assertIn(os.path.basename(self.policy_path), st["policy"], st)

    def test_status_text(self):
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        r = self.w.egressd("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.w.cgroup, r.stdout)
        self.assertIn("private", r.stdout)


if __name__ == "__main__":
    unittest.main()
