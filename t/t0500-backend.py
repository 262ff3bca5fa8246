#!/usr/bin/env python3
"""Backend trouble: nothing listening (refused), a backend that does not
accept (connect timeout), a backend that resets mid-answer; the idle
timeout, activity keeping a connection alive past it, and a record dripped
a byte at a time not keeping it alive."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

good = Backend("http", "good")
echo = Backend("echo", "echo")
down_addr = f"127.0.0.1:{free_port()}"      # nothing listens there

# A listener with a full accept queue: further SYNs are dropped, so a
# connect to it hangs (the daemon's connect timeout).
full = socket.socket()
full.bind(("127.0.0.1", 0))
full.listen(0)
full_addr = f"127.0.0.1:{full.getsockname()[1]}"
fillers = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(full.getsockname())
    except BlockingIOError:
        pass
    fillers.append(c)


def resetter(conn):
    """Reads the request, sends part of an answer, then resets the connection."""
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    time.sleep(0.2)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


rst = PyBackend(resetter)

ports = {n: free_port() for n in ("down", "good", "full", "rst", "echo")}
d = Daemon(frontends=[{"name": n, "listen": [f"127.0.0.1:{p}"], "upstream": n}
                      for n, p in ports.items()],
           upstreams={"down": down_addr, "good": good.address, "full": full_addr,
                      "rst": rst.address, "echo": echo.address},
           timeouts={"idle": 1, "connect": 1, "handshake": 5})


@case
def backend_refused():
    r = curl(ports["down"], "/", timeout=10)
    ok(r.returncode == 52, "backend down: curl sees an empty reply (exit 52), not a TLS error",
       f"rc={r.returncode} {r.stderr!r}")
    c = TLSClient(ports["down"])
    ok(c.version() in ("TLSv1.3", "TLSv1.2"), "backend down: the TLS handshake completes")
    got, how = c.exchange(b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    c.close()
    ok(got == b"" and how == "close_notify",
       "backend down: the client then gets close_notify and EOF, no bytes",
       f"{got!r} {how}")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "backend-refused",
       "access: outcome=backend-refused", l and l["raw"])
    ok(l is not None and l["backend"] == down_addr and "refused" in l.get("reason", "").lower()
       and l["tls"] != "-" and l["sni"] == "example.test",
       "access: the backend's address, reason names the refusal, the TLS details",
       l and l["raw"])
    r = s_client(ports["down"], ["-servername", "example.test", "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    out = r.stdout.decode(errors="replace")
    ok("Verify return code: 0 (ok)" in out and "HTTP/1." not in out,
       "backend down: s_client completes the handshake and reads nothing", out[-600:])


@case
def others_still_served():
    bad = next(([i, r.returncode, r.stderr] for i in range(5)
                for r in [curl(ports["good"], "/", timeout=5)]
                if r.stdout != b"hello from good\n"), None)
    ok(not bad, "a frontend with a working backend is served alongside the dead one",
       repr(bad))
    r = curl(ports["down"], "/", timeout=10)
    ok(r.returncode == 52, "and the dead one still answers the same way", r.returncode)


@case
def backend_connect_timeout():
    t0 = time.monotonic()
    c = TLSClient(ports["full"])
    got, how = c.exchange(b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    secs = time.monotonic() - t0
    c.close()
    ok(got == b"" and how in ("close_notify", "eof") and secs < 4,
       "backend never accepts: the client is closed after the 1 s connect timeout",
       f"{got!r} {how} {secs:.2f} s")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "backend-timeout" and 0.9 <= l["duration"] < 3,
       "access: outcome=backend-timeout, duration about 1 s", l and l["raw"])


@case
def backend_reset():
    c = TLSClient(ports["rst"])
    got, how = c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    c.close()
    ok(got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"x" * 5000),
       "backend resets mid-answer: what it sent before reaches the client",
       f"{len(got)} bytes, end {how}")
    ok(how in ("eof", "reset"),
       "backend resets: the client gets no close_notify (the truncation stays visible)",
       f"end {how}")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "backend-error" and "reset" in l.get("reason", ""),
       "access: outcome=backend-error, reason names the reset", l and l["raw"])


@case
def idle_timeout():
    c = TLSClient(ports["echo"])
    t0 = time.monotonic()
    got, how = c.exchange(b"", timeout=8)
    secs = time.monotonic() - t0
    c.close()
    ok(got == b"" and how in ("close_notify", "eof") and 0.8 < secs < 3,
       "a connection idle after the handshake is closed by the 1 s idle timeout",
       f"{how} after {secs:.2f} s")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "idle-timeout" and 0.9 <= l["duration"] < 3,
       "access: outcome=idle-timeout, duration about 1 s", l and l["raw"])
    ok(l is not None and l["backend"] == echo.address, "access: the backend is named",
       l and l["raw"])


@case
def activity_keeps_alive():
    c = TLSClient(ports["echo"])
    t0 = time.monotonic()
    sent = b""
    lost = None
    for i in range(6):                      # 6 x 0.4 s = 2.4 s > the 1 s idle timeout
        msg = f"ping {i}\n".encode()
        c.send(msg)
        sent += msg
        got, how = c.recv_exact(len(msg), timeout=3)
        if got != msg:
            lost = (i, got, how)
            break
        time.sleep(0.4)
    secs = time.monotonic() - t0
    ok(lost is None and secs > 2,
       "a byte every 0.4 s keeps a connection open past the 1 s idle timeout",
       f"{lost} after {secs:.2f} s")
    got, how = c.exchange(b"", then="fin", timeout=5)
    c.close()
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["outcome"] == "ok" and l["in"] == len(sent) and
       l["out"] == len(sent), "access: outcome=ok, every ping counted both ways",
       l and l["raw"])


@case
def drip_feed():
    """One byte of a TLS record every 0.3 s wakes the worker but delivers
    nothing: the 1 s idle timeout still ends it."""
    c = TLSClient(ports["echo"])
    c.obj.write(b"never completed\n")
    record = c.out.read()
    t0 = time.monotonic()
    closed = None
    for i in range(len(record) - 1):        # never the last byte
        try:
            c.sock.send(record[i:i + 1])
        except OSError as e:
            closed = e
            break
        time.sleep(0.3)
        if time.monotonic() - t0 > 6:
            break
    l = d.wait_access(client_port=c.local_port, after=c.started, timeout=8)
    secs = time.monotonic() - t0
    c.close()
    ok(l is not None and l["outcome"] == "idle-timeout" and secs < 4,
       "a client dripping a record a byte at a time is cut by the 1 s idle timeout",
       f"after {secs:.2f} s: {l and l['raw']} {closed}")
    ok(l is not None and l["in"] == 0, "access: nothing was delivered", l and l["raw"])


@case
def client_not_reading():
    c = TLSClient(ports["good"])
    t0 = time.monotonic()
    c.send(b"GET /bytes/67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
    # Read nothing: the daemon's writes to the client stall.
    l = d.wait_access(client_port=c.local_port, after=c.started, timeout=6)
    secs = time.monotonic() - t0
    c.close()
    ok(l is not None and l["outcome"] == "idle-timeout" and secs < 5,
       "a client that accepts no data is cut by the 1 s idle timeout", l and l["raw"])
    ok(l is not None and 0 < l["out"] < 67108864,
       "access: out counts what fitted before the stall", l and l["raw"])


ok(set(d.worker_pids()) == set(d.known_workers), "no worker died",
   f"{sorted(d.known_workers)} -> {d.worker_pids()}")
d.stop()
for c in fillers:
    c.close()
full.close()
rst.stop()
good.stop()
echo.stop()
done()
