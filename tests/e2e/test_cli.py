"""CLI behaviour around the fence: cgroup spellings, refusing to fence itself,
reload from the recorded file, on SIGHUP and on the reload signal, re-attach
after kill -9, host-rule ports, the text tail (and who may follow it), the
shipped policies, and `explain`."""
import os
import signal
import time
import unittest
from pathlib import Path

from e2e_case import DEFAULT_POLICY, DENY_TLS_HOST_POLICY, FenceCase, Loop
from world import EGRESSD, REPO, cgroup2_root

HOST_RULE_POLICY = DEFAULT_POLICY + """
[[allow]]
host = "public.test"
ports = [8080]
"""


class AttachVariants(FenceCase):
    ATTACH = False

    def test_relative_cgroup_path(self):
        rel = os.path.relpath(self.w.cgroup, cgroup2_root())
        self.daemon = self.w.egressd_attach(self.w.write_policy(DEFAULT_POLICY), cgroup=rel)
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)
        st = self.status_for_cgroup()
        self.assertIsNotNone(st)
        self.assertEqual(st["cgroup"], self.w.cgroup, st)
        r = self.w.egressd("detach", "--cgroup", rel)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from")

    def test_attach_creates_missing_cgroup(self):
        sub = os.path.join(self.w.cgroup, "made-by-egressd")
        self.assertFalse(os.path.exists(sub))
        self.daemon = self.w.egressd_attach(self.w.write_policy(DEFAULT_POLICY), cgroup=sub)
        try:
            self.assertTrue(os.path.isdir(sub))
            self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="made-by-egressd")
        finally:
            self.w.egressd("detach", "--cgroup", sub)

    def test_cgroup_made_in_a_delegated_subtree_belongs_to_its_user(self):
        # As systemd does for Delegate=yes: the user's manager must still be
        # able to create and move its processes below the new cgroup.
        os.chown(os.path.join(self.w.cgroup, "cgroup.procs"), 65534, 65534)
        sub = os.path.join(self.w.cgroup, "claude.slice")
        self.daemon = self.w.egressd_attach(self.w.write_policy(DEFAULT_POLICY), cgroup=sub)
        try:
            for path in (sub, os.path.join(sub, "cgroup.procs"), os.path.join(sub, "cgroup.subtree_control")):
                st = os.stat(path)
                self.assertEqual((st.st_uid, st.st_gid), (65534, 65534), path)
            self.assertIn("delegated to uid 65534", self.daemon.stderr())
            self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="claude.slice")
        finally:
            self.w.egressd("detach", "--cgroup", sub)

    def test_enforcing_logged_on_stderr(self):
        # The contract: READY=1 to $NOTIFY_SOCKET and a line containing
        # "enforcing" on stderr (journald/systemd users read stderr).
        self.daemon = self.w.egressd_attach(self.w.write_policy(DEFAULT_POLICY))
        self.assertIn("enforcing", self.daemon.stderr(),
                      f"no 'enforcing' line on stderr; stdout has:\n{self.daemon.stdout()}")

    def test_refuses_a_cgroup_that_contains_itself(self):
        policy = self.w.write_policy(DEFAULT_POLICY)
        self.w._attached = True  # in case it wrongly succeeds: detach at cleanup
        r = self.w.agent_run([EGRESSD, "attach", "--cgroup", self.w.cgroup, "--policy", policy], timeout=20)
        self.assertNotEqual(r.returncode, 0, f"attached to its own cgroup:\n{r.stderr}")
        self.assertFalse(Path("/sys/fs/bpf/egressd", str(os.stat(self.w.cgroup).st_ino)).exists(),
                         "refused attach left pins")

    def test_bad_policy_refused_at_attach(self):
        bad = self.w.write_policy('version = 1\n[network]\nprivate = "nope"\n', "bad.toml")
        self.w._attached = True
        r = self.w.egressd("attach", "--cgroup", self.w.cgroup, "--policy", bad, timeout=20)
        self.assertPolicyError(r, bad, 3)
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from")


class ReloadSources(FenceCase):
    TAIL = False

    def _wait_log(self, needle, deadline=10.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if needle in self.daemon.log():
                return
            time.sleep(0.05)  # polling a log file with a deadline
        self.fail(f"daemon log lacks {needle!r}:\n{self.daemon.log()}")

    def test_reload_without_policy_rereads_the_file(self):
        Path(self.policy_path).write_text(DENY_TLS_HOST_POLICY)
        r = self.w.reload()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443, reason=None)

    def test_sighup_reloads(self):
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 443, "--noread")
        Path(self.policy_path).write_text(DENY_TLS_HOST_POLICY)
        os.kill(self.daemon.pid, signal.SIGHUP)
        self._wait_log("(generation 2)")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443)
        self.assertIsNone(self.daemon.proc.poll(), "daemon exited on SIGHUP")

    def test_sighup_with_broken_file_keeps_policy_and_daemon(self):
        Path(self.policy_path).write_text('version = 1\n[network]\nprivate = "allow"\nbogus = 1\n')
        os.kill(self.daemon.pid, signal.SIGHUP)
        self._wait_log(f"{self.policy_path}:")
        self.assertIsNone(self.daemon.proc.poll(), f"daemon exited on a broken SIGHUP reload:\n{self.daemon.log()}")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)

    def test_reload_signal_installs_a_file_changed_since(self):
        # `egressd reload` installs, then signals the daemon (SIGUSR1); a file
        # changed in between is installed again, so kernel and proxy agree.
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 443, "--noread")
        Path(self.policy_path).write_text(DENY_TLS_HOST_POLICY)
        os.kill(self.daemon.pid, signal.SIGUSR1)
        self._wait_log("changed after it was installed; installing it again")
        self._wait_log("proxy host rules from")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443)
        self.assertIsNone(self.daemon.proc.poll(), "daemon exited on the reload signal")

    def test_reload_signal_with_broken_file_keeps_policy_and_daemon(self):
        Path(self.policy_path).write_text('version = 1\n[network]\nprivate = "allow"\nbogus = 1\n')
        os.kill(self.daemon.pid, signal.SIGUSR1)
        self._wait_log("the proxy keeps its previous host rules")
        self.assertIsNone(self.daemon.proc.poll(), f"daemon exited on a broken re-read:\n{self.daemon.log()}")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80)

    def test_reattach_after_kill_9_has_no_window(self):
        loop = Loop(self.w, "10.0.0.5", 80)
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        self.attach(DENY_TLS_HOST_POLICY)
        res = loop.stop()
        self.assertEqual(res["connected"], 0, res)
        self.assertEqual(set(res["errnos"]), {"EPERM"}, res)
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443)
        st = self.status_for_cgroup()
        self.assertEqual(st["daemon_pid"], self.daemon.pid, st)

    def test_status_after_kill_9_names_no_daemon(self):
        self.daemon.proc.kill()
        self.daemon.wait_exit(10)
        st = self.status_for_cgroup()
        self.assertIsNotNone(st)
        self.assertTrue(st["fenced"], st)
        self.assertEqual(st["daemon_pid"], 0, st)


class HostRulePorts(FenceCase):
    POLICY = HOST_RULE_POLICY

    def test_host_rule_port_open_at_l4(self):
        # The port is steered to the proxy, which admits the named host and
        # relays to the banner+echo server there.
        self.assertProbeOk("connect", "tcp", "203.0.113.10", 8080, "--send",
                           "GET / HTTP/1.1\r\nHost: public.test:8080\r\n\r\n", expect="banner 203.0.113.10 8080")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 5432, reason="port")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 8080, reason="private")


class TextTail(FenceCase):
    TAIL = False

    def test_text_tail_line(self):
        t = self.w.tail(json=False)
        r = self.w.probe("connect", "tcp", "169.254.169.254", 80)
        self.assertEqual(r["errno"], "EPERM", r)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            line = t.out.get(0.2)
            if line and f"[{r['pid']}]" in line:
                self.assertRegex(line, rf"python3\[{r['pid']}\] deny tcp 169\.254\.169\.254:80 link-local "
                                       r"via connect4 uid 0")
                return
            if line is None:
                break
        self.fail(f"no text line for pid {r['pid']}: {t.out.lines} {t.err.lines}")

    def test_tail_as_another_user_says_permission_denied(self):
        # The event socket is 0660 root's: a user is told that, and how to get
        # in, not that no daemon runs.
        import subprocess
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", EGRESSD, "tail",
                            "--cgroup", self.w.cgroup], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        sock = f"{self.w.cgroup_id()}.sock"
        self.assertRegex(r.stderr, rf"permission denied on \S*/{sock}, the daemon's event socket \(mode 0660.*"
                                   r"run egressd tail as root \(sudo egressd tail\)", r)
        self.assertIn("a daemon runs, but its event socket is not open to you", r.stderr)
        self.assertNotIn("no egressd daemon is running", r.stderr)


class ShippedPolicies(FenceCase):
    ATTACH = False

    def _attach_shipped(self, name):
        path = REPO / "policies" / name
        if not path.exists():
            self.fail(f"{path} is missing")
        self.policy_path = str(path)
        self.daemon = self.w.egressd_attach(str(path))
        self.tail = self.w.tail()

    def test_default_toml(self):
        self._attach_shipped("default.toml")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")
        self.assertProbeDenied("connect", "tcp", "169.254.169.254", 80, reason="link-local")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 22, reason="port")
        self.assertProbeOk("connect", "tcp", "127.0.0.1", 8080, expect="banner")
        # No host rules: web ports reach the proxy, which refuses every name.
        r = self.assertProbeOk("connect", "tcp", "203.0.113.10", 80, "--http", "--host", "public.test",
                               expect="403 Forbidden")
        self.assertIn("X-Egressd-Reason: host-not-allowed", r["received"], r)

    def test_strict_toml(self):
        self._attach_shipped("strict.toml")
        self.assertProbeDenied("connect", "tcp", "127.0.0.1", 8080, reason="loopback")
        # Loopback is denied, yet steering to the proxy on loopback works; no
        # host rules, so the proxy refuses the name.
        r = self.assertProbeOk("connect", "tcp", "203.0.113.10", 80, "--http", "--host", "public.test",
                               expect="403 Forbidden")
        self.tail.expect_event(lambda e: e["tgid"] == r["pid"] and e["verdict"] == "allow",
                               what="allow event (strict logs every decision)")

    def test_claude_code_toml(self):
        self._attach_shipped("claude-code.toml")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 443, reason="private")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 22, reason="port")
        # The world's DNS serves api.anthropic.com (on 203.0.113.10, in the
        # test CA's certificate): a name this policy allows passes the proxy,
        # one it does not is refused with a TLS alert.
        r = self.w.curl("--cacert", self.w.ca, "https://api.anthropic.com/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("s_server", r.stdout)
        # A name it does not allow does not resolve (egressd's resolver) and,
        # given an address, is refused by the proxy.
        r = self.w.curl("--cacert", self.w.ca, "https://public.test/")
        self.assertEqual(r.returncode, 6, f"{r.stdout}{r.stderr}")
        r = self.w.curl("--cacert", self.w.ca, "--resolve", "public.test:443:203.0.113.10", "https://public.test/")
        self.assertEqual(r.returncode, 35, f"{r.stdout}{r.stderr}")


class Privileges(unittest.TestCase):
    """Clear errors and a non-zero exit when egressd cannot do its job."""

    def run_as_nobody(self, *args):
        import subprocess
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", EGRESSD, *args],
                              capture_output=True, text=True, timeout=30)

    def test_unprivileged_attach_names_the_capability(self):
        r = self.run_as_nobody("attach", "--cgroup", "egd-e2e-never-created", "--policy",
                               str(REPO / "policies" / "default.toml"))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("CAP_BPF", r.stderr)
        self.assertFalse((Path(cgroup2_root()) / "egd-e2e-never-created").exists())

    def test_unprivileged_status_and_reload_fail(self):
        for verb in (["status"], ["reload", "--cgroup", "x"], ["detach", "--cgroup", "x"]):
            r = self.run_as_nobody(*verb)
            self.assertEqual(r.returncode, 1, (verb, r))
            self.assertIn("CAP_NET_ADMIN", r.stderr)

    def test_usage_errors_exit_2(self):
        import subprocess
        for args in (["attach"], ["frobnicate"], ["attach", "--cgroup", "x", "--bogus"]):
            r = subprocess.run([EGRESSD, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r))

    def test_root_cgroup_is_refused(self):
        import subprocess
        r = subprocess.run([EGRESSD, "attach", "--cgroup", "/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("root cgroup", r.stderr)


class Explain(unittest.TestCase):
    """`egressd explain` answers from the daemon's decision code (decide/):
    host rules with their reasons, and IP literals as the fence judges them.
    Nothing is sent: it only reads the policy."""

    POLICY = """version = 1
[[allow]]
host = "registry.test"
methods = ["GET"]
paths = ["/pkg"]

[[allow]]
host = "api.test"

[[deny_cidr]]
cidr = "10.1.2.0/24"

[[allow_cidr]]
cidr = "10.0.0.0/8"
ports = [443]
proto = "tcp"
"""

    def explain(self, url, *extra):
        import subprocess
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(self.POLICY)
            f.flush()
            r = subprocess.run([EGRESSD, "explain", "--policy", f.name, *extra, url],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r)
        return r.stdout.strip()

    def test_host_rules_name_their_reason(self):
        self.assertTrue(self.explain("https://api.test/").startswith("allow https://api.test/: allowed by [[allow]] #2"))
        self.assertIn("reason host-not-allowed: ", self.explain("https://evil.test/"))
        self.assertIn("reason inspection-needs-http: ", self.explain("https://registry.test/pkg"))
        self.assertIn("reason method-not-allowed: ", self.explain("http://registry.test/pkg", "--method", "POST"))
        self.assertIn("reason path-not-allowed: ", self.explain("http://registry.test/admin"))
        self.assertIn("reason port-not-allowed: ", self.explain("https://api.test:8443/"))

    def test_ip_literals_judged_as_the_fence_does(self):
        self.assertIn("admitted by [[allow_cidr]] #1 (10.0.0.0/8)", self.explain("https://10.0.0.5/"))
        # v4-mapped: the hooks judge the IPv4 inside.
        self.assertIn("admitted by [[allow_cidr]] #1", self.explain("https://[::ffff:10.0.0.5]/"))
        self.assertTrue(self.explain("https://10.1.2.3/").startswith("deny "))  # the deny rule comes first
        self.assertTrue(self.explain("http://10.0.0.5/").startswith("deny "))   # port 80 is not in the rule
        self.assertTrue(self.explain("https://203.0.113.10/").startswith("deny https://203.0.113.10/: reason no-sni: "))


class CgroupNames(unittest.TestCase):
    """--cgroup and --user spellings that must be refused before anything is fenced."""

    def attach(self, *args):
        import subprocess
        return subprocess.run([EGRESSD, "attach", "--policy", str(REPO / "policies" / "default.toml"), *args],
                              capture_output=True, text=True, timeout=30)

    def test_absolute_path_outside_the_cgroup2_mount_is_refused(self):
        # On a hybrid host (cgroup2 at /sys/fs/cgroup/unified), /sys/fs/cgroup/X
        # is no cgroup2 directory: processes written there would run unfenced.
        root = cgroup2_root()
        outside = "/sys/fs/cgroup" if root != "/sys/fs/cgroup" else "/run"
        arg = f"{outside}/egd-e2e-outside-{os.getpid()}"
        r = self.attach("--cgroup", arg)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(f"not under the cgroup2 mount {root}", r.stderr)
        self.assertFalse(os.path.exists(arg))
        self.assertFalse(os.path.exists(root + arg), "taken as relative to the cgroup2 mount")

    def test_user_errors(self):
        r = self.attach("--user", "egd-no-such-user", "--cgroup", "claude.slice")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no user named egd-no-such-user", r.stderr)
        r = self.attach("--user", "65534", "--cgroup", "agents/x")
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("--user takes a slice name", r.stderr)
        if not os.path.isdir("/run/systemd/system"):
            r = self.attach("--user", "65534", "--cgroup", "egd-e2e-user.slice")
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("--user needs systemd", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(cgroup2_root(), "egd-e2e-user.slice")))
        r = self.attach("--user", "65534")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--user needs --cgroup", r.stderr)


if __name__ == "__main__":
    unittest.main()
