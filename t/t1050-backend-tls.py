#!/usr/bin/env python3
"""Re-encryption: TLS from tlsoffd to the backend (openssl s_server -www,
whose page describes the tlsoffd->backend connection): verification
against a CA and a name, refusal on a wrong CA or name (outcome
backend-tls-failed), the name checked by default (the server's address,
an IP address, IPv4 or IPv6, against an iPAddress subjectAltName), its
config error, verify = false, resumption of the backend session,
a client certificate for a backend that demands one, and health checks of
type "tls"."""
import atexit
import contextlib
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

OTHER = os.path.join(CERTS, "other.pem")       # a self-signed cert: not our CA
# By our CA, for a.test only (no IP address); CERT also has IP:127.0.0.1.
A_CRT, A_KEY = os.path.join(CERTS, "a.test.crt"), os.path.join(CERTS, "a.test.key")
IP6_CRT, IP6_KEY = os.path.join(CERTS, "ip6.crt"), os.path.join(CERTS, "ip6.key")  # IP:::1
NONE = {"type": "none"}


# ---------------------------------------------------------------- helpers

class SServer:
    """openssl s_server -www on a free port (one connection at a time),
    killed by its PID."""
    all = []

    def __init__(self, *extra, cert=CERT, key=KEY, v6=False):
        self.port = free_port()
        self.address = f"[::1]:{self.port}" if v6 else f"127.0.0.1:{self.port}"
        self.out_path = os.path.join(tmpdir(), f"s_server.{self.port}.out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-www", "-accept", self.address, "-cert", cert,
             "-key", key, *extra], stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT)
        SServer.all.append(self)
        # Listening? (a test connect would use up its one-at-a-time slot)
        listening = ((lambda: "ACCEPT" in self.output()) if v6 else
                     (lambda: listen_backlog(self.port) is not None))
        if not poll_until(lambda: listening() or self.proc.poll() is not None, 10 * SLOW) \
                or self.proc.poll() is not None:
            raise RuntimeError(f"s_server did not start: {self.output()}")

    def output(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.out.close()


@atexit.register
def _stop_sservers():
    for s in SServer.all:
        try:
            s.stop()
        except Exception:
            pass


ES = None


def case_(fn):
    """case, with everything a case starts (daemons, s_servers) stopped when
    it ends, however it ends."""
    def wrapped():
        global ES
        with contextlib.ExitStack() as ES:
            fn()
    wrapped.__name__ = fn.__name__
    return case(wrapped)


val = group = config_value     # libconfig text of a value or a dict (tlsoffd_test)


def start(name, ups, workers=2):
    """A daemon with one frontend per upstream. ups: {upstream name:
    (server settings, health settings)}. Returns (daemon, {name: port})."""
    ports = {n: free_port() for n in ups}
    fes = ",\n  ".join(
        f'{{ name = "fe-{n}"; listen = [ "127.0.0.1:{p}" ]; certificates = ( {{ cert = '
        f'{val(CERT)}; key = {val(KEY)}; }} ); upstream = "{n}"; }}' for n, p in ports.items())
    upl = ",\n  ".join(f'{{ name = "{n}"; health = {group(h)}; servers = ( {group(s)} ); }}'
                       for n, (s, h) in ups.items())
    # Relative log names (the daemon runs in its directory): Daemon looks for
    # the listen addresses before the first "upstreams" in the text, and the
    # library's absolute log paths could hold that word.
    text = ('log = { destination = "main.log"; level = "debug"; access_log = "access.log"; };\n'
            f'workers = {{ count = {workers}; }};\npidfile = "tlsoffd.pid";\n'
            f"timeouts = {{ connect = 3; idle = 10; }};\n"
            f"frontends = (\n  {fes}\n);\nupstreams = (\n  {upl}\n);\n")
    d = ES.enter_context(Daemon(text, workers=workers, pidfile="tlsoffd.pid", name=name))
    return d, ports


def tls_server(ss, **tls):
    """Server settings: ss's address, tls with the test CA and name, overridden by tls."""
    t = {"ca_file": CA, "sni": "example.test"}
    t.update(tls)
    return {"address": ss.address, "tls": {k: v for k, v in t.items() if v is not None}}


def page(port):
    """(HTTP status, body) of GET / through the daemon, with curl."""
    r = curl(port, "/", args=["-w", "\n%{http_code}"], timeout=10)
    body, _, code = r.stdout.decode(errors="replace").rpartition("\n")
    return (int(code) if code.isdigit() else None), body, r


def session_line(body):
    m = re.search(r"^(New|Reused), (TLSv1\.[23]), Cipher is (\S+)$", body, re.M)
    return m.groups() if m else None


def stats(d):
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], timeout=10, cwd=d.dir)
    out = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.startswith("server "):
            kv = {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}
            out[(kv["upstream"], kv["address"])] = kv
    return out


def refused(d, port, ss, upname, what):
    """Checks that a connection through port is refused because TLS to ss
    fails: clean close for the client, outcome backend-tls-failed with a
    reason, and the main log's warning."""
    since = stamp()
    c = TLSClient(port)
    got, how = c.exchange(b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    c.close()
    ok(got == b"" and how in ("close_notify", "eof"),
       f"{what}: the client gets nothing; its connection is closed", (got[:200], how))
    a = d.wait_access(after=since, client_port=c.local_port)
    ok(a is not None and a["outcome"] == "backend-tls-failed"
       and re.match(rf"TLS to {re.escape(ss.address)}: \S", a.get("reason", "")),
       f"{what}: access line outcome=backend-tls-failed, with a reason", a and a["raw"])
    rx = rf"upstream '{upname}': TLS to server {re.escape(ss.address)} failed: \S"
    m = d.wait_log(rx, 3)
    ok(m, f"{what}: the main log says 'TLS to server ... failed'")
    return a


def served(port, what):
    """Checks that curl through port gets s_server's page."""
    code, body, r = page(port)
    ok(code == 200 and session_line(body), f"{what}: 200", (code, r.stderr, body[-300:]))


def mismatch(d, port, ss, upname, what):
    """refused, for the certificate's name."""
    a = refused(d, port, ss, upname, what)
    ok(a is not None and "name mismatch (-322)" in a.get("reason", ""),
       f"{what}: the reason is the name mismatch", a and a.get("reason"))


# ---------------------------------------------------------------- cases

ss = SServer()


@case_
def verified():
    d, p = start("verified", {"good": (tls_server(ss), NONE)})
    code, body, r = page(p["good"])
    ok(code == 200 and "s_server -www" in body and session_line(body),
       "tls with the test CA and name: curl gets s_server's page (200)",
       (code, r.stderr, body[-300:]))
    a = d.wait_access(outcome="ok", backend=ss.address)
    ok(a is not None, "the access line says ok, backend = the TLS server")


@case_
def backend_resumption():
    d, p = start("resume", {"good": (tls_server(ss), NONE)}, workers=1)
    seen = []
    for _ in range(4):
        code, body, r = page(p["good"])
        seen.append((code, session_line(body)))
    ok(all(c == 200 for c, _ in seen), "resumption: four requests through one worker: 200",
       seen)
    ok(seen[0][1] and seen[0][1][0] == "New", "resumption: the first backend session is New",
       seen)
    ok(all(s and s[0] == "Reused" for _, s in seen[1:]),
       "resumption: the later ones resume it (s_server: 'Reused, TLSv1.x, Cipher is ...')",
       seen)


@case_
def wrong_ca():
    d, p = start("wrongca", {"wrongca": (tls_server(ss, ca_file=OTHER), NONE)})
    a = refused(d, p["wrongca"], ss, "wrongca", "wrong CA")
    if a:
        diag(f"reason: {a.get('reason')}")
    code, body, r = page(p["wrongca"])
    ok(code != 200 and r.returncode != 0, "wrong CA: curl gets no page", (code, r.returncode))


@case_
def wrong_name():
    d, p = start("wrongname", {
        "badsni": (tls_server(ss, sni="wrong.test"), NONE),
        "badname": (tls_server(ss, verify_name="wrong.test"), NONE)})
    a = refused(d, p["badsni"], ss, "badsni", "sni = wrong.test")
    if a:
        diag(f"reason: {a.get('reason')}")
    a = refused(d, p["badname"], ss, "badname", "sni = example.test, verify_name = wrong.test")
    if a:
        diag(f"reason: {a.get('reason')}")


@case_
def default_name():
    sa = SServer(cert=A_CRT, key=A_KEY)
    ES.callback(sa.stop)
    d, p = start("defname", {
        "ipsan": (tls_server(ss, sni=None), NONE),
        "other": (tls_server(sa, sni=None), NONE),
        "named": (tls_server(sa, sni=None, verify_name="a.test"), NONE)})
    served(p["ipsan"], "no sni nor verify_name, a certificate with IP:127.0.0.1 (the "
           "address is checked against it)")
    mismatch(d, p["other"], sa, "other", "no sni nor verify_name, a certificate for a.test")
    served(p["named"], "the same server with verify_name = a.test")


@case_
def default_name_ipv6():
    s6 = SServer(cert=IP6_CRT, key=IP6_KEY, v6=True)
    ES.callback(s6.stop)
    s6x = SServer(v6=True)                 # example.test, localhost, IP:127.0.0.1: not ::1
    ES.callback(s6x.stop)
    d, p = start("defname6", {"ipsan": (tls_server(s6, sni=None), NONE),
                              "other": (tls_server(s6x, sni=None), NONE)})
    served(p["ipsan"], "a server at [::1], a certificate with IP:::1, no name set")
    mismatch(d, p["other"], s6x, "other", "a server at [::1], a certificate without ::1")


@case_
def default_name_health():
    sa = SServer(cert=A_CRT, key=A_KEY)
    ES.callback(sa.stop)
    h = {"type": "tls", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
    d, p = start("defnameh", {"other": (tls_server(sa, sni=None), h),
                              "named": (tls_server(sa, sni=None, verify_name="a.test"), h)})
    bound = h["fall"] * h["interval"] + h["timeout"] + 2.0 * SLOW
    m = d.wait_log(rf"upstream 'other': server {re.escape(sa.address)} is down: TLS",
                   bound / SLOW)
    ok(m, "tls check, no name set, a certificate for a.test: the server is marked down",
       [l for l in d.log_text().splitlines() if "'other'" in l][-3:])
    good = re.compile(rf"upstream 'named': server {re.escape(sa.address)}: TLS handshake")
    n = poll_until(lambda: len(good.findall(d.log_text())) >= 3, 5 * SLOW)
    ok(n and not re.search(r"upstream 'named': server \S+ is down", d.log_text()),
       "tls check with verify_name = a.test: passes, never down",
       [l for l in d.log_text().splitlines() if "'named'" in l][-3:])


@case
def default_name_config_error():
    conf = ['frontends = ( { name = "f"; listen = "127.0.0.1:1";',
            f'  certificates = ( {{ cert = {val(CERT)}; key = {val(KEY)}; }} ); upstream = "u"; }} );',
            'upstreams = ( { name = "u"; servers = ( { address = "*:8443";',
            '  tls = true; } ); } );']
    rc, err, line, path = check_config(conf, "noname")
    ok(rc != 0 and line == 4 and "set tls.verify_name (or sni)" in err,
       "tls = true to the address *:8443: refused at FILE:4, saying to set verify_name",
       (rc, err))
    conf[3] = '  tls = { verify_name = "a.test"; }; } ); } );'
    rc, err, line, path = check_config(conf, "named")
    ok(rc == 0, "the same with verify_name: accepted", (rc, err))


@case_
def no_verify():
    d, p = start("noverify", {"nv": (tls_server(ss, ca_file=OTHER, verify=False), NONE)})
    code, body, r = page(p["nv"])
    ok(code == 200 and session_line(body), "verify = false with the wrong CA: it works (200)",
       (code, r.stderr, body[-300:]))


@case_
def client_certificate():
    mt = SServer("-Verify", "1", "-CAfile", CA)
    ES.callback(mt.stop)
    d, p = start("mtls", {
        "nocert": (tls_server(mt), NONE),
        "cert": (tls_server(mt, cert=CERT, key=KEY), NONE)})
    since = stamp()
    code, body, r = page(p["nocert"])
    ok(code != 200 and "s_server -www" not in body,
       "mTLS backend, no client certificate: no page", (code, body[-300:]))
    a = d.wait_access(after=since, frontend="fe-nocert")
    ok(a is not None and a["outcome"] != "ok", "mTLS backend, no client certificate: "
       "the access line is not ok", a and a["raw"])
    if a:
        diag(f"outcome={a['outcome']} reason={a.get('reason')}")
    code, body, r = page(p["cert"])
    ok(code == 200 and session_line(body), "mTLS backend, cert and key set: 200",
       (code, r.stderr, body[-300:]))
    ok("Client certificate" in body and re.search(r"Subject: CN ?= ?example\.test", body),
       "mTLS: s_server's page shows the client certificate (CN=example.test)", body[-600:])


@case_
def tls_health_check():
    h = {"type": "tls", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
    d, p = start("health", {"good": (tls_server(ss), h), "bad": (tls_server(ss, ca_file=OTHER), h)})
    bound = h["fall"] * h["interval"] + h["timeout"] + 2.0 * SLOW
    m = d.wait_log(rf"upstream 'bad': server {re.escape(ss.address)} is down: TLS", bound / SLOW)
    ok(m, "tls check with the wrong CA: the server is marked down (log line)",
       [l for l in d.log_text().splitlines() if "'bad'" in l][-3:])
    good = re.compile(rf"upstream 'good': server {re.escape(ss.address)}: TLS handshake")
    n = poll_until(lambda: len(good.findall(d.log_text())) >= 4, 5 * SLOW)
    ok(n, "tls check with the right CA: passes (4 good checks logged)",
       [l for l in d.log_text().splitlines() if "'good'" in l][-3:])
    st = stats(d)
    ok(st.get(("good", ss.address), {}).get("state") == "up"
       and st.get(("bad", ss.address), {}).get("state") == "down",
       "-s stats: good is up, bad is down", st)
    ok(not re.search(r"upstream 'good': server \S+ is down", d.log_text()),
       "tls check with the right CA: never marked down")
    code, body, r = page(p["good"])
    ok(code == 200, "the healthy TLS server serves (200)", (code, r.stderr))
    since = stamp()
    c = TLSClient(p["bad"])
    got, how = c.exchange(b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    c.close()
    a = d.wait_access(after=since, client_port=c.local_port)
    ok(got == b"" and a is not None and a["outcome"] == "no-server",
       "with its only server down, the bad upstream turns clients away (no-server)",
       (got[:100], a and a["raw"]))


ss.stop()
done()
