#!/usr/bin/env python3
"""Captures the ClientHello a TLS client sends, for the fuzzing corpus.

    python3 t/fuzz/capture.py OUT -- CLIENT ARGS... {port}

listens on a free 127.0.0.1 port, runs the client with {port} replaced by
that port, records the bytes it receives until a whole ClientHello has
arrived (or 2 s pass), writes them to OUT and closes the connection, so the
client gives up. The client is killed after 10 s. Runs nothing as root that
the caller did not name; listens on 127.0.0.1 only.
"""
import socket
import subprocess
import sys
import time


def hello_complete(buf):
    """Whether buf holds whole records carrying a whole handshake message."""
    msg, off = b"", 0
    while len(buf) - off >= 5:
        n = buf[off + 3] << 8 | buf[off + 4]
        if len(buf) - off - 5 < n:
            return False
        msg += buf[off + 5:off + 5 + n]
        off += 5 + n
        if len(msg) >= 4 and len(msg) >= 4 + (msg[1] << 16 | msg[2] << 8 | msg[3]):
            return True
    return False


def capture(out, argv):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)
    port = ls.getsockname()[1]
    cmd = [a.replace("{port}", str(port)) for a in argv]
    client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        conn, _ = ls.accept()
        buf, deadline = b"", time.monotonic() + 2
        while not hello_complete(buf) and time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
        conn.close()
    finally:
        try:
            client.wait(10)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
        ls.close()
    with open(out, "wb") as f:
        f.write(buf)
    print(f"{out}: {len(buf)} bytes{'' if hello_complete(buf) else ' (incomplete)'}")


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    capture(sys.argv[1], sys.argv[3:])
