#!/usr/bin/env python3
"""Bad clients: plaintext and garbage on the TLS port, clients that say
nothing or drip their ClientHello (the handshake timeout frees the worker),
clients that give up mid-handshake or reject the certificate."""
import os
import re
import select
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "web")
d = Daemon(upstream=be.address, workers=2, timeouts={"handshake": 1})
port = d.port


STARTED = {}


def raw(timeout=5):
    t = stamp()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    STARTED[s.getsockname()[1]] = t
    return s, s.getsockname()[1]


def access_of(lport):
    """The access line of the raw() connection from lport."""
    return d.wait_access(client_port=lport, after=STARTED[lport])


def read_until_closed(s, timeout=5):
    """Reads until EOF/RST; returns (bytes, 'eof'|'reset'|'timeout', seconds)."""
    t0 = time.monotonic()
    s.settimeout(timeout * SLOW)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return got, "eof", time.monotonic() - t0
            got += b
    except ConnectionResetError:
        return got, "reset", time.monotonic() - t0
    except socket.timeout:
        return got, "timeout", time.monotonic() - t0


def client_hello():
    """The bytes of a real ClientHello (TLS 1.3 capable)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context().wrap_bio(inc, out, server_hostname="example.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@case
def garbage():
    for what, payload in (("plaintext HTTP", b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"),
                          ("random bytes", os.urandom(700)),
                          ("a TLS record header with a huge length", b"\x16\x03\x01\xff\xff"
                           + os.urandom(64))):
        s, lport = raw()
        s.sendall(payload)
        got, how, secs = read_until_closed(s)
        s.close()
        ok(how in ("eof", "reset") and secs < 2,
           f"{what}: the daemon closes the connection at once", f"{how} after {secs:.2f} s")
        ok(not got or got.startswith(b"\x15\x03"),
           f"{what}: nothing but a TLS alert is sent back", repr(got[:40]))
        l = access_of(lport)
        ok(l is not None and l["outcome"] == "handshake-failed" and l.get("reason"),
           f"{what}: access outcome=handshake-failed with a reason", l and l["raw"])
        ok(l is not None and l["tls"] == "-" and l["backend"] == "-" and l["in"] == 0,
           f"{what}: access tls=- backend=- in=0 (the backend was never contacted)",
           l and l["raw"])


@case
def gives_up_mid_handshake():
    hello = client_hello()
    s, lport = raw()
    s.sendall(hello[:len(hello) // 2])
    s.close()
    l = access_of(lport)
    ok(l is not None and l["outcome"] == "handshake-failed" and l["duration"] < 0.9,
       "a client closing half-way through its ClientHello: handshake-failed, "
       "not a timeout", l and l["raw"])


@case
def rejects_certificate():
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "other.pem"))
    s, lport = raw()
    try:
        ctx.wrap_socket(s, server_hostname="example.test")
        err = None
    except ssl.SSLCertVerificationError as e:
        err = e
    s.close()
    ok(err is not None, "a client trusting another CA rejects the certificate", repr(err))
    l = access_of(lport)
    ok(l is not None and l["outcome"] == "handshake-failed" and l.get("reason"),
       "its alert is logged: outcome=handshake-failed with a reason", l and l["raw"])


@case
def silent_clients_and_timeout():
    # Two clients that never speak hold both workers until the handshake
    # timeout (1 s); a curl started meanwhile is served once one is freed.
    silent = [raw() for _ in range(2)]
    accepted = poll_until(lambda: listen_backlog(port) == 0, 3)
    ok(accepted, "both silent clients were accepted (the accept queue is empty)",
       f"backlog {listen_backlog(port)}")
    t0 = time.monotonic()
    r = curl(port, "/", timeout=10)
    secs = time.monotonic() - t0
    ok(r.returncode == 0 and r.stdout == b"hello from web\n",
       "a curl started while both workers wait on silent clients succeeds",
       f"rc={r.returncode} {r.stdout!r} {r.stderr!r}")
    ok(secs < 5, "... within 5 s (the 1 s handshake timeout freed a worker)", f"{secs:.2f} s")
    diag(f"curl took {secs:.2f} s")
    for s, lport in silent:
        got, how, secs = read_until_closed(s, timeout=5)
        s.close()
        ok(how in ("eof", "reset") and not got, "the silent client is disconnected",
           f"{how} {got!r}")
        l = access_of(lport)
        ok(l is not None and l["outcome"] == "handshake-timeout",
           "access: outcome=handshake-timeout", l and l["raw"])
        ok(l is not None and 0.9 <= l["duration"] < 3,
           "access: duration about the 1 s timeout (0.9 <= d < 3)", l and l["raw"])


def _readable(s):
    """True once the peer closed (EOF or reset): the drip has been cut."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return s.recv(100, socket.MSG_PEEK) == b""
    except OSError:
        return True


@case
def slow_drip():
    hello = client_hello()
    s, lport = raw()
    sent = 0
    t0 = time.monotonic()
    end = "timeout"
    try:
        # at most 20 bytes: the whole drip is bounded to ~6 s
        for i in range(min(len(hello), 20)):
            s.sendall(hello[i:i + 1])
            sent += 1
            r = poll_until(lambda: _readable(s), 0.3, interval=0.02)
            if r:
                end = "closed"
                break
    except (BrokenPipeError, ConnectionResetError):
        end = "closed"
    secs = time.monotonic() - t0
    s.close()
    ok(end == "closed" and secs < 3,
       "a client dripping one byte per 0.3 s is cut by the 1 s handshake timeout",
       f"{end} after {secs:.2f} s, {sent} bytes sent")
    ok(sent >= 3, "the drip was going on (at least 3 bytes sent before the cut)", f"{sent}")
    l = access_of(lport)
    ok(l is not None and l["outcome"] == "handshake-timeout" and l["duration"] < 3,
       "access: outcome=handshake-timeout, duration < 3 s (the timeout is absolute, "
       "not per byte)", l and l["raw"])


@case
def half_a_handshake_then_silence():
    # A complete ClientHello, then nothing: the server's flight is sent and the
    # client's Finished never comes.
    s, lport = raw()
    s.sendall(client_hello())
    got, how, secs = read_until_closed(s, timeout=5)
    s.close()
    ok(got.startswith(b"\x16\x03\x03") and how in ("eof", "reset") and 0.8 < secs < 3,
       "ClientHello then silence: the server answers, then cuts at the 1 s timeout",
       f"{len(got)} bytes, {how} after {secs:.2f} s")
    l = access_of(lport)
    ok(l is not None and l["outcome"] == "handshake-timeout",
       "access: outcome=handshake-timeout", l and l["raw"])


@case
def reset_during_relay():
    c = TLSClient(port)
    c.send(b"GET /bytes/50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    got, how = c.recv_exact(100000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()                                       # RST
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "client-error" and
       re.search(r"reset|broken pipe", l.get("reason", ""), re.I),
       "a client that resets during the relay: outcome=client-error, reason: reset (or EPIPE)",
       l and l["raw"])
    # out counts what TLS took whole: the relay hands it 64 KiB at a time,
    # so the count may trail what the client read by one such write.
    ok(l is not None and 100000 - 65536 <= l["out"] < 50000000,
       "access: out counts what was sent before the reset (to within one 64 KiB write)",
       l and l["raw"])


@case
def garbage_record_during_relay():
    c = TLSClient(port)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")      # a partial request, relayed
    c.sock.setblocking(True)
    c.sock.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))  # a record that does not decrypt
    got, how, secs = read_until_closed(c.sock, timeout=5)
    c.close()
    ok(how in ("eof", "reset") and secs < 3,
       "a record that fails to decrypt: the daemon closes the connection", f"{how} {secs:.2f} s")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "client-error" and l.get("reason"),
       "access: outcome=client-error with a reason", l and l["raw"])


@case
def still_serving():
    bad = next(([i, r.returncode, r.stderr] for i in range(10)
                for r in [curl(port, "/", timeout=5)] if r.stdout != b"hello from web\n"), None)
    ok(not bad, "after all that, 10 requests in a row succeed", repr(bad))
    ok(set(d.worker_pids()) == set(d.known_workers),
       "the same workers run (no worker died on a bad client)",
       f"{sorted(d.known_workers)} -> {d.worker_pids()}")
    ok("killed by signal" not in d.log_text() and " error:" not in d.log_text(),
       "no worker death or error in the main log")


d.stop()
be.stop()
done()
