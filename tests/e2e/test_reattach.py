"""The fence follows the cgroup's path when its directory is removed and made
again (systemctl stop/start of a slice), and `status` says when it does not.

Every world here keeps its pins and run files in directories of its own
(World(private_pins=True)): these tests make UNFENCED states on purpose,
which must not show in the `status` of tests running beside them.
"""
import errno
import json
import os
import signal
import subprocess
import time
import unittest
from pathlib import Path

from e2e_case import DEFAULT_POLICY, DENY_TLS_HOST_POLICY, FenceCase
from world import _LineReader

DEADLINE = 10.0


def cont(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def poll(fn, deadline=DEADLINE, what="condition"):
    """fn() until it returns something truthy, or fail after deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.01)
    raise AssertionError(f"{what} not reached within {deadline}s (last: {last!r})")


class RefenceCase(FenceCase):
    WORLD = {"private_pins": True}

    def ino(self, path=None):
        try:
            return os.stat(path or self.w.cgroup).st_ino
        except FileNotFoundError:
            return None

    def rmdir_cgroup(self, path=None):
        """Removes the cgroup directory; whatever runs in it is moved out
        first (nothing should: probes have exited)."""
        path = path or self.w.cgroup
        root = os.path.dirname(self.w.cgroup)
        for pid in Path(path, "cgroup.procs").read_text().split():
            try:
                Path(root, "cgroup.procs").write_text(pid)
            except OSError:
                pass  # exited meanwhile
        end = time.monotonic() + DEADLINE
        while True:
            try:
                os.rmdir(path)
                return
            except OSError as e:
                # A process that just exited may still be counted for a moment.
                if e.errno != errno.EBUSY or time.monotonic() > end:
                    raise
            time.sleep(0.01)

    def attachment(self, st=None):
        st = st or self.w.status_json()
        for a in st.get("attachments", []):
            if a.get("cgroup") == self.w.cgroup:
                return a
        return None

    def wait_enforcing(self, cgroup_id):
        """status shows the fence in force on cgroup_id (egressd moved it)."""
        def check():
            a = self.attachment()
            return a if a and a["cgroup_id"] == cgroup_id and a["state"] == "enforcing" else None
        return poll(check, what=f"status enforcing on cgroup id {cgroup_id}")

    def run_files(self):
        return sorted(p.name for p in Path(self.w.run_dir).iterdir()) if Path(self.w.run_dir).is_dir() else []

    def pin_dirs(self):
        return sorted(p.name for p in Path(self.w.bpffs_dir).iterdir()) if Path(self.w.bpffs_dir).is_dir() else []


class MadeAgainByEgressd(RefenceCase):
    def test_removed_cgroup_is_made_again_and_fenced(self):
        old = self.ino()
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private", cgroup_id=old)
        mode = os.stat(self.w.cgroup).st_mode & 0o7777
        self.rmdir_cgroup()
        new = poll(lambda: (self.ino() or old) != old and self.ino(), what="the cgroup directory made again")
        self.assertEqual(os.stat(self.w.cgroup).st_mode & 0o7777, mode, "made again with another mode")
        # No wait for status: a process moved in at once is fenced (the
        # directory is frozen until the programs are on it).
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private", cgroup_id=new)
        notice = self.tail.expect_event(lambda e: e.get("type") == "refenced", what="refenced notice")
        self.assertEqual((notice["cgroup"], notice["cgroup_id"], notice["previous_cgroup_id"], notice["made_by"],
                          notice["processes_before_fence"]), (self.w.cgroup, new, old, "egressd", 0), notice)
        a = self.wait_enforcing(new)
        self.assertEqual((a["links"], a["fenced"], a["reattached"], a["daemon_pid"]),
                         (13, True, 1, self.daemon.pid), a)
        self.assertGreaterEqual(a["denied"].get("private", 0), 2, "counters did not move with the maps")
        self.assertEqual(self.pin_dirs(), [str(new)], "pins not moved to the new cgroup id")
        self.assertEqual(self.run_files(), [f"{new}.pid", f"{new}.sock"], "run files not moved to the new id")
        self.assertEqual(self.w.egressd("status").returncode, 0)
        self.assertRegex(self.daemon.stderr(), r"fence moved onto .* egressd made it again")
        self.assertNotIn("before it was fenced", self.daemon.stderr())
        self.assertEqual(open(os.path.join(self.w.cgroup, "cgroup.freeze")).read().strip(), "0", "left frozen")
        # A new `tail --cgroup` finds the daemon under the new id.
        t2 = self.w.tail()
        r = self.w.probe("connect", "tcp", "172.16.0.5", 80)
        self.assertEqual(r["errno"], "EPERM", r)
        t2.expect_event(lambda e: e.get("tgid") == r["pid"] and e.get("reason") == "private",
                        what="event on a tail started after the move")

    def test_reload_and_detach_follow_the_new_cgroup(self):
        old = self.ino()
        self.rmdir_cgroup()
        new = poll(lambda: (self.ino() or old) != old and self.ino(), what="the cgroup directory made again")
        self.wait_enforcing(new)
        r = self.w.reload(self.w.write_policy(DENY_TLS_HOST_POLICY))
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertProbeDenied("connect", "tcp", "203.0.113.10", 443, reason="deny-cidr")
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertIsNotNone(self.daemon.wait_exit(10), "daemon still running after detach")
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from 10.0.0.5 80")
        self.assertEqual(self.pin_dirs(), [])
        self.assertEqual(self.run_files(), [])
        # Detached: removing the directory now is left alone.
        self.rmdir_cgroup()
        self.assertFalse(os.path.exists(self.w.cgroup))

    def test_removed_twice(self):
        first = self.ino()
        self.rmdir_cgroup()
        second = poll(lambda: (self.ino() or first) != first and self.ino(), what="made again once")
        self.wait_enforcing(second)
        self.rmdir_cgroup()
        third = poll(lambda: (self.ino() or second) not in (first, second) and self.ino(), what="made again twice")
        a = self.wait_enforcing(third)
        self.assertEqual(a["reattached"], 2, a)
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private", cgroup_id=third)


class MadeAgainBySomeoneElse(RefenceCase):
    def test_mkdir_right_after_rmdir(self):
        # Whoever makes the directory first (this test or egressd), a process
        # put in it at once is fenced before it makes a socket. The wait for
        # status is what makes this deterministic: a process that ran before
        # egressd froze the new cgroup could have made sockets unfenced (the
        # window is egressd's reaction time, about a millisecond; the next
        # test shows such processes are reported).
        old = self.ino()
        self.rmdir_cgroup()
        try:
            os.mkdir(self.w.cgroup)
        except FileExistsError:
            pass  # egressd's mkdir won
        p = self.w.agent([self.w.python, str(self.w.tmp / "probe.py"), "fork", "--wait-stdin", "--",
                          "connect", "tcp", "10.0.0.5", "80"], stdin=subprocess.PIPE)
        out = _LineReader(p.stdout, "fork")
        first = out.get(10)
        self.assertTrue(first and '"waiting"' in first, f"probe fork did not start: {first!r}")
        new = self.ino()
        self.assertNotEqual(new, old)
        self.wait_enforcing(new)
        p.stdin.write("go\n")
        p.stdin.flush()
        line = out.get(20)
        self.assertTrue(line, f"no result from the forked child (rc={p.poll()})")
        r = json.loads(line)
        self.assertEqual(r["errno"], "EPERM", r)
        ev = self.tail.expect_event(lambda e: e.get("tgid") == r["pid"], what="event from the forked child")
        self.assertEqual((ev["reason"], ev["cgroup_id"]), ("private", new), ev)
        notice = self.tail.expect_event(lambda e: e.get("type") == "refenced", what="refenced notice")
        self.assertIn(notice["made_by"], ("egressd", "other"), notice)
        p.wait(timeout=10)

    def test_processes_inside_before_the_fence_are_reported(self):
        # egressd stopped (SIGSTOP) while the cgroup is removed, made again
        # and a process put in it: when it resumes it fences the new cgroup
        # and says that process ran there unfenced.
        old = self.ino()
        os.kill(self.daemon.pid, signal.SIGSTOP)
        self.addCleanup(cont, self.daemon.pid)
        self.rmdir_cgroup()
        os.mkdir(self.w.cgroup)
        new = self.ino()
        p = self.w.agent([self.w.python, str(self.w.tmp / "probe.py"), "fork", "--wait-stdin", "--",
                          "connect", "tcp", "10.0.0.5", "80"], stdin=subprocess.PIPE)
        out = _LineReader(p.stdout, "fork")
        first = out.get(10)
        self.assertTrue(first and '"waiting"' in first, f"probe fork did not start: {first!r}")
        # Unfenced while egressd is stopped, and status says so.
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 3, f"{r.stdout}{r.stderr}")
        a = self.attachment(json.loads(r.stdout))
        self.assertEqual((a["state"], a["cgroup_id"], a["current_cgroup_id"], a["fenced"]),
                         ("unfenced", old, new, False), a)
        os.kill(self.daemon.pid, signal.SIGCONT)
        self.wait_enforcing(new)
        notice = self.tail.expect_event(lambda e: e.get("type") == "refenced", what="refenced notice")
        self.assertEqual((notice["made_by"], notice["processes_before_fence"], notice["cgroup_id"]),
                         ("other", 1, new), notice)
        poll(lambda: f"1 processes ran in {self.w.cgroup} before it was fenced" in self.daemon.stderr(),
             what="the warning in egressd's log")
        p.stdin.write("go\n")
        p.stdin.flush()
        line = out.get(20)
        self.assertTrue(line, f"no result from the forked child (rc={p.poll()})")
        self.assertEqual(json.loads(line)["errno"], "EPERM", line)
        p.wait(timeout=10)


NOBODY = 65534


class NestedPath(RefenceCase):
    ATTACH = False

    def attach_nested(self, sub):
        """attach --cgroup <world>/SUB; attach makes SUB's last component."""
        target = os.path.join(self.w.cgroup_path(os.path.dirname(sub)), os.path.basename(sub))
        self.policy_path = self.w.write_policy(DEFAULT_POLICY)
        self.daemon = self.w.egressd_attach(self.policy_path, cgroup=target)
        self.addCleanup(self.w.egressd, "detach", "--cgroup", target)
        return target

    def enforcing_on(self, target, cgroup_id):
        def enforcing():
            st = self.w.status_json()
            a = next((a for a in st["attachments"] if a["cgroup"] == target), None)
            return a if a and a["cgroup_id"] == cgroup_id and a["state"] == "enforcing" else None
        return poll(enforcing, what=f"status enforcing on {target} (cgroup id {cgroup_id})")

    def delegate(self, path, uid=NOBODY):
        """Hands a cgroup to uid as systemd's Delegate= does."""
        for p in (path, *(os.path.join(path, f) for f in ("cgroup.procs", "cgroup.threads",
                                                           "cgroup.subtree_control"))):
            os.chown(p, uid, uid)

    def test_parent_removed_too_is_made_again(self):
        # Fence <world>/agents/claude; remove claude and agents (egressd is
        # stopped meanwhile, or its own mkdir of claude would keep agents
        # busy), as `systemctl stop agents.slice` does: egressd makes both
        # again at once, so a session started in it later (systemd makes
        # nothing then) is fenced from its first instruction.
        target = self.attach_nested("agents/claude")
        parent = os.path.dirname(target)
        old = self.ino(target)
        os.kill(self.daemon.pid, signal.SIGSTOP)
        self.addCleanup(cont, self.daemon.pid)
        self.rmdir_cgroup(target)
        self.rmdir_cgroup(parent)
        os.kill(self.daemon.pid, signal.SIGCONT)
        new = poll(lambda: self.ino(target), what=f"{target} made again by egressd")
        self.assertNotEqual(new, old)
        self.assertEqual(os.stat(parent).st_mode & 0o7777, 0o755, "parent made again with another mode")
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="agents/claude", reason="private",
                               cgroup_id=new)
        self.enforcing_on(target, new)
        self.assertRegex(self.daemon.stderr(), rf"fence moved onto {target} .*egressd made it again")
        self.assertNotIn("and its parent are gone", self.daemon.stderr())
        self.assertNotIn("before it was fenced", self.daemon.stderr())

    def test_made_again_for_the_user_it_was_delegated_to(self):
        # A parent delegated to a user (a user manager's subtree: `systemctl
        # --user stop claude.slice`): the directory egressd makes again is
        # the user's, as attach made it, or the user's manager could never
        # make a scope in it again.
        parent = self.w.cgroup_path("user")
        self.delegate(parent)
        target = self.attach_nested("user/claude")
        st = os.stat(target)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY), "attach did not hand the cgroup over")
        mode, old = st.st_mode & 0o7777, st.st_ino
        self.rmdir_cgroup(target)
        new = poll(lambda: (self.ino(target) or old) != old and self.ino(target), what=f"{target} made again")
        st = os.stat(target)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (NOBODY, NOBODY, mode),
                         "made again with another owner or mode than its parent hands over")
        for f in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
            self.assertEqual(os.stat(os.path.join(target, f)).st_uid, NOBODY, f)
        self.enforcing_on(target, new)
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="user/claude", reason="private",
                               cgroup_id=new)
        # And the chain inside the delegation, handed over at every level.
        self.w.egressd("detach", "--cgroup", target)
        self.assertIsNotNone(self.daemon.wait_exit(10), "daemon still running after detach")
        target2 = self.attach_nested("user/team/claude")
        self.assertEqual(os.stat(os.path.dirname(target2)).st_uid, 0, "the world made user/team")
        os.kill(self.daemon.pid, signal.SIGSTOP)
        self.addCleanup(cont, self.daemon.pid)
        self.rmdir_cgroup(target2)
        self.rmdir_cgroup(os.path.dirname(target2))
        os.kill(self.daemon.pid, signal.SIGCONT)
        poll(lambda: self.ino(target2), what=f"{target2} made again")
        for p in (os.path.dirname(target2), target2):
            self.assertEqual(os.stat(p).st_uid, NOBODY, p)

    def test_waits_when_the_delegated_subtree_goes(self):
        # The delegation's top removed (its user logged out): its manager
        # makes it again, owned as it decides; egressd waits and fences the
        # cgroup as soon as the parent is back.
        parent = self.w.cgroup_path("user")
        self.delegate(parent)
        target = self.attach_nested("user/claude")
        old = self.ino(target)
        os.kill(self.daemon.pid, signal.SIGSTOP)
        self.addCleanup(cont, self.daemon.pid)
        self.rmdir_cgroup(target)
        self.rmdir_cgroup(parent)
        os.kill(self.daemon.pid, signal.SIGCONT)
        poll(lambda: "and its parent are gone" in self.daemon.stderr(), what="egressd waiting for the parent")
        self.assertFalse(os.path.exists(parent))
        os.mkdir(parent)
        new = poll(lambda: self.ino(target), what=f"{target} made again")
        self.assertNotEqual(new, old)
        self.enforcing_on(target, new)
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, cgroup="user/claude", reason="private")


class StatusWithoutDaemon(RefenceCase):
    TAIL = False

    def kill_daemon(self):
        self.daemon.proc.kill()
        self.assertIsNotNone(self.daemon.wait_exit(10))

    def test_recreated_cgroup_is_unfenced(self):
        old = self.ino()
        self.kill_daemon()
        self.rmdir_cgroup()
        os.mkdir(self.w.cgroup)
        new = self.ino()
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 3, f"{r.stdout}{r.stderr}")
        a = self.attachment(json.loads(r.stdout))
        self.assertEqual((a["state"], a["fenced"], a["cgroup_id"], a["current_cgroup_id"], a["daemon_pid"]),
                         ("unfenced", False, old, new, 0), a)
        self.assertIn("made again", a["reason"])
        r = self.w.egressd("status")
        self.assertEqual(r.returncode, 3, f"{r.stdout}{r.stderr}")
        self.assertIn("UNFENCED", r.stdout)
        self.assertIn("UNFENCED", r.stderr)
        # It really is unfenced: that is what status must not hide.
        self.assertProbeOk("connect", "tcp", "10.0.0.5", 80, "--http", expect="hello from 10.0.0.5 80")
        # detach --cgroup removes the stale pins of the path.
        r = self.w.detach()
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertIn("stale pins", r.stdout)
        self.assertIsNone(self.attachment())
        self.assertEqual(self.w.egressd("status").returncode, 0)
        self.assertEqual(self.pin_dirs(), [])

    def test_attach_again_fences_and_clears_stale_pins(self):
        old = self.ino()
        self.kill_daemon()
        self.rmdir_cgroup()
        os.mkdir(self.w.cgroup)
        new = self.ino()
        self.attach(DEFAULT_POLICY)
        st = self.w.status_json()
        mine = [a for a in st["attachments"] if a["cgroup"] == self.w.cgroup]
        self.assertEqual([(a["cgroup_id"], a["state"]) for a in mine], [(new, "enforcing")], st)
        self.assertEqual(self.pin_dirs(), [str(new)])
        self.assertIn(f"removed the stale pins of cgroup id {old}", self.daemon.stderr())
        self.assertProbeDenied("connect", "tcp", "10.0.0.5", 80, reason="private")

    def test_removed_cgroup_is_stale(self):
        old = self.ino()
        self.kill_daemon()
        self.rmdir_cgroup()
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 0, f"stale pins are not an unfenced cgroup: {r.stdout}{r.stderr}")
        a = self.attachment(json.loads(r.stdout))
        self.assertEqual((a["state"], a["fenced"], a["cgroup_id"], a["current_cgroup_id"]), ("stale", False, old, 0), a)
        r = self.w.egressd("detach", "--stale")
        self.assertEqual(r.returncode, 0, f"{r.stdout}{r.stderr}")
        self.assertIn(f"stale pins of removed cgroup id {old} removed", r.stdout)
        self.assertIsNone(self.attachment())
        self.assertEqual(self.pin_dirs(), [])
        self.assertEqual(self.w.egressd("detach", "--stale").stdout.strip(), "no stale egressd pins")

    def test_programs_detached_from_the_live_cgroup(self):
        # The cgroup is in place but a program was cut off it (BPF_LINK_DETACH
        # through the pin, as another tool could): status must notice.
        old = self.ino()
        self.kill_daemon()
        _bpf_link_detach(str(Path(self.w.bpffs_dir, str(old), "link_egd_connect4")))
        r = self.w.egressd("status", "--json")
        self.assertEqual(r.returncode, 3, f"{r.stdout}{r.stderr}")
        a = self.attachment(json.loads(r.stdout))
        self.assertEqual((a["state"], a["links"], a["cgroup_id"]), ("unfenced", 12, old), a)
        self.assertIn("egd_connect4", a["reason"])


def _bpf_link_detach(pin):
    """BPF_OBJ_GET the pinned link, then BPF_LINK_DETACH it (raw syscalls)."""
    import ctypes
    import platform
    import struct
    nr = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    path = ctypes.create_string_buffer(pin.encode())
    attr = (ctypes.c_uint8 * 128)()
    struct.pack_into("Q", attr, 0, ctypes.addressof(path))  # BPF_OBJ_GET: pathname
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(7), ctypes.byref(attr), ctypes.c_uint(128))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"BPF_OBJ_GET {pin}")
    try:
        attr = (ctypes.c_uint8 * 128)()
        struct.pack_into("I", attr, 0, fd)  # BPF_LINK_DETACH: link_fd
        if libc.syscall(ctypes.c_long(nr), ctypes.c_long(34), ctypes.byref(attr), ctypes.c_uint(128)) != 0:
            raise OSError(ctypes.get_errno(), f"BPF_LINK_DETACH {pin}")
    finally:
        os.close(fd)


if __name__ == "__main__":
    unittest.main()
