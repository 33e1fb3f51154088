"""The test world itself, without egressd: if these fail, every other e2e
failure is suspect. Also shows that each destination the fence tests refuse
is really reachable without the fence (so EPERM elsewhere is egressd's doing)."""
import os
import unittest

from world import PRIVATE4, PRIVATE6, PUBLIC4, PUBLIC6, World, cgroup2_root


class WorldWithoutFence(unittest.TestCase):
    def setUp(self):
        self.w = World()
        self.addCleanup(self.w.close)
        self.w.start()

    def ok(self, *args, expect=None, **kw):
        r = self.w.probe(*args, **kw)
        self.assertTrue(r["ok"], f"{args}: {r}")
        if expect is not None:
            self.assertIn(expect, r["received"], f"{args}: {r}")
        return r

    def test_every_host_answers_tcp_and_udp(self):
        for h in PUBLIC4 + PRIVATE4 + PUBLIC6 + PRIVATE6:
            with self.subTest(host=h):
                self.ok("connect", "tcp", h, 22, expect=f"banner {h} 22")
                self.ok("connect", "tcp", h, 80, "--http", expect=f"hello from {h} 80")
                self.ok("sendto", h, 443, "--send", "quic", expect="quic")

    def test_v6_spellings_reach_the_v4_host(self):
        # Only v4-mapped reaches a v4 host at the socket level; the other forms
        # (NAT64, 6to4, v4-compatible) are routed as v6 and have no server,
        # which is fine: the fence judges them at connect().
        self.ok("connect", "tcp", "::ffff:10.0.0.5", 5432, expect="banner 10.0.0.5 5432")

    def test_tls_with_the_test_ca(self):
        for url, extra in (("https://203.0.113.10/", []), ("https://[2001:db8::10]/", ["-6"])):
            with self.subTest(url=url):
                r = self.w.curl(*extra, "--cacert", self.w.ca, url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("s_server", r.stdout)

    def test_process_is_in_the_cgroup_before_exec(self):
        r = self.w.agent_run(["cat", "/proc/self/cgroup"], cgroup="child")
        rel = os.path.relpath(os.path.join(self.w.cgroup, "child"), cgroup2_root())
        self.assertIn(f"0::/{rel}\n", r.stdout)

    def test_raw_sockets_exist_without_the_fence(self):
        self.ok("socket", "inet", "raw", "icmp")
        self.ok("socket", "inet", "dgram", "icmp", user="nobody")  # ping_group_range is open
        self.ok("socket", "inet", "stream", "mptcp")
        self.ok("socket", "inet", "dgram", "udplite")

    def test_nobody_has_no_af_packet(self):
        r = self.w.probe("socket", "packet", "raw", "all", user="nobody")
        self.assertEqual(r["errno"], "EPERM", r)
        self.ok("socket", "packet", "raw", "all")  # root can

    def test_probe_variants_reach_servers(self):
        self.ok("tfo", "203.0.113.10", 22, expect="banner 203.0.113.10 22")
        self.ok("udp-switch", "203.0.113.10", 53, "10.0.0.5", 53)
        r = self.ok("thread", "connect", "tcp", "10.0.0.5", 22, expect="banner")
        self.assertNotEqual(r["tid"], r["pid"], r)
        self.ok("connect", "tcp", "0.0.0.0", 8080, expect="banner 127.0.0.1 8080")
        self.ok("connect", "tcp", "fe80::1%" + self.w.veth_agent, 22, expect="banner")

    def test_loopback_servers_in_agent_netns(self):
        self.ok("connect", "tcp", "127.0.0.1", 8080, expect="banner 127.0.0.1 8080")
        self.ok("connect", "tcp", "::1", 8080, expect="banner ::1 8080")


if __name__ == "__main__":
    unittest.main()
