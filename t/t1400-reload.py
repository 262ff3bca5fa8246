#!/usr/bin/env python3
"""HUP reload under load: a changed certificate is served afterwards with no
failed connection meanwhile; a 64 MiB transfer in flight completes intact;
sessions and ticket keys survive; listeners are added and removed; a broken
configuration leaves the running one serving."""
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

be = Backend("http", "reload")
work = os.path.join(tmpdir(), "certs")
os.makedirs(work)
cert, key = os.path.join(work, "server.pem"), os.path.join(work, "server.key")


def use_cert(name):
    shutil.copy(os.path.join(CERTS, f"{name}.pem"), cert)
    shutil.copy(os.path.join(CERTS, f"{name}.key"), key)


def config(ports, extra=""):
    listen = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    return (f'pidfile = "tlsoffd.pid";\nworkers = {{ count = 3; }};\n{extra}\n'
            f'frontends = ( {{ name = "fe"; listen = [ {listen} ];\n'
            f'  certificates = ( {{ cert = "{cert}"; key = "{key}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def served_cn(port):
    r = s_client(port, ["-servername", "example.test"], input=b"")
    m = re.search(r"subject=CN = (\S+)", r.stdout.decode(errors="replace"))
    return m.group(1) if m else None


class Load:
    """A bounded client loop until stopped (at most 60 s), counting failures:
    4 threads of curl requests (full handshakes) and 2 of openssl s_client
    resuming a saved TLS 1.2 session (resumed handshakes)."""

    def __init__(self, port, sess):
        self.port, self.sess, self.stop_at = port, sess, time.monotonic() + 60
        self.ok, self.resumed, self.failed = 0, 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop) for _ in range(4)] + \
                       [threading.Thread(target=self.resume_loop) for _ in range(2)]
        for t in self.threads:
            t.start()

    def resume_loop(self):
        while time.monotonic() < self.stop_at:
            r = s_client(self.port, ["-tls1_2", "-servername", "example.test", "-sess_in",
                                     self.sess, "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n")
            out = r.stdout.decode(errors="replace")
            with self.lock:
                if "hello from reload" in out:
                    self.resumed += "\nReused, TLSv1.2" in out
                    self.ok += 1
                else:
                    self.failed.append(("s_client", out[-200:]))

    def loop(self):
        while time.monotonic() < self.stop_at:
            r = curl(self.port, "/", args=["-k"], timeout=10)
            with self.lock:
                if r.returncode == 0 and r.stdout == b"hello from reload\n":
                    self.ok += 1
                else:
                    self.failed.append((r.returncode, r.stderr[:120]))

    def finish(self):
        self.stop_at = 0
        for t in self.threads:
            t.join()
        return self.ok, self.failed


use_cert("example.test")
p1, p2 = free_port(), free_port()
d = Daemon(config([p1]), workers=3, name="r")
# The log and limits settings the library added: every rewritten file keeps them.
LOG = "\n".join(l for l in d.config.splitlines() if re.match(r"(log|daemon|limits) =", l))


def rewrite(text):
    with open(d.conf_path, "w") as f:
        f.write(LOG + "\n" + text)


@case
def reload_under_load():
    ok(served_cn(p1) == "example.test", "before: the first certificate is served")
    sess = os.path.join(d.dir, "sess")
    r = s_client(p1, ["-tls1_2", "-servername", "example.test", "-sess_out", sess, "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    big = subprocess.Popen(["curl", "-sS", "-k", "--limit-rate", "20M", "--max-time", "60",
                            "--resolve", f"example.test:{p1}:127.0.0.1",
                            f"https://example.test:{p1}/bytes/67108864"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    load = Load(p1, sess)
    time.sleep(0.5 * SLOW)
    use_cert("rsa.test")
    rewrite(config([p1, p2]))
    d.send_signal(signal.SIGHUP)
    ok(d.wait_log(r"SIGHUP: configuration reloaded"), "SIGHUP: the master reloads")
    time.sleep(1.0 * SLOW)
    n, failed = load.finish()
    ok(n > 20 and not failed, f"{n} requests during the reload, none failed", failed[:5])
    ok(load.resumed > 3, f"{load.resumed} of them were resumed TLS 1.2 handshakes")
    ok(poll_until(lambda: served_cn(p1) == "rsa.test", 5), "after: the new certificate is served")
    ok(served_cn(p2) == "rsa.test", "a listener added by the new configuration serves")
    out, err = big.communicate(timeout=90)
    ok(big.returncode == 0 and len(out) == 64 << 20 and out == pattern_bytes(64 << 20),
       "a 64 MiB download in flight across the reload completes intact",
       f"rc={big.returncode} len={len(out)} {err[:200]!r}")
    r = s_client(p1, ["-tls1_2", "-servername", "example.test", "-sess_in", sess, "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    ok(re.search(r"^New, TLSv1\.2", r.stdout.decode(errors="replace"), re.M) is not None,
       "a TLS 1.2 session made with the certificate the reload replaced does not resume "
       "(sessions are bound to their certificate)")
    sess2 = sess + "2"
    r = s_client(p1, ["-tls1_2", "-servername", "example.test", "-sess_out", sess2, "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    n = len(re.findall("configuration reloaded", d.log_text()))
    d.send_signal(signal.SIGHUP)
    ok(poll_until(lambda: len(re.findall("configuration reloaded", d.log_text())) > n, 5),
       "SIGHUP again, the certificate unchanged: reloaded")
    r = s_client(p1, ["-tls1_2", "-servername", "example.test", "-sess_in", sess2, "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    ok(re.search(r"^Reused, TLSv1\.2", r.stdout.decode(errors="replace"), re.M) is not None,
       "a TLS 1.2 session from before that reload resumes after it (ticket keys kept)")


@case
def broken_config_keeps_serving():
    good = open(d.conf_path).read()
    with open(d.conf_path, "w") as f:
        f.write(good.replace("workers = {", "workers = { bogus = 1;"))
    # The last reload's retired workers may still be finishing: wait for
    # the current generation alone.
    poll_until(lambda: len(d.worker_pids()) == 3, 10)
    workers = set(d.worker_pids())
    d.send_signal(signal.SIGHUP)
    ok(d.wait_log(r"master error: SIGHUP: reload failed, still serving with the previous "
                  r"configuration: .*tlsoffd\.conf:\d+: workers\.bogus: unknown key"),
       "a broken configuration: the reload fails with FILE:LINE and the reason")
    ok(set(d.worker_pids()) == workers, "the workers are the same")
    r = curl(p1, "/", args=["-k"])
    ok(r.returncode == 0 and r.stdout == b"hello from reload\n", "and still serve")
    os.remove(key)
    with open(d.conf_path, "w") as f:
        f.write(good)
    d.send_signal(signal.SIGHUP)
    ok(d.wait_log(r"reload failed, still serving with the previous configuration: .*key "
                  r"'[^']+': No such file"), "a missing key: the reload fails and says which")
    use_cert("rsa.test")


@case
def listener_removed():
    rewrite(config([p1]))
    n = len(re.findall("configuration reloaded", d.log_text()))
    d.send_signal(signal.SIGHUP)
    ok(poll_until(lambda: len(re.findall("configuration reloaded", d.log_text())) > n, 5),
       "reloaded without the second listener")
    ok(poll_until(lambda: curl(p2, "/", args=["-k"], timeout=3).returncode != 0, 5),
       "the removed listener no longer serves")
    r = curl(p1, "/", args=["-k"])
    ok(r.returncode == 0, "the kept one does", r.stderr)


d.stop()
be.stop()
done()
