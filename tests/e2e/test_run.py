"""`egressd run [--policy F] [--user U] [--tail] -- CMD`: a transient fenced
cgroup per command.

egressd run runs in the world's agent netns (nsenter), so its daemon, CMD and
every connection stay there. CMD is run_child.py, which first prints what it
is (ids, groups, environment, cgroup) and then does what the test asks. The
transient cgroup is <cgroup2>/egressd/run-<egressd run's pid>-<hex>; every
test checks that it, its pins and its run files are gone at the end.

Exit statuses follow the shell's $?: CMD's code, 128+N when signal N killed
it, 125 when egressd run itself failed (CMD never started), 127/126 when CMD
could not be executed.
"""
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time
import unittest
from pathlib import Path

from e2e_case import DEFAULT_POLICY, PUBLIC_HOST_RULE
from world import (BPFFS_DIR, EGRESSD, HERE, Tail, World, _kill_cgroup_tree, _kill_proc, _LineReader,
                   _remove_pins, cgroup2_root, run)

RUN_DIR = os.environ.get("EGRESSD_RUN_DIR", "/run/egressd")
CG_LINE = re.compile(r" in (/\S+/egressd/run-(\d+)-[0-9a-f]{8}), fenced by ")
DEADLINE = 30.0

POLICY = DEFAULT_POLICY + PUBLIC_HOST_RULE + """
[[allow_cidr]]
cidr = "203.0.113.7/32"
ports = [22]
proto = "tcp"

[dns]
upstream = ["198.51.100.53"]
"""

# A user only this test's mount namespace knows (bind-mounted passwd/group).
TEST_USER, TEST_UID, TEST_GID, TEST_GROUPS = "egdrun", 4242, 4242, [4242, 4243, 4244]
TEST_HOME = "/home/egdrun-nonexistent"


def wait_populated(cg, want, deadline=DEADLINE):
    """Waits on cgroup.events (poll, no sleeping) until "populated" is `want`."""
    with open(Path(cg, "cgroup.events"), "rb", buffering=0) as f:
        p = select.poll()
        p.register(f, select.POLLPRI)
        end = time.monotonic() + deadline
        while True:
            f.seek(0)
            if f"populated {int(want)}".encode() in f.read():
                return
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{cg}: populated never became {int(want)}")
            p.poll(left * 1000)


class RunProc:
    """A running `egressd run`: stdout lines (CMD's) and stderr lines (its own)."""

    def __init__(self, proc):
        self.proc = proc
        self.out = _LineReader(proc.stdout, "run-stdout")
        self.err = _LineReader(proc.stderr, "run-stderr")
        self.info = None

    @property
    def pid(self):
        return self.proc.pid

    def expect_out(self, pred, what, deadline=DEADLINE):
        return self._expect(self.out, pred, what, deadline)

    def expect_err(self, pred, what, deadline=DEADLINE):
        return self._expect(self.err, pred, what, deadline)

    def _expect(self, reader, pred, what, deadline):
        end = time.monotonic() + deadline
        seen = set()
        while time.monotonic() < end:
            for i, line in enumerate(reader.lines):
                if i not in seen and pred(line):
                    return line
                seen.add(i)
            if reader.get(min(0.2, end - time.monotonic())) is None and not any(
                    pred(l) for l in reader.lines):
                break
        raise AssertionError(f"egressd run: no {what} within {deadline}s\n{self.text()}")

    def expect_info(self):
        line = self.expect_out(lambda l: l.startswith('{"info"'), "info line from CMD")
        self.info = json.loads(line)
        return self.info

    def wait(self, deadline=DEADLINE):
        try:
            return self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"egressd run did not exit within {deadline}s\n{self.text()}")

    def stdout(self):
        return "".join(self.out.lines)

    def stderr(self):
        return "".join(self.err.lines)

    def text(self):
        return f"--- stdout\n{self.stdout()}--- stderr\n{self.stderr()}"

    def write(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()


class RunCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.w = World(tls=False)
        self.addCleanup(self.w.close)
        self.w.start()
        self.child = str(self.w.tmp / "run_child.py")
        Path(self.child).write_text((HERE / "run_child.py").read_text())
        os.chmod(self.child, 0o644)
        self.root = cgroup2_root()
        self.run_pids = []
        self.addCleanup(self._reap_runs)

    # -- starting egressd run -------------------------------------------------

    def wrap(self, argv, mounts=None):
        """argv inside the agent netns; with mounts {file: over}, in a private
        mount namespace with those files bind-mounted (every wrapper execs:
        the Popen's pid is egressd run's)."""
        full = []
        if mounts:
            srcs, dsts = list(mounts), list(mounts.values())
            script = " && ".join(f'mount --bind "${i}" {d}' for i, d in enumerate(dsts))
            if len(srcs) > 1:
                script += f" && shift {len(srcs) - 1}"
            full += ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                     script + ' && exec "$@"', *srcs]
        return full + ["nsenter", f"--net=/run/netns/{self.w.agent_ns}", "--", *argv]

    def start(self, cmd, opts=(), env=None, mounts=None, stdin=subprocess.DEVNULL, child=True):
        argv = [EGRESSD, "run", *opts, "--"] + ([self.w.python, self.child, *cmd] if child else list(cmd))
        e = dict(os.environ)
        e.pop("SUDO_USER", None)
        e.update(env or {})
        # A session of its own: no controlling terminal, whatever runs the tests.
        p = subprocess.Popen(self.wrap(argv, mounts), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=e, cwd=self.w.tmp, start_new_session=True)
        self.run_pids.append(p.pid)
        r = RunProc(p)
        self.addCleanup(_kill_proc, p, 3)
        return r

    def run_to_end(self, cmd, **kw):
        r = self.start(cmd, **kw)
        rc = r.wait()
        r.out.get(2)  # let the readers reach EOF
        return r, rc

    def _reap_runs(self):
        """Whatever a failed test left: transient cgroups of its runs."""
        parent = Path(self.root, "egressd")
        for pid in self.run_pids:
            for d in parent.glob(f"run-{pid}-*"):
                ino = os.stat(d).st_ino
                run([EGRESSD, "detach", "--cgroup", str(d)], check=False, timeout=20)
                _kill_cgroup_tree(str(d))
                _remove_pins(ino)

    # -- assertions -------------------------------------------------------------

    def daemon_pid(self, cg):
        st = json.loads(run([EGRESSD, "status", "--json"], timeout=20).stdout)
        return next(a["daemon_pid"] for a in st["attachments"] if a["cgroup"] == cg)

    def transient_cgroup(self, r):
        line = r.expect_err(lambda l: CG_LINE.search(l), "line naming the transient cgroup")
        m = CG_LINE.search(line)
        self.assertEqual(int(m.group(2)), r.pid, line)
        return m.group(1)

    def assertCleanedUp(self, r, cg=None, ino=None):
        info = r.info
        cg = cg or (info and info["cgroup"])
        ino = ino or (info and info["ino"])
        self.assertIsNotNone(cg, r.text())
        self.assertRegex(cg, rf"^{re.escape(self.root)}/egressd/run-{r.pid}-[0-9a-f]{{8}}$")
        self.assertFalse(os.path.exists(cg), f"{cg} left behind\n{r.text()}")
        if ino:
            self.assertFalse(Path(BPFFS_DIR, str(ino)).exists(), f"pins {BPFFS_DIR}/{ino} left behind")
            for suffix in (".sock", ".pid"):
                self.assertFalse(Path(RUN_DIR, f"{ino}{suffix}").exists(), f"{RUN_DIR}/{ino}{suffix} left")
        st = json.loads(run([EGRESSD, "status", "--json"], timeout=20).stdout)
        self.assertNotIn(cg, [a["cgroup"] for a in st["attachments"]], st)


class ExitStatus(RunCase):
    def test_exit_codes_pass_through(self):
        for code in (0, 3):
            r, rc = self.run_to_end(["exit", str(code)], opts=["--user", "nobody"])
            self.assertEqual(rc, code, r.text())
            r.expect_info()
            self.assertCleanedUp(r)

    def test_killed_by_signal_is_128_plus_n(self):
        # What a shell reports in $? for a command killed by signal N.
        for name, n in (("KILL", 9), ("TERM", 15)):
            r, rc = self.run_to_end(["kill-self", name], opts=["--user", "nobody"])
            self.assertEqual(rc, 128 + n, r.text())
            r.expect_info()
            self.assertCleanedUp(r)

    def test_kill_9_of_cmd_cleans_up(self):
        r = self.start(["wait-stdin"], opts=["--user", "nobody"], stdin=subprocess.PIPE)
        info = r.expect_info()
        r.expect_out(lambda l: l.strip() == "ready", "ready")
        self.assertTrue(os.path.isdir(info["cgroup"]))
        self.assertTrue(Path(BPFFS_DIR, str(info["ino"])).is_dir(), "the transient cgroup is not fenced")
        os.kill(info["pid"], signal.SIGKILL)
        self.assertEqual(r.wait(), 137, r.text())
        self.assertCleanedUp(r)

    def test_command_not_found_is_127(self):
        r, rc = self.run_to_end(["/nonexistent/cmd"], opts=["--user", "nobody"], child=False)
        self.assertEqual(rc, 127, r.text())
        self.assertIn("/nonexistent/cmd: No such file or directory", r.stderr())
        self.assertCleanedUp(r, cg=self.transient_cgroup(r))

    def test_attach_failure_fails_closed(self):
        # A bpffs location egressd attach cannot use: it fails after egressd
        # run made the cgroup; CMD must never start.
        blocker = self.w.tmp / "not-a-dir"
        blocker.write_text("")
        marker = self.w.tmp / "cmd-ran"
        r, rc = self.run_to_end(["/bin/sh", "-c", f"touch {marker}"], opts=["--user", "nobody"], child=False,
                                env={"EGRESSD_BPFFS_DIR": str(blocker / "egressd")})
        self.assertEqual(rc, 125, r.text())
        self.assertIn("egressd attach: mount bpffs on", r.stderr())
        self.assertIn("was not started", r.stderr())
        self.assertFalse(marker.exists(), "CMD ran although egressd attach failed")
        self.assertEqual(list(Path(self.root, "egressd").glob(f"run-{r.pid}-*")), [], "cgroup left behind")

    def test_bad_policy_and_usage(self):
        bad = self.w.write_policy('version = 1\n[network]\nprivate = "nope"\n')
        r, rc = self.run_to_end(["info"], opts=["--policy", bad, "--user", "nobody"])
        self.assertEqual(rc, 125, r.text())
        self.assertRegex(r.stderr(), re.escape(bad) + r":3:\d+: ")
        self.assertEqual(r.stdout(), "", "CMD ran with a broken policy")
        r, rc = self.run_to_end(["true"], opts=["--user", "nobody", "--policy"], child=False)
        self.assertEqual(rc, 2, r.text())
        p = subprocess.run(self.wrap([EGRESSD, "run", "true"]), capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("needs -- before the command", p.stderr)


class Signals(RunCase):
    def test_signals_reach_cmd(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            r = self.start(["traps"], opts=["--user", "nobody"])
            r.expect_info()
            r.expect_out(lambda l: l.strip() == "ready", "ready")
            os.kill(r.pid, sig)
            self.assertEqual(r.wait(), 64 + sig, f"{sig.name}:\n{r.text()}")
            self.assertIn(f"got {sig.name}\n", r.stdout())
            self.assertCleanedUp(r)

    def test_every_relayed_signal_arrives_once(self):
        r = self.start(["traps"], opts=["--user", "nobody"])
        info = r.expect_info()
        r.expect_out(lambda l: l.strip() == "ready", "ready")
        # CMD has a process group of its own (no terminal): only the relay reaches it.
        self.assertEqual(info["pgrp"], info["pid"], info)
        sent = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGQUIT]
        for i, sig in enumerate(sent):
            os.kill(r.pid, sig)
            r.expect_out(lambda l, s=sig: l.strip() == f"got {s.name}", f"got {sig.name}")
        self.assertEqual(r.wait(), 64 + signal.SIGQUIT, r.text())
        got = [l.split()[1] for l in r.out.lines if l.startswith("got ")]
        self.assertEqual(got, [s.name for s in sent], r.text())
        self.assertCleanedUp(r)

    def test_terminal_ctrl_c_reaches_cmd_once(self):
        # egressd run on a terminal (a pty it controls): CMD stays in the
        # terminal's foreground process group; ^C reaches it from the kernel
        # and egressd run does not relay it a second time.
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        # NOFLSH: without it the line discipline flushes the output queue
        # just after it signals the foreground group, and a handler quick
        # enough to print before that flush loses its line.
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.NOFLSH
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        argv = self.wrap([EGRESSD, "run", "--user", "nobody", "--", self.w.python, self.child, "tty"])
        p = subprocess.Popen(["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave, cwd=self.w.tmp,
                             env={k: v for k, v in os.environ.items() if k != "SUDO_USER"})
        os.close(slave)
        self.run_pids.append(p.pid)
        self.addCleanup(_kill_proc, p, 3)
        buf = bytearray()

        def expect(pattern, deadline=DEADLINE):
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                m = re.search(pattern, buf.decode(errors="replace"))
                if m:
                    return m
                r, _, _ = select.select([master], [], [], min(0.2, max(0, end - time.monotonic())))
                if r:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    buf.extend(chunk)
            raise AssertionError(f"no {pattern!r} on the terminal within {deadline}s:\n{buf.decode(errors='replace')}")

        info = json.loads(expect(r'(\{"info".*\})').group(1))
        expect(r"\bready\b")
        self.assertEqual(info["pgrp"], info["ppgrp"], f"CMD left egressd run's process group: {info}")
        self.assertEqual(info["fg"], info["pgrp"], f"CMD is not in the terminal's foreground group: {info}")
        os.write(master, b"\x03")
        expect(r"got SIGINT 1")
        os.write(master, b"ping\n")
        expect(r"\bpong\b")
        os.write(master, b"done\n")
        m = expect(r"count (\d+)")
        self.assertEqual(m.group(1), "1", buf.decode(errors="replace"))
        try:
            rc = p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.fail(f"egressd run did not exit after CMD:\n{buf.decode(errors='replace')}")
        self.assertEqual(rc, 0, buf.decode(errors="replace"))
        self.assertFalse(os.path.exists(info["cgroup"]))
        self.assertFalse(Path(BPFFS_DIR, str(info["ino"])).exists())


class Fence(RunCase):
    def test_private_blocked_allowed_works_and_tail_shows_the_block(self):
        policy = self.w.write_policy(POLICY)
        probe = str(self.w.tmp / "probe.py")
        script = (f'"$0" {probe} connect tcp 10.0.0.5 80; "$0" {probe} connect tcp 203.0.113.7 22; '
                  f'"$0" {probe} connect tcp 203.0.113.10 80 --http --host public.test; '
                  f'"$0" {self.child} info')
        r, rc = self.run_to_end(["/bin/sh", "-c", script, self.w.python], opts=["--policy", policy, "--user",
                                                                                  "nobody", "--tail"], child=False)
        self.assertEqual(rc, 0, r.text())
        res = [json.loads(l) for l in r.out.lines if l.startswith('{"ok"')]
        self.assertEqual(len(res), 3, r.text())
        private, raw, web = res
        self.assertEqual((private["ok"], private["errno"]), (False, "EPERM"), private)
        self.assertTrue(raw["ok"], raw)
        self.assertIn("banner 203.0.113.7 22", raw["received"])
        self.assertTrue(web["ok"], web)
        self.assertIn("hello from", web["received"])
        r.expect_info()
        # --tail: the daemon's text events on egressd run's stderr.
        deny = [l for l in r.err.lines if " deny tcp 10.0.0.5:80 private " in l]
        self.assertEqual(len(deny), 1, r.text())
        self.assertIn(f"[{private['pid']}]", deny[0])
        self.assertCleanedUp(r)

    def test_tail_cgroup_follows_the_transient_cgroup(self):
        r = self.start(["probe", "10.0.0.5", "80"], opts=["--user", "nobody"], stdin=subprocess.PIPE)
        info = r.expect_info()
        r.expect_out(lambda l: l.strip() == "ready", "ready")
        self.assertEqual(self.transient_cgroup(r), info["cgroup"])
        tail = subprocess.Popen(self.wrap([EGRESSD, "tail", "--cgroup", info["cgroup"], "--json"]),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(_kill_proc, tail, 2)
        t = Tail(tail)
        t.wait_following()
        r.write("go\n")
        res = json.loads(r.expect_out(lambda l: l.startswith('{"probe"'), "probe result"))
        self.assertEqual(res["errno"], "EPERM", res)
        ev = t.expect_event(lambda e: e["tgid"] == res["pid"] and e["verdict"] == "deny", timeout=10)
        self.assertEqual((ev["reason"], ev["daddr"], ev["dport"], ev["cgroup_id"], ev["uid"]),
                         ("private", "10.0.0.5", 80, info["ino"], 65534), ev)
        self.assertEqual(r.wait(), 0, r.text())
        self.assertCleanedUp(r)

    def test_background_descendant_is_waited_for(self):
        r = self.start(["background"], opts=["--user", "nobody"])
        info = r.expect_info()
        bg = int(r.expect_out(lambda l: l.startswith("bg "), "bg pid").split()[1])
        r.expect_err(lambda l: "exited; waiting for the 1 process it left in" in l, "waiting notice")
        # CMD is gone, its child is not: egressd run waits, the fence holds.
        self.assertIsNone(r.proc.poll(), r.text())
        self.assertEqual(Path(info["cgroup"], "cgroup.procs").read_text().split(), [str(bg)])
        self.assertTrue(Path(BPFFS_DIR, str(info["ino"])).is_dir())
        os.kill(bg, signal.SIGUSR1)
        self.assertEqual(r.wait(), 5, r.text())
        self.assertIn("bg got SIGUSR1\n", r.stdout())
        self.assertCleanedUp(r)

    def test_signals_reach_leftovers_after_cmd_exited(self):
        r = self.start(["background"], opts=["--user", "nobody"])
        r.expect_info()
        r.expect_out(lambda l: l.startswith("bg "), "bg pid")
        r.expect_err(lambda l: "exited; waiting for the 1 process" in l, "waiting notice")
        os.kill(r.pid, signal.SIGTERM)
        self.assertEqual(r.wait(), 5, r.text())
        self.assertIn("bg got SIGTERM\n", r.stdout())
        self.assertCleanedUp(r)

    def test_run_killed_keeps_the_fence_until_swept(self):
        # kill -9 of egressd run: CMD goes on, fenced (its daemon goes, so
        # the fence fails closed); once CMD is gone the next egressd run
        # removes the leftover cgroup and pins.
        r = self.start(["probe", "10.0.0.5", "80"], opts=["--user", "nobody"], stdin=subprocess.PIPE)
        info = r.expect_info()
        r.expect_out(lambda l: l.strip() == "ready", "ready")
        os.kill(r.pid, signal.SIGKILL)
        self.assertEqual(r.wait(), -signal.SIGKILL)
        # Its daemon follows it out (no daemon outlives a crashed run).
        end = time.monotonic() + DEADLINE
        while self.daemon_pid(info["cgroup"]) and time.monotonic() < end:
            time.sleep(0.05)  # polling egressd status, bounded
        self.assertEqual(self.daemon_pid(info["cgroup"]), 0, "the daemon outlived egressd run")
        r.write("go\n")
        res = json.loads(r.expect_out(lambda l: l.startswith('{"probe"'), "probe result"))
        self.assertEqual(res["errno"], "EPERM", res)
        self.assertTrue(Path(BPFFS_DIR, str(info["ino"])).is_dir(), "the fence went with egressd run")
        # CMD exits (it has answered); its cgroup empties.
        wait_populated(info["cgroup"], False)
        r2, rc = self.run_to_end(["info"], opts=["--user", "nobody"])
        self.assertEqual(rc, 0, r2.text())
        self.assertFalse(os.path.exists(info["cgroup"]), "leftover cgroup not swept")
        self.assertFalse(Path(BPFFS_DIR, str(info["ino"])).exists(), "leftover pins not swept")
        r2.expect_info()
        self.assertCleanedUp(r2)

    def test_sweep_keeps_leftovers_with_processes(self):
        busy = Path(self.root, "egressd", "run-999999-0000beef")
        busy.mkdir(parents=True)
        sleeper = subprocess.Popen(["/bin/sh", "-c", 'echo 0 > "$0" && exec sleep 60', str(busy / "cgroup.procs")])
        self.addCleanup(_kill_cgroup_tree, str(busy))
        self.addCleanup(_kill_proc, sleeper, 1)
        empty = Path(self.root, "egressd", "run-999998-0000beef")
        empty.mkdir()
        self.addCleanup(lambda: empty.exists() and empty.rmdir())
        wait_populated(busy, True)
        r, rc = self.run_to_end(["info"], opts=["--user", "nobody"])
        self.assertEqual(rc, 0, r.text())
        self.assertFalse(empty.exists(), "an empty leftover was kept")
        self.assertTrue(busy.exists(), "a leftover with a process in it was removed")


class User(RunCase):
    def _identity_files(self):
        passwd = Path("/etc/passwd").read_text() + f"{TEST_USER}:x:{TEST_UID}:{TEST_GID}::{TEST_HOME}:/bin/sh\n"
        group = (Path("/etc/group").read_text() + f"{TEST_USER}:x:{TEST_GID}:\n"
                 f"egdrun-a:x:{TEST_GROUPS[1]}:{TEST_USER}\negdrun-b:x:{TEST_GROUPS[2]}:nobody,{TEST_USER}\n")
        p, g = self.w.tmp / "passwd", self.w.tmp / "group"
        p.write_text(passwd)
        g.write_text(group)
        os.chmod(p, 0o644)
        os.chmod(g, 0o644)
        return {str(p): "/etc/passwd", str(g): "/etc/group"}

    def assertTestUser(self, info):
        self.assertEqual((info["uid"], info["euid"], info["gid"], info["egid"]), (TEST_UID,) * 2 + (TEST_GID,) * 2)
        self.assertEqual(info["resuid"], [TEST_UID] * 3)
        self.assertEqual(info["resgid"], [TEST_GID] * 3)
        self.assertEqual(info["groups"], TEST_GROUPS)
        self.assertEqual(info["env"], {"HOME": TEST_HOME, "USER": TEST_USER, "LOGNAME": TEST_USER})
        self.assertEqual(info["setuid0"], "EPERM")
        self.assertEqual(info["caps"], {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0})
        # set-uid programs (sudo, su) cannot raise it again
        self.assertEqual(info["no_new_privs"], 1)

    def test_user_option_drops_to_that_user(self):
        r, rc = self.run_to_end(["info"], opts=["--user", TEST_USER], mounts=self._identity_files(),
                                env={"SUDO_USER": "root", "SUDO_UID": "0", "NOTIFY_SOCKET": "@nobody-listens"})
        self.assertEqual(rc, 0, r.text())
        self.assertTestUser(r.expect_info())
        self.assertCleanedUp(r)

    def test_numeric_user(self):
        r, rc = self.run_to_end(["info"], opts=["--user", str(TEST_UID)], mounts=self._identity_files())
        self.assertEqual(rc, 0, r.text())
        self.assertTestUser(r.expect_info())

    def test_sudo_user_is_the_default(self):
        r, rc = self.run_to_end(["info"], mounts=self._identity_files(), env={"SUDO_USER": TEST_USER})
        self.assertEqual(rc, 0, r.text())
        self.assertTestUser(r.expect_info())
        self.assertNotIn("runs as root", r.stderr())

    def test_without_sudo_the_caller_root_with_a_warning(self):
        r, rc = self.run_to_end(["info"])
        self.assertEqual(rc, 0, r.text())
        info = r.expect_info()
        self.assertEqual(info["uid"], 0)
        self.assertEqual(info["env"]["USER"], "root")
        self.assertIn("runs as root, which can leave any fence", r.stderr())
        self.assertCleanedUp(r)

    def test_the_user_reads_its_cgroup_files_whatever_roots_umask(self):
        # The cgroups egressd run makes are 0755 even under umask 077 (as
        # systemd's are): CMD, dropped to the user, reads its own cgroup.
        script = ('cg=$(sed -n "s/^0:://p" /proc/self/cgroup); '
                  f'cat "{self.root}$cg/cgroup.procs" "{self.root}$cg/cgroup.events" >/dev/null && echo readable')
        old = os.umask(0o077)
        try:
            r, rc = self.run_to_end(["/bin/sh", "-c", script], opts=["--user", TEST_USER],
                                    mounts=self._identity_files(), child=False)
        finally:
            os.umask(old)
        self.assertEqual(rc, 0, r.text())
        self.assertIn("readable", r.stdout(), r.text())

    def test_unknown_user_fails_before_anything(self):
        r, rc = self.run_to_end(["info"], opts=["--user", "no-such-user-egd"])
        self.assertEqual(rc, 125, r.text())
        self.assertIn("no such user: no-such-user-egd", r.stderr())
        self.assertEqual(r.stdout(), "")
        self.assertEqual(list(Path(self.root, "egressd").glob(f"run-{r.pid}-*")), [])


if __name__ == "__main__":
    unittest.main()
