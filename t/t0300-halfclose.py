#!/usr/bin/env python3
"""Half-close: a client's FIN or close_notify reaches the backend as
shutdown(SHUT_WR) while the backend's answer still flows back; a backend's
EOF reaches the client as close_notify + FIN after all its bytes."""
import fcntl
import hashlib
import os
import socket
import ssl
import struct
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

KiB, MiB = 1024, 1 << 20

DOWNLOAD = 4 * MiB


def download_and_sink(conn):
    """A backend that sends DOWNLOAD bytes at once while it reads whatever
    comes, and closes when its input ends (the daemon's half-close)."""
    def sink():
        while conn.recv(65536):
            pass
    t = threading.Thread(target=sink, daemon=True)
    t.start()
    conn.sendall(pattern_bytes(DOWNLOAD))
    t.join(30 * SLOW)
    conn.close()


echo = Backend("echo", "echo")
http = Backend("http", "web")
dl = PyBackend(download_and_sink)
p_echo, p_http, p_dl = free_port(), free_port(), free_port()
d = Daemon(frontends=[
    {"name": "echo", "listen": [f"127.0.0.1:{p_echo}"], "upstream": "echo"},
    {"name": "http", "listen": [f"127.0.0.1:{p_http}"], "upstream": "http"},
    {"name": "dl", "listen": [f"127.0.0.1:{p_dl}"], "upstream": "dl"},
], upstreams={"echo": echo.address, "http": http.address, "dl": dl.address},
    timeouts={"idle": 20})


def check_access(lport, n_in, n_out, what, after=None):
    l = d.wait_access(client_port=lport, after=after)
    ok(l is not None and l["outcome"] == "ok" and l["in"] == n_in and l["out"] == n_out,
       f"{what}: access outcome=ok in={n_in} out={n_out}", l and l["raw"])


@case
def sslsocket_shut_wr():
    # The plain way: SSLSocket with the socket-level shutdown (SSLSocket.shutdown
    # would drop the TLS layer first, so call the base class's).
    t = stamp()
    s = tls_connect(p_echo)
    lport = s.getsockname()[1]
    data = os.urandom(64 * KiB)
    s.sendall(data)
    socket.socket.shutdown(s, socket.SHUT_WR)
    got = bytearray()
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        how = "eof"
    except (ssl.SSLError, OSError) as e:
        how = repr(e)
    s.close()
    ok(got == data and how == "eof",
       "SSLSocket: 64 KiB sent, TCP SHUT_WR, all 64 KiB echoed back, then EOF",
       f"got {len(got)} bytes, end {how}")
    check_access(lport, len(data), len(data), "SSLSocket SHUT_WR", t)


# A half-close by close_notify is TLS 1.3 only: in TLS 1.2 (RFC 5246 7.2.1) a
# party that sent close_notify may drop what still arrives, and OpenSSL does,
# at times. So TLS 1.2 is tested with a TCP half-close only.
for version, then in ((None, "fin"), (None, "close_notify"), (ssl.TLSVersion.TLSv1_2, "fin")):
    vname = "TLS 1.2" if version else "TLS 1.3"
    what = f"{vname}, {then}"
    variant = f"{'tls12' if version else 'tls13'}-{then}"      # tls13-close_notify

    @case(f"echo_half_close/{variant}")
    def echo_half_close():
        data = os.urandom(4 * MiB)
        c = TLSClient(p_echo, version=version)
        got, how = c.exchange(data, then=then, timeout=20)
        c.close()
        ok(got == data, f"echo, {what} after 4 MiB: every byte comes back after the "
           f"client's half-close", f"got {len(got)} of {len(data)}, end {how}")
        ok(how == "close_notify", f"echo, {what}: then the daemon ends with close_notify",
           f"end {how}")
        check_access(c.local_port, len(data), len(data), f"echo, {what}", c.started)

    @case(f"sha256_until_eof/{variant}")
    def sha256_until_eof():
        # No Content-Length: the backend reads to EOF and only then answers,
        # so the answer exists only if the half-close was passed on and the
        # reverse direction stayed open.
        c = TLSClient(p_http, version=version)
        body = os.urandom(1 * MiB + 17)
        req = b"POST /sha256 HTTP/1.1\r\nHost: example.test\r\n\r\n"
        got, how = c.exchange(req + body, then=then, timeout=20)
        c.close()
        want = f"{hashlib.sha256(body).hexdigest()} {len(body)}\n".encode()
        ok(got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\n" + want),
           f"POST to EOF, {what}: the backend saw EOF and its answer came back",
           f"got {got[-200:]!r}, end {how}")
        ok(how in ("close_notify", "eof"), f"POST to EOF, {what}: then the connection ends",
           how)
        check_access(c.local_port, len(req) + len(body), len(got), f"POST to EOF, {what}",
                     c.started)


@case
def close_notify_with_records_waiting():
    # The client sends its close_notify while echoed records it has not read
    # yet are waiting in its TLS object: it still reads every one of them, and
    # then the daemon's close_notify. (This is what made the 4 MiB case above
    # fail now and then, on the client's side: see TLSClient.exchange.)
    c = TLSClient(p_echo)
    data = os.urandom(64 * KiB)
    c.exchange(data, read=False)
    deadline = time.monotonic() + 10 * SLOW
    try:
        while c.inc.pending < len(data) and not c.eof:     # ciphertext: more than data
            c._io(deadline, want_read=True)
    except TimeoutError:
        pass
    waiting = c.inc.pending
    got, how = c.exchange(b"", then="close_notify", timeout=10)
    c.close()
    ok(waiting >= len(data) and got == data and how == "close_notify",
       "close_notify sent with 64 KiB of echoed records not yet read: all of them come "
       "back, then the daemon's close_notify",
       f"{waiting} bytes waiting; got {len(got)} of {len(data)}, end {how}")
    check_access(c.local_port, len(data), len(data), "close_notify with records waiting",
                 c.started)


def _unread(sock):
    """Bytes waiting in sock's receive queue."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]


@case
def close_notify_while_download_flows():
    # A download fills the way back to the client; then the client sends 48
    # KiB and its close_notify, reading on. The daemon reads those three
    # records and the close_notify in one turn, and must pass the half-close
    # on to the backend, which then ends the download with its EOF.
    # The relay once lost a close_notify read in its loop that joins
    # records (wolfSSL forgets it after the next write): every run failed.
    c = TLSClient(p_dl)
    buffered = poll_until(lambda: _unread(c.sock) >= 64 * KiB, 5 * SLOW)
    got, how = c.exchange(os.urandom(48 * KiB), then="close_notify", timeout=5)
    c.close()
    ok(buffered, "the download fills the client's socket first (64 KiB unread)")
    ok(got == pattern_bytes(DOWNLOAD) and how == "close_notify",
       "close_notify after 48 KiB while a download flows: the backend sees the "
       "half-close, the download ends, then the daemon's close_notify",
       f"got {len(got)} of {DOWNLOAD}, end {how}")
    check_access(c.local_port, 48 * KiB, DOWNLOAD, "close_notify while a download flows",
                 c.started)


@case
def backend_closes_first():
    for n in (0, 100, 3 * MiB + 5):
        c = TLSClient(p_http)
        req = f"GET /bytes/{n} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode()
        got, how = c.exchange(req, then=None, timeout=15)
        head, _, body = got.partition(b"\r\n\r\n")
        ok(head.startswith(b"HTTP/1.1 200 OK") and body == pattern_bytes(n),
           f"backend closes first ({n} bytes): the client gets the whole body",
           f"head {head[:100]!r}, body {len(body)} bytes, end {how}")
        ok(how == "close_notify", f"backend closes first ({n} bytes): then a close_notify",
           f"end {how}")
        # The client still has its write side; the daemon waits for it, then logs.
        ok(d.wait_access(client_port=c.local_port, after=c.started, timeout=0.3) is None,
           f"({n} bytes) the connection is not logged while the client's side is open")
        c.close()
        check_access(c.local_port, len(req), len(got), f"backend closes first ({n} bytes)",
                     c.started)


@case
def client_answers_close_notify():
    # The backend's close_notify arrives; the client's own close_notify is then
    # a clean end (outcome=ok), not an error.
    c = TLSClient(p_http)
    req = b"GET / HTTP/1.0\r\n\r\n"
    got, how = c.exchange(req, timeout=20)
    got2, how2 = c.exchange(b"", then="close_notify", timeout=5)
    c.close()
    ok(got.endswith(b"hello from web\n") and how == "close_notify",
       "GET /: answer then close_notify", f"{got!r} {how}")
    check_access(c.local_port, len(req), len(got), "client answers close_notify", c.started)


ok(set(d.worker_pids()) == set(d.known_workers), "no worker crashed or was respawned",
   f"{sorted(d.known_workers)} -> {d.worker_pids()}")
d.stop()
echo.stop()
http.stop()
dl.stop()
done()
