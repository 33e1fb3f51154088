"""A disposable test world for egressd's end-to-end tests (stdlib only, root).

    with World() as w:
        w.egressd_attach(w.write_policy(DEFAULT_POLICY))
        tail = w.tail()
        r = w.probe("connect", "tcp", "10.0.0.5", "80")
        assert r["errno"] == "EPERM"
        tail.expect_event(lambda e: e["reason"] == "private")

Layout (nothing is ever sent from the host's network namespace):

    <id>-agent netns                      <id>-world netns
    +-------------------------+   veth    +--------------------------------+
    | <id>-a 198.51.100.2/24  |-----------| <id>-w 198.51.100.1/24         |
    |        2001:db8:ff::2/64|           |        2001:db8:ff::1/64       |
    | default via .1 / ::1    |           | + every test host as /32, /128,|
    | lo: servers on 127.0.0.1|           |   public and private; servers  |
    |     and ::1 port 8080   |           |   on each (servers.py, openssl)|
    |                         |           | + DNS (dnsmasq) 198.51.100.53  |
    |                         |           | + nginx origins (origins=True) |
    +-------------------------+           +--------------------------------+

Processes under test run in the agent netns inside a fresh cgroup2 directory
<cgroup2>/egd-e2e-<id>. They are put into the cgroup *before* exec (a socket
is judged by the cgroup it was created in), then enter the netns with
`nsenter --net=` (not `ip netns exec`, which remounts /sys and hides bpffs and
the cgroup tree). egressd itself also runs under `nsenter --net=` for the same
reason; it is never inside the fenced cgroup.

Processes started with agent() resolve names through the world's DNS server
(origins.py): their /etc/resolv.conf and /etc/hosts are bind-mounted in a
private mount namespace (what `ip netns exec` does with /etc/netns/NAME/,
without its /sys remount). egressd gets the same server as --dns-upstream.

Everything is undone in close() (also from atexit and on SIGTERM), and a
World left behind by a killed run is reaped by the next one (registry under
/run/egressd-e2e/).
"""
import atexit
import errno
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from origins import (CERT_NAMES, DEAD_CLOSED, DEAD_UNREACH, DNS4, ORIGIN_HOSTS, dnsmasq_cmd, fcgiwrap_cmd,
                     make_git_repo, moving_dnsmasq_cmd, nginx_conf, origin_endpoints, write_content)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EGRESSD = os.environ.get("EGRESSD_BIN") or str(REPO / "build" / "egressd")
BPFFS_DIR = os.environ.get("EGRESSD_BPFFS_DIR", "/sys/fs/bpf/egressd")
REGISTRY = Path("/run/egressd-e2e")

# The test hosts, all inside the world netns.
LINK4_AGENT, LINK4_WORLD = "198.51.100.2", "198.51.100.1"
LINK6_AGENT, LINK6_WORLD = "2001:db8:ff::2", "2001:db8:ff::1"
PUBLIC4 = ["203.0.113.10", "203.0.113.7", "198.51.100.20"]
PUBLIC6 = ["2001:db8::10"]
PRIVATE4 = ["10.0.0.5", "172.16.0.5", "192.168.1.5", "100.64.0.5", "169.254.169.254"]
PRIVATE6 = ["fd00::10"]
LINK_LOCAL6 = "fe80::1"  # on the world end of the veth: reach it as fe80::1%<id>-a
TLS_HOSTS = ["203.0.113.10", "2001:db8::10"]  # openssl s_server -www on :443
TCP_PORTS = [80, 443, 22, 5432, 8080]  # 80 speaks HTTP/1.0, the others banner+echo
UDP_PORTS = [53, 443, 123, 5353]
AGENT_LOOPBACK_TCP = ["127.0.0.1:8080", "[::1]:8080"]  # in the agent netns
TLS_NAME = "public.test"
MOVING_DNS = "198.51.100.54"  # start_moving_dns(): a DNS server whose answers move

READY_DEADLINE = 20.0


def endpoint(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cgroup2_root():
    """The cgroup2 mount point, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


def python_for_probes():
    """An interpreter any user can run (pyenv shims under /root are not)."""
    for p in ("/usr/bin/python3", sys.executable):
        if p and os.access(p, os.X_OK):
            return p
    return "python3"


def run(cmd, check=True, timeout=30, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


class _LineReader:
    """Reads a pipe line by line on a thread into a queue (bounded waits)."""

    def __init__(self, pipe, name):
        self.q = queue.Queue()
        self.lines = []
        self._t = threading.Thread(target=self._run, args=(pipe,), name=name, daemon=True)
        self._t.start()

    def _run(self, pipe):
        try:
            for line in pipe:
                self.lines.append(line)
                self.q.put(line)
        except (ValueError, OSError):
            pass
        self.q.put(None)

    def get(self, timeout):
        try:
            return self.q.get(timeout=max(timeout, 0))
        except queue.Empty:
            return ""  # "" means: nothing yet; None means EOF


def _kill_proc(p, grace=3.0):
    if p is None or p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    except ProcessLookupError:
        pass


class Daemon:
    """A running `egressd attach` (its stdout and stderr go to two files)."""

    def __init__(self, proc, log_path, cgroup):
        self.proc = proc
        self.log_path = log_path  # stderr; stdout is log_path + ".out"
        self.cgroup = cgroup

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            return Path(self.log_path + ".out").read_text(errors="replace")
        except OSError:
            return ""

    def log(self):
        out = self.stdout()
        return self.stderr() + (f"[stdout]\n{out}" if out else "")

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class Tail:
    """A running `egressd tail --cgroup CG --json`."""

    def __init__(self, proc):
        self.proc = proc
        self.out = _LineReader(proc.stdout, "tail-stdout")
        self.err = _LineReader(proc.stderr, "tail-stderr")
        self.events = []      # every parsed event, in arrival order
        self.claimed = set()  # indexes already returned by expect_event
        self.garbage = []     # stdout lines that were not JSON objects

    def wait_following(self, deadline=10.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            line = self.err.get(min(0.2, end - time.monotonic()))
            if line is None:  # stderr closed: tail exited
                self.proc.wait(timeout=5)
                raise AssertionError(f"egressd tail exited ({self.proc.returncode}) before following:\n"
                                     + "".join(self.err.lines))
            if line and line.startswith("egressd tail: following"):
                return line.strip()
        raise AssertionError("egressd tail did not print 'egressd tail: following' within "
                             f"{deadline}s; stderr:\n" + "".join(self.err.lines))

    def _drain(self, timeout):
        line = self.out.get(timeout)
        if line is None:
            return False
        if line:
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict):
                    raise ValueError
                self.events.append(ev)
            except ValueError:
                self.garbage.append(line)
        return True

    def expect_event(self, predicate, timeout=5.0, what="event"):
        """First not-yet-claimed event satisfying predicate, waiting up to
        timeout. Fails with every event seen so far."""
        end = time.monotonic() + timeout
        alive = True
        while True:
            for i, ev in enumerate(self.events):
                if i in self.claimed:
                    continue
                try:
                    ok = predicate(ev)
                except (KeyError, TypeError):
                    ok = False
                if ok:
                    self.claimed.add(i)
                    return ev
            left = end - time.monotonic()
            if left <= 0 or not alive:
                break
            alive = self._drain(min(left, 0.2))
        raise AssertionError(
            f"no {what} within {timeout}s. events seen:\n"
            + "\n".join(json.dumps(e) for e in self.events)
            + ("\nnon-JSON stdout:\n" + "".join(self.garbage) if self.garbage else "")
            + ("\ntail stderr:\n" + "".join(self.err.lines) if self.err.lines else "")
            + ("" if alive else f"\n(tail exited: {self.proc.poll()})"))

    def hook_event(self, hook, pid=None, timeout=10.0, **fields):
        """The first unclaimed event of `hook` ("dns", "proxy", ...) from
        client process pid (its tgid) whose fields equal `fields`. A field
        given as a tuple or set matches any of its values."""
        def ok(e):
            if e.get("hook") != hook or (pid is not None and e.get("tgid") != pid):
                return False
            return all(e.get(k) in v if isinstance(v, (tuple, set, frozenset)) else e.get(k) == v
                       for k, v in fields.items())
        what = f"{hook} event {json.dumps(fields)}" + (f" from pid {pid}" if pid is not None else "")
        return self.expect_event(ok, timeout=timeout, what=what)

    def no_event(self, predicate, wait=1.0):
        """Asserts no unclaimed event matches within `wait` seconds."""
        try:
            ev = self.expect_event(predicate, timeout=wait)
        except AssertionError:
            return
        raise AssertionError(f"unexpected event: {json.dumps(ev)}")

    def close(self):
        _kill_proc(self.proc, grace=2)


# ---------------------------------------------------------------- registry --

def _proc_start(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill_cgroup_tree(cgdir, deadline=5.0):
    """Kills every process in cgdir and below, then removes the directories."""
    cgdir = Path(cgdir)
    if not cgdir.is_dir():
        return
    dirs = sorted((p for p in cgdir.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    dirs.append(cgdir)
    end = time.monotonic() + deadline
    for d in dirs:
        kill = d / "cgroup.kill"
        if kill.exists():
            try:
                kill.write_text("1")
            except OSError:
                pass
        for _ in range(200):
            try:
                pids = [int(x) for x in (d / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > end:
                break
            time.sleep(0.02)  # polling the kernel's view of the exit, bounded
        for _ in range(100):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > end:
                    sys.stderr.write(f"world: cannot remove {d}: {e}\n")
                    break
                time.sleep(0.02)


def _remove_pins(ino, base=BPFFS_DIR):
    d = Path(base) / str(ino)
    if not d.exists():
        return False
    for p in d.iterdir():
        try:
            p.unlink()
        except OSError:
            pass
    try:
        d.rmdir()
    except OSError:
        pass
    return True


def _remove_private_dirs(bpffs, run_dir):
    """A world's own pin base and run directory (World(private_pins=True))."""
    for base in (bpffs, run_dir):
        if not base or not Path(base).is_dir():
            continue
        for d in list(Path(base).iterdir())[:1000]:
            if d.is_dir():
                _remove_pins(d.name, base)
            else:
                d.unlink(missing_ok=True)
        try:
            Path(base).rmdir()
        except OSError as e:
            sys.stderr.write(f"world: cannot remove {base}: {e}\n")


def _netns_pids(ns):
    r = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()] if r.returncode == 0 else []


def _delete_netns(ns):
    if not Path(f"/run/netns/{ns}").exists():
        return
    for pid in _netns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    run(["ip", "netns", "del", ns], check=False)


def _teardown_recorded(rec):
    cg = rec.get("cgroup")
    env = dict(os.environ, **rec.get("env", {}))
    if cg and Path(cg).is_dir():
        run([EGRESSD, "detach", "--cgroup", cg], check=False, timeout=20, env=env) if os.access(EGRESSD, os.X_OK) else None
        try:
            ino = os.stat(cg).st_ino
        except OSError:
            ino = None
        _kill_cgroup_tree(cg)
        if ino is not None:
            Path(env.get("EGRESSD_RUN_DIR", "/run/egressd"), f"{ino}.detached").unlink(missing_ok=True)
        if ino is not None and _remove_pins(ino):
            sys.stderr.write(f"world: removed leftover pins {BPFFS_DIR}/{ino}\n")
    for ns in rec.get("netns", []):
        _delete_netns(ns)
    if rec.get("env"):
        _remove_private_dirs(rec["env"].get("EGRESSD_BPFFS_DIR"), rec["env"].get("EGRESSD_RUN_DIR"))
    td = rec.get("tmpdir")
    if td and Path(td).is_dir() and Path(td).name.startswith("egd-e2e-"):
        shutil.rmtree(td, ignore_errors=True)


def reap_stale():
    """Tears down worlds whose owning process is gone (a SIGKILLed run)."""
    if not REGISTRY.is_dir():
        return
    for f in list(REGISTRY.glob("*.json"))[:100]:
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if _proc_start(rec.get("pid", 0)) == rec.get("start"):
            continue  # owner still alive
        sys.stderr.write(f"world: reaping stale world {f.stem}\n")
        try:
            _teardown_recorded(rec)
        finally:
            f.unlink(missing_ok=True)


_LIVE = set()


def _close_all():
    for w in list(_LIVE):
        w.close()


atexit.register(_close_all)


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        pass


# ---------------------------------------------------------------- preflight --

def _bpf_can_load():
    """Loads `r0 = 1; exit` as a cgroup/connect4 program: the capability the
    whole suite needs. Returns None or the reason it cannot."""
    import ctypes
    import platform
    nr = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}.get(platform.machine())
    if nr is None:
        return f"unknown bpf syscall number on {platform.machine()}"
    libc = ctypes.CDLL(None, use_errno=True)
    insns = (ctypes.c_uint8 * 16)(0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = (ctypes.c_uint8 * 128)()
    def put(off, fmt, val):
        import struct
        struct.pack_into(fmt, attr, off, val)
    put(0, "I", 18)                                  # BPF_PROG_TYPE_CGROUP_SOCK_ADDR
    put(4, "I", 2)                                   # insn_cnt
    put(8, "Q", ctypes.addressof(insns))
    put(16, "Q", ctypes.addressof(lic))
    put(68, "I", 10)                                 # BPF_CGROUP_INET4_CONNECT
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_long(5), ctypes.byref(attr), ctypes.c_uint(128))
    if fd < 0:
        e = ctypes.get_errno()
        return f"BPF_PROG_LOAD(cgroup/connect4) failed: {errno.errorcode.get(e, e)} ({os.strerror(e)})"
    os.close(fd)
    return None


def preflight(need_egressd=True):
    """None when the e2e tier can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nsenter", "setpriv", "unshare", "mount", "openssl", "curl", "dnsmasq"):
        if not shutil.which(tool):
            return f"missing tool: {tool}"
    if not cgroup2_root():
        return "no cgroup2 mount"
    if not os.path.ismount("/sys/fs/bpf"):
        r = run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
        if r.returncode != 0:
            return f"no bpffs at /sys/fs/bpf and cannot mount it: {r.stderr.strip()}"
    why = _bpf_can_load()
    if why:
        return why
    if need_egressd and not os.access(EGRESSD, os.X_OK):
        return f"egressd binary not found at {EGRESSD} (set EGRESSD_BIN)"
    return None


# ------------------------------------------------------------------- world --

# Tools World(origins=True) needs on top of preflight()'s.
ORIGIN_TOOLS = ("nginx", "fcgiwrap", "git")

_SUPPORTS = {}


def egressd_supports(option):
    """Whether the egressd binary knows a command-line option (its name is a
    string in the binary). Lets the world pass --dns-upstream only to a
    binary that has it."""
    if option not in _SUPPORTS:
        try:
            _SUPPORTS[option] = option.lstrip("-").encode() in Path(EGRESSD).read_bytes()
        except OSError:
            _SUPPORTS[option] = False
    return _SUPPORTS[option]


class World:
    """origins=True: nginx origins (origins.py) on the ORIGIN hosts' ports 80,
    443 and 8443 instead of openssl s_server and the python HTTP server.
    private_pins=True: egressd keeps this world's pins and run files in
    directories of its own (EGRESSD_BPFFS_DIR, EGRESSD_RUN_DIR), so states
    a test makes on purpose (an UNFENCED cgroup) never show in the `status`
    of tests running beside it."""

    def __init__(self, tls=True, origins=False, private_pins=False):
        self.tls = tls
        self.origins = origins
        self.dns = DNS4
        self.files = {}       # origins: url path -> sha256 hex
        self.git_head = None  # origins: the commit repo.git serves
        self.id = "e" + secrets.token_hex(3)
        self.agent_ns = f"{self.id}-agent"
        self.world_ns = f"{self.id}-world"
        self.veth_agent = f"{self.id}-a"
        self.veth_world = f"{self.id}-w"
        self.python = python_for_probes()
        self.tmp = None
        self.cgroup = None
        self.ca = None
        self._procs = []      # servers, probes: killed at close
        self._daemons = []
        self._tails = []
        self._attached = False
        self._closed = False
        self._n = 0
        self.env = {}  # extra environment of every egressd command
        if private_pins:
            self.env = {"EGRESSD_BPFFS_DIR": f"{Path(BPFFS_DIR).parent}/egd-e2e-{self.id}",
                        "EGRESSD_RUN_DIR": f"/run/egd-e2e-{self.id}"}
        self.bpffs_dir = self.env.get("EGRESSD_BPFFS_DIR", BPFFS_DIR)
        self.run_dir = self.env.get("EGRESSD_RUN_DIR", os.environ.get("EGRESSD_RUN_DIR", "/run/egressd"))

    # -- lifecycle ----------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        reap_stale()
        _LIVE.add(self)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"egd-e2e-{self.id}-"))
        os.chmod(self.tmp, 0o755)  # probes may run as nobody
        shutil.copy(HERE / "probe.py", self.tmp / "probe.py")
        os.chmod(self.tmp / "probe.py", 0o644)
        shutil.copy(HERE / "clients.py", self.tmp / "clients.py")
        os.chmod(self.tmp / "clients.py", 0o644)
        (self.tmp / "resolv.conf").write_text(f"nameserver {self.dns}\noptions timeout:2 attempts:2\n")
        (self.tmp / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
        for f in ("resolv.conf", "hosts"):
            os.chmod(self.tmp / f, 0o644)
        root = cgroup2_root()
        if not root:
            raise RuntimeError("no cgroup2 mount")
        self.cgroup = os.path.join(root, f"egd-e2e-{self.id}")
        self._register()
        self._make_network()
        os.mkdir(self.cgroup)
        self._start_servers()

    def _register(self):
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        rec = {"pid": os.getpid(), "start": _proc_start(os.getpid()), "cgroup": self.cgroup,
               "netns": [self.agent_ns, self.world_ns], "tmpdir": str(self.tmp), "env": self.env}
        (REGISTRY / f"{self.id}.json").write_text(json.dumps(rec))

    def close(self):
        if self._closed:
            return
        self._closed = True
        errors = []

        def step(fn, *a):
            try:
                fn(*a)
            except Exception as e:  # keep tearing down
                errors.append(f"{getattr(fn, '__name__', fn)}: {e}")

        for t in self._tails:
            step(t.close)
        if self.cgroup and Path(self.cgroup).is_dir():
            ino = os.stat(self.cgroup).st_ino
            if self._attached:
                step(lambda: self.egressd("detach", "--cgroup", self.cgroup, timeout=20))
            for d in self._daemons:
                step(_kill_proc, d.proc)
            for p in self._procs:
                step(_kill_proc, p, 1)
            step(_kill_cgroup_tree, self.cgroup)
            # detach's record of a cgroup it left with processes (gone now)
            Path(self.run_dir, f"{ino}.detached").unlink(missing_ok=True)
            if _remove_pins(ino, self.bpffs_dir):
                sys.stderr.write(f"world: egressd left pins in {self.bpffs_dir}/{ino} after detach; removed\n")
        for d in self._daemons:
            step(_kill_proc, d.proc)
        for p in self._procs:
            step(_kill_proc, p, 1)
        for ns in (self.agent_ns, self.world_ns):
            step(_delete_netns, ns)
        if self.env:
            step(_remove_private_dirs, self.bpffs_dir, self.run_dir)
        if self.tmp and self.tmp.is_dir() and not os.environ.get("E2E_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        (REGISTRY / f"{self.id}.json").unlink(missing_ok=True)
        _LIVE.discard(self)
        if errors:
            sys.stderr.write("world: teardown problems:\n  " + "\n  ".join(errors) + "\n")

    # -- network ------------------------------------------------------------

    def _ip(self, ns, *args):
        return run(["ip", "-n", ns, *args])

    def _sysctl(self, ns, *settings):
        # `ip netns exec` is fine here: sysctls under net. are per netns.
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings])

    def _make_network(self):
        a, w = self.agent_ns, self.world_ns
        for ns in (a, w):
            run(["ip", "netns", "add", ns])
            # No DAD anywhere, so v6 addresses (link-local too) work at once.
            self._sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                         "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0")
            self._ip(ns, "link", "set", "lo", "up")
        # Ping sockets allowed for everyone in the agent netns: if a ping
        # socket is refused there, it is egressd's sock_create hook.
        self._sysctl(a, "net.ipv4.ping_group_range=0 2147483647")
        # The veth is created directly between the two namespaces.
        run(["ip", "link", "add", self.veth_agent, "netns", a, "type", "veth",
             "peer", "name", self.veth_world, "netns", w])
        self._ip(a, "addr", "add", f"{LINK4_AGENT}/24", "dev", self.veth_agent)
        self._ip(a, "addr", "add", f"{LINK6_AGENT}/64", "dev", self.veth_agent, "nodad")
        self._ip(w, "addr", "add", f"{LINK4_WORLD}/24", "dev", self.veth_world)
        self._ip(w, "addr", "add", f"{LINK6_WORLD}/64", "dev", self.veth_world, "nodad")
        self._ip(w, "addr", "add", f"{LINK_LOCAL6}/64", "dev", self.veth_world, "nodad")
        self._ip(a, "link", "set", self.veth_agent, "up")
        self._ip(w, "link", "set", self.veth_world, "up")
        self._ip(a, "route", "add", "default", "via", LINK4_WORLD, "dev", self.veth_agent)
        self._ip(a, "-6", "route", "add", "default", "via", LINK6_WORLD, "dev", self.veth_agent)
        # The hosts live on the world end of the veth (the dummy module is not
        # always loadable); the agent reaches them through its default routes.
        for h in PUBLIC4 + PRIVATE4:
            self._ip(w, "addr", "add", f"{h}/32", "dev", self.veth_world)
        for h in PUBLIC6 + PRIVATE6:
            self._ip(w, "addr", "add", f"{h}/128", "dev", self.veth_world, "nodad")
        self._ip(w, "addr", "add", f"{self.dns}/32", "dev", self.veth_world)
        # Dead addresses of the fallback names (origins.py): a host without
        # servers, and one the agent has no route to.
        self._ip(w, "addr", "add", f"{DEAD_CLOSED}/32", "dev", self.veth_world)
        self._ip(a, "route", "add", "unreachable", f"{DEAD_UNREACH}/32")

    # -- servers ------------------------------------------------------------

    def _spawn_ready(self, cmd, name, deadline=10.0):
        """Starts cmd, waits for a line "ready" on its stdout."""
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.tmp)
        self._procs.append(p)
        out = _LineReader(p.stdout, name)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            line = out.get(min(0.2, end - time.monotonic()))
            if line is None:
                break
            if line and line.strip() == "ready":
                return p
        _kill_proc(p, 1)
        raise RuntimeError(f"{name} not ready within {deadline}s (rc={p.poll()}): "
                           + "".join(out.lines) + (p.stderr.read() if p.poll() is not None else ""))

    def _start_servers(self):
        tcp, http, udp = [], [], []
        for h in PUBLIC4 + PUBLIC6 + PRIVATE4 + PRIVATE6 + [f"{LINK_LOCAL6}%{self.veth_world}"]:
            for port in TCP_PORTS:
                if port == 443 and h in TLS_HOSTS and self.tls:
                    continue
                if port in (80, 443) and h in ORIGIN_HOSTS and self.origins:
                    continue  # nginx
                (http if port == 80 else tcp).append(endpoint(h, port))
            for port in UDP_PORTS:
                udp.append(endpoint(h, port))
        srv = [self.python, str(HERE / "servers.py"), "serve"]
        args = ([x for ep in tcp for x in ("--tcp", ep)] + [x for ep in http for x in ("--http", ep)]
                + [x for ep in udp for x in ("--udp", ep)])
        self._spawn_ready(["ip", "netns", "exec", self.world_ns, *srv, *args], "world-servers")
        lo = [x for ep in AGENT_LOOPBACK_TCP for x in ("--tcp", ep)] + ["--udp", "127.0.0.1:5353"]
        self._spawn_ready(["ip", "netns", "exec", self.agent_ns, *srv, *lo], "agent-loopback-servers")
        self._start_dns()
        if self.tls or self.origins:
            self._make_ca()
        if self.origins:
            self._start_origins()
        elif self.tls:
            for h in TLS_HOSTS:
                p = subprocess.Popen(
                    ["ip", "netns", "exec", self.world_ns, "openssl", "s_server", "-accept", endpoint(h, 443),
                     "-www", "-cert", str(self.tmp / "leaf.pem"), "-key", str(self.tmp / "leaf.key"),
                     "-CAfile", str(self.tmp / "ca.pem")],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=open(self.tmp / f"s_server-{h}.log", "w"), cwd=self.tmp)
                self._procs.append(p)
            r = run(["ip", "netns", "exec", self.world_ns, self.python, str(HERE / "servers.py"), "wait",
                     "--deadline", "10", *[endpoint(h, 443) for h in TLS_HOSTS]], check=False, timeout=30)
            if r.returncode != 0:
                logs = "".join((self.tmp / f"s_server-{h}.log").read_text() for h in TLS_HOSTS)
                raise RuntimeError(f"openssl s_server not ready: {r.stderr}\n{logs}")

    def _world_wait(self, what, *args, logs=()):
        r = run(["ip", "netns", "exec", self.world_ns, self.python, str(HERE / "servers.py"), *args],
                check=False, timeout=30)
        if r.returncode != 0:
            text = "".join(f"--- {p}\n{Path(p).read_text(errors='replace')}" for p in logs if Path(p).exists())
            raise RuntimeError(f"{what} not ready: {r.stderr}\n{text}")

    def _spawn_world(self, cmd, log_name):
        p = subprocess.Popen(["ip", "netns", "exec", self.world_ns, *cmd], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=open(self.tmp / log_name, "w"), cwd=self.tmp)
        self._procs.append(p)
        return p

    def _start_dns(self):
        self._spawn_world(dnsmasq_cmd(self.tmp), "dnsmasq.stderr")
        self._world_wait("dnsmasq", "wait-dns", "--deadline", "10", self.dns, "allowed.test",
                         logs=[self.tmp / "dnsmasq.stderr", self.tmp / "dnsmasq.log"])

    def _start_origins(self):
        self.files = write_content(self.tmp)
        self.git_head = make_git_repo(self.tmp)
        self._spawn_world(fcgiwrap_cmd(self.tmp), "fcgiwrap.stderr")
        self._spawn_world(nginx_conf(self.tmp), "nginx.stderr")
        self._world_wait("nginx/fcgiwrap", "wait", "--deadline", "10", *origin_endpoints(),
                         f"unix:{self.tmp / 'fcgiwrap.sock'}",
                         logs=[self.tmp / "nginx.stderr", self.tmp / "nginx" / "error.log",
                               self.tmp / "fcgiwrap.stderr"])

    def start_moving_dns(self, hosts, ttl, listen=MOVING_DNS):
        """A second DNS server on `listen` (world netns) that answers the
        names of `hosts` ({name: IPv4}) with TTL `ttl` and forwards the rest
        to the world's; move_dns() changes its answers. Returns `listen`,
        for egressd_attach(dns_upstream=...)."""
        self._moving_hosts = self.tmp / "moving.hosts"
        self._moving_hosts.write_text("".join(f"{a} {n}\n" for n, a in hosts.items()))
        self._moving_listen = listen
        self._ip(self.world_ns, "addr", "add", f"{listen}/32", "dev", self.veth_world)
        self._moving_dns = self._spawn_world(moving_dnsmasq_cmd(self.tmp, listen, self._moving_hosts, ttl),
                                             "dnsmasq-moving.stderr")
        for name, addr in hosts.items():
            self._wait_answer(listen, name, addr)
        return listen

    def move_dns(self, hosts):
        """New answers for the moving DNS server's names ({name: IPv4}):
        rewrites its hosts file, SIGHUPs it, and returns once it answers them."""
        self._moving_hosts.write_text("".join(f"{a} {n}\n" for n, a in hosts.items()))
        self._moving_dns.send_signal(signal.SIGHUP)
        for name, addr in hosts.items():
            self._wait_answer(self._moving_listen, name, addr)

    def _wait_answer(self, server, name, addr, deadline=10.0):
        """Waits (bounded) until `server` answers `name` with exactly `addr`
        (asked from the world netns, so egressd sees nothing of it)."""
        end = time.monotonic() + deadline
        got = ""
        while time.monotonic() < end:
            r = run(["ip", "netns", "exec", self.world_ns, "dig", "+short", "+time=1", "+tries=1", f"@{server}",
                     name, "A"], check=False, timeout=10)
            got = r.stdout.strip()
            if got == addr:
                return
            time.sleep(0.1)  # polling dnsmasq's answer, bounded by the deadline
        raise RuntimeError(f"DNS server {server} did not answer {name} with {addr} within {deadline}s "
                           f"(last answer: {got!r})")

    def dns_log(self):
        """dnsmasq's query log (every query, with the client address)."""
        try:
            return (self.tmp / "dnsmasq.log").read_text(errors="replace")
        except OSError:
            return ""

    def origin_log(self):
        """nginx's access log: one line per request the origins answered."""
        try:
            return (self.tmp / "nginx" / "access.log").read_text(errors="replace")
        except OSError:
            return ""

    def _make_ca(self):
        t = self.tmp
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(t / "ca.key"), "-out", str(t / "ca.pem"), "-days", "2", "-subj", "/CN=egressd e2e CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(t / "leaf.key"), "-out", str(t / "leaf.csr"), "-subj", f"/CN={TLS_NAME}"])
        names = [TLS_NAME] + [n for n in CERT_NAMES if n != TLS_NAME]
        san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{h}" for h in TLS_HOSTS])
        (t / "leaf.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", str(t / "leaf.csr"), "-CA", str(t / "ca.pem"), "-CAkey",
             str(t / "ca.key"), "-CAcreateserial", "-out", str(t / "leaf.pem"), "-days", "2",
             "-extfile", str(t / "leaf.ext")])
        for f in ("ca.pem", "leaf.pem"):
            os.chmod(t / f, 0o644)
        self.ca = str(t / "ca.pem")

    # -- processes in the agent netns / cgroup -------------------------------

    def cgroup_path(self, sub=""):
        p = os.path.join(self.cgroup, sub) if sub else self.cgroup
        os.makedirs(p, exist_ok=True)
        return p

    def agent(self, cmd, cgroup="", user=None, dns=True, **kw):
        """Popen of cmd in the agent netns. cgroup: None (stay where the test
        runner is), "" (the world's cgroup) or a sub-path of it ("child").
        The process joins the cgroup before exec, so every socket it creates
        is judged by the fence. user: None (root) or "nobody" (no
        capabilities: setpriv drops them with the uid). dns: resolve through
        the world's DNS server (/etc/resolv.conf and /etc/hosts bind-mounted
        in a private mount namespace). Every wrapper execs: the Popen's pid
        is cmd's pid."""
        full = []
        if cgroup is not None:
            # The wrapper shell moves itself (echo is a builtin) into the
            # cgroup, then execs: same effect as a preexec_fn writing
            # cgroup.procs, without running Python code between fork and exec
            # in a process that has reader threads.
            procs = os.path.join(self.cgroup_path(cgroup), "cgroup.procs")
            full += ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', procs]
        if dns:
            full += ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                     'mount --bind "$0" /etc/resolv.conf && mount --bind "$1" /etc/hosts && shift && exec "$@"',
                     str(self.tmp / "resolv.conf"), str(self.tmp / "hosts")]
        full += ["nsenter", f"--net=/run/netns/{self.agent_ns}", "--"]
        if user == "nobody":
            full += ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        elif user is not None:
            raise ValueError(user)
        full += list(cmd)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        kw.setdefault("cwd", self.tmp)
        p = subprocess.Popen(full, **kw)
        self._procs.append(p)
        return p

    def agent_run(self, cmd, cgroup="", user=None, timeout=30, input=None, dns=True, text=True):
        """Runs cmd like agent() and waits; the result has .pid (cmd's pid,
        which events carry as tgid)."""
        p = self.agent(cmd, cgroup=cgroup, user=user, dns=dns, text=text,
                       stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_proc(p, 1)
            out, err = p.communicate()
            raise AssertionError(f"{cmd} timed out after {timeout}s: {out}{err}")
        r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        r.pid = p.pid
        return r

    def probe(self, *args, cgroup="", user=None, timeout=20):
        """Runs probe.py in the agent netns (and cgroup); returns its JSON."""
        r = self.agent_run([self.python, str(self.tmp / "probe.py"), *map(str, args)], cgroup=cgroup,
                           user=user, timeout=timeout)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode != 0 or not lines:
            raise AssertionError(f"probe {args} failed to run (rc={r.returncode}): {r.stdout}{r.stderr}")
        return json.loads(lines[-1])

    def curl(self, *args, cgroup="", user=None, timeout=30):
        return self.agent_run(["curl", "--silent", "--show-error", "--max-time", "5", *args],
                              cgroup=cgroup, user=user, timeout=timeout)

    # -- egressd ------------------------------------------------------------

    def _egressd_cmd(self, *args):
        return ["nsenter", f"--net=/run/netns/{self.agent_ns}", "--", EGRESSD, *args]

    def egressd(self, *args, timeout=30, check=False):
        return run(self._egressd_cmd(*args), check=check, timeout=timeout, env=dict(os.environ, **self.env))

    def write_policy(self, text, name=None):
        self._n += 1
        path = self.tmp / (name or f"policy-{self._n}.toml")
        path.write_text(text)
        return str(path)

    def egressd_attach(self, policy_path=None, deadline=READY_DEADLINE, cgroup=None, dns_upstream=True, extra=()):
        """Starts `egressd attach` and returns once it sent READY=1.
        cgroup: how to name the cgroup on the command line (default: the
        world's cgroup, absolute). dns_upstream: True passes the world's DNS
        server as --dns-upstream (when the binary has that option), a string
        passes that, None passes nothing. extra: more arguments
        (["--proxy-timeout-ms", "1500"])."""
        self._n += 1
        sock_path = str(self.tmp / f"notify-{self._n}")
        log_path = str(self.tmp / f"egressd-{self._n}.log")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, **self.env)
        args = ["attach", "--cgroup", cgroup or self.cgroup] + (["--policy", policy_path] if policy_path else [])
        upstream = self.dns if dns_upstream is True else dns_upstream
        if upstream and egressd_supports("--dns-upstream"):
            args += ["--dns-upstream", upstream]
        args += list(extra)
        with open(log_path, "w") as err, open(log_path + ".out", "w") as out:
            p = subprocess.Popen(self._egressd_cmd(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=env, cwd=self.tmp)
        d = Daemon(p, log_path, self.cgroup)
        self._daemons.append(d)
        self._attached = True
        end = time.monotonic() + deadline
        got = []
        try:
            ns.settimeout(0.2)
            while time.monotonic() < end:
                try:
                    msg = ns.recv(4096).decode(errors="replace")
                    got.append(msg)
                    if "READY=1" in msg.split("\n"):
                        return d
                except socket.timeout:
                    pass
                if p.poll() is not None:
                    raise AssertionError(f"egressd attach exited ({p.returncode}) before READY=1:\n{d.log()}")
            raise AssertionError(f"egressd attach sent no READY=1 within {deadline}s "
                                 f"(notifications: {got}):\n{d.log()}")
        finally:
            ns.close()

    def tail(self, json=True, deadline=10.0):  # noqa: A002 (the CLI flag's name)
        args = ["tail", "--cgroup", self.cgroup] + (["--json"] if json else [])
        p = subprocess.Popen(self._egressd_cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=self.tmp, env=dict(os.environ, **self.env))
        t = Tail(p)
        self._tails.append(t)
        t.wait_following(deadline)
        return t

    def detach(self):
        return self.egressd("detach", "--cgroup", self.cgroup)

    def reload(self, policy_path=None):
        return self.egressd("reload", "--cgroup", self.cgroup, *(["--policy", policy_path] if policy_path else []))

    def status_json(self):
        """`status --json`; exit 3 (a cgroup is UNFENCED) still has the JSON."""
        r = self.egressd("status", "--json")
        if r.returncode not in (0, 3):
            raise RuntimeError(f"egressd status --json -> {r.returncode}\n{r.stdout}{r.stderr}")
        return json.loads(r.stdout)

    def cgroup_id(self, sub=""):
        return os.stat(self.cgroup_path(sub)).st_ino

    def listening_ports(self, pid):
        """[(addr, port)] of the TCP listeners process pid has in the agent
        netns (`ss -ltnp`): how tests find egressd's proxy listener."""
        r = run(["nsenter", f"--net=/run/netns/{self.agent_ns}", "--", "ss", "-Hltnp"], check=False)
        out = []
        for line in r.stdout.splitlines():
            if f"pid={pid}," not in line:
                continue
            local = line.split()[3]  # State Recv-Q Send-Q Local Peer Process
            addr, _, port = local.rpartition(":")
            out.append((addr.strip("[]").split("%")[0], int(port)))
        return out
