"""socket() itself: the sock_create hook refuses raw, ping, MPTCP and UDP-Lite
sockets; AF_PACKET is refused by the missing capability."""
import unittest

from e2e_case import FenceCase


class SocketCreation(FenceCase):
    def test_raw_icmp(self):
        self.assertProbeDenied("socket", "inet", "raw", "icmp", reason="raw-socket", hook="sock_create",
                               step="socket", family="inet")

    def test_raw_icmpv6(self):
        self.assertProbeDenied("socket", "inet6", "raw", "icmpv6", reason="raw-socket", hook="sock_create",
                               family="inet6")

    def test_raw_ipproto_raw(self):
        self.assertProbeDenied("socket", "inet", "raw", "raw", reason="raw-socket", hook="sock_create")

    def test_ping_socket(self):
        # World sets net.ipv4.ping_group_range = "0 2147483647" in the agent
        # netns, so the kernel would allow this ping socket: only the hook refuses.
        r, ev = self.assertProbeDenied("socket", "inet", "dgram", "icmp", hook="sock_create",
                                       reason=None, step="socket")
        self.assertIn(ev["reason"], ("proto", "raw-socket"), ev)

    def test_ping_socket_as_nobody(self):
        r, ev = self.assertProbeDenied("socket", "inet", "dgram", "icmp", hook="sock_create", reason=None,
                                       user="nobody", uid=65534)
        self.assertIn(ev["reason"], ("proto", "raw-socket"), ev)

    def test_mptcp(self):
        self.assertProbeDenied("socket", "inet", "stream", "mptcp", reason="proto", hook="sock_create")

    def test_mptcp_v6(self):
        self.assertProbeDenied("socket", "inet6", "stream", "mptcp", reason="proto", hook="sock_create")

    def test_mptcp_event_names_the_protocol(self):
        # IPPROTO_MPTCP is 262: an event that says "tcp" hides what was refused.
        r, ev = self.assertProbeDenied("socket", "inet", "stream", "mptcp", reason="proto")
        self.assertIn(ev["proto"], ("mptcp", "262"), f"MPTCP socket reported as {ev['proto']!r}: {ev}")

    def test_udplite_event_names_the_protocol(self):
        r, ev = self.assertProbeDenied("socket", "inet", "dgram", "udplite", reason="proto")
        self.assertIn(ev["proto"], ("udplite", "136"), ev)

    def test_udplite(self):
        self.assertProbeDenied("socket", "inet", "dgram", "udplite", reason="proto", hook="sock_create")

    def test_tcp_and_udp_sockets_still_created(self):
        for fam in ("inet", "inet6"):
            self.assertProbeOk("socket", fam, "stream", "tcp")
            self.assertProbeOk("socket", fam, "dgram", "udp")
            self.assertProbeOk("socket", fam, "stream", "0")

    def test_af_packet_refused_for_unprivileged(self):
        # cgroup/sock_create only runs from inet_create/inet6_create: it never
        # sees AF_PACKET (ebpf-facts section 5). What refuses this socket is the
        # missing CAP_NET_RAW of an unprivileged agent (setpriv to nobody), not
        # egressd; this test pins down that the documented posture holds.
        r = self.w.probe("socket", "packet", "raw", "all", user="nobody")
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["errno"], "EPERM", r)
        r = self.w.probe("socket", "packet", "dgram", "all", user="nobody")
        self.assertEqual(r["errno"], "EPERM", r)


if __name__ == "__main__":
    unittest.main()
