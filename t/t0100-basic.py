#!/usr/bin/env python3
"""Basics: requests through the daemon with curl and openssl s_client, the
access log, IPv6, refused protocol versions and ciphers, -v, jemalloc."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "alpha")
be_rsa = Backend("http", "bravo")
port = free_port(ipv6=True)
port_rsa = free_port()
d = Daemon(frontends=[
    {"name": "web", "listen": [f"127.0.0.1:{port}", f"[::1]:{port}"], "upstream": "app"},
    {"name": "web-rsa", "listen": [f"127.0.0.1:{port_rsa}"], "upstream": "app-rsa",
     "cert": os.path.join(CERTS, "rsa.test.pem"), "key": os.path.join(CERTS, "rsa.test.key")},
], upstreams={"app": be.address, "app-rsa": be_rsa.address})

W = ["-w", r"\n%{local_port}"]


def body_and_port(r):
    """curl -w '\\n%{local_port}': the body and the client's port."""
    out = r.stdout.decode(errors="replace")
    body, _, lp = out.rpartition("\n")
    return body + ("\n" if body else ""), int(lp) if lp.isdigit() else None


@case
def curl_ipv4():
    t = stamp()
    r = curl(port, "/", args=W)
    body, lport = body_and_port(r)
    body = body[:-1] if body.endswith("\n\n") else body
    ok(r.returncode == 0 and body == "hello from alpha\n",
       "curl https://example.test/ through the daemon: body is the backend's",
       f"rc={r.returncode} body={body!r} stderr={r.stderr!r}")
    l = d.wait_access(client_port=lport, after=t) if lport else None
    ok(l is not None, "the request has an access log line", f"client port {lport}")
    if not l:
        return
    ok(l.get("outcome") == "ok" and "reason" not in l, "access: outcome=ok, no reason", l["raw"])
    ok(l.get("tls") == "TLSv1.3", "access: tls=TLSv1.3 (curl's default, the best offered)",
       l["raw"])
    ok(l.get("sni") == "example.test", "access: sni=example.test", l["raw"])
    ok(l.get("frontend") == "web", "access: frontend=web", l["raw"])
    ok(l.get("backend") == be.address, f"access: backend={be.address}", l["raw"])
    ok(l.get("client") == f"127.0.0.1:{lport}", "access: client=127.0.0.1:<curl's port>",
       l["raw"])
    ok(re.match(r"TLS13-|TLS_", l.get("cipher", "")) is not None,
       "access: a TLS 1.3 cipher is named", l["raw"])
    # curl's GET is ~80 bytes; the answer is headers + 17 bytes of body.
    ok(50 < l["in"] < 300 and 80 < l["out"] < 300,
       "access: in and out are the request's and the response's sizes", l["raw"])
    ok(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", l["ts"]) is not None,
       "access: the line starts with an ISO 8601 UTC timestamp", l["raw"])
    ok(0 <= l["duration"] < 5, "access: a plausible duration", l["raw"])


@case
def curl_ipv6():
    t = stamp()
    r = curl(port, "/", host="::1", args=W)
    body, lport = body_and_port(r)
    ok(r.returncode == 0 and body.startswith("hello from alpha\n"),
       "curl over the [::1] listener", f"rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")
    l = d.wait_access(client=f"[::1]:{lport}", after=t) if lport else None
    ok(l is not None and l["outcome"] == "ok" and l["frontend"] == "web",
       "access: client=[::1]:port, outcome=ok", l and l["raw"])


@case
def curl_rsa():
    r = curl(port_rsa, "/", name="rsa.test")
    ok(r.returncode == 0 and r.stdout == b"hello from bravo\n",
       "a second frontend with an RSA certificate serves its own upstream",
       f"rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")


def s_client_get(version_flag, extra=()):
    return s_client(port, ["-servername", "example.test", version_flag, "-ign_eof",
                           "-verify_return_error", *extra],
                    input=b"GET / HTTP/1.0\r\n\r\n")


@case
def s_client_versions():
    for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        before = len(d.access())
        r = s_client_get(flag)
        out = r.stdout.decode(errors="replace")
        ok(r.returncode == 0 and f"Protocol  : {proto}" in out,
           f"openssl s_client {flag}: Protocol  : {proto}",
           f"rc={r.returncode}\n{out[-1500:]}\n{r.stderr.decode(errors='replace')[-800:]}")
        ok("hello from alpha" in out and "Verify return code: 0 (ok)" in out,
           f"s_client {flag}: verified chain and the backend's answer", out[-1500:])
        # A line of an earlier connection (another frontend) may land late.
        new = poll_until(lambda: [a for a in d.access()[before:] if a["frontend"] == "web"], 5)
        l = new[0] if new else None
        ok(l is not None and l["outcome"] == "ok" and l["tls"] == proto and l["in"] == 18,
           f"access: tls={proto}, outcome=ok, in=18 (the request)", l and l["raw"])
    l12 = d.wait_access(tls="TLSv1.2")
    ok(l12 is not None and re.match(r"ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20)",
                                    l12["cipher"]) is not None,
       "TLS 1.2: an ECDHE AEAD cipher was chosen", l12 and l12["raw"])


@case
def no_sni():
    r = s_client(port, ["-noservername", "-tls1_3", "-ign_eof"],
                 input=b"GET / HTTP/1.0\r\n\r\n")
    out = r.stdout.decode(errors="replace")
    ok(r.returncode == 0 and "hello from alpha" in out, "a client without SNI is served",
       out[-800:])
    l = d.wait_access(sni="-")
    ok(l is not None and l["outcome"] == "ok", "access: sni=- without SNI", l and l["raw"])


@case
def tls11_refused():
    before = len(d.access())
    r = s_client(port, ["-servername", "example.test", "-tls1_1", "-cipher",
                        "DEFAULT@SECLEVEL=0"])
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    # (s_client prints "Protocol  : TLSv1.1" for the attempt even when it fails.)
    ok(r.returncode != 0 and "Cipher is (NONE)" in out and "New, TLSv1.1" not in out,
       "TLS 1.1 (offered with SECLEVEL=0) is refused", f"rc={r.returncode}\n{out[-1500:]}")
    l = poll_until(lambda: [x for x in d.access()[before:] if x["outcome"] != "ok"], 5)
    ok(l and l[0]["outcome"] == "handshake-failed" and l[0].get("reason") and
       l[0]["tls"] == "-", "access: outcome=handshake-failed with a reason, tls=-",
       l and l[0]["raw"])


@case
def weak_ciphers_refused():
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"):
        before = len(d.access())
        r = s_client(port, ["-servername", "example.test", "-tls1_2", "-cipher", cipher])
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        ok(r.returncode != 0 and "Cipher is (NONE)" in out,
           f"TLS 1.2 client offering only {cipher} (non-AEAD or no forward secrecy) "
           f"is refused", f"rc={r.returncode}\n{out[-1200:]}")
        l = poll_until(lambda: d.access()[before:], 5)
        ok(l and l[0]["outcome"] == "handshake-failed",
           f"access: {cipher}: outcome=handshake-failed", l and l[0]["raw"])
    r = s_client(port, ["-servername", "example.test", "-tls1_2", "-cipher",
                        "NULL-SHA256:eNULL@SECLEVEL=0"])
    out = r.stdout.decode(errors="replace")
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "TLS 1.2 client offering only NULL ciphers is refused", out[-1200:])


@case
def version_output():
    r = run([TLSOFFD, "-v"])
    out = r.stdout.decode(errors="replace")
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    ok(r.returncode == 0 and out.startswith(f"tlsoffd {version}\n"),
       f"tlsoffd -v starts with 'tlsoffd {version}'", out)
    ldd = run(["ldd", TLSOFFD]).stdout.decode(errors="replace")
    loaded = {os.path.realpath(x) for x in re.findall(r"=> (\S*libwolfssl\S*)", ldd)}
    m = re.search(r"^wolfSSL \d+\.\d+\.\d+ \((static|shared, (/\S+libwolfssl\S*))(, .*)?\)$",
                  out, re.M)
    ok(m is not None, "tlsoffd -v names the wolfSSL version and how it is linked", out)
    if m and m.group(1) == "static":
        ok(not loaded, "... static: the binary loads no libwolfssl (ldd)", ldd)
        ok(m.group(3) and "Debian source wolfssl " in m.group(3),
           "... and names the Debian source package it was built from", out)
    elif m:
        ok(os.path.realpath(m.group(2)) in loaded,
           "... shared: the file the dynamic linker resolves for the binary (ldd)", ldd)
    ok(re.search(r"^crypto acceleration: (none \(portable C|AES-NI|Intel|SP math)", out, re.M)
       is not None, "tlsoffd -v says which crypto acceleration wolfSSL has", out)
    ok(re.search(r"^libconfig \d+\.\d+\.\d+$", out, re.M) is not None,
       "tlsoffd -v names the libconfig version", out)
    r2 = run([TLSOFFD, "--version"])
    ok(r2.returncode == 0 and r2.stdout == r.stdout, "--version is -v", r2.stdout)
    if SANITIZE:
        ok("allocator: libc malloc" in out, "sanitized build: tlsoffd -v says libc malloc", out)
    else:
        ok(re.search(r"^allocator: jemalloc \d", out, re.M) is not None,
           "tlsoffd -v says allocator: jemalloc <version>", out)


def maps_have_jemalloc(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libjemalloc" in f.read()
    except FileNotFoundError:
        return False


@case
def jemalloc_mapped():
    if SANITIZE:
        skip("jemalloc is mapped in every process", "sanitized build has no jemalloc")
        return
    workers = d.worker_pids()
    ok(len(workers) == 2, "two workers run", workers)
    ok(maps_have_jemalloc(d.pid), "the master has libjemalloc mapped")
    for w in workers:
        ok(maps_have_jemalloc(w), f"worker pid {w} has libjemalloc mapped")
    ok(d.wait_log(r"master notice: tlsoffd \S+ running: 2 workers, 3 listeners"),
       "startup notice: running: 2 workers, 3 listeners")
    ok(d.wait_log(r"info: allocator: jemalloc"), "the log names the allocator")


@case
def log_format():
    text = d.log_text()
    rx = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tlsoffd\[(\d+)\]"
                    r"( master| worker \d+| health| park| keys)? (error|warning|notice|info|debug): ")
    bad = [l for l in text.splitlines() if not rx.match(l)]
    ok(text and not bad, "every main log line is 'TIMESTAMP tlsoffd[PID] ROLE LEVEL: msg'",
       "\n".join(bad[:5]))
    for w in d.worker_pids():
        ok(re.search(rf"tlsoffd\[{w}\] worker \d+ debug: started", text) is not None,
           f"worker pid {w} logged 'started'")
    ok(not re.search(r"client=", text), "no access lines in the main log (access_log is set)",
       "\n".join(l for l in text.splitlines() if "client=" in l)[:800])


rc = d.stop()
ok(rc == 0, "SIGTERM: the master exits with status 0 (within 3 s)",
   f"status {rc} (-9: it did not exit and was killed)\n" + d.tail_text())
be.stop()
be_rsa.stop()
done()
