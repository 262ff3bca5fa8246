#!/usr/bin/env python3
"""OCSP stapling: a certificate's valid ocsp_file is stapled (TLS 1.2 and
1.3); a response that is stale (at start, or once its nextUpdate passes),
for another certificate, or not signed by the issuer is not, with a warning
naming the frontend, the certificate and the file; cert_dir's NAME.ocsp; a
replaced file is stapled after a reload (SIGHUP); a missing ocsp_file is a
configuration error."""
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"


def c(name):
    return os.path.join(CERTS, name)


A = (c("a.test.pem"), c("a.test.key"))
B = (c("b.test.pem"), c("b.test.key"))
RESPONSES = {          # frontend -> a.test's ocsp_file there
    "fe-good": c("a.test.ocsp.der"),
    "fe-stale": c("a.test.stale.ocsp.der"),
    "fe-mismatch": c("b.test.ocsp.der"),
    "fe-badsig": c("a.test.badsig.ocsp.der"),
    "fe-rogue": c("a.test.rogue.ocsp.der"),
}
work = os.path.join(tmpdir(), "reload")
os.makedirs(work)
LIVE = os.path.join(work, "a.test.ocsp.der")        # replaced while the daemon runs
shutil.copy(RESPONSES["fe-mismatch"], LIVE)


def short_lived(path, seconds):
    """Writes a good response for a.test whose nextUpdate is seconds from now;
    returns that time (time.time())."""
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp
    load = x509.load_pem_x509_certificate
    with open(CA, "rb") as f:
        ca = load(f.read())
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(CERTS, "a.test.crt"), "rb") as f:
        leaf = load(f.read())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    until = now + dt.timedelta(seconds=seconds)
    r = (ocsp.OCSPResponseBuilder()
         .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
                       cert_status=ocsp.OCSPCertStatus.GOOD,
                       this_update=now - dt.timedelta(hours=1), next_update=until,
                       revocation_time=None, revocation_reason=None)
         .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
         .sign(ca_key, hashes.SHA256()))
    with open(path, "wb") as f:
        f.write(r.public_bytes(serialization.Encoding.DER))
    return until.timestamp()


# fe-expiring: a response that goes stale while the daemon runs.
EXPIRING = os.path.join(work, "expiring.ocsp.der")
EXPIRES = short_lived(EXPIRING, int(8 * SLOW))

be = Backend("http", "ocsp")
ports = {n: free_port() for n in list(RESPONSES) + ["fe-dir", "fe-live", "fe-expiring"]}
frontends = [{"name": n, "listen": [f"127.0.0.1:{ports[n]}"], "upstream": "up",
              "certificates": [{"cert": A[0], "key": A[1], "ocsp_file": r},
                               {"cert": B[0], "key": B[1]}]}
             for n, r in RESPONSES.items()]
frontends += [
    {"name": "fe-dir", "listen": [f"127.0.0.1:{ports['fe-dir']}"], "upstream": "up",
     "certificates": None, "cert_dir": c("certdir")},
    {"name": "fe-live", "listen": [f"127.0.0.1:{ports['fe-live']}"], "upstream": "up",
     "certificates": [{"cert": A[0], "key": A[1], "ocsp_file": LIVE}]},
    {"name": "fe-expiring", "listen": [f"127.0.0.1:{ports['fe-expiring']}"], "upstream": "up",
     "certificates": [{"cert": A[0], "key": A[1], "ocsp_file": EXPIRING}]},
]
try:
    d = Daemon(frontends=frontends, upstreams={"up": be.address}, pidfile="tlsoffd.pid")
except Exception as e:
    ok(False, "tlsoffd starts with these frontends", str(e))
    done()


def staple(fe, sni="a.test", args=()):
    """What s_client -status says about the stapled response: 'good', 'none'
    (no response sent), other text, or None (said nothing: see the output);
    checks on the way that the connection reaches the backend."""
    i = s_client_info(ports[fe], sni, ["-status", "-ign_eof", *args], input=REQ)
    if "hello from ocsp" not in i["out"]:
        diag(f"{fe} {sni} {args}: no answer from the backend:\n{i['out'][-800:]}")
        return "no answer"
    if i["ocsp"] == "good" and "OCSP Response Status: successful" not in i["out"]:
        return "good, but the response status is not 'successful'"
    if i["ocsp"] is None:
        diag(f"{fe} {sni}: s_client -status says nothing about OCSP:\n{i['out'][-800:]}")
    return i["ocsp"]


def warnings():
    """The warnings, as text after 'warning: ', from the main log and stderr (where
    the messages of loading the configuration go, before the log is opened)."""
    return re.findall(r"^\S+ tlsoffd\[\d+\] [^:\n]*?\bwarning: (.*)$",
                      d.log_text() + "\n" + d.stderr_text(), re.M)


def warned(fe, cert, ocsp):
    """A warning naming the frontend, the certificate and the ocsp file."""
    for w in warnings():
        if (re.search(rf"(?<![\w-]){re.escape(fe)}(?![\w-])", w) and os.path.basename(cert) in w
                and os.path.basename(ocsp) in w):
            return w
    return None


@case
def good():
    for ver in ("-tls1_2", "-tls1_3"):
        ok(staple("fe-good", args=[ver]) == "good",
           f"{ver}: a.test's good response is stapled (successful, Cert Status: good)")
        ok(staple("fe-good", "b.test", [ver]) == "none",
           f"{ver}: b.test, without an ocsp_file: no response sent")
    ok(staple("fe-good", None) == "good", "no SNI: the default certificate (a.test) staples")
    ok(not warned("fe-good", A[0], RESPONSES["fe-good"]), "no warning about the good response",
       "\n".join(warnings()))
    r = s_client_info(ports["fe-good"], "a.test", ["-ign_eof"], input=REQ)
    ok("hello from ocsp" in r["out"] and r["ocsp"] is None,
       "a client that does not ask for a status gets none (and gets through)", r["out"][-400:])


@case
def bad_responses():
    why = {"fe-stale": "stale (nextUpdate a day ago)", "fe-mismatch": "for b.test's certificate",
           "fe-badsig": "signed by another key under the CA's name",
           "fe-rogue": "signed by a responder the CA did not delegate"}
    for fe, what in why.items():
        for ver in ("-tls1_2", "-tls1_3"):
            got = staple(fe, args=[ver])
            ok(got == "none", f"{fe}, {ver}: a response {what} is not stapled, the handshake "
               "goes on", got)
        w = poll_until(lambda: warned(fe, A[0], RESPONSES[fe]), 5 * SLOW)
        ok(w, f"{fe}: a warning names the frontend, the certificate and the ocsp file",
           "\n".join(warnings()) or "(no warnings)")


@case
def cert_dir():
    ok(staple("fe-dir", "d.test") == "good", "cert_dir: d.test.ocsp is stapled for d.test")
    ok(staple("fe-dir", "d.test", ["-tls1_2"]) == "good", "cert_dir, TLS 1.2: the same")
    ok(staple("fe-dir", "c.test") == "none", "cert_dir: c.test (no c.test.ocsp): no response sent")


@case
def reload():
    ok(staple("fe-live") == "none", "live: the mismatched response is not stapled")
    ok(poll_until(lambda: warned("fe-live", A[0], LIVE), 5 * SLOW),
       "live: a warning about it", "\n".join(warnings()))
    n = len(re.findall("configuration reloaded", d.log_text()))

    def reloaded():
        d.send_signal(signal.SIGHUP)
        nonlocal n
        n += 1
        return poll_until(lambda: len(re.findall("configuration reloaded", d.log_text())) >= n,
                          10 * SLOW)

    shutil.copy(RESPONSES["fe-good"], LIVE + ".tmp")
    os.rename(LIVE + ".tmp", LIVE)
    ok(reloaded(), "SIGHUP: reloaded")
    ok(poll_until(lambda: staple("fe-live") == "good", 5 * SLOW),
       "after the good response replaced it and a reload, it is stapled")
    ok(staple("fe-live", args=["-tls1_2"]) == "good", "TLS 1.2 too")
    shutil.copy(RESPONSES["fe-stale"], LIVE + ".tmp")
    os.rename(LIVE + ".tmp", LIVE)
    ok(reloaded(), "SIGHUP again: reloaded")
    ok(poll_until(lambda: staple("fe-live") == "none", 5 * SLOW),
       "a stale response put in its place is no longer stapled after the reload")
    ok(staple("fe-good") == "good", "the other frontends staple as before")


@case
def goes_stale():
    """A response valid at start whose nextUpdate then passes is no longer stapled."""
    if time.time() >= EXPIRES - 1:
        skip("a response going stale while the daemon runs", "it expired before the checks")
        return
    for ver in ("-tls1_2", "-tls1_3"):
        ok(staple("fe-expiring", args=[ver]) == "good",
           f"fe-expiring, {ver}: stapled while its nextUpdate is ahead")
    poll_until(lambda: time.time() > EXPIRES + 1, 30)
    for ver in ("-tls1_2", "-tls1_3"):
        got = staple("fe-expiring", args=[ver])
        ok(got == "none", f"fe-expiring, {ver}: once its nextUpdate has passed, no longer "
           "stapled; the handshake goes on", got)
    w = poll_until(lambda: warned("fe-expiring", A[0], EXPIRING), 5 * SLOW)
    ok(w, "fe-expiring: a warning names the frontend, the certificate and the ocsp file",
       "\n".join(w for w in warnings() if "expiring" in w) or "(no warning about it)")


# ---------------------------------------------------------------- configuration errors

@case
def config_errors():
    missing = os.path.join(tmpdir(), "no-such.ocsp.der")
    lines = config_text([{"name": "web", "listen": ["127.0.0.1:1"], "upstream": "up",
                          "certificates": [{"cert": A[0], "key": A[1], "ocsp_file": missing}]}],
                        {"up": "127.0.0.1:9"}).splitlines()
    rc, err, line, path = check_config(lines, "missing-ocsp")
    want = next(i + 1 for i, l in enumerate(lines) if "ocsp_file =" in l)
    ok(rc == 1, "a missing ocsp_file: tlsoffd -t exits with status 1", f"rc={rc} {err}")
    ok(line == want, f"a missing ocsp_file: 'tlsoffd: FILE:LINE: ' with line {want}", err)
    ok(missing in err, "a missing ocsp_file: the message names it", err)
    lines = config_text([{"name": "web", "listen": ["127.0.0.1:1"], "upstream": "up",
                          "certificates": [{"cert": A[0], "key": A[1],
                                            "ocsp_file": RESPONSES["fe-stale"]}]}],
                        {"up": "127.0.0.1:9"}).splitlines()
    rc, err, line, path = check_config(lines, "stale-ocsp")
    ok(rc == 0, "a stale ocsp_file is not a configuration error (a warning at most)", err)


rc = d.stop()
ok(rc == 0, "the daemon stops cleanly", rc)
be.stop()
done()
