#!/usr/bin/env python3
"""The command test_run.py starts under `egressd run`.

Every mode first prints one JSON line describing the process as it was
started ("info": ids, groups, environment, capabilities, cgroup, process
group and terminal), then:

  info                  exits 0
  exit N                exits N
  kill-self SIG         kills itself with SIG (a name: KILL, TERM, ...)
  traps                 prints "ready", then "got SIGNAME" for every signal
                        egressd run relays; exits 64+N on TERM, INT, HUP, QUIT
  wait-stdin            prints "ready", waits for one line on stdin, exits 0
  probe ADDR PORT       prints "ready", waits for a line on stdin, then
                        connects (TCP) and prints {"probe": ..., "errno": ...}
  background            forks a grandchild in a session of its own that prints
                        "bg PID" and waits for SIGUSR1 or SIGTERM (printing
                        "bg got SIGNAME"), then exits 5 itself at once
  tty                   prints "ready"; counts SIGINTs ("got SIGINT N"); on
                        stdin "ping" prints "pong", "done" prints "count N"
                        and exits 0

Every wait is bounded (60 s), after which it exits 99.
"""
import errno
import json
import os
import select
import signal
import socket
import sys

LIMIT = 60
RELAYED = ["HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "CONT", "WINCH"]


def out(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return ""


def caps():
    res = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                res[k] = int(v.strip(), 16)
    return res


def no_new_privs():
    with open("/proc/self/status") as f:
        return next(int(l.split(":")[1]) for l in f if l.startswith("NoNewPrivs:"))


def info():
    with open("/proc/self/cgroup") as f:
        rel = next(l.strip()[3:] for l in f if l.startswith("0::"))
    cg = cgroup2_root() + rel
    try:
        os.setuid(0)
        setuid0 = "ok" if os.getuid() == 0 else "no effect"
    except OSError as e:
        setuid0 = errno.errorcode.get(e.errno, str(e.errno))
    try:
        fg = os.tcgetpgrp(0)
    except OSError:
        fg = None
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "USER", "LOGNAME", "NOTIFY_SOCKET")
           or k.startswith("SUDO_")}
    return {"info": True, "pid": os.getpid(), "pgrp": os.getpgrp(), "sid": os.getsid(0), "fg": fg,
            "ppgrp": os.getpgid(os.getppid()), "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "egid": os.getegid(), "resuid": list(os.getresuid()), "resgid": list(os.getresgid()),
            "groups": sorted(os.getgroups()), "env": env, "setuid0": setuid0, "caps": caps(),
            "no_new_privs": no_new_privs(),
            "cgroup": cg, "ino": os.stat(cg).st_ino}


def read_line():
    r, _, _ = select.select([sys.stdin], [], [], LIMIT)
    if not r:
        sys.exit(99)
    return sys.stdin.readline()


def traps():
    def on(signo, frame):
        name = signal.Signals(signo).name
        out(f"got {name}")
        if name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"):
            sys.exit(64 + signo)
    for n in RELAYED:
        signal.signal(getattr(signal, "SIG" + n), on)
    out("ready")
    signal.alarm(LIMIT)  # unhandled SIGALRM: a bounded wait
    while True:
        signal.pause()


def probe(addr, port):
    out("ready")
    read_line()
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((addr, int(port)))
        out(json.dumps({"probe": "ok", "errno": None, "pid": os.getpid()}))
    except OSError as e:
        out(json.dumps({"probe": "fail", "errno": errno.errorcode.get(e.errno, str(e.errno)), "pid": os.getpid()}))
    finally:
        s.close()


def background():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        got = []
        signal.signal(signal.SIGUSR1, lambda s, f: got.append("SIGUSR1"))
        signal.signal(signal.SIGTERM, lambda s, f: got.append("SIGTERM"))
        out(f"bg {os.getpid()}")
        signal.alarm(LIMIT)
        while not got:
            signal.pause()
        out(f"bg got {got[0]}")
        os._exit(0)
    sys.exit(5)


def tty():
    count = [0]

    def on_int(signo, frame):
        count[0] += 1
        out(f"got SIGINT {count[0]}")
    signal.signal(signal.SIGINT, on_int)
    out("ready")
    for _ in range(100):
        line = read_line().strip()
        if line == "ping":
            out("pong")
        elif line == "done":
            out(f"count {count[0]}")
            sys.exit(0)
    sys.exit(99)


def main(argv):
    out(json.dumps(info()))
    mode = argv[0]
    if mode == "info":
        return 0
    if mode == "exit":
        return int(argv[1])
    if mode == "kill-self":
        os.kill(os.getpid(), getattr(signal, "SIG" + argv[1]))
        return 98
    if mode == "traps":
        traps()
    if mode == "wait-stdin":
        out("ready")
        read_line()
        return 0
    if mode == "probe":
        probe(argv[1], argv[2])
        return 0
    if mode == "background":
        background()
    if mode == "tty":
        tty()
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
