#!/usr/bin/env python3
"""The worker pool: a dynamic pool grows for 300 idle clients held open and
shrinks back afterwards; workers.max_connections recycles a worker;
`tlsoffd -s` sends signals to the running master through the pidfile;
the scoreboard in `-s stats`."""
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

HELD = 300
be = Backend("echo", "pool")


def pool_config(port, **workers):
    w = " ".join(f"{k} = {v};" for k, v in workers.items())
    return (f'pidfile = "tlsoffd.pid";\nworkers = {{ {w} }};\n'
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; health = {{ type = "none"; }};\n'
            f'  servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def stats(d):
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], cwd=d.dir, timeout=10)
    states = re.findall(r"^worker=\d+ pid=\d+ state=(\S+)", r.stdout.decode(), re.M)
    return r, states


def _try(fn, arg):
    try:
        return fn(arg)
    except OSError as e:
        diag(f"client {arg}: {e}")
        return None


@case
def grows_and_shrinks():
    port = free_port()
    with Daemon(pool_config(port, min_spare=2, max_spare=4, max=HELD + 20, park_after=0),
                workers=2, name="dyn", level="info") as d:
        ok(d.wait_log(r"running: 2 workers \(pool: 2\.\.4 spare, at most 320\)"),
           "a dynamic pool starts with min_spare workers")
        ctx = tls_context()

        def hold(_):
            s = socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW)
            t = ctx.wrap_socket(s, server_hostname="example.test")
            t.sendall(b"ping")                        # through to the echo backend
            return t if t.recv(4) == b"ping" else None

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as ex:
            held = list(ex.map(lambda i: _try(hold, i), range(HELD)))
        good = [t for t in held if t]
        ok(len(good) == HELD, f"{HELD} clients held open at once are all served "
           f"(in {time.monotonic() - t0:.1f} s)", f"{len(good)} served")
        workers = d.worker_pids()
        ok(len(workers) >= HELD, f"the pool grew to at least {HELD} workers", len(workers))
        _, states = stats(d)
        ok(states.count("relaying") >= HELD, "the scoreboard shows them relaying",
           {s: states.count(s) for s in set(states)})
        for t in good:
            t.close()
        got = poll_until(lambda: 0 < len(d.worker_pids()) <= 4, 30 * SLOW)
        ok(got, "released, the pool shrinks back to max_spare (4) idle workers within 30 s",
           len(d.worker_pids()))
        _, states = stats(d)
        ok(2 <= states.count("idle") <= 4, "idle workers are within min_spare..max_spare",
           states)


@case
def burst():
    # 500 clients at once against a pool that starts with 2 workers: the
    # listen queue holds them while the pool grows; none is refused.
    port = free_port()
    with Daemon(pool_config(port, min_spare=2, max_spare=8, max=64), workers=2,
                name="burst", level="info") as d:
        ctx = tls_context()

        def one(_):
            s = socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW)
            t = ctx.wrap_socket(s, server_hostname="example.test")
            t.sendall(b"hi")
            good = t.recv(2) == b"hi"
            t.close()
            return good

        # The master's children, counted in /proc all through the burst: the
        # most seen at once is how far the pool grew (it may have shrunk back
        # by the end).
        seen, stop = set(d.worker_pids()), threading.Event()

        def sample():
            while not stop.is_set():
                pids = d.worker_pids()
                seen.update(pids)
                peak[0] = max(peak[0], len(pids))
                time.sleep(0.01)

        peak = [len(seen)]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=100) as ex:
                res = list(ex.map(lambda i: _try(one, i), range(500)))
        finally:
            stop.set()
            sampler.join()
        ok(all(res), f"a burst of 500 clients: all served, none refused "
           f"({time.monotonic() - t0:.1f} s)", f"{res.count(True)} served")
        ok(peak[0] > 2, "the pool grew for the burst: more than its 2 workers at once "
           "(the master's children in /proc)", f"at most {peak[0]} at once, "
           f"{len(seen)} pids seen")


@case
def crash_loop():
    # Every new worker dies at once (its chroot is gone): the master backs
    # off instead of spinning, and says so.
    root = os.path.join(tmpdir(), "vanishing-root")
    os.makedirs(os.path.join(root, "dev"))
    os.mknod(os.path.join(root, "dev/urandom"), 0o444 | __import__("stat").S_IFCHR,
             os.makedev(1, 9))
    port = free_port()
    cfg = pool_config(port, count=1).replace(
        'pidfile = "tlsoffd.pid";',
        f'pidfile = "tlsoffd.pid";\nchroot = "{root}";\nuser = "nobody";')
    with Daemon(cfg, workers=1, name="crash", level="info") as d:
        import shutil
        shutil.rmtree(root)
        os.kill(d.worker_pids()[0], signal.SIGKILL)
        time.sleep(4 * SLOW)
        log = d.log_text()
        deaths = len(re.findall(r"worker 0 \(pid \d+\) exited with status 1", log))
        ok(2 <= deaths <= 8, "in 4 s a worker that dies at start is retried a few times, "
           "not thousands", deaths)
        ok("after a back-off" in log, "the log says it backs off")
        with open(f"/proc/{d.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        ok(cpu < 1.0, "the master does not spin (CPU time under 1 s)", cpu)


@case
def recycling():
    port = free_port()
    with Daemon(pool_config(port, count=1, max_connections=3), workers=1, name="recycle") as d:
        first = d.worker_pids()
        pids = set()
        for _ in range(7):
            r = curl(port, "/", args=["-d", "x"])   # echo backend: any answer will do
            del r
            pids.update(d.worker_pids())
        ok(poll_until(lambda: d.worker_pids() and d.worker_pids() != first, 5),
           "after max_connections the worker is replaced", (first, d.worker_pids()))
        ok(d.wait_log(r"worker 0 \(pid \d+\) exited with status 0; replacing it"),
           "the master logs the recycling")
        # The worker writes a connection's access line after curl has its
        # answer: wait for the seventh.
        ok(poll_until(lambda: len(d.access()) == 7, 5), "every connection was served",
           len(d.access()))


@case
def send_signals():
    port = free_port()
    with Daemon(pool_config(port, count=2), workers=2, name="signals") as d:
        os.rename(d.access_path, d.access_path + ".1")
        r = run([TLSOFFD, "-c", d.conf_path, "-s", "reopen"], cwd=d.dir)
        ok(r.returncode == 0, "tlsoffd -s reopen: exit 0", r.stderr)
        ok(d.wait_log(r"SIGUSR1: log files reopened"), "the master got USR1")
        curl(port, "/", args=["-d", "x"])
        ok(poll_until(lambda: os.path.exists(d.access_path) and d.access(), 5),
           "after -s reopen, access lines go to a new file")
        r = run([TLSOFFD, "-c", d.conf_path, "-s", "nonsense"], cwd=d.dir)
        ok(r.returncode == 2 and b"unknown command" in r.stderr, "-s with an unknown name: usage")
        r = run([TLSOFFD, "-c", d.conf_path, "-s", "quit"], cwd=d.dir)
        ok(r.returncode == 0, "tlsoffd -s quit: exit 0", r.stderr)
        ok(d.wait(5) == 0, "the master stops gracefully (exit 0)")
        ok(d.wait_log(r"SIGQUIT: graceful stop"), "it logs the graceful stop")
        r = run([TLSOFFD, "-c", d.conf_path, "-s", "stop"], cwd=d.dir)
        ok(r.returncode == 1 and b"no running master" in r.stderr,
           "-s stop with no master: exit 1 and says so", r.stderr)


be.stop()
done()
