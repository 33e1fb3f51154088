"""The fence outlives the daemon; detach, reload and re-attach behave."""
import os
import time
import unittest
from pathlib import Path

from e2e_case import (BROKEN_POLICY, BROKEN_POLICY_LINE, BROKEN_SYNTAX_LINE, BROKEN_SYNTAX_POLICY,
                      DEFAULT_POLICY, DEFAULT_POLICY_ALL_EVENTS, DENY_TLS_HOST_POLICY, FenceCase, Loop)
from world import BPFFS_DIR


class KillAndDetach(FenceCase):
    TAIL = False

    def test_kill_9_keeps_the_fence(self):
        self.daemon.proc.kill()  # SIGKILL: no cleanup runs in egressd
        self.assertIsNotNone(self.daemon.wait_exit(10))
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)
        self.assertProbeDenied("socket", "inet", "raw", "icmp", reason="raw-socket")
        self.assertProbeOk("connect", "tcp", "127.0.0.1", 8080, expect="banner 127.0.0.1 8080")  # not a blanket deny
        # Web ports are steered to the proxy, which died with the daemon: they
        # fail closed rather than reach the origin uninspected.
        r = self.w.probe("connect", "tcp", "203.0.113.10", 80, "--http", "--host", "public.test")
        self.assertNotIn("hello from", r["received"], f"web traffic bypassed the dead proxy: {r}")
        st = self.status_for_cgroup()
        self.assertIsNotNone(st, "status lost the attachment after kill -9")
        self.assertTrue(st["fenced"], st)

    def test_kill_9_then_detach(self):
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from 10.0.0.5 80")

    def test_detach_restores_connectivity(self):
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)
        ino = os.stat(self.w.cgroup).st_ino
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from 10.0.0.5 80")
        self.assertProbeOk("socket", "inet", "raw", "icmp")
        self.assertFalse(Path(BPFFS_DIR, str(ino)).exists(), "detach left pins behind")
        self.assertIsNotNone(self.daemon.wait_exit(10), "daemon still running after detach")
        self.assertIsNone(self.status_for_cgroup(), "status still lists the detached cgroup")

    def test_detach_removes_run_files(self):
        # Socket and pid file of the attachment go with it (the lock file may stay).
        ino = os.stat(self.w.cgroup).st_ino
        run = Path(os.environ.get("EGRESSD_RUN_DIR", "/run/egressd"))
        self.assertTrue(list(run.glob(f"{ino}.*")), f"no run files for {ino} while attached")
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, r.stderr)
        left = sorted(p.name for p in run.glob(f"{ino}.*") if p.suffix != ".lock")
        self.assertEqual(left, [], "detach left run files behind")

    def test_kill_9_then_detach_removes_run_files(self):
        ino = os.stat(self.w.cgroup).st_ino
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, r.stderr)
        run = Path(os.environ.get("EGRESSD_RUN_DIR", "/run/egressd"))
        left = sorted(p.name for p in run.glob(f"{ino}.*") if p.suffix != ".lock")
        self.assertEqual(left, [], "detach after kill -9 left run files behind")

    def test_detach_warns_about_processes_left_unfenced(self):
        # An empty plain cgroup: nothing to warn about.
        r = self.w.detach()
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        self.daemon.wait_exit(10)
        # A process inside when the fence goes: detach says it runs unfenced now.
        self.daemon = self.w.egressd_attach(self.policy_path)
        p = self.w.agent(["sleep", "30"])
        self.addCleanup(p.kill)
        procs = Path(self.w.cgroup, "cgroup.procs")
        # The wrappers join the cgroup, fork helpers (mount) and exec; wait
        # until only sleep itself is left in it.
        end = time.monotonic() + 10
        while procs.read_text().split() != [str(p.pid)] or Path(f"/proc/{p.pid}/comm").read_text().strip() != "sleep":
            self.assertLess(time.monotonic(), end, f"sleep did not settle alone in the cgroup: {procs.read_text()}")
            time.sleep(0.01)
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), f"egressd detach: warning: {self.w.cgroup} still exists and is no longer "
                         f"fenced: the 1 processes in it now connect unfenced", r.stderr)

    def test_detach_unfenced_cgroup_fails(self):
        self.w.detach()
        r = self.w.detach()
        self.assertNotEqual(r.returncode, 0, r.stdout)


class Reload(FenceCase):
    def test_broken_reload_keeps_old_policy(self):
        broken = self.w.write_policy(BROKEN_POLICY, "broken.toml")
        r = self.w.reload(broken)
        self.assertPolicyError(r, broken, BROKEN_POLICY_LINE)
        self.assertRegex(r.stderr, r"private")  # names the key
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 443, "--noread")
        self.assertIsNone(self.daemon.proc.poll(), "daemon died on a broken reload")

    def test_syntax_error_reload_keeps_old_policy(self):
        broken = self.w.write_policy(BROKEN_SYNTAX_POLICY, "syntax.toml")
        r = self.w.reload(broken)
        self.assertPolicyError(r, broken, BROKEN_SYNTAX_LINE)
        self.assertProbeDenied("connect", "tcp", "172.16.0.5", 80, reason="private")

    def test_valid_reload_takes_effect(self):
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 443, "--noread")
        r = self.w.reload(self.w.write_policy(DENY_TLS_HOST_POLICY))
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443, reason="deny-cidr", rule=1)
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertProbeOk("connect", "tcp", "203.0.113.7", 443, "--noread")

    def test_reload_has_no_window(self):
        loop = Loop(self.w, "10.0.0.5", 80)
        for i in range(3):
            r = self.w.reload(self.w.write_policy(DENY_TLS_HOST_POLICY if i % 2 == 0 else DEFAULT_POLICY))
            self.assertEqual(r.returncode, 0, r.stderr)
        res = loop.stop()
        self.assertGreater(res["attempts"], 0, res)
        self.assertEqual(res["connected"], 0, f"10.0.0.5:80 reachable during reload: {res}")
        self.assertEqual(set(res["errnos"]), {"EPERM"}, res)

    def test_reload_does_not_flicker_allowed_traffic(self):
        # The other half of "no window": an allowed destination stays allowed
        # while equivalent policies are swapped in.
        loop = Loop(self.w, "203.0.113.10", 80, max_attempts=3000)
        for i in range(3):
            r = self.w.reload(self.w.write_policy(DEFAULT_POLICY_ALL_EVENTS if i % 2 == 0 else DEFAULT_POLICY))
            self.assertEqual(r.returncode, 0, r.stderr)
        res = loop.stop()
        self.assertGreater(res["connected"], 0, res)
        # Only the fence says EPERM; a rare ETIMEDOUT comes from the test world
        # side under a tight connect loop (seen without egressd too), not a decision.
        self.assertNotIn("EPERM", res["errnos"], f"allowed traffic refused during reload: {res}")

    def test_check_verb(self):
        good = self.w.write_policy(DEFAULT_POLICY)
        r = self.w.egressd("check", good)
        self.assertEqual(r.returncode, 0, r.stderr)
        broken = self.w.write_policy(BROKEN_POLICY, "broken-check.toml")
        self.assertPolicyError(self.w.egressd("check", broken), broken, BROKEN_POLICY_LINE)


class ReAttach(FenceCase):
    TAIL = False

    def test_second_attach_swaps_policy_and_retires_old_daemon(self):
        old = self.daemon
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 443, "--noread")
        loop = Loop(self.w, "10.0.0.5", 80)
        new = self.attach(DENY_TLS_HOST_POLICY)
        self.assertIsNotNone(old.wait_exit(10), f"old daemon still running:\n{old.log()}")
        self.assertIsNone(new.proc.poll(), f"new daemon exited:\n{new.log()}")
        res = loop.stop()
        self.assertEqual(res["connected"], 0, f"fence had a window during re-attach: {res}")
        self.assertEqual(set(res["errnos"]), {"EPERM"}, res)
        self.tail = self.w.tail()
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443, reason="deny-cidr")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        st = self.status_for_cgroup()
        self.assertEqual(st["daemon_pid"], new.pid, st)
        self.assertIn(os.path.basename(self.policy_path), st["policy"], st)


if __name__ == "__main__":
    unittest.main()
