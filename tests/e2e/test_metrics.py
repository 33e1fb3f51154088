"""egressd attach --metrics: the Prometheus endpoint, on a Unix socket and on
loopback TCP (in the daemon's network namespace, the world's agent netns),
counts kernel, proxy and resolver decisions with their labels; off-host
addresses are refused."""
import os
import stat
import time
import unittest
from pathlib import Path

import metrics_client as mc
from e2e_case import DEFAULT_POLICY, PUBLIC_HOST_RULE, FenceCase
from world import BPFFS_DIR

POLICY = DEFAULT_POLICY + PUBLIC_HOST_RULE


class MetricsCase(FenceCase):
    POLICY = POLICY
    ATTACH = False
    TAIL = False

    def scrape(self):
        status, head, body = self.fetch("/metrics")
        self.assertEqual(status, 200, head + body)
        self.assertIn("content-type: text/plain; version=0.0.4", head.lower())
        return mc.parse(body)

    def wait_for(self, predicate, what, deadline=10.0):
        """Scrapes until predicate(samples) holds (counters are read live)."""
        end = time.monotonic() + deadline
        samples = None
        while time.monotonic() < end:
            samples = self.scrape()
            if predicate(samples):
                return samples
            time.sleep(0.05)  # polling the endpoint with a deadline
        self.fail(f"metrics never showed {what}:\n" + "\n".join(
            f"{n}{dict(ls)} {v}" for (n, ls), v in sorted(samples.items(), key=str)))

    def decisions(self, samples, hook, verdict, reason):
        return mc.value(samples, "egressd_decisions_total", cgroup=self.w.cgroup, hook=hook, verdict=verdict,
                        reason=reason)

    def exercise_and_check(self):
        """A blocked connect, an allowed and a refused proxied request: the
        counters move with the right labels."""
        before = self.scrape()
        self.assertEqual(mc.value(before, "egressd_up", cgroup=self.w.cgroup), 1.0)
        st = self.status_for_cgroup()
        info = [ls for (n, ls), v in before.items() if n == "egressd_policy_info"]
        self.assertEqual(len(info), 1, before)
        self.assertEqual(dict(info[0])["policy"], self.policy_path)
        self.assertEqual(dict(info[0])["hash"], st["policy_hash"])
        self.assertEqual(mc.value(before, "egressd_policy_generation"), st["generation"])
        self.assertAlmostEqual(mc.value(before, "egressd_policy_loaded_timestamp_seconds"), time.time(), delta=300)

        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)
        r = self.w.curl("-4", "--cacert", self.w.ca, "https://public.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.w.curl("-4", "--cacert", self.w.ca, "--resolve", "other.test:443:203.0.113.7", "https://other.test/")
        self.assertEqual(r.returncode, 35, f"refused TLS expected: rc={r.returncode} {r.stderr}")

        def moved(s):
            return (self.decisions(s, "kernel", "deny", "private") >= self.decisions(before, "kernel", "deny", "private") + 1
                    and self.decisions(s, "proxy", "allow", "host-rule") >= 1
                    and self.decisions(s, "proxy", "deny", "host-not-allowed") >= 1
                    and mc.value(s, "egressd_proxy_bytes_total", direction="down") > 0)
        after = self.wait_for(moved, "the private deny and the proxy's allow and deny")
        self.assertGreaterEqual(self.decisions(after, "kernel", "allow", "web-port"), 2)
        self.assertGreaterEqual(mc.value(after, "egressd_proxy_connections_accepted_total"), 2)
        self.assertGreater(mc.value(after, "egressd_proxy_bytes_total", direction="up"), 0)
        # curl resolved public.test through egressd's resolver.
        self.assertGreaterEqual(self.decisions(after, "dns", "allow", "dns-name-allowed"), 1)
        self.assertGreaterEqual(mc.value(after, "egressd_dns_queries_total", transport="udp"), 1)
        self.assertEqual(mc.value(after, "egressd_events_dropped_total"), 0)
        # Every series names this cgroup.
        self.assertEqual({dict(ls).get("cgroup") for (n, ls) in after}, {self.w.cgroup})


class UnixSocket(MetricsCase):
    def setUp(self):
        super().setUp()
        self.sock = str(self.w.tmp / "metrics.sock")
        self.attach(self.POLICY, extra=["--metrics", f"unix:{self.sock}"])

    def fetch(self, path, *extra):
        return mc.curl(["--unix-socket", self.sock, *extra, f"http://localhost{path}"])

    def test_counters_move_with_labels(self):
        self.exercise_and_check()

    def test_socket_is_private_and_removed_on_exit(self):
        st = os.lstat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0))
        self.assertIn(f"metrics on unix:{self.sock}", self.daemon.stderr())
        self.daemon.proc.terminate()
        self.assertIsNotNone(self.daemon.wait_exit(10), "daemon did not exit on SIGTERM")
        self.assertFalse(os.path.lexists(self.sock), "metrics socket left behind")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)  # the fence stays

    def test_other_paths_and_methods(self):
        status, _, body = self.fetch("/")
        self.assertEqual(status, 404, body)
        status, head, _ = self.fetch("/metrics", "--request", "POST")
        self.assertEqual(status, 405, head)
        self.assertIn("allow: get, head", head.lower())


class LoopbackTcp(MetricsCase):
    PORT = 9477

    def setUp(self):
        super().setUp()
        self.attach(self.POLICY, extra=["--metrics", f"127.0.0.1:{self.PORT}"])

    def fetch(self, path, *extra):
        # The daemon runs in the agent netns: its loopback, from outside the cgroup.
        return mc.curl([*extra, f"http://127.0.0.1:{self.PORT}{path}"], netns=self.w.agent_ns)

    def test_counters_move_with_labels(self):
        self.exercise_and_check()

    def test_only_loopback_listens(self):
        listeners = self.w.listening_ports(self.daemon.pid)
        self.assertIn(("127.0.0.1", self.PORT), listeners)
        self.assertEqual([a for a, p in listeners if p == self.PORT], ["127.0.0.1"], listeners)

    def test_foreign_host_header_refused(self):
        status, _, body = self.fetch("/metrics", "--header", "Host: attacker.example")
        self.assertEqual(status, 403, body)


class LoopbackTcp6(MetricsCase):
    def test_ipv6_loopback(self):
        self.attach(self.POLICY, extra=["--metrics", "[::1]:9478"])
        status, _, body = mc.curl(["http://[::1]:9478/metrics"], netns=self.w.agent_ns)
        self.assertEqual(status, 200, body)
        self.assertEqual(mc.value(mc.parse(body), "egressd_up", cgroup=self.w.cgroup), 1.0)


class Refused(MetricsCase):
    def test_non_loopback_address_refused(self):
        self.w._attached = True  # in case it wrongly attaches: detach at cleanup
        policy = self.w.write_policy(POLICY)
        for spec in ("0.0.0.0:9477", "198.51.100.2:9477", "[::]:9477", "[2001:db8:ff::2]:9477"):
            with self.subTest(spec=spec):
                r = self.w.egressd("attach", "--cgroup", self.w.cgroup, "--policy", policy, "--metrics", spec,
                                   timeout=20)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"--metrics {spec}: not a loopback address", r.stderr)
                self.assertIn("127.0.0.1:PORT, [::1]:PORT or unix:PATH", r.stderr)
        self.assertFalse(Path(BPFFS_DIR, str(self.w.cgroup_id())).exists(), "a refused attach fenced the cgroup")

    def test_metrics_group_needs_a_unix_socket(self):
        r = self.w.egressd("attach", "--cgroup", self.w.cgroup, "--metrics", "127.0.0.1:9477", "--metrics-group",
                           "root", timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--metrics-group applies to --metrics unix:PATH only", r.stderr)


if __name__ == "__main__":
    unittest.main()
