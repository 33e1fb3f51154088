"""egressd status (--json and text) reflects the attachment: policy file,
hash and generation, since when, the daemon, proxy/DNS ports, counters."""
import json
import os
import time
import unittest
from datetime import datetime
from pathlib import Path

from e2e_case import DEFAULT_POLICY, DENY_TLS_HOST_POLICY, FenceCase


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def unix(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Status(FenceCase):
    TAIL = True
    WORLD = {"private_pins": True}  # exit 0 of status: no other test's UNFENCED cgroup in it

    def test_status_shows_attachment_and_deny_counters(self):
        for _ in range(3):
            self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 22, reason="port")
        st = self.status_for_cgroup()
        self.assertIsNotNone(st, f"cgroup {self.w.cgroup} not in status: {self.w.status_json()}")
        self.assertEqual(st["cgroup_id"], os.stat(self.w.cgroup).st_ino, st)
        self.assertTrue(st["fenced"], st)
        self.assertEqual(st["links"], st["links_expected"], st)
        self.assertEqual(st["daemon_pid"], self.daemon.pid, st)
        self.assertGreaterEqual(st["denied"].get("private", 0), 3, st)
        self.assertGreaterEqual(st["denied"].get("port", 0), 1, st)
        self.assertEqual(st["audited"], {}, st)
        self.assertEqual(st["ring_drops"], 0, st)
        self.assertIn(os.path.basename(self.policy_path), st["policy"], st)

    def test_status_json_policy_since_daemon_ports(self):
        st = self.status_for_cgroup()
        self.assertEqual(st["policy"], self.policy_path, st)
        self.assertEqual(st["policy_hash"], fnv1a64(Path(self.policy_path).read_bytes()), st)
        self.assertGreaterEqual(st["generation"], 1, st)
        self.assertEqual(st["policy_rules"], {"allow_cidr": 0, "deny_cidr": 0, "host": 0}, st)
        now = time.time()
        attached, loaded = unix(st["attached_at"]), unix(st["policy_loaded_at"])
        self.assertLess(abs(attached - now), 120, st)
        self.assertLessEqual(attached, loaded + 0.001, st)
        self.assertTrue(st["daemon_running"], st)
        self.assertLess(abs(unix(st["daemon_started_at"]) - now), 120, st)
        self.assertIn(("127.0.0.1", st["proxy_port"]), self.w.listening_ports(self.daemon.pid), st)
        self.assertGreater(st["dns_port"], 0, st)
        self.assertTrue(st["dns_steered"], st)
        self.assertEqual(self.w.status_json()["problems"], [])

    def test_reload_moves_generation_and_install_time_not_attach_time(self):
        before = self.status_for_cgroup()
        reloaded = self.w.write_policy(DENY_TLS_HOST_POLICY)
        r = self.w.reload(reloaded)
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.status_for_cgroup()
        self.assertEqual(after["generation"], before["generation"] + 1, after)
        self.assertEqual(after["policy"], reloaded, after)
        self.assertEqual(after["policy_hash"], fnv1a64(Path(reloaded).read_bytes()), after)
        self.assertEqual(after["policy_rules"]["deny_cidr"], 1, after)
        self.assertEqual(after["attached_at"], before["attached_at"], after)
        self.assertGreater(unix(after["policy_loaded_at"]), unix(before["policy_loaded_at"]), after)

    def test_status_text(self):
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        st = self.status_for_cgroup()
        r = self.w.egressd("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.w.cgroup, r.stdout)
        block = r.stdout[r.stdout.index(self.w.cgroup):]
        for want in (f"policy:     {self.policy_path} (generation {st['generation']}, hash {st['policy_hash']};",
                     f"fenced {st['attached_at']}", f"policy installed {st['policy_loaded_at']}",
                     f"daemon:     running, pid {self.daemon.pid}, started ",
                     f"proxy:      127.0.0.1:{st['proxy_port']} and [::1]:{st['proxy_port']}",
                     f"resolver:   127.0.0.1:{st['dns_port']}", "ring drops: 0"):
            self.assertIn(want, block)
        self.assertRegex(block, r"denied: +(.*, )?private [1-9]")

    def test_status_without_daemon(self):
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        st = self.status_for_cgroup()
        self.assertEqual((st["daemon_running"], st["daemon_pid"], st["daemon_started_at"]), (False, 0, None), st)
        self.assertTrue(st["fenced"], st)
        r = self.w.egressd("status")
        self.assertIn("daemon:     not running", r.stdout)


class DetachedStatus(FenceCase):
    """`detach` on a cgroup that lives on leaves it UNFENCED in `status`
    until it is fenced again or removed."""
    ATTACH = False
    WORLD = {"private_pins": True}  # its UNFENCED cgroup shows in no other test's status
    REASON_END = "new sessions run unfenced; stop the slice or attach again"

    def setUp(self):
        super().setUp()
        self.sub = self.w.cgroup_path("agents")
        self.policy = self.w.write_policy(DEFAULT_POLICY)
        self.daemon = self.w.egressd_attach(self.policy, cgroup=self.sub)
        self.sleeper = self.w.agent(["sleep", "120"], cgroup="agents", dns=False)
        self.addCleanup(self.w.egressd, "detach", "--cgroup", self.sub)
        self.ino = os.stat(self.sub).st_ino
        self.record = Path(self.w.run_dir, f"{self.ino}.detached")
        r = self.w.egressd("detach", "--cgroup", self.sub)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("still exists and is no longer fenced", r.stderr)
        self.assertNotIn("status will not show it", r.stderr)
        self.assertTrue(self.record.exists(), f"no {self.record}")
        self.daemon.wait_exit(10)

    def entry(self, st):
        return next((a for a in st["attachments"] if a["cgroup"] == self.sub), None)

    def test_status_shows_detached_cgroup_unfenced_and_exits_3(self):
        self.assertEqual(oct(self.record.stat().st_mode & 0o777), "0o644")
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("1 cgroup UNFENCED", r.stderr)
        a = self.entry(json.loads(r.stdout))
        self.assertIsNotNone(a, r.stdout)
        self.assertEqual((a["cgroup_id"], a["state"], a["fenced"], a["detached"], a["processes"], a["policy"]),
                         (self.ino, "unfenced", False, True, 1, self.policy), a)
        self.assertLess(abs(unix(a["detached_at"]) - time.time()), 120, a)
        self.assertEqual(a["reason"], f"detached at {a['detached_at']}; 1 process in it; {self.REASON_END}", a)
        r = self.w.egressd("status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(f"{self.sub} (cgroup id {self.ino})\n  fence:      UNFENCED: detached at {a['detached_at']}; "
                      f"1 process in it; {self.REASON_END}\n", r.stdout)
        # The unfenced claim is true: the cgroup reaches a private address.
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from", cgroup="agents")

    def test_attach_again_clears_it(self):
        self.daemon = self.w.egressd_attach(self.w.write_policy(DEFAULT_POLICY), cgroup=self.sub)
        self.assertFalse(self.record.exists())
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        a = self.entry(json.loads(r.stdout))
        self.assertEqual((a["state"], a["fenced"], a["detached"]), ("enforcing", True, False), a)

    def test_removing_the_cgroup_clears_it(self):
        self.sleeper.kill()
        self.sleeper.wait(10)
        deadline = time.monotonic() + 10
        while Path(self.sub, "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.rmdir(self.sub)
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIsNone(self.entry(json.loads(r.stdout)), r.stdout)
        self.assertFalse(self.record.exists())


if __name__ == "__main__":
    unittest.main()
