"""IPv6 spellings of an IPv4 address are judged as that IPv4 address."""
import unittest

from e2e_case import FenceCase


class V6Forms(FenceCase):
    FORMS = {
        "v4-mapped": "::ffff:10.0.0.5",
        "nat64": "64:ff9b::a00:5",
        "6to4": "2002:a00:5::1",
        "v4-compatible": "::10.0.0.5",
    }

    def test_forms_of_a_private_address(self):
        for name, addr in self.FORMS.items():
            with self.subTest(form=name, addr=addr):
                self.assertProbeDenied("connect", "tcp", addr, 80, reason="private", hook="connect6",
                                       family="inet6", judged="10.0.0.5", dport=80)

    def test_v4_mapped_on_v6only_socket(self):
        # An IPV6_V6ONLY socket never reaches a v4 host, but the hook still judges it.
        self.assertProbeDenied("connect", "tcp", "::ffff:10.0.0.5", 80, "--v6only", reason="private",
                               judged="10.0.0.5")

    def test_v4_mapped_udp_connect(self):
        self.assertProbeDenied("connect", "udp", "::ffff:10.0.0.5", 53, reason="private", judged="10.0.0.5")

    def test_v4_mapped_udp_sendto(self):
        # A dual-stack UDP sendto to ::ffff:a.b.c.d goes through sendmsg4 (see
        # ebpf-facts section 3), so there the daddr may already be the v4 form.
        r, ev = self.assertProbeDenied("sendto", "::ffff:10.0.0.5", 53, reason="private")
        self.assertIn(ev["hook"], ("sendmsg4", "sendmsg6"), ev)

    def test_metadata_endpoint_v4_mapped(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:169.254.169.254", 80, reason="link-local",
                               judged="169.254.169.254")

    def test_v4_mapped_public_is_allowed(self):
        # Control: the v4-mapped path is not a blanket deny.
        self.assertProbeOk("connect", "tcp", "::ffff:203.0.113.10", 80, "--http",
                           expect="hello from 203.0.113.10 80")

    def test_v4_mapped_public_port_denied(self):
        self.assertProbeDenied("connect", "tcp", "::ffff:203.0.113.10", 22, reason="port", judged="203.0.113.10")


if __name__ == "__main__":
    unittest.main()
