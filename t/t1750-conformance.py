#!/usr/bin/env python3
"""What the TLS RFCs say a server must answer, checked with records built
by hand (t/tlsraw.py): ClientHellos no group can serve, with a broken or
forbidden extension, records that are too long, empty or of no type,
invalid key shares, a version above TLS 1.2, 0-RTT data to skip, KeyUpdate
misuse, the middlebox-compatibility ChangeCipherSpec -- each answered with
the one fatal alert the RFC names, not a bare close, two alerts, or a
handshake that should not be.

Part of it is tlsoffd's own ClientHello check (lib/tls_hello.c), in every
build; the rest is wolfSSL's, right in the default build (WOLFSSL=fast:
contrib/wolfssl-fast's options and patches). With a wolfSSL without them
(WOLFSSL=system), those cases are known breakage (`# TODO`), as
tlsoffd.conf(5) CAVEATS says, and `tlsoffd -v` shows what is missing."""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403
from tlsraw import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
VERSION = subprocess.run([TLSOFFD, "-v"], capture_output=True, text=True).stdout
HAVE = {f: f in VERSION for f in ("ECC points validated", "64 signature algorithms",
                                  "middlebox ChangeCipherSpec", "0-RTT skipped",
                                  "alerts and versions patched")}


def lib_check(feature, cond, desc, detail=None):
    """ok() if the wolfSSL linked has the feature, else known breakage."""
    if HAVE[feature]:
        ok(cond, desc, detail)
    else:
        xfail(cond, desc, f"this wolfSSL lacks '{feature}' (tlsoffd -v)", detail)


def pem(n):
    return (os.path.join(CERTS, n + ".pem"), os.path.join(CERTS, n + ".key"))


be = Backend("http", "conformance")
port = free_port()
d = Daemon(frontends=[{"name": "fe", "listen": [f"127.0.0.1:{port}"], "upstream": "up",
                       "certificates": [pem("example.test"), pem("dual-rsa"), pem("dual-ec")]}],
           upstreams={"up": be.address})


def names(alerts):
    return [ALERTS.get(a[1], a[1]) if a else "undecryptable" for a in alerts]


def refused_with(data, alert, desc, check=ok):
    """The server answers data with exactly one fatal alert, alert, and no
    ServerHello."""
    recs, closed = answer(port, data)
    got = alerts_of(recs)
    check(server_hello(recs) is None and got == [(2, alert)] and closed,
          f"{desc}: one fatal {ALERTS[alert]} alert", f"alerts {names(got)}, "
          f"records {[r[0] for r in recs]}, closed {closed}")


def served(data):
    """The ServerHello the server answers data with, and the alerts before it."""
    recs, _ = answer(port, data, until=is_server_hello)
    return server_hello(recs), alerts_of(recs)


@case
def no_common_group():
    """RFC 8446 section 4.1.1, RFC 8422 section 5.1: no group in common
    (tls.groups is X25519 and P-256) is refused, not served P-256 or sent
    a HelloRetryRequest that cannot help."""
    refused_with(Hello(tls13=False, groups=(P384,)).records(), 40, "TLS 1.2, only P-384")
    refused_with(Hello(groups=(P384,), shares=()).records(), 40, "TLS 1.3, only P-384")
    refused_with(Hello(groups=(X448,), shares=()).records(), 40, "TLS 1.3, only X448")
    refused_with(Hello(groups=(0x1234,), shares=((0x1234, bytes(32)),)).records(), 40,
                 "TLS 1.3, only an unknown group")
    sh, al = served(Hello(groups=(P384, P256), shares=((P384, bytes(97)),)).records())
    ok(sh is not None and sh["hrr"] and not al,
       "TLS 1.3, P-256 listed but only a P-384 share: a HelloRetryRequest", f"{sh} {al}")
    sh, al = served(Hello(tls13=False, groups=None).records())
    ok(sh is not None and not al, "TLS 1.2 without supported_groups: served (RFC 8422 4)")
    lines = [a for a in d.access() if "no key exchange group in common" in a.get("reason", "")]
    ok(len(lines) == 4 and all(a.get("sni") == "example.test" for a in lines),
       "the access log says why, with the server name asked for", lines[:1])


@case
def p256_key_share():
    """RFC 8446 section 4.2.8.2: a P-256 share must be a point on the curve."""
    for what, point in (("(0,0)", b"\x04" + bytes(64)), ("off the curve", b"\x04" + b"\x01" * 64),
                        ("compressed", b"\x02" + bytes(32))):
        refused_with(Hello(groups=(P256,), shares=((P256, point),)).records(), 47,
                     f"TLS 1.3, a P-256 share {what}")
    sh, al = served(Hello(groups=(P256,), shares=(P256,)).records())
    ok(sh is not None and not sh["hrr"] and not al, "TLS 1.3, a real P-256 share: served")


def tls12_flight(p):
    """Reads the server's TLS 1.2 flight up to ServerHelloDone; its messages."""
    msgs = b""
    while True:
        r = p.record()
        if r is None or r[0] != HANDSHAKE:
            return None
        msgs += r[2]
        m, types = msgs, []
        while len(m) >= 4 and len(m) >= 4 + int.from_bytes(m[1:4], "big"):
            types.append(m[0])
            m = m[4 + int.from_bytes(m[1:4], "big"):]
        if 14 in types:
            return types


@case
def tls12_client_key_exchange_point():
    """RFC 8422 section 5.11: the ClientKeyExchange point is validated; (0,0)
    is an illegal_parameter, not a bad_record_mac at Finished."""
    h = Hello(tls13=False, groups=(P256,), suites=[0xc02b, 0xc02f])
    p = Peer(port)
    p.send(h.records())
    types = tls12_flight(p)
    ok(types is not None and types[0] == 2, "TLS 1.2: the server's flight up to ServerHelloDone")
    cke = handshake(16, vec8(b"\x04" + bytes(64)))
    p.send(record(HANDSHAKE, cke) + record(CCS, b"\x01") + record(HANDSHAKE, os.urandom(40)))
    got = alerts_of(p.all_records())
    p.close()
    lib_check("ECC points validated", got == [(2, 47)],
              "TLS 1.2, ClientKeyExchange point (0,0): one illegal_parameter alert",
              f"alerts {names(got)}")


@case
def tls12_handshake_records():
    """TLS 1.2, after the server's flight: a handshake record over 2^14 bytes
    is a record_overflow; a HelloRequest from the client (which only a
    server sends) an unexpected_message."""
    for size, msg, alert, desc in ((16385, None, 22, "a 16385-byte ClientKeyExchange record"),
                                   (None, handshake(0, b""), 10, "a HelloRequest from the client")):
        p = Peer(port)
        p.send(Hello(tls13=False, groups=(P256,), suites=[0xc02b, 0xc02f]).records())
        ok(tls12_flight(p) is not None, f"TLS 1.2, {desc}: the server's flight")
        cke = handshake(16, vec8(p256_share()[1]))
        p.send(record(HANDSHAKE, cke + bytes(size - len(cke))) if size else record(HANDSHAKE, msg))
        got = alerts_of(p.all_records())
        p.close()
        check = ok if size else lambda c, d_, x=None: lib_check(
            "alerts and versions patched", c, d_, x)
        check(got == [(2, alert)], f"TLS 1.2, {desc}: one fatal {ALERTS[alert]} alert",
              f"alerts {names(got)}")


@case
def record_sizes():
    """RFC 8446 section 5.1: a record over 2^14 bytes is a record_overflow;
    a ClientHello over tlsoffd's maximum (16384 bytes) gets an alert."""
    m = Hello().message()
    refused_with(record(HANDSHAKE, m + bytes(16385 - len(m))), 22, "a 16385-byte first record")
    big = Hello()
    big.exts.insert(0, (0xfafa, bytes(17000)))
    refused_with(big.records(), 47, "a 17 KB ClientHello, over the maximum")
    fine = Hello()
    fine.exts.insert(0, (0xfafa, bytes(15000)))
    sh, al = served(fine.records())
    ok(sh is not None and not al, "a 15 KB ClientHello in one record: served")
    t = TLS13(port)
    ok(t.ok, "TLS 1.3 handshake by hand")
    t.send(APPDATA, bytes(16385))
    got = t.alerts_until_close()
    ok(got == [(2, 22)], "TLS 1.3, 2^14+1 bytes of application data: record_overflow",
       names(got))
    t.close()


@case
def many_signature_algorithms():
    """A client that lists ECDSA P-256 20th among its signature algorithms
    still gets the ECDSA certificate (wolfSSL reads 19 by default)."""
    sig = [0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0809, 0x080a, 0x080b, 0x0807,
           0x0808, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602, 0x0201, 0x0202, 0x0203, 0x0403]
    for tls13 in (True, False):
        h = Hello(tls13=tls13, sni="dual.test", sigalgs=sig)
        h.suites = [0x1301, 0xc02b] if tls13 else [0xc02b]     # ECDSA only for TLS 1.2
        sh, al = served(h.records())
        lib_check("64 signature algorithms", sh is not None and not al,
                  f"{'TLS 1.3' if tls13 else 'TLS 1.2'}, ECDSA P-256 20th of 20: served",
                  f"{sh} {names(al)}")


@case
def renegotiation_info():
    """RFC 5746 section 3.6: an initial hello with a non-empty
    renegotiation_info is refused with handshake_failure; an empty one and
    the SCSV are fine, with or without an extensions block."""
    for tls13 in (True, False):
        h = Hello(tls13=tls13)
        h.set_ext(EXT_RENEG, vec8(b"x" * 12))
        refused_with(h.records(), 40,
                     f"{'TLS 1.3' if tls13 else 'TLS 1.2'}, renegotiation_info not empty")
    h = Hello(tls13=False)
    h.set_ext(EXT_RENEG, vec8(b""))
    sh, al = served(h.records())
    ok(sh is not None and not al, "TLS 1.2, an empty renegotiation_info: served")
    h = Hello(tls13=False)
    h.suites.append(0x00ff)
    sh, al = served(record(HANDSHAKE, h.message(extensions=False), 0x0301))
    ok(sh is not None and sh["suite"] in SUITES12 and not al,
       "TLS 1.2, no extensions block and the SCSV: a real suite", f"{sh} {names(al)}")


@case
def version_above_tls12():
    """RFC 8446 appendix D.2: a ClientHello with legacy_version above TLS 1.2
    and no supported_versions negotiates TLS 1.2 (no version intolerance)."""
    for v in (0x0304, 0x0401, 0x7f7f):
        h = Hello(tls13=False)
        h.legacy_version = v
        sh, al = served(h.records())
        check = ok if v != 0x0401 else lambda c, d_, x=None: lib_check(
            "alerts and versions patched", c, d_, x)
        check(sh is not None and sh["version"] == 0x0303 and not al,
              f"legacy_version {v >> 8}.{v & 0xff}: TLS 1.2", f"{sh} {names(al)}")


@case
def alpn_names():
    """RFC 7301 section 3.1: an empty protocol name is a decode_error."""
    h = Hello()
    h.set_ext(EXT_ALPN, vec16(vec8(b"h2") + vec8(b"")))
    refused_with(h.records(), 50, "ALPN with an empty name")


@case
def records_before_the_hello():
    """RFC 8446 section 5: records that cannot come first are an
    unexpected_message, not a bare close."""
    refused_with(record(HANDSHAKE, b""), 10, "an empty handshake record")
    refused_with(record(0, b"abc"), 10, "a record of type 0")
    refused_with(record(CCS, b"\x01") + Hello().records(), 10,
                 "a ChangeCipherSpec before the ClientHello")
    refused_with(record(APPDATA, b"x" * 20), 10, "application data before the ClientHello")


def after_handshake(desc, send, alert):
    t = TLS13(port)
    if not t.ok:
        ok(False, f"{desc}: TLS 1.3 handshake by hand")
        return
    send(t)
    got = t.alerts_until_close()
    lib_check("alerts and versions patched", got == [(2, alert)],
              f"{desc}: one fatal {ALERTS[alert]} alert", f"alerts {names(got)}")
    t.close()


@case
def after_the_handshake():
    """Misuse after a TLS 1.3 handshake (RFC 8446 sections 4.6.3, 5.1, 5.4)."""
    after_handshake("KeyUpdate of 2 bytes", lambda t: t.send(HANDSHAKE, handshake(24, b"\0\0")), 50)
    after_handshake("an empty handshake record", lambda t: t.send(HANDSHAKE, b""), 10)
    after_handshake("an inner content type of 0", lambda t: t.send(0, b"abc"), 10)
    t = TLS13(port)
    t.send(HANDSHAKE, handshake(24, b"\x02"))
    got = t.alerts_until_close()
    ok(got == [(2, 47)], "KeyUpdate request_update 2: one illegal_parameter", names(got))
    t.close()
    t = TLS13(port)
    t.peer.send(record(CCS, b"\x01"))
    got = t.alerts_until_close()
    ok(got == [(2, 10)], "ChangeCipherSpec after the handshake: unexpected_message", names(got))
    t.close()
    t = TLS13(port)
    t.send(APPDATA, REQ)
    body = t.read_all()
    ok(b"hello from conformance" in body, "the hand-made TLS 1.3 client is served", body)
    t.close()


@case
def early_data_skipped():
    """RFC 8446 section 4.2.10: 0-RTT data the server does not accept (an
    unknown PSK here) is skipped, and the 1-RTT handshake completes."""
    h = Hello(suites=[0x1301])
    h.exts.append((EXT_EARLY, b""))
    identity = vec16(os.urandom(64)) + struct.pack(">I", 12345)
    h.exts.append((EXT_PSK, vec16(identity) + vec16(vec8(bytes(32)))))
    t = TLS13(port, hello=h, before_finished=record(APPDATA, os.urandom(100)) +
              record(APPDATA, os.urandom(60)))
    body = b""
    if t.ok:
        t.send(APPDATA, REQ)
        body = t.read_all()
    lib_check("0-RTT skipped", b"hello from conformance" in body,
              "two 0-RTT records skipped, the request served", body)
    t.close()


def ticket_exts(tk):
    """The extension types of a NewSessionTicket."""
    e, out = tk.exts[2:], []
    while len(e) >= 4:
        t, n = struct.unpack(">HH", e[:4])
        out.append(t)
        e = e[4 + n:]
    return out


@case
def zero_rtt_never_accepted():
    """RFC 8446 section 8: 0-RTT data can be replayed, and a backend behind
    tlsoffd could not tell. Tickets announce no early data; a client that
    sends some on a ticket that resumes has it skipped, not forwarded."""
    t = TLS13(port)
    t.send(APPDATA, REQ)
    t.read_all()
    t.close()
    ok(t.tickets and EXT_EARLY not in ticket_exts(t.tickets[0]),
       "TLS 1.3 tickets announce no early data", [ticket_exts(k) for k in t.tickets])
    if not t.tickets:
        return
    before = len(d.access())
    early = b"GET /replayed HTTP/1.0\r\n\r\n"
    r = TLS13(port, hello=psk_hello(t.tickets[0]), early=early)
    ok(not getattr(r, "early_accepted", False), "0-RTT data on a ticket: not accepted")
    body = b""
    if r.ok:
        r.send(APPDATA, REQ)
        body = r.read_all()
    r.close()
    lib_check("0-RTT skipped", r.ok and r.psk_accepted and b"hello from conformance" in body,
              "... skipped: the ticket resumes and the 1-RTT request is served", body)
    lines = poll_until(lambda: [a for a in d.access()[before:] if a.get("resumed") == "ticket"],
                       5) or []
    ok(all(a.get("in") == len(REQ) for a in lines),
       "... and the backend got the 1-RTT request only (in= its length)", lines)


@case
def middlebox_compatibility():
    """RFC 8446 appendix D.4: a client that sends a session ID gets a
    ChangeCipherSpec after the ServerHello; one that does not, none."""
    t = TLS13(port, hello=Hello(suites=[0x1301], session_id=os.urandom(32)),
              before_finished=record(CCS, b"\x01"))
    lib_check("middlebox ChangeCipherSpec", t.ok and t.ccs_seen,
              "a session ID sent: a ChangeCipherSpec after the ServerHello")
    if t.ok:
        t.send(APPDATA, REQ)
        body = t.read_all()
        ok(b"hello from conformance" in body, "... and the client's own is accepted", body)
    t.close()
    t = TLS13(port, hello=Hello(suites=[0x1301], session_id=b""))
    ok(t.ok and not t.ccs_seen, "no session ID: no ChangeCipherSpec")
    t.close()
    sid = os.urandom(16)        # a TLS 1.2 session ID from another server
    recs, _ = answer(port, Hello(suites=[0x1301], session_id=sid).records(),
                     until=is_server_hello)
    sh = server_hello(recs)
    lib_check("alerts and versions patched", sh is not None and sh["session_id"] == sid,
              "TLS 1.3, a 16-byte session ID (RFC 8446 4.1.2: 0 to 32): echoed",
              f"{sh} {names(alerts_of(recs))}")


@case
def one_alert_only():
    """Refusals send one fatal alert, never two (RFC 8446 section 6.2)."""
    h = Hello(tls13=False)
    h.legacy_version = 0x0301                       # TLS 1.0: below the minimum
    recs, _ = answer(port, h.records())
    got = alerts_of(recs)
    ok(len(got) == 1 and got[0][0] == 2, "a TLS 1.0 client: one fatal alert", names(got))


d.stop()
done()
