#!/usr/bin/env python3
"""systemd's notification protocol as a fake systemd sees it (an AF_UNIX
datagram socket named by $NOTIFY_SOCKET, a path or an abstract name, each
message with its sender's pid from SCM_CREDENTIALS), and the synchronous
`-s reload` and `-s upgrade` that ExecReload= and the init script use."""
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlsoffd_test  # noqa: E402
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "notify")
extra_pids = []


class FakeSystemd:
    """Receives the notifications: (sender pid, {KEY: value}, when) each."""
    _n = 0

    def __init__(self, abstract):
        FakeSystemd._n += 1
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = f"tlsoffd-test-{os.getpid()}-{FakeSystemd._n}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(tmpdir(), f"notify{FakeSystemd._n}.sock")
            self.sock.bind(self.address)
        self.msgs = []

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        creds = struct.calcsize("3i")
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
        except OSError:
            return None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:creds])[0]
        fields = dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)
        self.msgs.append((pid, fields, time.monotonic()))
        return self.msgs[-1]

    def wait(self, pred, timeout=10):
        """The first message not yet returned that satisfies pred(pid, fields)."""
        end = time.monotonic() + timeout * SLOW
        while True:
            for i, m in enumerate(self.msgs):
                if pred(m[0], m[1]):
                    del self.msgs[:i + 1]
                    return m
            left = end - time.monotonic()
            if left <= 0 or self._recv(left) is None:
                return None

    def close(self):
        self.sock.close()


def conf(port):
    return (f'workers = {{ count = 2; }};\n'
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def start(sd, name):
    d = Daemon(conf(free_port()), workers=2, name=name, pidfile="tlsoffd.pid", start=False)
    d.env["NOTIFY_SOCKET"] = sd.address
    d.start()
    return d


def ctl(d, what):
    return run([TLSOFFD, "-c", d.conf_path, "-s", what], cwd=d.dir, timeout=90)


def serves(d):
    r = curl(d.port, "/")
    return r.returncode == 0 and r.stdout == b"hello from notify\n"


def has(key, value=None):
    return lambda pid, f: key in f and (value is None or f[key] == value)


def report_fds(pid):
    fd_dir = f"/proc/{pid}/fd"
    return [os.path.join(fd_dir, n) for n in os.listdir(fd_dir)
            if "memfd:tlsoffd-report" in os.readlink(os.path.join(fd_dir, n))]


def worker_can_forge(d):
    """How a worker of d could write the master's report page, or False:
    it must neither have it mapped nor hold its descriptor, and even the
    master's descriptor must not map writable (sealed)."""
    w = d.worker_pids()[0]
    if "tlsoffd-report" in open(f"/proc/{w}/maps").read():
        return "mapped in the worker"
    if report_fds(w):
        return "the worker holds its descriptor"
    for path in report_fds(d.pid):
        fd = os.open(path, os.O_RDWR)
        try:
            mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            return "the master's descriptor maps writable"
        except OSError:
            return False
        finally:
            os.close(fd)
    return "the master has no report page"


@case
def start_reload_stop():
    sd = FakeSystemd(abstract=False)
    d = start(sd, "path")
    m = sd.wait(has("READY", "1"))
    ok(m and m[0] == d.pid and m[1].get("MAINPID") == str(d.pid) and
       m[1].get("STATUS", "").startswith("serving"),
       "start: READY=1, MAINPID and STATUS=serving, from the master", m)
    before = time.monotonic()
    r = ctl(d, "reload")
    ok(r.returncode == 0 and r.stderr == b"", "-s reload: exit 0 once reloaded", r.stderr)
    m = sd.wait(has("RELOADING", "1"))
    usec = int(m[1].get("MONOTONIC_USEC", 0)) if m else 0
    ok(m and m[0] == d.pid and abs(usec / 1e6 - before) < 5,
       "HUP: RELOADING=1 with MONOTONIC_USEC of now (CLOCK_MONOTONIC)", (m, before))
    m = sd.wait(has("READY", "1"))
    ok(m and m[0] == d.pid and "reloaded" in m[1].get("STATUS", ""),
       "then READY=1, STATUS says reloaded", m)
    ok(d.wait_log(r"SIGHUP: configuration reloaded"), "the reload was done before -s returned")
    forged = worker_can_forge(d)
    ok(forged is False, "a worker has the report page neither mapped nor open, and its "
       "memfd maps writable nowhere (MADV_DONTFORK, closed in children, F_SEAL_FUTURE_WRITE)",
       forged)
    d.send_signal(signal.SIGQUIT)
    m = sd.wait(has("STOPPING", "1"))
    ok(m and m[0] == d.pid, "QUIT: STOPPING=1 from the master", m)
    ok(d.wait(10 * SLOW) == 0, "and it stops")
    d.stop()
    sd.close()


@case
def broken_reload():
    sd = FakeSystemd(abstract=True)
    d = start(sd, "abstract")
    m = sd.wait(has("READY", "1"))
    ok(m and m[0] == d.pid and m[1].get("MAINPID") == str(d.pid),
       "an abstract $NOTIFY_SOCKET (@name) hears READY=1 too", m)
    good = open(d.conf_path).read()
    at = next(i for i, l in enumerate(good.split("\n")) if "certificates" in l) + 1
    with open(d.conf_path, "w") as f:
        f.write(good.replace(CERT, "/nonexistent/cert.pem"))
    r = ctl(d, "reload")
    err = r.stderr.decode()
    ok(r.returncode == 1 and f"tlsoffd.conf:{at}:" in err and "/nonexistent/cert.pem" in err,
       "-s reload with a missing certificate: exit 1, the master's FILE:LINE error on stderr",
       err)
    m = sd.wait(has("RELOADING", "1"))
    ok(m and m[0] == d.pid, "RELOADING=1 first", m)
    m = sd.wait(has("READY", "1"))
    status = m[1].get("STATUS", "") if m else ""
    ok(m and status.startswith("reload failed:") and f"tlsoffd.conf:{at}:" in status,
       "then READY=1 with STATUS=reload failed: the error", m)
    ok(serves(d) and d.proc.poll() is None, "the previous configuration serves on")
    d.send_signal(signal.SIGHUP)
    ok(sd.wait(has("RELOADING", "1")) and sd.wait(has("READY", "1")),
       "a plain HUP says the same to systemd")
    with open(d.conf_path, "w") as f:
        f.write(good.replace("workers = {", "workers = { bogus = 1;"))
    r = ctl(d, "reload")
    ok(r.returncode == 1 and b"tlsoffd.conf:" in r.stderr and b"bogus" in r.stderr,
       "-s reload of a file that does not parse: exit 1 with the error", r.stderr)
    ok(not sd.wait(has("RELOADING", "1"), timeout=0.5), "and nothing sent: the client "
       "cannot even find the pidfile in it")
    with open(d.conf_path, "w") as f:
        f.write(good)
    r = ctl(d, "reload")
    ok(r.returncode == 0, "-s reload after the fix: exit 0", r.stderr)
    d.stop()
    sd.close()


def pid_in(d):
    try:
        return int(open(d.pidfile).read())
    except (OSError, ValueError):
        return None


@case
def upgrade():
    sd = FakeSystemd(abstract=False)
    d = start(sd, "upgrade")
    old = d.pid
    sd.wait(has("READY", "1"))
    r = ctl(d, "upgrade")
    out = r.stdout.decode().strip()
    new = int(out) if out.isdigit() else None
    if new:
        extra_pids.append(new)
    ok(r.returncode == 0 and new and new != old, "-s upgrade: exit 0, prints the new pid",
       (r.returncode, out, r.stderr))
    ok(pid_in(d) == new, "which the pidfile names", (pid_in(d), new))
    m = sd.wait(has("MAINPID"))
    ok(m and m[0] == new and m[1]["MAINPID"] == str(new) and m[1].get("READY") == "1",
       "the new master sends MAINPID=<its pid> with READY=1", m)
    os.kill(old, signal.SIGTERM)        # as systemctl stop would, during its drain
    ok(d.wait(10 * SLOW) == 0, "the old master (draining, then TERM) exits")
    ok(serves(d), "the new master serves")
    from_old = [m for m in sd.msgs if m[0] == old]
    sd.wait(lambda pid, f: False, timeout=0.3)
    from_old += [m for m in sd.msgs if m[0] == old]
    ok(not from_old, "after the hand-over the old master says nothing, even on TERM (no STOPPING=1)",
       from_old)
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], cwd=d.dir)
    ok(f"master={new}".encode() in r.stdout, "-s finds the new master")
    os.kill(new, signal.SIGTERM)
    m = sd.wait(has("STOPPING", "1"))
    ok(m and m[0] == new, "TERM to the new master: STOPPING=1 from it", m)
    ok(poll_until(lambda: not pid_alive(new), 5 * SLOW), "it stops")
    d.stop()
    sd.close()


@case
def upgrade_fails():
    # A master started from a copy of the binary, which is then replaced
    # by one that cannot start.
    sd = FakeSystemd(abstract=False)
    binary = os.path.join(tmpdir(), "tlsoffd-copy")
    shutil.copy(TLSOFFD, binary)
    saved = tlsoffd_test.TLSOFFD
    tlsoffd_test.TLSOFFD = binary
    try:
        d = start(sd, "badup")
    finally:
        tlsoffd_test.TLSOFFD = saved
    os.remove(binary)
    with open(binary, "w") as f:
        f.write("#!/bin/sh\necho 'this binary cannot start' >&2\nexit 1\n")
    os.chmod(binary, 0o755)
    sd.wait(has("READY", "1"))
    r = ctl(d, "upgrade")
    err = r.stderr.decode()
    ok(r.returncode == 1 and "upgrade failed" in err and "exited with status 1" in err,
       "-s upgrade with a binary that cannot start: exit 1, says why", err)
    m = sd.wait(lambda pid, f: "upgrade failed" in f.get("STATUS", ""))
    ok(m and m[0] == d.pid and "MAINPID" not in m[1],
       "STATUS=... upgrade failed from the old master, still the main one", m)
    ok(serves(d) and pid_in(d) == d.pid, "which serves on, named by the pidfile")
    d.stop()
    sd.close()


@case
def master_without_report():
    # A master of a tlsoffd from before the report page, as during a
    # package upgrade: a process that names itself in the pidfile.
    d = Daemon(conf(free_port()), workers=2, name="old", pidfile="fake.pid", start=False)
    got = os.path.join(d.dir, "got-hup")
    fake = subprocess.Popen([sys.executable, "-c",
                             "import signal, time\n"
                             f"signal.signal(signal.SIGHUP, lambda *a: open({got!r}, 'w'))\n"
                             "time.sleep(30)\n"])
    try:
        with open(d.pidfile, "w") as f:
            f.write(f"{fake.pid}\n")
        time.sleep(0.3)                 # the handler is set
        r = ctl(d, "reload")
        ok(r.returncode == 0 and b"cannot report the outcome" in r.stderr and
           poll_until(lambda: os.path.exists(got), 5),
           "-s reload to a master without a report page: HUP sent all the same, said so",
           r.stderr)
    finally:
        fake.kill()
        fake.wait()


for p in extra_pids:
    if pid_alive(p):
        os.kill(p, signal.SIGKILL)
be.stop()
done()
