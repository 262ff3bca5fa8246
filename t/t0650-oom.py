#!/usr/bin/env python3
"""Running out of memory costs one connection: a worker whose allocation
fails logs it and exits, the master names it and replaces it, and every
other connection, held or new, is served as before. A reload that runs
out of memory fails and the running configuration stays.

The failure is injected with TLSOFFD_TEST_ALLOC_FAIL (tlsoffd(8)): while a
file exists at that path, the next connection (or reload) removes it and
fails its first allocation."""
import os
import signal
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

echo = Backend("echo", "echo")
trigger = os.path.join(tmpdir(), "fail-next-alloc")
os.environ["TLSOFFD_TEST_ALLOC_FAIL"] = trigger
try:
    d = Daemon(upstream=echo.address, workers=3, name="oom")
finally:
    del os.environ["TLSOFFD_TEST_ALLOC_FAIL"]


def echoes(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        if not chunk:
            break
        got += chunk
    return got == data


def arm():
    open(trigger, "w").close()


@case
def worker_out_of_memory():
    held = tls_connect(d.port)
    ok(echoes(held, b"before"), "a held connection is served")
    workers = set(d.worker_pids())
    arm()
    try:
        victim = tls_connect(d.port, timeout=5)
        victim.sendall(b"x")
        lost = victim.recv(1) == b""
    except (OSError, ssl.SSLError):
        lost = True
    ok(lost, "the connection whose allocation fails is closed")
    ok(not os.path.exists(trigger), "one worker took the injected failure")
    ok(d.wait_log(r"worker \d+ error: out of memory: \d+ bytes at lib/\S+:\d+ while serving "
                  r"127\.0\.0\.1:\d+; the connection is dropped and this worker exits"),
       "the worker logs the size, the call site and the client")
    ok(d.wait_log(r"master warning: worker \d+ \(pid \d+\) ran out of memory \(exit status 3\)"),
       "the master says the worker ran out of memory")
    ok(echoes(held, b"after"), "the held connection is still served")
    for i in range(5):
        with tls_connect(d.port) as s:
            ok(echoes(s, f"new {i}".encode()), f"new connection {i + 1} is served")
    ok(poll_until(lambda: len(d.worker_pids()) == 3 and set(d.worker_pids()) != workers, 5),
       "the pool is whole again, with a new worker in place of the one that failed",
       (workers, d.worker_pids()))
    held.close()
    ok(d.proc.poll() is None, "the master runs on")


@case
def reload_out_of_memory():
    before = set(d.worker_pids())
    arm()
    d.send_signal(signal.SIGHUP)
    ok(d.wait_log(r"master error: reload: out of memory \(\d+ bytes at \S+:\d+\)"),
       "a reload that runs out of memory says so")
    ok(d.wait_log(r"SIGHUP: reload failed, still serving with the previous configuration: "
                  r"out of memory"),
       "and fails, keeping the running configuration")
    ok(set(d.worker_pids()) == before, "the workers are not replaced")
    with tls_connect(d.port) as s:
        ok(echoes(s, b"still"), "the daemon serves as before")
    d.send_signal(signal.SIGHUP)
    ok(d.wait_log(r"master notice: SIGHUP: configuration reloaded"),
       "the next reload works")


done()
