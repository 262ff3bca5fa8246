#!/usr/bin/env python3
"""Parking: a connection idle for workers.park_after goes to the park
process and its worker is free again; when the client (or the backend)
speaks, a worker takes it back and the TLS connection goes on, TLS 1.2 and
1.3; hundreds of idle connections are held by a handful of workers; the
idle timeout still ends a parked connection (with a close_notify); a park
process that dies gives the client-table counts back and is restarted; a
reload leaves parked connections working. Needs a wolfSSL that can export
a connection (the default build, WOLFSSL=fast); skipped otherwise
(WOLFSSL=system)."""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

echo = Backend("echo", "park")
SUPPORTED = b"parking idle connections: yes" in run([TLSOFFD, "-v"]).stdout


def conf(port, workers="count = 2;", limits="per_client = 0; handshake_rate = 0;", idle=60):
    return (f'pidfile = "tlsoffd.pid";\n'
            f"workers = {{ {workers} park_after = 0.5; }};\n"
            f"limits = {{ {limits} }};\n"
            f"timeouts = {{ idle = {idle}; }};\n"
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; health = {{ type = "none"; }};\n'
            f'  servers = ( {{ address = "{echo.address}"; }} ); }} );\n')


def stats(d):
    return daemon_stats(d)[0]


def echo_once(c, msg, timeout=5):
    c.send(msg)
    got, how = c.recv_exact(len(msg), timeout=timeout)
    return got == msg


def parked_count(d):
    return stats(d).get("parked", -1)


if not SUPPORTED:
    skip("parking", "this wolfSSL cannot export a connection (the default build, WOLFSSL=fast, can)")
    done()
    sys.exit(0)


@case
def parked_and_back():
    port = free_port()
    with Daemon(conf(port), workers=2, name="back", level="debug") as d:
        for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            c = TLSClient(port, version=v)
            ok(echo_once(c, b"one\n"), f"{v.name}: an echo before parking")
            ok(poll_until(lambda: parked_count(d) == 1, 5 * SLOW),
               f"{v.name}: quiet for 0.5 s, the connection is parked (-s stats: parked=1)")
            ok(echo_once(c, b"two\n") and echo_once(c, b"x" * 40000),
               f"{v.name}: it goes on when the client speaks: an echo, then 40000 bytes")
            ok(poll_until(lambda: parked_count(d) == 1, 5 * SLOW), f"{v.name}: parked again")
            ok(echo_once(c, b"three\n"), f"{v.name}: and back again")
            got, how = c.exchange(b"", then="close_notify", timeout=5)
            c.close()
            l = d.wait_access(client_port=c.local_port)
            ok(l and l["outcome"] == "ok" and l["in"] == 40014 and l["out"] == 40014,
               f"{v.name}: one access line for the whole connection, every byte counted",
               l and l["raw"])
        vals = stats(d)
        ok(vals.get("parked", 0) == 0 and vals.get("connections_unparked", 0) >= 4,
           "-s stats counts the connections parked and taken back", vals)


@case
def keyupdate_after_unpark():
    # openssl s_client's "K" line: a TLS 1.3 KeyUpdate asking for one back,
    # sent on a connection that was parked (its keys went through the blob).
    port = free_port()
    with Daemon(conf(port), workers=2, name="ku", level="info") as d:
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                              "-tls1_3", "-CAfile", CA, "-servername", "example.test"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            p.stdin.write(b"before\n")
            p.stdin.flush()
            ok(poll_until(lambda: parked_count(d) == 1, 5 * SLOW), "s_client's connection parked")
            p.stdin.write(b"K\n")
            p.stdin.flush()
            time.sleep(0.3)
            p.stdin.write(b"after the key update\n")
            p.stdin.flush()
            time.sleep(1.0 * SLOW)
            p.stdin.write(b"Q\n")
            p.stdin.flush()
            out = p.communicate(timeout=10 * SLOW)[0].decode(errors="replace")
        finally:
            if p.poll() is None:
                p.kill()
        ok("KEYUPDATE" in out and "after the key update" in out,
           "a KeyUpdate after unpark works: the line after it comes back", out[-600:])
        l = d.wait_access()
        ok(l and l["outcome"] == "ok", "access: outcome=ok", l and l["raw"])


@case
def many_held_by_few_workers():
    port = free_port()
    with Daemon(conf(port, workers="min_spare = 2; max_spare = 4;"), workers=2,
                name="many", level="info") as d:
        def hold(_):
            try:
                c = TLSClient(port, timeout=20)
                return c if echo_once(c, b"hi", timeout=20) else None
            except (OSError, ConnectionError, TimeoutError):
                return None
        with ThreadPoolExecutor(max_workers=32) as ex:
            held = [c for c in ex.map(hold, range(300)) if c]
        ok(len(held) == 300, "300 idle connections are served", len(held))
        ok(poll_until(lambda: parked_count(d) == 300, 10 * SLOW), "all 300 are parked",
           parked_count(d))
        ok(poll_until(lambda: len(d.worker_pids()) <= 24, 30 * SLOW),
           "the pool shrinks back: a few workers hold 300 connections",
           len(d.worker_pids()))
        sample = held[::15]
        ok(all(echo_once(c, b"again") for c in sample),
           f"{len(sample)} of them, spread out, still echo")
        for c in held:
            c.close()


@case
def idle_timeout_while_parked():
    port = free_port()
    with Daemon(conf(port, idle=2), workers=2, name="expire", level="info") as d:
        c = TLSClient(port)
        ok(echo_once(c, b"hi"), "an echo")
        t0 = time.monotonic()
        got, how = c.exchange(b"", timeout=8)
        secs = time.monotonic() - t0
        ok(how == "close_notify" and 1.5 < secs < 4.5 * SLOW,
           "parked, it still ends at the 2 s idle timeout, with a close_notify",
           f"{how} after {secs:.1f} s")
        l = d.wait_access(client_port=c.local_port)
        ok(l and l["outcome"] == "idle-timeout", "access: outcome=idle-timeout", l and l["raw"])
        c.close()


@case
def park_process_dies():
    port = free_port()
    with Daemon(conf(port, limits="per_client = 3; handshake_rate = 0;"), workers=2,
                name="dies", level="info") as d:
        held = [TLSClient(port, source="127.0.0.11") for _ in range(3)]
        ok(all(echo_once(c, b"hi") for c in held), "three connections from 127.0.0.11")
        ok(poll_until(lambda: parked_count(d) == 3, 5 * SLOW), "all three parked")
        parks = children_of(d.pid, role="park")
        ok(len(parks) == 1, "one park process (tlsoffd-park)", parks)
        os.kill(parks[0], signal.SIGKILL)
        ok(all(c.exchange(b"", timeout=5)[1] in ("eof", "reset") for c in held),
           "its connections are closed")
        ok(d.wait_log(r"the park process \(pid \d+\) was killed by signal 9"),
           "the master says so")
        again = [TLSClient(port, source="127.0.0.11") for _ in range(3)]
        ok(all(echo_once(c, b"hi") for c in again),
           "127.0.0.11 is served three times again: the counts came back")
        ok(poll_until(lambda: len(children_of(d.pid, role="park")) == 1, 5 * SLOW),
           "a new park process runs")
        ok(poll_until(lambda: parked_count(d) == 3, 5 * SLOW), "and parks again")
        for c in held + again:
            c.close()


@case
def graceful_stop_serves_parked():
    port = free_port()
    d = Daemon(conf(port), workers=2, name="quit", level="info")
    c = TLSClient(port)
    ok(echo_once(c, b"hi"), "an echo")
    ok(poll_until(lambda: parked_count(d) == 1, 5 * SLOW), "parked")
    d.send_signal(signal.SIGQUIT)
    time.sleep(0.5)
    ok(echo_once(c, b"still here"), "after SIGQUIT the parked connection is served on")
    got, how = c.exchange(b"", then="close_notify", timeout=5)
    c.close()
    ok(d.wait(10 * SLOW) == 0, "then the daemon stops")
    l = d.wait_access(client_port=c.local_port)
    ok(l and l["outcome"] == "ok", "access: outcome=ok", l and l["raw"])
    d.stop(check=False)


@case
def reload_keeps_parked():
    port = free_port()
    with Daemon(conf(port), workers=2, name="hup", level="info") as d:
        c = TLSClient(port)
        ok(echo_once(c, b"hi"), "an echo")
        ok(poll_until(lambda: parked_count(d) == 1, 5 * SLOW), "parked")
        old = set(d.worker_pids())
        d.send_signal(signal.SIGHUP)
        ok(d.wait_log(r"SIGHUP: configuration reloaded"), "HUP reloads")
        ok(poll_until(lambda: not (set(d.worker_pids()) & old), 10 * SLOW),
           "the old workers are gone")
        ok(echo_once(c, b"after the reload"), "the parked connection goes on with a new worker")
        c.close()


done()
