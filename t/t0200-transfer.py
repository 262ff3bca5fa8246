#!/usr/bin/env python3
"""Bulk transfers: 64 MiB down and up through the daemon, intact, with
matching byte counts in the access log; parallel transfers; a two-way
TLS 1.2 stream."""
import hashlib
import os
import time
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

MiB = 1 << 20
BIG = 64 * MiB
W = ["-w", "%{local_port}"]

be = Backend("http", "bulk")
echo = Backend("echo", "echo")
port_echo = free_port()
port = free_port()
d = Daemon(frontends=[
    {"name": "http", "listen": [f"127.0.0.1:{port}"], "upstream": "http"},
    {"name": "echo", "listen": [f"127.0.0.1:{port_echo}"], "upstream": "echo"},
], upstreams={"http": be.address, "echo": echo.address}, workers=2)


@case
def download():
    out = os.path.join(tmpdir(), "download.bin")
    t = stamp()
    r = curl(port, f"/bytes/{BIG}", args=["-o", out, *W], timeout=30)
    lport = int(r.stdout) if r.stdout.strip().isdigit() else None
    size = os.path.getsize(out) if os.path.exists(out) else -1
    ok(r.returncode == 0 and size == BIG, "64 MiB download: curl succeeds, all bytes arrive",
       f"rc={r.returncode} size={size} err={r.stderr!r}")
    h = hashlib.sha256()
    if size > 0:
        with open(out, "rb") as f:
            for blk in iter(lambda: f.read(4 * MiB), b""):
                h.update(blk)
        os.unlink(out)
    ok(h.hexdigest() == pattern_sha256(BIG), "64 MiB download: sha256 matches the pattern")
    l = d.wait_access(client_port=lport, after=t) if lport else None
    ok(l is not None and l["outcome"] == "ok", "download: access line with outcome=ok",
       l and l["raw"])
    if l:
        ok(BIG < l["out"] < BIG + 1024, "download: access out = 64 MiB + the headers", l["raw"])
        ok(0 < l["in"] < 1024, "download: access in = the request only", l["raw"])


@case
def upload():
    src = os.path.join(tmpdir(), "upload.bin")
    h = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(BIG // (4 * MiB)):
            blk = os.urandom(4 * MiB)
            h.update(blk)
            f.write(blk)
    t = stamp()
    r = curl(port, "/sha256", args=["-T", src, "-w", r"\n%{local_port}"], timeout=30)
    os.unlink(src)
    text = r.stdout.decode(errors="replace")
    answer, _, lp = text.rpartition("\n")
    lines = answer.strip().split("\n")
    ok(r.returncode == 0 and lines[-1] == f"{h.hexdigest()} {BIG}",
       "64 MiB upload (curl -T): the backend saw every byte (sha256 and count match)",
       f"rc={r.returncode} answer={answer!r} want={h.hexdigest()} {BIG} err={r.stderr!r}")
    l = d.wait_access(client_port=int(lp), after=t) if lp.isdigit() else None
    ok(l is not None and l["outcome"] == "ok", "upload: access line with outcome=ok",
       l and l["raw"])
    if l:
        ok(BIG < l["in"] < BIG + 1024, "upload: access in = 64 MiB + the headers", l["raw"])
        ok(0 < l["out"] < 1024, "upload: access out = the answer only", l["raw"])


@case
def parallel_downloads():
    n, size = 4, 8 * MiB
    results = [None] * n

    def one(i):
        path = os.path.join(tmpdir(), f"par{i}.bin")
        r = curl(port, f"/bytes/{size + i}", args=["-o", path, "-w", "%{local_port}"],
                 timeout=20)
        h = hashlib.sha256()
        if os.path.exists(path):
            with open(path, "rb") as f:
                h.update(f.read())
            os.unlink(path)
        results[i] = (r.returncode, h.hexdigest(), int(r.stdout) if r.stdout.isdigit() else None)

    since = stamp()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    good = [r is not None and r[0] == 0 and r[1] == pattern_sha256(size + i)
            for i, r in enumerate(results)]
    ok(all(good), f"{n} parallel 8 MiB downloads through 2 workers are all intact",
       repr(results))
    lines = [d.wait_access(client_port=r[2], after=since) if r and r[2] else None
             for r in results]
    ok(all(l and l["outcome"] == "ok" and l["sni"] == "example.test" and
           l["out"] > size for l in lines),
       f"{n} access lines, each outcome=ok, sni=example.test, out > 8 MiB",
       "\n".join(l["raw"] if l else "(missing)" for l in lines))


@case
def tls12_two_way_stream():
    ctx = tls_context(ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    c = TLSClient(port_echo, ctx=ctx)
    ok(c.version() == "TLSv1.2" and c.obj.cipher()[0] == "ECDHE-ECDSA-CHACHA20-POLY1305",
       "TLS 1.2 with ChaCha20-Poly1305 is offered", repr(c.obj.cipher()))
    data = os.urandom(16 * MiB)
    got, how = c.exchange(data, then="fin", timeout=30)
    c.close()
    ok(len(got) == len(data) and got == data and how in ("close_notify", "eof"),
       "16 MiB sent and echoed at the same time (TLS 1.2): all bytes back, in order, then EOF",
       f"got {len(got)} of {len(data)} bytes, end: {how}")
    l = d.wait_access(client_port=c.local_port, after=c.started)
    ok(l is not None and l["in"] == len(data) and l["out"] == len(data) and
       l["outcome"] == "ok" and l["cipher"] == "ECDHE-ECDSA-CHACHA20-POLY1305",
       "access: in = out = 16 MiB exactly, outcome=ok, the cipher named", l and l["raw"])


@case
def quiet_then_more():
    # A connection quiet for over a second gives its emptied buffers and
    # stack back to the kernel (tlsoffd(8), PERFORMANCE); what comes next
    # must still arrive whole.
    c = TLSClient(port_echo)
    first = os.urandom(1 * MiB)
    c.send(first)
    got1 = c.recv_exact(len(first), timeout=30)[0]
    time.sleep(1.6)     # pacing, not a check: past the 1 s idle release
    second = os.urandom(1 * MiB)
    c.send(second)
    got2 = c.recv_exact(len(second), timeout=30)[0]
    c.close()
    ok(got1 == first and got2 == second,
       "1 MiB echoed, 1.6 s quiet (buffers released), then 1 MiB more: all bytes, in order",
       f"{len(got1)} and {len(got2)} bytes")


@case
def many_small_requests():
    bad = []
    for i in range(30):
        r = curl(port, f"/bytes/{i * 997}", timeout=10)
        if r.returncode != 0 or r.stdout != pattern_bytes(i * 997):
            bad.append((i, r.returncode, len(r.stdout), r.stderr))
            break
    ok(not bad, "30 sequential requests of 0..29 KB all intact", repr(bad))


workers_before = set(d.known_workers)
ok(set(d.worker_pids()) == workers_before,
   "the same workers still run after the transfers (no crash, no respawn)",
   f"before {sorted(workers_before)}, now {d.worker_pids()}")
d.stop()
be.stop()
echo.stop()
done()
