#!/usr/bin/env python3
"""USR2 binary upgrade: the master starts the binary again, hands over the
listening sockets and the shared segment, and drains once the new master
runs. Under a client loop no connection fails; the old master exits and
the new pid is in the pidfile; sessions from before resume after; a
64 MiB transfer in flight completes; a binary that cannot start leaves
the old master serving."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403
import tlsoffd_test  # noqa: E402

be = Backend("http", "upgrade")
extra_pids = []


def config(port):
    return (f'pidfile = "tlsoffd.pid";\nworkers = {{ count = 3; }};\n'
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def pid_in(d):
    try:
        return int(open(os.path.join(d.dir, "tlsoffd.pid")).read())
    except (OSError, ValueError):
        return None


def loop(port, stop, results):
    while not stop.is_set():
        r = curl(port, "/", timeout=10)
        results.append(r.returncode == 0 and r.stdout == b"hello from upgrade\n" or
                       (r.returncode, r.stderr[:120]))


def resume_loop(port, sess, stop, results, resumed):
    """Resumed handshakes: openssl s_client offering a saved session."""
    while not stop.is_set():
        r = s_client(port, ["-tls1_2", "-servername", "example.test", "-sess_in", sess,
                            "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n")
        out = r.stdout.decode(errors="replace")
        results.append("hello from upgrade" in out or ("s_client", out[-200:]))
        resumed.append("\nReused, TLSv1.2" in out)


@case
def upgrade_under_load():
    port = free_port()
    d = Daemon(config(port), workers=3, name="up")
    old = d.pid
    sess = os.path.join(d.dir, "sess")
    s_client(port, ["-tls1_2", "-servername", "example.test", "-sess_out", sess, "-ign_eof"],
             input=b"GET / HTTP/1.0\r\n\r\n")
    big = subprocess.Popen(["curl", "-sS", "--cacert", CA, "--limit-rate", "20M", "--max-time",
                            "60", "--resolve", f"example.test:{port}:127.0.0.1",
                            f"https://example.test:{port}/bytes/67108864"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop, results, resumed = threading.Event(), [], []
    threads = [threading.Thread(target=loop, args=(port, stop, results)) for _ in range(4)] + \
              [threading.Thread(target=resume_loop, args=(port, sess, stop, results, resumed))
               for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5 * SLOW)
    d.send_signal(signal.SIGUSR2)
    got = poll_until(lambda: pid_in(d) not in (None, old) and pid_in(d), 10 * SLOW)
    new = pid_in(d)
    if new and new != old:
        extra_pids.append(new)
    ok(got, "USR2: the new master's pid is in the pidfile", (old, new))
    time.sleep(1.0 * SLOW)
    stop.set()
    for t in threads:
        t.join()
    out, err = big.communicate(timeout=90)
    ok(big.returncode == 0 and out == pattern_bytes(64 << 20),
       "a 64 MiB download in flight across the upgrade completes intact",
       f"rc={big.returncode} len={len(out)} {err[:200]!r}")
    ok(d.wait(15 * SLOW) == 0, "the old master drains (the download was its last "
       "connection) and exits with status 0")
    bad = [r for r in results if r is not True]
    ok(len(results) > 20 and not bad, f"{len(results)} requests across the upgrade, none failed",
       bad[:5])
    ok(sum(resumed) > 3, f"{sum(resumed)} of them were resumed TLS 1.2 handshakes")
    ok(not os.path.exists(os.path.join(d.dir, "tlsoffd.pid.oldbin")),
       "the old master's tlsoffd.pid.oldbin is gone")
    ok(new and pid_alive(new), "the new master runs")
    r = curl(port, "/")
    ok(r.returncode == 0 and r.stdout == b"hello from upgrade\n", "and serves")
    r = s_client(port, ["-tls1_2", "-servername", "example.test", "-sess_in", sess, "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    ok(re.search(r"^Reused, TLSv1\.2", r.stdout.decode(errors="replace"), re.M) is not None,
       "a TLS 1.2 session from before the upgrade resumes after it")
    ok(d.wait_log(rf"tlsoffd\[{old}\] master notice: upgrade: the new master \(pid {new}\) runs"),
       "the old master logs the handover")
    if new:
        os.kill(new, signal.SIGTERM)
        ok(poll_until(lambda: not pid_alive(new), 5), "the new master stops on TERM")


@case
def broken_binary():
    port = free_port()
    binary = os.path.join(tmpdir(), "tlsoffd-copy")
    shutil.copy(TLSOFFD, binary)
    saved = tlsoffd_test.TLSOFFD
    tlsoffd_test.TLSOFFD = binary
    try:
        d = Daemon(config(port), workers=2, name="broken")
    finally:
        tlsoffd_test.TLSOFFD = saved
    os.remove(binary)
    with open(binary, "w") as f:
        f.write("#!/bin/sh\necho 'this binary cannot start' >&2\nexit 1\n")
    os.chmod(binary, 0o755)
    old = d.pid
    d.send_signal(signal.SIGUSR2)
    ok(d.wait_log(r"master error: upgrade failed: the new master \(pid \d+\) exited with "
                  r"status 1", 10), "a binary that cannot start: the upgrade fails, logged")
    ok(pid_in(d) == old and not os.path.exists(os.path.join(d.dir, "tlsoffd.pid.oldbin")),
       "the pidfile has the old master's pid again, under its own name")
    r = curl(port, "/")
    ok(r.returncode == 0 and r.stdout == b"hello from upgrade\n" and d.proc.poll() is None,
       "the old master keeps serving")
    d.stop()


for p in extra_pids:
    if pid_alive(p):
        os.kill(p, signal.SIGKILL)
be.stop()
done()
