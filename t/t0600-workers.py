#!/usr/bin/env python3
"""The master and its workers: respawn after kill -9, SIGHUP and SIGUSR1,
SIGQUIT graceful stop with a transfer in flight, SIGTERM fast stop, and
workers not outliving a killed master."""
import hashlib
import os
import signal
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

MiB = 1 << 20
be = Backend("http", "web")
echo = Backend("echo", "echo")


def curls(port, n, host="127.0.0.1"):
    """n requests; stops at the first failure (so a dead daemon costs one timeout).
    Returns the failures."""
    for i in range(n):
        r = curl(port, "/", host=host if i % 2 == 0 else "127.0.0.1", timeout=5)
        if r.returncode != 0 or r.stdout != b"hello from web\n":
            return [(i, r.returncode, r.stdout[:60], r.stderr[:200])]
    return []


# ------------------------------------------------ A: signals, kill -9 a worker
# Two listeners (IPv4 and IPv6), so the workers take turns through the
# accept lock, and a killed lock holder must be recovered from.
pa = free_port(ipv6=True)
a = Daemon(frontends=[{"name": "web", "listen": [f"127.0.0.1:{pa}", f"[::1]:{pa}"],
                       "upstream": "web"}], upstreams={"web": be.address}, name="a", workers=3)


@case
def sighup_reloads():
    before = set(a.worker_pids())
    a.send_signal(signal.SIGHUP)
    ok(a.wait_log(r"master notice: SIGHUP: configuration reloaded"),
       "SIGHUP: the master logs the reload")
    ok(poll_until(lambda: len(a.worker_pids()) == 3 and not before & set(a.worker_pids()), 5),
       "SIGHUP: three new workers replace the old ones", (before, a.worker_pids()))
    a.known_workers.update(a.worker_pids())
    ok(not curls(pa, 4, host="::1") and a.proc.poll() is None,
       "SIGHUP: the daemon keeps running and serving")


@case
def sigusr1_reopens_logs():
    old = a.access_path + ".1"
    os.rename(a.access_path, old)
    n_old = len(open(old).read().splitlines())
    a.send_signal(signal.SIGUSR1)
    ok(a.wait_log(r"master notice: SIGUSR1: log files reopened"),
       "SIGUSR1: the master logs 'log files reopened'")
    ok(poll_until(lambda: os.path.exists(a.access_path), 5),
       "SIGUSR1: a new access log file is created")
    fails = curls(pa, 6, host="::1")
    ok(not fails, "6 requests after SIGUSR1 succeed", repr(fails))
    new_lines = poll_until(lambda: len(a.access()) >= 6 and a.access(), 5) or a.access()
    old_lines = open(old).read().splitlines()[n_old:]
    ok(len(new_lines) == 6 and not old_lines,
       "SIGUSR1: every worker logs the 6 new requests to the new file, none to the old one",
       f"new file: {len(new_lines)} lines; old file got {len(old_lines)}:\n"
       + "\n".join(old_lines))


def wchan(pid):
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read()
    except OSError:
        return ""


@case
def kill_lock_holder():
    # With several listeners one idle worker polls holding the accept lock and
    # the others wait on it: kill the holder, the next one must recover it.
    before = poll_until(lambda: (lambda w: len(w) == 3 and w)(a.worker_pids()), 5) \
        or a.worker_pids()
    ok(len(before) == 3, "three workers run", before)
    holder = poll_until(lambda: [w for w in a.worker_pids() if "poll" in wchan(w)], 3)
    waiting = [w for w in before if "futex" in wchan(w)]
    ok(len(holder) == 1 and len(waiting) == 2,
       "one worker polls holding the accept lock, two wait for it",
       {w: wchan(w) for w in before})
    victim = holder[0] if holder else before[0]
    os.kill(victim, signal.SIGKILL)
    ok(a.wait_log(rf"master warning: worker \d+ \(pid {victim}\) was killed by signal 9 "
                  rf"\(Killed\); respawning"),
       f"kill -9 worker {victim}: the master logs 'was killed by signal 9 (Killed); "
       f"respawning'")
    fails = curls(pa, 20, host="::1")
    ok(not fails, "20 requests after killing the lock holder all succeed", repr(fails))
    ok(a.wait_log(r"worker \d+ warning: accept lock: its holder died; recovered"),
       "a worker logs that it recovered the accept lock")
    now = poll_until(lambda: (lambda w: len(w) == 3 and victim not in w and w)(a.worker_pids()),
                     5)
    ok(now, "a new worker replaces the killed one within 5 s",
       f"workers now: {a.worker_pids()}")
    new = [w for w in (now or []) if w not in before]
    if new:
        ok(a.wait_log(rf"tlsoffd\[{new[0]}\] worker \d+ debug: started"),
           "the new worker logs 'started'", f"new workers: {new}")
    # And a second kill, of a worker that is not the holder.
    others = [w for w in a.worker_pids() if w != victim]
    second = others[0] if others else None
    if second:
        os.kill(second, signal.SIGKILL)
        ok(a.wait_log(rf"\(pid {second}\) was killed by signal 9"),
           f"kill -9 worker {second}: logged too")
    now = poll_until(lambda: (lambda w: len(w) == 3 and second not in w and w)(a.worker_pids()),
                     5)
    ok(now, "after a second kill 3 workers run again", f"workers: {a.worker_pids()}")
    fails = curls(pa, 20, host="::1")
    ok(not fails, "20 more requests succeed after the second kill",
       f"{fails}; workers: {a.worker_pids()}")


rc = a.stop()
ok(rc == 0, "daemon A stops on SIGTERM with status 0 (within 3 s)",
   f"status {rc} (-9: it did not exit and was killed)\n" + a.tail_text())

# ------------------------------------------------ B: SIGQUIT, graceful stop
b = Daemon(upstream=be.address, timeouts={"shutdown": 20}, name="b")


@case
def graceful_stop():
    size = 64 * MiB
    c = TLSClient(b.port)
    req = f"GET /bytes/{size} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode()
    c.send(req)
    first, how = c.recv_exact(MiB, timeout=10)
    ok(len(first) == MiB and how is None, "a 64 MiB download is under way (1 MiB read)",
       f"{len(first)} {how}")
    workers = b.worker_pids()
    b.send_signal(signal.SIGQUIT)
    ok(b.wait_log(r"master notice: SIGQUIT: graceful stop"),
       "SIGQUIT: the master logs the graceful stop")
    one = poll_until(lambda: len(b.worker_pids()) == 1, 5)
    ok(one, "the idle worker exits at once; the busy one stays",
       f"workers {workers} -> {b.worker_pids()}")
    # A new connection now: refused, or at least closed at once, not left
    # waiting in a listen queue nobody serves.
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", b.port), timeout=2)
        try:
            s.settimeout(2)
            ctx = tls_context()
            ss = ctx.wrap_socket(s, server_hostname="example.test")
            fate = "served"
            ss.close()
        except (ssl.SSLError, ConnectionError) as e:
            fate = f"closed ({type(e).__name__})"
        except socket.timeout:
            fate = "hangs: accepted into the backlog but nobody answers"
        s.close()
    except ConnectionRefusedError:
        fate = "refused"
    except socket.timeout:
        fate = "connect hangs"
    secs = time.monotonic() - t0
    ok(fate == "refused" or fate.startswith("closed"),
       "during the graceful stop a new connection is refused (or closed at once)",
       f"{fate} after {secs:.2f} s")
    ok(b.proc.poll() is None, "the master waits while the transfer runs")
    rest, how = c.exchange(b"", timeout=60)
    c.close()
    t_end = time.monotonic()
    got = first + rest
    head, _, body = got.partition(b"\r\n\r\n")
    ok(len(body) == size and hashlib.sha256(body).hexdigest() == pattern_sha256(size),
       "the in-flight 64 MiB transfer completes intact", f"{len(body)} bytes, end {how}")
    ok(how == "close_notify", "... and ends with close_notify", how)
    l = b.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "ok" and l["out"] == len(got),
       "access: the transfer is logged, outcome=ok", l and l["raw"])
    rc = b.wait(5)
    ok(rc == 0, "the master exits with status 0 within 5 s of the transfer's end",
       f"status {rc} ({time.monotonic() - t_end:.1f} s after the transfer)")
    ok(poll_until(lambda: not any(pid_alive(w) for w in workers), 3),
       "no worker is left", [w for w in workers if pid_alive(w)])
    if rc == 0:
        ok(b.wait_log(r"master notice: stopped"), "the master logs 'stopped'")


b.stop()

# ------------------------------------------------ C: SIGTERM, fast stop
c_d = Daemon(upstream=echo.address, name="c")


@case
def fast_stop():
    conn = TLSClient(c_d.port)
    conn.send(b"hi")
    got, how = conn.recv_exact(2)
    ok(got == b"hi", "an echo connection is open", f"{got!r} {how}")
    workers = c_d.worker_pids()
    t0 = time.monotonic()
    c_d.send_signal(signal.SIGTERM)
    rest, how = conn.exchange(b"", timeout=5)
    conn.close()
    ok(how in ("eof", "reset", "close_notify") and time.monotonic() - t0 < 3,
       "SIGTERM: the open connection is closed at once", f"{how}")
    rc = c_d.wait(3)
    secs = time.monotonic() - t0
    ok(rc == 0, "SIGTERM: the master exits with status 0 within 3 s",
       f"status {rc} after {secs:.1f} s")
    ok(c_d.wait_log(r"master notice: Terminated: fast stop"), "the master logs the fast stop")
    ok(poll_until(lambda: not any(pid_alive(w) for w in workers), 3),
       "SIGTERM: no worker is left", [w for w in workers if pid_alive(w)])


c_d.stop()

# ------------------------------------------------ E: graceful stop, shutdown timeout
e = Daemon(upstream=echo.address, workers=1, timeouts={"shutdown": 1}, name="e")


@case
def shutdown_timeout():
    conn = TLSClient(e.port)
    conn.send(b"hi")
    got, how = conn.recv_exact(2)
    ok(got == b"hi", "an echo connection is open (and will stay idle)", f"{got!r} {how}")
    t0 = time.monotonic()
    e.send_signal(signal.SIGQUIT)
    rc = e.wait(5 * SLOW)
    secs = time.monotonic() - t0
    ok(rc == 0 and 0.9 <= secs < 3 * SLOW,
       "SIGQUIT with timeouts.shutdown = 1 and a connection that never ends: the master "
       "exits 0 after about 1 s", f"status {rc} after {secs:.2f} s")
    ok(e.wait_log(r"master warning: 1 workers? still busy after the shutdown timeout; "
                  r"killing them"), "it logs that it kills the busy worker")
    rest, how = conn.exchange(b"", timeout=3)
    conn.close()
    ok(how in ("eof", "reset", "close_notify"), "the client's connection is closed", how)


e.stop()

# ------------------------------------------------ F: TERM during a graceful stop; INT
f_d = Daemon(upstream=echo.address, workers=1, timeouts={"shutdown": 20}, name="f")


@case
def term_during_graceful():
    conn = TLSClient(f_d.port)
    conn.send(b"hi")
    conn.recv_exact(2)
    f_d.send_signal(signal.SIGQUIT)
    ok(f_d.wait_log(r"master notice: SIGQUIT: graceful stop"), "SIGQUIT: graceful stop begins")
    ok(f_d.wait(0.5) is None, "the master waits for the open connection")
    t0 = time.monotonic()
    f_d.send_signal(signal.SIGTERM)
    rc = f_d.wait(3 * SLOW)
    ok(rc == 0, "SIGTERM during the graceful stop makes it a fast stop: exit 0 at once",
       f"status {rc} after {time.monotonic() - t0:.2f} s")
    rest, how = conn.exchange(b"", timeout=3)
    conn.close()
    ok(how in ("eof", "reset", "close_notify"), "the client's connection is cut", how)


f_d.stop()
g = Daemon(upstream=be.address, workers=2, name="g")


@case
def sigint():
    workers = g.worker_pids()
    t0 = time.monotonic()
    g.send_signal(signal.SIGINT)
    rc = g.wait(3 * SLOW)
    ok(rc == 0, "SIGINT: a fast stop, exit 0", f"status {rc} after {time.monotonic() - t0:.2f} s")
    ok(g.wait_log(r"master notice: Interrupt: fast stop"), "it logs 'Interrupt: fast stop'")
    ok(poll_until(lambda: not any(pid_alive(w) for w in workers), 3), "no worker is left")


g.stop()

# ------------------------------------------------ D: the master is killed
dd = Daemon(upstream=be.address, name="d")


@case
def master_killed():
    workers = dd.worker_pids()
    ok(len(workers) == 2, "two workers run", workers)
    os.kill(dd.pid, signal.SIGKILL)
    dd.wait(5)
    ok(poll_until(lambda: not any(pid_alive(w) for w in workers), 3),
       "kill -9 of the master: the workers exit too (within 3 s)",
       [w for w in workers if pid_alive(w)])
    def refused():
        try:
            socket.create_connection(("127.0.0.1", dd.port), timeout=2).close()
            return False
        except OSError:
            return True
    # The last of the master's other children may still be exiting.
    ok(poll_until(refused, 3), "and the port is closed")


dd.stop(check=True)
be.stop()
echo.stop()
done()
