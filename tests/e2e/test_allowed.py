"""Allowed destinations connect and exchange bytes; real clients see the fence."""
import unittest

from e2e_case import ALLOW_PG_POLICY, DEFAULT_POLICY_ALL_EVENTS, PUBLIC_HOST_RULE, FenceCase


class WebAndDns(FenceCase):
    # Web ports go through the proxy: curl names a host the policy allows.
    POLICY = DEFAULT_POLICY_ALL_EVENTS + PUBLIC_HOST_RULE

    def test_https_v4_with_curl(self):
        r = self.w.curl("-4", "--cacert", self.w.ca, "https://public.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("s_server", r.stdout)  # openssl -www status page
        self.tail.expect_event(lambda e: e["verdict"] == "allow" and e["daddr"] == "203.0.113.10"
                               and e["dport"] == 443 and e["reason"] == "web-port", what="allow web-port event")

    def test_https_v6_with_curl(self):
        r = self.w.curl("-6", "--cacert", self.w.ca, "https://public.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("s_server", r.stdout)
        self.tail.expect_event(lambda e: e["verdict"] == "allow" and e["hook"] == "connect6"
                               and e["dport"] == 443, what="allow connect6 event")

    def test_http_v4_with_curl(self):
        r = self.w.curl("-4", "http://public.test/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello from 203.0.113.10 80\n")

    # DNS to any address goes to egressd's resolver (more in test_dns.py):
    # the UDP echo servers on port 53 never see it, dig gets an answer for
    # the name the host rule allows.
    def test_dns_is_steered_to_the_resolver(self):
        for server, qtype, addr, hook in (("203.0.113.10", "A", "203.0.113.10", "connect4"),
                                          ("2001:db8::10", "AAAA", "2001:db8::10", "connect6")):
            with self.subTest(server=server):
                r = self.w.agent_run(["dig", "+time=2", "+tries=1", "+short", f"@{server}", "public.test", qtype])
                self.assertEqual((r.returncode, r.stdout.split()), (0, [addr]), r.stderr)
                self.tail.expect_event(lambda e: e["verdict"] == "allow" and e["tgid"] == r.pid
                                       and e["reason"] == "dns-steered" and e["hook"] == hook,
                                       what="dns-steered event")

    def test_udp_53_without_dns_goes_to_the_resolver(self):
        # Not DNS: the resolver drops it (no echo) and says so.
        r = self.assertProbeOk("sendto", "203.0.113.10", 53, "--send", "query-1", "--timeout", "1")
        self.assertEqual(r["received"], "", f"the echo server got a datagram to port 53: {r}")
        self.tail.expect_event(lambda e: e["tgid"] == r["pid"] and e["hook"] == "dns"
                               and e["reason"] == "dns-malformed", what="dns-malformed event")

    def test_curl_private_fails_with_eperm(self):
        r = self.w.curl("http://10.0.0.5/")
        self.assertEqual(r.returncode, 7, f"curl should fail to connect: rc={r.returncode} {r.stdout}{r.stderr}")
        self.assertNotIn("hello from", r.stdout)
        self.tail.expect_event(lambda e: e["verdict"] == "deny" and e["comm"] == "curl"
                               and e["reason"] == "private", what="deny event from curl")

    def test_curl_metadata_fails(self):
        r = self.w.curl("http://169.254.169.254/latest/meta-data/")
        self.assertEqual(r.returncode, 7, f"rc={r.returncode} {r.stdout}{r.stderr}")


class AllowCidr(FenceCase):
    POLICY = ALLOW_PG_POLICY

    def test_allow_cidr_port_connects(self):
        r = self.assertProbeOk("connect", "tcp", "10.0.0.5", 5432, "--send", "SELECT 1", expect="SELECT 1")
        self.assertTrue(r["received"].startswith("banner 10.0.0.5 5432\n"), r)
        self.tail.expect_event(lambda e: e["verdict"] == "allow" and e["tgid"] == r["pid"]
                               and e["reason"] == "allow-cidr" and e["rule"] == 1, what="allow-cidr event")

    def test_other_port_of_allowed_host_stays_private(self):
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private", dport=80)

    def test_allow_cidr_is_tcp_only(self):
        self.assertProbeDenied("sendto", "10.0.0.5", 5432, reason="private", proto="udp")

    def test_neighbour_address_stays_private(self):
        self.assertProbeDenied("connect", "tcp", "172.16.0.5", 5432, reason="private")

    def test_v4_mapped_form_of_allowed_cidr(self):
        self.assertProbeOk("connect", "tcp", "::ffff:10.0.0.5", 5432, expect="banner 10.0.0.5 5432")


ALLOW_V6_POLICY = """\
version = 1

[[allow_cidr]]
cidr = "fd00::10/128"
ports = [22]
proto = "tcp"

[[allow_cidr]]
cidr = "2001:db8::/64"
ports = [5432]
"""


class AllowCidrV6(FenceCase):
    POLICY = ALLOW_V6_POLICY

    def test_private_v6_port_allowed(self):
        self.assertProbeOk("connect", "tcp", "fd00::10", 22, expect="banner fd00::10 22")
        self.assertProbeDenied("connect", "tcp", "fd00::10", 80, reason="private")

    def test_public_v6_extra_port(self):
        self.assertProbeOk("connect", "tcp", "2001:db8::10", 5432, expect="banner 2001:db8::10 5432")
        self.assertProbeDenied("connect", "tcp", "2001:db8::10", 22, reason="port")


if __name__ == "__main__":
    unittest.main()
