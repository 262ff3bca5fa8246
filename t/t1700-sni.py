#!/usr/bin/env python3
"""Certificates chosen by SNI: exact names (SAN dNSNames and the subject CN)
before wildcards, case-insensitively; the first certificate is the default;
strict_sni refuses a client with no or an unknown name; an ECDSA and an RSA
certificate for the same name go to the clients that can use them; all of
this with a ClientHello split into small records too (and an over-size or
interleaved one refused with an alert); cert_dir
loads a directory of certificates; and the configuration errors."""
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
CERTDIR = os.path.join(CERTS, "certdir")


def pem(name):
    return (os.path.join(CERTS, name + ".pem"), os.path.join(CERTS, name + ".key"))


be = Backend("http", "sni")
FE = {
    # example.test first: the default. x.wild.test after the wildcard, and
    # dual-rsa before dual-ec: neither may win by its place in the list.
    "fe": [pem(n) for n in ("example.test", "a.test", "b.test", "wild", "x.wild.test",
                            "cnsan", "dual-rsa", "dual-ec")],
    "strict": [pem(n) for n in ("a.test", "b.test", "wild")],
    "ecfirst": [pem(n) for n in ("example.test", "dual-ec", "dual-rsa")],
}
ports = {name: free_port() for name in list(FE) + ["dir", "mixed"]}
frontends = [{"name": name, "listen": [f"127.0.0.1:{ports[name]}"], "upstream": "up",
              "certificates": certs, "strict_sni": True if name == "strict" else None}
             for name, certs in FE.items()]
frontends += [
    {"name": "dir", "listen": [f"127.0.0.1:{ports['dir']}"], "upstream": "up",
     "certificates": None, "cert_dir": CERTDIR},
    {"name": "mixed", "listen": [f"127.0.0.1:{ports['mixed']}"], "upstream": "up",
     "certificates": [pem("a.test")], "cert_dir": CERTDIR, "strict_sni": False},
]
try:
    d = Daemon(frontends=frontends, upstreams={"up": be.address})
except Exception as e:
    ok(False, "tlsoffd starts with these frontends", str(e))
    done()


def served(fe, sni, args=(), want_body=True):
    """(CN, key bits) of the certificate frontend fe serves for sni; checks on the
    way that the verified connection reaches the backend."""
    i = s_client_info(ports[fe], sni, ["-ign_eof", *args], input=REQ)
    got = (i["cn"], i["bits"])
    if want_body and "hello from sni" not in i["out"]:
        diag(f"{fe} {sni} {args}: no answer from the backend:\n{i['out'][-600:]}")
        return ("no answer", got)
    if i["verify"] != "0":
        diag(f"{fe} {sni}: verify return code {i['verify']}")
    return got


@case
def default_certificate():
    ok(served("fe", None) == ("example.test", 256), "no SNI: the first (default) certificate")
    t = stamp()
    ok(served("fe", "nope.test") == ("example.test", 256),
       "an unknown name: the default certificate")
    l = d.wait_access(after=t, frontend="fe", sni="nope.test")
    ok(l is not None and l["outcome"] == "ok", "access: sni=nope.test, outcome=ok",
       l and l["raw"])


@case
def exact_names():
    for sni, cn in (("a.test", "a.test"), ("b.test", "b.test"), ("www.b.test", "b.test"),
                    ("example.test", "example.test"), ("cn-only.test", "cn-only.test"),
                    ("san-only.test", "cn-only.test")):
        got = served("fe", sni)
        ok(got[0] == cn, f"SNI {sni}: the certificate of {cn}", got)
    got = served("fe", "a.test", ["-tls1_2"])
    ok(got[0] == "a.test", "TLS 1.2, SNI a.test: the certificate of a.test", got)
    l = d.wait_access(frontend="fe", sni="www.b.test")
    ok(l is not None and l["outcome"] == "ok", "access: sni=www.b.test", l and l["raw"])


@case
def case_insensitive():
    for sni, cn in (("A.TEST", "a.test"), ("Www.B.Test", "b.test"), ("X.WILD.TEST", "x.wild.test"),
                    ("Y.Wild.Test", "*.wild.test"), ("SAN-ONLY.test", "cn-only.test")):
        got = served("fe", sni)
        ok(got[0] == cn, f"SNI {sni}: the certificate of {cn} (case-insensitive)", got)


@case
def wildcards():
    for sni, cn in (("y.wild.test", "*.wild.test"), ("x.wild.test", "x.wild.test"),
                    ("wild.test", "example.test"), ("a.b.wild.test", "example.test"),
                    ("xwild.test", "example.test")):
        got = served("fe", sni)
        ok(got[0] == cn, f"SNI {sni}: {cn}", got)


@case
def real_clients():
    # curl and Python check the name against the certificate themselves.
    for name in ("a.test", "www.b.test", "y.wild.test", "x.wild.test", "dual.test"):
        r = curl(ports["fe"], "/", name=name)
        ok(r.returncode == 0 and r.stdout == b"hello from sni\n",
           f"curl https://{name}/ verifies the certificate it gets", r.stderr)
    s = tls_connect(ports["fe"], sni="z.wild.test")
    cert = s.getpeercert()
    s.close()
    cn = dict(x[0] for x in cert["subject"]).get("commonName")
    ok(cn == "*.wild.test", "Python ssl, SNI z.wild.test: the wildcard certificate, verified", cert)
    try:
        tls_connect(ports["fe"], sni="wild.test").close()
        refused = None
    except ssl.SSLCertVerificationError as e:
        refused = e
    ok(refused is not None, "Python ssl, SNI wild.test: the default certificate, which does "
       "not verify for wild.test", "the connection verified")


@case
def ecdsa_or_rsa():
    for fe in ("fe", "ecfirst"):
        ok(served(fe, "dual.test") == ("dual.test", 256),
           f"{fe}: a client that supports ECDSA gets the ECDSA certificate")
        ok(served(fe, "dual.test", ["-tls1_2"]) == ("dual.test", 256),
           f"{fe}: TLS 1.2, ECDSA supported: the ECDSA certificate")
        got = served(fe, "dual.test", ["-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"])
        ok(got == ("dual.test", 2048),
           f"{fe}: TLS 1.3, only RSA signature algorithms: the RSA certificate", got)
        got = served(fe, "dual.test", ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
        ok(got == ("dual.test", 2048),
           f"{fe}: TLS 1.2, only an ECDHE-RSA suite: the RSA certificate", got)
        got = served(fe, "dual.test", ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])
        ok(got == ("dual.test", 256),
           f"{fe}: TLS 1.2, only an ECDHE-ECDSA suite: the ECDSA certificate", got)
        got = served(fe, "dual.test", ["-tls1_2", "-sigalgs", "RSA+SHA256"])
        ok(got == ("dual.test", 2048),
           f"{fe}: TLS 1.2, only RSA signature algorithms: the RSA certificate", got)
    ctx = tls_context(ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    c = TLSClient(ports["fe"], sni="dual.test", ctx=ctx)
    got = c.obj.getpeercert()
    c.close()
    ok(got and dict(x[0] for x in got["subject"]).get("commonName") == "dual.test"
       and c.obj.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256",
       "Python ssl, TLS 1.2 with ECDHE-RSA only: a verified dual.test connection", got)


@case
def strict_sni():
    for sni, cn in (("a.test", "a.test"), ("www.b.test", "b.test"), ("q.wild.test", "*.wild.test"),
                    ("A.Test", "a.test")):
        got = served("strict", sni)
        ok(got[0] == cn, f"strict_sni: SNI {sni} is served ({cn})", got)
    for sni in (None, "nope.test", "wild.test"):
        i = s_client_info(ports["strict"], sni, ["-ign_eof"], input=REQ)
        ok("hello from sni" not in i["out"] and i["cn"] is None,
           f"strict_sni: {'no SNI' if sni is None else 'SNI ' + sni}: no certificate, no answer",
           i["out"][-600:])
        ok(re.search(r"unrecognized name|alert number 112", i["out"]) is not None,
           f"strict_sni, {sni or 'no SNI'}: the client gets an unrecognized_name alert",
           i["out"][-600:])
        l = d.wait_access(frontend="strict", sni=sni or "-")
        ok(l is not None and l["outcome"] == "handshake-failed"
           and "strict_sni" in l.get("reason", ""),
           f"strict_sni, {sni or 'no SNI'}: access outcome=handshake-failed, the reason "
           "names strict_sni", l and l["raw"])
    try:
        tls_connect(ports["strict"], sni="nope.test").close()
        err = None
    except ssl.SSLError as e:
        err = e
    ok(err is not None and "UNRECOGNIZED_NAME" in str(err).upper(),
       "strict_sni: Python ssl gets TLSV1_UNRECOGNIZED_NAME", repr(err))
    ok(served("fe", None)[0] == "example.test",
       "strict_sni on one frontend leaves the others' default in place")


def reframe(data, size):
    """The handshake bytes of the records in data, re-cut into records of size bytes."""
    body, i = b"", 0
    while i < len(data):
        assert data[i] == 22, data[:i + 5].hex()
        n = int.from_bytes(data[i + 3:i + 5], "big")
        body, ver, i = body + data[i + 5:i + 5 + n], data[i + 1:i + 3], i + 5 + n
    return b"".join(bytes([22]) + ver + len(body[j:j + size]).to_bytes(2, "big")
                    + body[j:j + size] for j in range(0, len(body), size))


def split_hello(fe, sni, ctx, size=40):
    """A handshake through a memory-BIO SSLObject whose ClientHello is sent in
    records of size bytes: (the server's certificate as DER or None, error)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = socket.create_connection(("127.0.0.1", ports[fe]), timeout=5 * SLOW)
    s.sendall(reframe(out.read(), size))
    end = time.monotonic() + 10 * SLOW
    try:
        while time.monotonic() < end:
            data = s.recv(65536)
            if not data:
                return None, "closed by the server"
            inc.write(data)
            try:
                obj.do_handshake()
                s.sendall(out.read())
                return obj.getpeercert(binary_form=True), None
            except ssl.SSLWantReadError:
                s.sendall(out.read())
        return None, "timed out"
    except (ssl.SSLError, OSError) as e:
        return None, repr(e)
    finally:
        s.close()


def der(name):
    """The DER of the first certificate (the leaf) in name's PEM chain."""
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(open(pem(name)[0]).read().split(end)[0] + end + "\n")


@case
def split_client_hello():
    """A ClientHello in 40-byte records: the certificate is still chosen by
    its SNI and signature algorithms, strict_sni still finds the name."""
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        v = version.name
        got, err = split_hello("fe", "b.test", tls_context(version))
        ok(got == der("b.test"), f"{v}, hello in 40-byte records, SNI b.test: its certificate",
           err)
        got, err = split_hello("strict", "a.test", tls_context(version))
        ok(got == der("a.test"), f"{v}, strict_sni, split hello with SNI a.test: served", err)
    for suite, cert in (("ECDHE-ECDSA-AES128-GCM-SHA256", "dual-ec"),
                        ("ECDHE-RSA-AES128-GCM-SHA256", "dual-rsa")):
        ctx = tls_context(ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(suite)
        got, err = split_hello("fe", "dual.test", ctx)
        ok(got == der(cert), f"TLS 1.2 {suite} only, split hello: the {cert} certificate", err)


@case
def split_client_hello_refused():
    """Over the maximum, or another record inside it: an alert, and a reason."""
    for what, desc, data in (("a ClientHello over 16384 bytes", 47,
                              bytes([22, 3, 1, 0, 4, 1, 0, 0x40, 0])),
                             ("an alert record inside the ClientHello", 10,
                              bytes([22, 3, 1, 0, 4, 1, 0, 1, 0, 21, 3, 3, 0, 2, 1, 0]))):
        s = socket.create_connection(("127.0.0.1", ports["fe"]), timeout=5 * SLOW)
        client = "127.0.0.1:%d" % s.getsockname()[1]
        s.sendall(data)
        try:
            reply = s.recv(100)
        except OSError as e:
            reply = repr(e).encode()
        s.close()
        ok(reply[:1] == b"\x15" and len(reply) == 7 and reply[5] == 2 and reply[6] == desc,
           f"{what}: a fatal alert ({desc})", reply)
        l = d.wait_access(frontend="fe", client=client)
        ok(l is not None and l["outcome"] == "handshake-failed"
           and "refused the ClientHello" in l.get("reason", ""),
           f"{what}: handshake-failed, the access log says why", l and l["raw"])


@case
def cert_dir():
    got = served("dir", None)
    ok(got[0] == "c.test", "cert_dir alone: no SNI gets the first file by name (c.test.pem)", got)
    ok(served("dir", "c.test")[0] == "c.test", "cert_dir: c.test (chain and key in one file)")
    ok(served("dir", "d.test")[0] == "d.test", "cert_dir: d.test (key in d.test.key)")
    ok(served("dir", "e.test")[0] == "e.test", "cert_dir: e.test (a .crt file, key in "
       "e.test.key)")
    ok(served("dir", "nope.test")[0] == "c.test", "cert_dir: an unknown name gets c.test")
    r = curl(ports["dir"], "/", name="d.test")
    ok(r.returncode == 0 and r.stdout == b"hello from sni\n", "curl https://d.test/ (cert_dir)",
       r.stderr)
    ok(served("mixed", None)[0] == "a.test",
       "certificates and cert_dir: the first of certificates is the default")
    for sni in ("a.test", "c.test", "d.test", "e.test"):
        ok(served("mixed", sni)[0] == sni, f"certificates and cert_dir: {sni}")
    ok(served("mixed", "b.test")[0] == "a.test", "certificates and cert_dir: b.test (not "
       "loaded here) gets the default")


# ---------------------------------------------------------------- configuration errors

def conf_lines(fe_extra):
    """A one-frontend configuration as lines; fe_extra: frontend keys to add or set."""
    fe = {"name": "web", "listen": ["127.0.0.1:1"], "upstream": "up"}
    fe.update(fe_extra)
    return config_text([fe], {"up": "127.0.0.1:9"}).splitlines()


def line_of(lines, needle):
    for i, l in enumerate(lines):
        if needle in l:
            return i + 1
    raise KeyError(needle)


def bad(name, lines, where, rx, strict_line=True):
    rc, err, line, path = check_config(lines, re.sub(r"[^a-z0-9]+", "-", name.lower())[:40])
    ok(rc == 1, f"{name}: tlsoffd -t exits with status 1", f"rc={rc} {err}")
    if strict_line:
        want = where if isinstance(where, tuple) else (line_of(lines, where),)
        ok(line in want, f"{name}: 'tlsoffd: FILE:LINE: ' with line {' or '.join(map(str, want))}",
           err)
    ok(re.search(rx, err) is not None, f"{name}: the message says /{rx}/", err)
    ok(len(err.splitlines()) == 1, f"{name}: one line on stderr", err)


@case
def config_errors():
    missing = os.path.join(tmpdir(), "no-such-dir")
    lines = conf_lines({"certificates": None, "cert_dir": missing})
    bad("a missing cert_dir", lines, "cert_dir =", re.escape(missing))
    lines = conf_lines({"certificates": [], "cert_dir": None})
    fe_lines = tuple(range(line_of(lines, "frontends = (") + 1, line_of(lines, "upstreams =")))
    bad("certificates empty and no cert_dir", lines, fe_lines, r"certificate|cert_dir")
    lines = conf_lines({"certificates": None})
    bad("no certificates and no cert_dir", lines, fe_lines, r"certificate|cert_dir")
    empty = os.path.join(tmpdir(), "empty-dir")
    os.makedirs(empty, exist_ok=True)
    lines = conf_lines({"certificates": None, "cert_dir": empty})
    bad("an empty cert_dir and no certificates", lines, fe_lines, r"certificate|cert_dir",
        strict_line=False)
    lines = conf_lines({"strict_sni": "yes"})
    bad("strict_sni not a boolean", lines, "strict_sni =", r"strict_sni")
    lines = conf_lines({"certificates": [pem("a.test")], "cert_dir": CERTDIR})
    rc, err, _, _ = check_config(lines, "good-cert-dir")
    ok(rc == 0, "certificates and cert_dir together: tlsoffd -t accepts it", err)


d.stop()
be.stop()
done()
