#!/usr/bin/env python3
"""Client certificates: verify_client none / optional / required against
client_ca, a CRL (client_crl), a certificate from an untrusted CA; the
access log's client_cert= field; PROXY v2's PP2_TYPE_SSL client bits, verify
and PP2_SUBTYPE_SSL_CN; a session from one frontend never resumes on another;
and the configuration errors."""
import os
import re
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
CRL = os.path.join(CERTS, "crl.pem")


def client(name):
    return os.path.join(CERTS, name + ".pem"), os.path.join(CERTS, name + ".key")


be = Backend("http", "cc")
rec = ProxyRecorder("pp")
NAMES = ("req", "opt", "none", "plain", "nocrl", "pp", "ppreq")
ports = {n: free_port() for n in NAMES}
VERIFY = {
    "req": {"verify_client": "required", "client_ca": CA, "client_crl": CRL, "verify_depth": 4},
    "opt": {"verify_client": "optional", "client_ca": CA, "client_crl": CRL},
    "none": {"verify_client": "none"},
    "plain": {},
    "nocrl": {"verify_client": "required", "client_ca": CA},
    "pp": {"verify_client": "optional", "client_ca": CA, "upstream": "pp"},
    "ppreq": {"verify_client": "required", "client_ca": CA, "upstream": "pp"},
}
frontends = []
for n in NAMES:
    f = {"name": n, "listen": [f"127.0.0.1:{ports[n]}"], "upstream": "up"}
    f.update(VERIFY[n])
    frontends.append(f)
try:
    d = Daemon(frontends=frontends, upstreams={
        "up": be.address, "pp": {"address": rec.address, "proxy_protocol": "v2"}})
except Exception as e:
    ok(False, "tlsoffd starts with these frontends", str(e))
    done()


SEQ = [0]


def fresh():
    """A server name of its own for each connection, so that its access line is
    told from the others' (any name gets the default certificate)."""
    SEQ[0] += 1
    return f"c{SEQ[0]}.example.test"


def go(fe, cert=None, args=(), sess_in=None, sess_out=None, sni=None):
    """s_client to frontend fe, with client certificate cert (a name in CERTS)
    or none: a dict (answered: the backend's answer came; certreq: the server
    sent a CertificateRequest; session: New/Reused; access: the line, found by
    its SNI: sni, or a fresh name)."""
    t = stamp()
    sni = sni or fresh()
    a = ["-ign_eof", "-msg", *args]
    if cert:
        c, k = client(cert)
        a += ["-cert", c, "-key", k]
    if sess_in:
        a += ["-sess_in", sess_in]
    if sess_out:
        a += ["-sess_out", sess_out]
    i = s_client_info(ports[fe], sni, a, input=REQ)
    i["answered"] = re.search(r"hello from (cc|pp)", i["out"]) is not None
    i["certreq"] = re.search(r"^<<< .*CertificateRequest", i["out"], re.M) is not None
    i["access"] = d.wait_access(after=t, frontend=fe, sni=sni)
    return i


def access(i):
    return i["access"] and i["access"]["raw"]


def failed(i):
    return i["access"] is not None and i["access"]["outcome"] == "handshake-failed"


@case
def required():
    for ver in ("-tls1_2", "-tls1_3"):
        i = go("req", None, [ver])
        ok(not i["answered"] and failed(i),
           f"required, {ver}: no client certificate: outcome=handshake-failed", access(i)
           or i["out"][-600:])
        i = go("req", "client1", [ver])
        ok(i["answered"] and i["certreq"] and i["access"] and i["access"]["outcome"] == "ok",
           f"required, {ver}: client1 (from client_ca): through", access(i) or i["out"][-600:])
        ok(i["access"] and i["access"].get("client_cert") == "/CN=client1",
           f"required, {ver}: access client_cert=\"/CN=client1\"", access(i))
        i = go("req", "client2", [ver])
        ok(not i["answered"] and failed(i),
           f"required, {ver}: client2 (revoked in client_crl): handshake-failed",
           access(i) or i["out"][-600:])
        i = go("req", "other-client", [ver])
        ok(not i["answered"] and failed(i),
           f"required, {ver}: a certificate from another CA: handshake-failed",
           access(i) or i["out"][-600:])
    i = go("nocrl", "client2")
    ok(i["answered"] and i["access"] and i["access"].get("client_cert") == "/CN=client2",
       "required without client_crl: client2 gets through (the CRL is what refused it)",
       access(i) or i["out"][-600:])
    i = go("nocrl", None)
    ok(not i["answered"] and failed(i), "required without client_crl: no certificate: refused",
       access(i))


@case
def optional():
    for ver in ("-tls1_2", "-tls1_3"):
        i = go("opt", None, [ver])
        ok(i["answered"] and i["certreq"] and i["access"] and i["access"]["outcome"] == "ok"
           and i["access"].get("client_cert") == "-",
           f"optional, {ver}: a certificate is asked for; without one: through, client_cert=-",
           access(i) or i["out"][-600:])
        i = go("opt", "client1", [ver])
        ok(i["answered"] and i["access"] and i["access"].get("client_cert") == "/CN=client1",
           f"optional, {ver}: client1: through, client_cert=\"/CN=client1\"",
           access(i) or i["out"][-600:])
        i = go("opt", "client2", [ver])
        ok(not i["answered"] and failed(i), f"optional, {ver}: the revoked client2: refused",
           access(i) or i["out"][-600:])
        i = go("opt", "other-client", [ver])
        ok(not i["answered"] and failed(i),
           f"optional, {ver}: a certificate from another CA: refused",
           access(i) or i["out"][-600:])


@case
def none():
    for fe in ("none", "plain"):
        for ver in ("-tls1_2", "-tls1_3"):
            i = go(fe, "client1", [ver])
            ok(i["answered"] and not i["certreq"],
               f"{fe}, {ver}: no CertificateRequest; s_client with -cert gets through",
               i["out"][-600:])
            ok(i["access"] and i["access"].get("client_cert") == "-",
               f"{fe}, {ver}: access client_cert=-", access(i))
        i = go(fe, "other-client")
        ok(i["answered"], f"{fe}: even with an untrusted certificate at hand", access(i))


@case
def other_clients():
    r = curl(ports["req"], "/", args=["--cert", client("client1")[0], "--key",
                                      client("client1")[1]])
    ok(r.returncode == 0 and r.stdout == b"hello from cc\n", "curl --cert client1: through",
       r.stderr)
    r = curl(ports["req"], "/")
    ok(r.returncode != 0 and b"hello" not in r.stdout, "curl without a certificate: refused",
       (r.returncode, r.stdout, r.stderr))
    for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = tls_context(ver)
        ctx.load_cert_chain(*client("client1"))
        c = TLSClient(ports["req"], ctx=ctx)
        got, how = c.exchange(REQ)
        c.close()
        ok(b"hello from cc" in got, f"Python ssl {ver.name} with client1: through", (got, how))
        ctx = tls_context(ver)
        ctx.load_cert_chain(*client("client2"))
        try:
            c = TLSClient(ports["req"], ctx=ctx)
            got, how = c.exchange(REQ)
            c.close()
        except (ssl.SSLError, ConnectionError, OSError) as e:
            got, how = b"", repr(e)
        ok(b"hello" not in got, f"Python ssl {ver.name} with the revoked client2: refused",
           (got, how))


@case
def access_field_order():
    i = go("req", "client1")
    raw = access(i) or ""
    ok(re.search(r' resumed=\S+ client_cert="/CN=client1" ', raw) is not None,
       "access: client_cert= comes right after resumed=", raw)
    i = go("opt")
    raw = access(i) or ""
    ok(re.search(r" resumed=\S+ client_cert=- ", raw) is not None,
       "access: client_cert=- right after resumed=", raw)


@case
def subject_with_spaces_and_quotes():
    # The subject O=tlsoffd test, CN=client "three": the field stays one quoted
    # value (the line is checked as a whole when the daemon stops).
    i = go("req", "client3")
    raw = access(i) or ""
    # How a quote inside is written (escaped, or replaced) is the daemon's choice.
    ok(i["answered"] and i["access"] and re.fullmatch(
        r'/O=tlsoffd test/CN=client \S{1,4}three\S{1,4}', i["access"].get("client_cert", "")),
       "access: client_cert=\"/O=tlsoffd test/CN=client ?three?\" (the quotes escaped or "
       "replaced)", raw or i["out"][-400:])
    ok(re.search(r' resumed=\S+ client_cert="(?:[^"\\]|\\.)*" in=\d+ ', raw) is not None,
       "access: the quoted subject is one field, before in=", raw)
    n = len(rec.headers)
    i = go("ppreq", "client3")
    h = rec.wait_header(n + 1)
    ssl_ = h.get("ssl") if h else None
    ok(ssl_ is not None and ssl_["tlvs"].get(0x22) == b'client "three"',
       "PROXY v2: PP2_SUBTYPE_SSL_CN is the CN alone: client \"three\"", h)


@case
def proxy_v2_ssl():
    for ver in ("-tls1_2", "-tls1_3"):
        n = len(rec.headers)
        i = go("pp", "client1", [ver])
        h = rec.wait_header(n + 1)
        ssl_ = h.get("ssl") if h else None
        ok(i["answered"] and ssl_ is not None, f"pp {ver}: through, with PP2_TYPE_SSL",
           (h, i["out"][-300:]))
        ok(ssl_ is not None and ssl_["client"] == 0x07 and ssl_["verify"] == 0,
           f"pp {ver}, client1: client = SSL|CERT_CONN|CERT_SESS (0x07), verify = 0", h)
        ok(ssl_ is not None and ssl_["tlvs"].get(0x22) == b"client1",
           f"pp {ver}, client1: PP2_SUBTYPE_SSL_CN (0x22) = client1", h)
        i = go("pp", None, [ver])
        h = rec.wait_header(n + 2)
        ssl_ = h.get("ssl") if h else None
        ok(i["answered"] and ssl_ is not None and ssl_["client"] == 0x01
           and ssl_["verify"] == 0 and 0x22 not in ssl_["tlvs"],
           f"pp {ver}, no certificate: client = SSL (0x01), verify = 0, no CN", h)
    # A resumed session: the certificate came with the session, not this connection.
    for ver in ("-tls1_2", "-tls1_2 -no_ticket", "-tls1_3"):
        sess = os.path.join(d.dir, f"pp{ver.replace(' ', '')}.sess")
        sni = fresh()
        first = go("ppreq", "client1", ver.split(), sess_out=sess, sni=sni)
        n = len(rec.headers)
        again = go("ppreq", "client1", ver.split(), sess_in=sess, sni=sni)
        h = rec.wait_header(n + 1)
        ssl_ = h.get("ssl") if h else None
        ok(first["answered"] and again["session"] == "Reused" and again["answered"],
           f"ppreq {ver}: a session with client1 resumes", (first["session"], again["session"]))
        ok(ssl_ is not None and ssl_["client"] & 0x05 == 0x05 and not ssl_["client"] & 0x02
           and ssl_["verify"] == 0,
           f"ppreq {ver}, resumed: CERT_SESS set, CERT_CONN not, verify = 0", h)


@case
def no_resumption_across_frontends():
    # TLS 1.2 with tickets, with session IDs (the shared cache), TLS 1.3 tickets
    for ver in ("-tls1_2", "-tls1_2 -no_ticket", "-tls1_3"):
        for a, b, ca, cb in (("none", "plain", None, None), ("plain", "none", None, None),
                             ("req", "none", "client1", None), ("none", "req", None, "client1"),
                             ("req", "nocrl", "client1", "client1"),
                             ("opt", "req", "client1", "client1")):
            sess = os.path.join(d.dir, f"{a}-{b}{ver.replace(' ', '')}.sess")
            sni = fresh()
            first = go(a, ca, ver.split(), sess_out=sess, sni=sni)
            same = go(a, ca, ver.split(), sess_in=sess, sni=sni)
            other = go(b, cb, ver.split(), sess_in=sess, sni=sni)
            ok(first["session"] == "New" and same["session"] == "Reused",
               f"{ver}: a session from {a} resumes on {a}", (first["session"], same["session"],
                                                           same["out"][-300:]))
            ok(other["session"] == "New",
               f"{ver}: a session from {a} does not resume on {b} (New)",
               (other["session"], access(other)))
            if cb:
                ok(other["answered"] and other["access"]
                   and other["access"].get("client_cert") == "/CN=client1",
                   f"{ver}: on {b}, the full handshake checked client1 again", access(other))


# ---------------------------------------------------------------- configuration errors

def conf_lines(**kw):
    f = {"name": "web", "listen": ["127.0.0.1:1"], "upstream": "up"}
    f.update(kw)
    return config_text([f], {"up": "127.0.0.1:9"}).splitlines()


@case
def config_errors():
    for mode in ("optional", "required"):
        lines = conf_lines(verify_client=mode)
        fe_lines = tuple(range(line_of(lines, "frontends = (") + 1, line_of(lines, "upstreams =")))
        bad_config(f"verify_client = {mode} without client_ca", lines, fe_lines, r"client_ca")
    lines = conf_lines(verify_client="maybe", client_ca=CA)
    bad_config("an unknown verify_client value", lines, (line_of(lines, "verify_client ="),),
        r"maybe")
    missing = os.path.join(tmpdir(), "no-such-ca.pem")
    lines = conf_lines(verify_client="required", client_ca=missing)
    bad_config("a missing client_ca file", lines, (line_of(lines, "client_ca ="),),
        re.escape(missing))
    missing = os.path.join(tmpdir(), "no-such-crl.pem")
    lines = conf_lines(verify_client="required", client_ca=CA, client_crl=missing)
    bad_config("a missing client_crl file", lines, (line_of(lines, "client_crl ="),),
        re.escape(missing))
    lines = conf_lines(verify_client="none", client_ca=CA)
    rc, err, _, _ = check_config(lines, "good-none-with-ca")
    ok(rc == 0, "verify_client = none with a client_ca: accepted", err)
    lines = conf_lines(verify_client="required", client_ca=CA, client_crl=CRL, verify_depth=2)
    rc, err, _, _ = check_config(lines, "good-required")
    ok(rc == 0, "verify_client = required, client_ca, client_crl, verify_depth: accepted", err)


d.stop()
be.stop()
rec.stop()
done()
