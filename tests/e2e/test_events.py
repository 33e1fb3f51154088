"""Event delivery: nothing is lost silently, events survive a daemon restart,
and followers learn when the daemon goes away."""
import time
import unittest

from e2e_case import DEFAULT_POLICY, FenceCase, Loop


class Delivery(FenceCase):
    def test_burst_is_delivered_or_counted(self):
        # A tight loop of denied connects: every decision is either on the
        # tail or counted as a ring drop in status.
        loop = Loop(self.w, "10.0.0.5", 80, max_attempts=3000)
        res = loop.wait_done(20)  # it stops by itself after 3000 attempts
        self.assertEqual(res["connected"], 0, res)
        attempts = res["attempts"]
        pid = res["pid"]
        # Wait (bounded) until the count on the tail stops growing.
        seen, last_change = 0, time.monotonic()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            self.tail._drain(0.2)
            n = sum(1 for e in self.tail.events if e.get("tgid") == pid)
            if n != seen:
                seen, last_change = n, time.monotonic()
            if seen >= attempts or time.monotonic() - last_change > 2:
                break
        st = self.status_for_cgroup()
        drops = st["ring_drops"]
        self.assertGreaterEqual(st["denied"].get("private", 0), attempts, st)
        in_daemon_log = self.daemon.log().count(f"python3[{pid}] deny")
        self.assertEqual(seen + drops, attempts,
                         f"{attempts} denials, {seen} on the tail, {drops} ring drops: "
                         f"{attempts - seen - drops} lost without a trace "
                         f"(the daemon itself logged {in_daemon_log} of them)")

    def test_tail_ends_when_fence_is_detached(self):
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.tail.proc.wait(timeout=10)
        except Exception:
            self.fail("egressd tail still running 10 s after detach")
        self.assertNotEqual(self.tail.proc.returncode, 0)


class Restart(FenceCase):
    TAIL = False

    def test_events_while_no_daemon_reach_the_next_one(self):
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        r = self.w.probe("connect", "tcp", "10.0.0.5", 80)
        self.assertEqual(r["errno"], "EPERM", r)
        d2 = self.attach(DEFAULT_POLICY)
        needle = f"python3[{r['pid']}] deny tcp 10.0.0.5:80 private"
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if needle in d2.log():
                return
            time.sleep(0.05)  # polling the daemon's log with a deadline
        self.fail(f"the decision made while no daemon ran never reached the new one:\n{d2.log()}")

    def test_ring_overflow_is_counted(self):
        # With no daemon reading, the 1 MiB ring fills (~12k events): later
        # denials are still enforced, and every lost event is counted.
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        loop = Loop(self.w, "10.0.0.5", 80, max_attempts=20000)
        res = loop.wait_done(60)
        self.assertEqual(res["connected"], 0, res)
        st = self.status_for_cgroup()
        self.assertEqual(st["daemon_pid"], 0, st)
        self.assertGreaterEqual(st["denied"].get("private", 0), res["attempts"], st)
        self.assertGreater(st["ring_drops"], 0, st)
        self.assertGreaterEqual(st["ring_drops"], res["attempts"] - 12000, st)


if __name__ == "__main__":
    unittest.main()
