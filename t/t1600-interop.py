#!/usr/bin/env python3
"""Interoperability with a TLS stack the project did not write: GnuTLS's
gnutls-cli. TLS 1.2 and TLS 1.3 requests (ECDSA and RSA certificates, a
HelloRetryRequest, a large body), the policy refusing TLS 1.1 and CBC, and
resumption by `gnutls-cli --resume`: TLS 1.2 tickets, TLS 1.2 session IDs
and TLS 1.3 tickets, each seen by gnutls and in the access log, against a
daemon with resumption off as the control."""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

GNUTLS = shutil.which("gnutls-cli")
if not GNUTLS:
    skip("gnutls-cli interoperability", "gnutls-cli is not installed (Debian: gnutls-bin)")
    done()

REQ = b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n"
BODY = b"hello from interop\n"
TLS12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
TLS13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3"
RESUMED = "*** This is a resumed session"
ROUNDS = 3

be = Backend("http", "interop")
p_ec, p_rsa = free_port(), free_port()
d = Daemon(frontends=[
    {"name": "ec", "listen": [f"127.0.0.1:{p_ec}"], "upstream": "up"},
    {"name": "rsa", "listen": [f"127.0.0.1:{p_rsa}"], "upstream": "up",
     "cert": os.path.join(CERTS, "rsa.test.pem"), "key": os.path.join(CERTS, "rsa.test.key")},
], upstreams={"up": be.address}, workers=2, name="interop")


def gnutls(port, priority, args=(), name="example.test", input=REQ, timeout=15):
    """gnutls-cli against 127.0.0.1:port, verifying the chain against the test CA
    and the name; stdin is sent after the handshake, then (at its EOF) a
    close_notify, and it reads until the server closes. Returns (rc, stdout
    bytes, stdout+stderr text); rc -999 is a timeout."""
    argv = [GNUTLS, "--x509cafile", CA, "--sni-hostname", name, "--verify-hostname", name,
            "--priority", priority, "-p", str(port), *args, "127.0.0.1"]
    r = run(argv, input=input, timeout=timeout)
    text = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    return r.returncode, r.stdout, text


def new_lines(dm, mark, n):
    """Daemon dm's access lines after the first mark, once there are n (what
    there is after 5 s otherwise). Every step waits for all its lines, so
    lines of one step never count for the next: a worker logs a connection
    after the client may have gone (and the next one started), which a
    time stamp taken before the next step would not exclude."""
    poll_until(lambda: len(dm.access()) >= mark + n, 5 * SLOW)
    return dm.access()[mark:]


def raw(lines):
    return "\n".join(a["raw"] for a in lines) or "(no access line)"


def get(port, frontend, priority, ver, desc_re, what):
    mark = len(d.access())
    rc, _, out = gnutls(port, priority, name="rsa.test" if frontend == "rsa" else "example.test")
    ok(rc == 0 and "- Status: The certificate is trusted." in out
       and re.search(desc_re, out) and BODY.decode() in out
       and "- Peer has closed the GnuTLS connection" in out,
       f"{what}: gnutls-cli verifies the chain, GETs / and the backend's body arrives",
       f"rc={rc}\n{out[-2500:]}")
    l = new_lines(d, mark, 1)
    ok(len(l) == 1 and l[0]["frontend"] == frontend and l[0]["tls"] == ver and
       l[0]["outcome"] == "ok" and l[0]["resumed"] == "no" and l[0]["in"] == len(REQ),
       f"{what}: access log: tls={ver} outcome=ok resumed=no in={len(REQ)}", raw(l))
    return l


@case
def tls12_get():
    get(p_ec, "ec", TLS12, "TLSv1.2", r"Description: \(TLS1\.2-X\.509\)-\(ECDHE-[A-Z0-9]+\)"
        r"-\(ECDSA-SHA(256|384|512)\)-\((AES-(128|256)-GCM|CHACHA20-POLY1305)\)", "TLS 1.2, ECDSA")


@case
def tls13_get():
    get(p_ec, "ec", TLS13, "TLSv1.3", r"Description: \(TLS1\.3-X\.509\)-\(ECDHE-X25519\)"
        r"-\(ECDSA-SECP256R1-SHA256\)", "TLS 1.3, ECDSA, X25519")


@case
def rsa_certificate():
    l = get(p_rsa, "rsa", TLS12, "TLSv1.2",
            r"Description: \(TLS1\.2-X\.509\)-\(ECDHE-[A-Z0-9]+\)-\(RSA", "TLS 1.2, RSA")
    ok(l and "RSA" in l[0]["cipher"], "TLS 1.2, RSA: an ECDHE-RSA suite", raw(l))
    # TLS 1.3 signs with RSA-PSS only: the daemon must pick a PSS scheme gnutls offers.
    get(p_rsa, "rsa", TLS13, "TLSv1.3", r"Description: \(TLS1\.3-X\.509\)-\(ECDHE-[A-Z0-9]+\)"
        r"-\(RSA-PSS-RSAE-SHA(256|384|512)\)", "TLS 1.3, RSA (RSA-PSS signature)")


@case
def hello_retry_request():
    # Only a P-384 key share (P-384 then P-256 supported): the server, whose
    # groups are X25519 and P-256, must ask again for P-256.
    mark = len(d.access())
    rc, _, out = gnutls(p_ec, TLS13 + ":-GROUP-ALL:+GROUP-SECP384R1:+GROUP-SECP256R1",
                        ["-d", "4"])
    ok(rc == 0 and "HELLO RETRY REQUEST" in out and "HRR key share with SECP256R1" in out
       and "(ECDHE-SECP256R1)" in out and BODY.decode() in out,
       "TLS 1.3: a client offering only a P-384 key share gets a HelloRetryRequest for "
       "P-256 and then its response", f"rc={rc}\n{out[-2500:]}")
    l = new_lines(d, mark, 1)
    ok(len(l) == 1 and l[0]["tls"] == "TLSv1.3" and l[0]["outcome"] == "ok",
       "HelloRetryRequest: access log tls=TLSv1.3 outcome=ok", raw(l))


@case
def large_body():
    n = 3 * 1024 * 1024 + 7
    for prio, ver in ((TLS12, "TLSv1.2"), (TLS13, "TLSv1.3")):
        mark = len(d.access())
        rc, stdout, out = gnutls(p_ec, prio, input=f"GET /bytes/{n} HTTP/1.0\r\n\r\n".encode(),
                                 timeout=30)
        ok(rc == 0 and pattern_bytes(n) in stdout,
           f"{ver}: a {n}-byte body arrives intact in gnutls-cli",
           f"rc={rc}, {len(stdout)} bytes on stdout, ending {stdout[-120:]!r}")
        l = new_lines(d, mark, 1)
        ok(len(l) == 1 and l[0]["outcome"] == "ok" and l[0]["out"] > n,
           f"{ver}: access log outcome=ok, out > {n}", raw(l))


@case
def policy_refusals():
    for prio, what, reason in (
            ("NORMAL:-VERS-ALL:+VERS-TLS1.1", "a TLS 1.1-only client", "version"),
            (TLS12 + ":-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC", "a TLS 1.2 client offering only "
             "CBC suites", "cipher")):
        mark = len(d.access())
        rc, _, out = gnutls(p_ec, prio)
        ok(rc not in (0, -999) and "Handshake was completed" not in out
           and "Received alert" in out and BODY.decode() not in out,
           f"{what} is refused with an alert", f"rc={rc}\n{out[-1500:]}")
        l = new_lines(d, mark, 1)
        ok(len(l) == 1 and l[0]["outcome"] == "handshake-failed" and reason in l[0].get(
            "reason", ""), f"{what}: access log outcome=handshake-failed ({reason})", raw(l))


def resume(dm, port, priority, args, ver, want, what, frontend="ec", name="example.test"):
    """ROUNDS runs of gnutls-cli --resume (a full handshake, then a resumed one
    that sends the request). want: the resumed= of the second connection,
    or None if it must not resume (the control)."""
    good_cli = good_log = 0
    bad = []
    for _ in range(ROUNDS):
        mark = len(dm.access())
        rc, _, out = gnutls(port, priority, ["--resume", *args], name=name)
        # The first connection only handshakes (in=0); the resumed one sends
        # the request. Their lines may be logged in either order.
        l = sorted(new_lines(dm, mark, 2), key=lambda a: a["in"])
        first, second = out.partition("- Connecting again- trying to resume")[::2]
        cli = (rc == 0 and "- Handshake was completed" in first and RESUMED not in first and
               "- Resume Handshake was completed" in second and BODY.decode() in second and
               ((RESUMED in second) == (want is not None)))
        log = (len(l) == 2 and all(a["tls"] == ver and a["outcome"] == "ok" and
                                   a["frontend"] == frontend for a in l) and
               l[0]["resumed"] == "no" and l[0]["in"] == 0 and
               l[1]["resumed"] == (want or "no") and l[1]["in"] == len(REQ))
        good_cli += cli
        good_log += log
        if not (cli and log):
            bad.append(f"rc={rc}\n{out[-2000:]}\n{raw(l)}")
    said = f"says \"{RESUMED[4:]}\"" if want else "does not resume"
    ok(good_cli == ROUNDS, f"{what}: gnutls-cli --resume {said} ({ROUNDS} of {ROUNDS})",
       "\n".join(bad[:2]))
    ok(good_log == ROUNDS, f"{what}: access log: resumed=no, then resumed={want or 'no'} "
       f"with tls={ver} ({ROUNDS} of {ROUNDS})", "\n".join(bad[:2]))
    return bad


@case
def resume_tls12_ticket():
    resume(d, p_ec, TLS12, [], "TLSv1.2", "ticket", "TLS 1.2 ticket")


@case
def resume_tls12_session_id():
    # %NO_TICKETS, not --noticket: gnutls-cli 3.7.9's --noticket still sends
    # the TLS 1.2 session ticket extension (and resumes by ticket).
    resume(d, p_ec, TLS12 + ":%NO_TICKETS", [], "TLSv1.2", "id",
           "TLS 1.2 session ID (%NO_TICKETS)")


@case
def resume_tls13():
    # The TLS 1.3 ticket comes after the handshake: --waitresumption makes
    # gnutls-cli read until it has one before it reconnects (without it,
    # gnutls waits a short while only). -d 4 shows the resumed handshake's
    # PSK and key share.
    resume(d, p_ec, TLS13, ["--waitresumption"], "TLSv1.3", "ticket", "TLS 1.3 ticket")
    mark = len(d.access())
    rc, stdout, out = gnutls(p_ec, TLS13, ["--resume", "--waitresumption", "-d", "4"])
    new_lines(d, mark, 2)
    after = out.partition("sent PSK resumption identity")[2]
    ok(rc == 0 and "selected PSK-resumption mode" in after and
       re.search(r"Selected group (X25519|SECP256R1)", after) and RESUMED.encode() in stdout,
       "TLS 1.3 resumption is PSK with (EC)DHE: the resumed handshake selects a group",
       f"rc={rc}\n{out[-2500:]}")


@case
def resume_rsa_frontend():
    resume(d, p_rsa, TLS13, ["--waitresumption"], "TLSv1.3", "ticket",
           "RSA frontend, TLS 1.3 ticket", frontend="rsa", name="rsa.test")


d.stop()

# The control: resumption off. gnutls must then report full handshakes,
# and the checks above would have failed against this daemon.
off = Daemon(config_text([{"name": "ec", "listen": [f"127.0.0.1:{free_port()}"],
                           "upstream": "up"}], {"up": be.address}, workers=2).replace(
    "frontends = (", "tls = { tickets = { enabled = false; }; session_cache = { size = 0; }; };\n"
    "frontends = ("), workers=2, name="resumption-off")


@case
def control_no_resumption():
    resume(off, off.port, TLS12, [], "TLSv1.2", None, "control (tickets off, no cache), TLS 1.2")
    resume(off, off.port, TLS12 + ":%NO_TICKETS", [], "TLSv1.2", None,
           "control (tickets off, no cache), TLS 1.2 %NO_TICKETS")
    # TLS 1.3 without tickets: no ticket comes, so --waitresumption would
    # wait until the time limit; without it gnutls waits briefly, reconnects
    # and must do a full handshake.
    resume(off, off.port, TLS13, [], "TLSv1.3", None, "control (tickets off), TLS 1.3")


off.stop()
be.stop()
done()
