#!/usr/bin/env python3
"""What a session is bound to: the server name and the certificate it was made
with (RFC 6066 section 3: a session from SNI a.test does not resume with SNI
b.test; one made with a dual frontend's ECDSA certificate does not resume for
a client that gets the RSA one), and the contents of client_ca (other contents
and a HUP end every session); a new client_crl and a HUP end the sessions of
the certificates it revokes, not the others'; and the client certificate's
identity that a ticket resumption shows the access log and a PROXY v2 backend,
the same as the full handshake did, or a full handshake once the cache no
longer keeps it. All three kinds: TLS 1.2 session IDs, TLS 1.2 tickets, TLS
1.3 tickets, with openssl s_client -sess_out/-sess_in."""
import datetime as dt
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
KINDS = {"id12": ["-tls1_2", "-no_ticket"], "ticket12": ["-tls1_2"], "ticket13": ["-tls1_3"]}
WANT_RESUMED = {"id12": "id", "ticket12": "ticket", "ticket13": "ticket"}


def pem(name):
    return (os.path.join(CERTS, name + ".pem"), os.path.join(CERTS, name + ".key"))


def write_crl(path, revoked, number):
    """A CRL by the test CA revoking the certificates named in revoked."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    with open(os.path.join(CERTS, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(CA, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
         .last_update(now - dt.timedelta(days=1)).next_update(now + dt.timedelta(days=30))
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    for name in revoked:
        with open(os.path.join(CERTS, name + ".crt"), "rb") as f:
            serial = x509.load_pem_x509_certificate(f.read()).serial_number
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - dt.timedelta(days=1)).build())
    crl = b.sign(ca_key, hashes.SHA256())
    with open(path + ".new", "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(path + ".new", path)


be = Backend("http", "bind")
rec = ProxyRecorder("pp")
work = tmpdir()
CRL = os.path.join(work, "client.crl")
write_crl(CRL, ["client2"], 1)
CA_COPY = os.path.join(work, "client-ca.pem")
shutil.copy(CA, CA_COPY)
ports = {n: free_port() for n in ("sni", "dual", "cc")}
frontends = [
    {"name": "dual", "listen": [f"127.0.0.1:{ports['dual']}"], "upstream": "up",
     "certificates": [pem("dual-ec"), pem("dual-rsa")]},
    {"name": "sni", "listen": [f"127.0.0.1:{ports['sni']}"], "upstream": "up",
     "certificates": [pem("a.test"), pem("b.test")]},
    {"name": "cc", "listen": [f"127.0.0.1:{ports['cc']}"], "upstream": "pp",
     "verify_client": "required", "client_ca": CA_COPY, "client_crl": CRL},
]
d = Daemon(frontends=frontends, workers=2, pidfile="tlsoffd.pid",
           upstreams={"up": be.address, "pp": {"address": rec.address, "proxy_protocol": "v2"}})


SEEN = {}       # (daemon, frontend): the access lines already taken


def next_line(dm, fe):
    """The access line of the connection to frontend fe of daemon dm that just
    ended: the one line not taken yet. Not by time or SNI: a line may be
    written after the next connection began, and the SNI is in the binding
    (each connection cannot have a name of its own)."""
    seen = SEEN.setdefault((dm.name, fe), set())

    def find():
        return next((l for l in dm.access() if l.get("frontend") == fe and
                     l["raw"] not in seen), None)
    line = poll_until(find, 5 * SLOW)
    if line:
        seen.add(line["raw"])
    return line


def go(fe, sni, kind, sess_in=None, sess_out=None, cert=None, args=()):
    """One s_client connection to frontend fe (TLS as KINDS[kind] says): the
    s_client_info dict, plus answered (the backend's answer came), access (this
    connection's access line) and header (the PROXY v2 header, frontend cc)."""
    n = len(rec.headers)
    a = ["-ign_eof", *KINDS[kind], *args]
    if cert:
        a += ["-cert", pem(cert)[0], "-key", pem(cert)[1]]
    if sess_in:
        a += ["-sess_in", sess_in]
    if sess_out:
        a += ["-sess_out", sess_out]
    i = s_client_info(ports[fe], sni, a, input=REQ)
    i["answered"] = "hello from" in i["out"]
    i["access"] = next_line(d, fe)
    i["header"] = rec.wait_header(n + 1, timeout=2) if fe == "cc" and i["answered"] else None
    return i


def sess_file(name):
    return os.path.join(d.dir, name + ".sess")


def summary(i):
    return (i["session"], i["cn"], i["access"] and i["access"]["raw"], i["out"][-300:])


for kind in KINDS:
    @case(f"names/{kind}")
    def across_names(kind=kind):
        sess = sess_file("a-" + kind)
        first = go("sni", "a.test", kind, sess_out=sess)
        ok(first["session"] == "New" and first["cn"] == "a.test",
           f"{kind}: SNI a.test, full handshake with a.test's certificate", summary(first))
        other = go("sni", "b.test", kind, sess_in=sess)
        ok(other["session"] == "New" and other["cn"] == "b.test" and other["answered"],
           f"{kind}: a.test's session offered with SNI b.test: a full handshake with "
           "b.test's certificate", summary(other))
        ok(other["access"] and other["access"].get("resumed") == "no",
           f"{kind}: the access log says resumed=no for it", summary(other))
        same = go("sni", "a.test", kind, sess_in=sess)
        ok(same["session"] == "Reused" and same["answered"] and same["access"] and
           same["access"].get("resumed") == WANT_RESUMED[kind],
           f"{kind}: the same session with SNI a.test still resumes", summary(same))
        upper = go("sni", "A.TEST", kind, sess_in=sess)
        ok(upper["session"] == "Reused", f"{kind}: and with SNI A.TEST (names are "
           "compared lower-cased)", summary(upper))
        none = go("sni", None, kind, sess_in=sess)
        ok(none["session"] == "New", f"{kind}: without SNI, a full handshake", summary(none))


EC_ONLY = ["-sigalgs", "ECDSA+SHA256"]
RSA_ONLY = ["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-client_sigalgs", "ECDSA+SHA256"]

for kind in KINDS:
    @case(f"certificate/{kind}")
    def across_certificates(kind=kind):
        # One name, two certificates: a session made with the ECDSA one does
        # not resume for a client that gets the RSA one (it could not have
        # verified the first), though the name is the same.
        sess = sess_file("dual-" + kind)
        first = go("dual", "dual.test", kind, sess_out=sess, args=EC_ONLY)
        same = go("dual", "dual.test", kind, sess_in=sess, args=EC_ONLY)
        rsa = go("dual", "dual.test", kind, sess_in=sess, args=RSA_ONLY)
        ok(first["session"] == "New" and first["bits"] == 256 and same["session"] == "Reused",
           f"{kind}: dual.test, an ECDSA-only client: ECDSA, and it resumes",
           (summary(first), summary(same)))
        ok(rsa["session"] == "New" and rsa["bits"] == 2048 and rsa["answered"],
           f"{kind}: the ECDSA session offered by an RSA-only client: a full handshake "
           "with the RSA certificate", summary(rsa))


def cn_tlv(i):
    h = i["header"]
    return h and h.get("ssl") and h["ssl"]["tlvs"].get(0x22)


for kind in KINDS:
    @case(f"identity/{kind}")
    def identity(kind=kind):
        sess = sess_file("id-" + kind)
        first = go("cc", "cc.test", kind, sess_out=sess, cert="client1")
        ok(first["session"] == "New" and first["answered"],
           f"{kind}: client1's full handshake", summary(first))
        again = go("cc", "cc.test", kind, sess_in=sess)
        ok(again["session"] == "Reused" and again["answered"] and again["access"] and
           again["access"].get("resumed") == WANT_RESUMED[kind],
           f"{kind}: resumed, resumed={WANT_RESUMED[kind]}", summary(again))
        for what, i in (("full handshake", first), ("resumption", again)):
            ok(i["access"] and i["access"].get("client_cert") == "/CN=client1",
               f"{kind}, {what}: access client_cert=\"/CN=client1\"", summary(i))
            ok(cn_tlv(i) == b"client1", f"{kind}, {what}: PROXY v2 PP2_SUBTYPE_SSL_CN is "
               "client1", i["header"])
        ok(again["header"] and again["header"]["ssl"]["client"] & 0x06 == 0x04,
           f"{kind}, resumption: CERT_SESS set, CERT_CONN not", again["header"])


@case
def quoted_subject():
    # client3's subject has an O and a CN with spaces and quotes: kept as the
    # full handshake logged it.
    sess = sess_file("client3")
    first = go("cc", "cc.test", "ticket13", sess_out=sess, cert="client3")
    again = go("cc", "cc.test", "ticket13", sess_in=sess)
    want = first["access"] and first["access"].get("client_cert")
    ok(again["session"] == "Reused" and want and again["access"] and
       again["access"].get("client_cert") == want and cn_tlv(again) == b'client "three"',
       "TLS 1.3 ticket: client3's subject and CN as the full handshake had them",
       (summary(first), summary(again), cn_tlv(again)))


def reload():
    n = len(re.findall("configuration reloaded", d.log_text()))
    d.send_signal(signal.SIGHUP)
    return poll_until(lambda: len(re.findall("configuration reloaded", d.log_text())) > n,
                      10 * SLOW)


@case
def revocation():
    # Sessions of client1 (to be revoked) and client3 (not), all three kinds.
    for kind in KINDS:
        for c in ("client1", "client3"):
            i = go("cc", "cc.test", kind, sess_out=sess_file(f"crl-{c}-{kind}"), cert=c)
            ok(i["answered"], f"before the new CRL: {c}, {kind}: through", summary(i))
            i = go("cc", "cc.test", kind, sess_in=sess_file(f"crl-{c}-{kind}"))
            ok(i["session"] == "Reused", f"before the new CRL: {c}'s {kind} session resumes",
               summary(i))
    write_crl(CRL, ["client2", "client1"], 2)
    ok(reload(), "SIGHUP: the master reloads the configuration and the new CRL")

    def refused():
        i = go("cc", "cc.test", "ticket13", cert="client1")
        return not i["answered"] or None
    ok(poll_until(refused, 10), "after the new CRL, a full handshake with client1 is refused")
    for kind in KINDS:
        i = go("cc", "cc.test", kind, sess_in=sess_file(f"crl-client1-{kind}"))
        ok(i["session"] != "Reused" and not i["answered"] and i["access"] and
           i["access"]["outcome"] == "handshake-failed",
           f"revoked client1's {kind} session does not resume; without a certificate "
           "the client is refused", summary(i))
        i = go("cc", "cc.test", kind, sess_in=sess_file(f"crl-client1-{kind}"), cert="client1")
        ok(i["session"] != "Reused" and not i["answered"],
           f"revoked client1's {kind} session, offered with its certificate: refused",
           summary(i))
        # The CRL is not in the binding: a certificate it does not revoke
        # goes on resuming, checked against it.
        i = go("cc", "cc.test", kind, sess_in=sess_file(f"crl-client3-{kind}"))
        ok(i["session"] == "Reused" and i["answered"] and i["access"] and
           i["access"].get("client_cert") == "/O=tlsoffd test/CN=client ?three?",
           f"unrevoked client3's {kind} session still resumes, with its subject", summary(i))


@case
def new_ca():
    # Other contents at the same client_ca path (the test CA and another):
    # every session made under the old contents makes a full handshake.
    for kind in KINDS:
        go("cc", "cc.test", kind, sess_out=sess_file(f"ca-{kind}"), cert="client3")
    with open(CA_COPY, "ab") as f, open(os.path.join(CERTS, "other-ca.pem"), "rb") as o:
        f.write(o.read())
    ok(reload(), "SIGHUP: the master reloads the configuration and the new client_ca")
    poll_until(lambda: go("cc", "cc.test", "ticket13", sess_in=sess_file("ca-ticket13"),
                          cert="client3")["session"] == "New" or None, 10)
    for kind in KINDS:
        i = go("cc", "cc.test", kind, sess_in=sess_file(f"ca-{kind}"), cert="client3")
        ok(i["session"] == "New" and i["answered"],
           f"client_ca's contents changed: client3's {kind} session makes a full handshake, "
           "through", summary(i))


@case
def identity_expired():
    # The certificate a ticket names is kept for session_cache.timeout from
    # the session's last handshake; the ticket outlives it (tickets.lifetime):
    # then a full handshake, which shows the certificate again.
    port = free_port()
    fe = [{"name": "short", "listen": [f"127.0.0.1:{port}"], "upstream": "up",
           "verify_client": "optional", "client_ca": CA}]
    with Daemon(frontends=fe, upstreams={"up": be.address}, name="short",
                tls={"session_cache": {"timeout": 1}}) as ds:
        for kind in ("ticket12", "ticket13"):
            sess, plain = (os.path.join(ds.dir, kind + x) for x in (".sess", ".plain"))
            a = ["-ign_eof", *KINDS[kind], "-cert", pem("client1")[0], "-key", pem("client1")[1]]
            s_client(port, ["-servername", "s.test", "-sess_out", sess, *a], input=REQ)
            next_line(ds, "short")
            s_client(port, ["-servername", "s.test", "-sess_out", plain, "-ign_eof",
                            *KINDS[kind]], input=REQ)
            next_line(ds, "short")
            r = s_client_info(port, "s.test", ["-sess_in", sess, *a], input=REQ)
            next_line(ds, "short")
            ok(r["session"] == "Reused", f"{kind}: within the timeout, the ticket resumes",
               r["out"][-300:])
            time.sleep(1.5 * SLOW)
            r = s_client_info(port, "s.test", ["-sess_in", plain, "-ign_eof", *KINDS[kind]],
                              input=REQ)
            next_line(ds, "short")
            ok(r["session"] == "Reused", f"{kind}: past it, a ticket made without a client "
               "certificate still resumes", r["out"][-300:])
            r = s_client_info(port, "s.test", ["-sess_in", sess, *a], input=REQ)
            line = next_line(ds, "short")
            ok(r["session"] == "New" and line and line.get("client_cert") == "/CN=client1",
               f"{kind}: past it, a full handshake that shows client1 again",
               (r["out"][-300:], line and line["raw"]))


done()
