"""
tlsraw — TLS records and handshakes built by hand, for conformance tests:
ClientHellos with any extension (or a broken one), records of any type or
size, and a TLS 1.3 client that completes a handshake (X25519,
AES-128-GCM-SHA256, the server's certificate not checked) so that what is
sent after it can be as wrong as a test needs.

Needs python3-cryptography (X25519, P-256, AES-GCM); hashing and HKDF
come from the standard library.
"""
import hashlib
import hmac
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HANDSHAKE, ALERT, CCS, APPDATA = 22, 21, 20, 23
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
          47: "illegal_parameter", 50: "decode_error", 51: "decrypt_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name",
          120: "no_application_protocol"}

# Extension types and values used below.
EXT_SNI, EXT_GROUPS, EXT_SIGALGS, EXT_ALPN = 0, 10, 13, 16
EXT_EMS, EXT_PSK, EXT_EARLY, EXT_VERSIONS, EXT_PSK_MODES, EXT_KEY_SHARE = 23, 41, 42, 43, 45, 51
EXT_RENEG = 0xff01
X25519, P256, P384, X448 = 29, 23, 24, 30
SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
SUITES13 = [0x1301, 0x1302, 0x1303]
SUITES12 = [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8]


def u8(n):
    return bytes([n])


def u16(n):
    return struct.pack(">H", n)


def u24(n):
    return struct.pack(">I", n)[1:]


def vec8(b):
    return u8(len(b)) + b


def vec16(b):
    return u16(len(b)) + b


def ext(t, body):
    return u16(t) + vec16(body)


def record(ctype, body, version=0x0303):
    return u8(ctype) + u16(version) + u16(len(body)) + body


def handshake(htype, body):
    return u8(htype) + u24(len(body)) + body


def p256_share():
    """A fresh P-256 key and its uncompressed point."""
    k = ec.generate_private_key(ec.SECP256R1())
    pub = k.public_key().public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    return k, pub


def x25519_share():
    k = x25519.X25519PrivateKey.generate()
    return k, k.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)


class Hello:
    """A ClientHello; change the fields, or exts (a list of (type, body)),
    then body() or records()."""

    def __init__(self, tls13=True, sni="example.test", groups=(X25519, P256),
                 shares=(X25519,), sigalgs=SIGALGS, suites=None, session_id=None):
        self.legacy_version = 0x0303
        self.random = os.urandom(32)
        self.session_id = os.urandom(32) if session_id is None else session_id
        self.suites = list(suites if suites is not None
                           else (SUITES13 + SUITES12 if tls13 else SUITES12))
        self.compression = b"\x00"
        self.keys = {}
        self.exts = []
        if sni:
            self.exts.append((EXT_SNI, vec16(u8(0) + vec16(sni.encode()))))
        if groups is not None:
            self.exts.append((EXT_GROUPS, vec16(b"".join(u16(g) for g in groups))))
        if sigalgs is not None:
            self.exts.append((EXT_SIGALGS, vec16(b"".join(u16(a) for a in sigalgs))))
        self.exts.append((EXT_EMS, b""))
        if tls13:
            self.exts.append((EXT_VERSIONS, vec8(u16(0x0304) + u16(0x0303))))
            self.exts.append((EXT_PSK_MODES, vec8(u8(1))))
            self.exts.append((EXT_KEY_SHARE, self.key_shares(shares)))

    def key_shares(self, shares):
        out = b""
        for g in shares:
            if isinstance(g, tuple):            # (group, raw bytes): as given
                out += u16(g[0]) + vec16(g[1])
                continue
            k, pub = x25519_share() if g == X25519 else p256_share()
            self.keys[g] = k
            out += u16(g) + vec16(pub)
        return vec16(out)

    def set_ext(self, t, body):
        """Replaces extension t (or appends it)."""
        for i, (et, _) in enumerate(self.exts):
            if et == t:
                self.exts[i] = (t, body)
                return
        self.exts.append((t, body))

    def drop_ext(self, t):
        self.exts = [(et, b) for et, b in self.exts if et != t]

    def body(self, extensions=True):
        b = (u16(self.legacy_version) + self.random + vec8(self.session_id) +
             vec16(b"".join(u16(s) for s in self.suites)) + vec8(self.compression))
        if extensions:
            b += vec16(b"".join(ext(t, e) for t, e in self.exts))
        return b

    def message(self, extensions=True):
        return handshake(1, self.body(extensions))

    def records(self, size=16384, extensions=True, version=0x0301):
        m = self.message(extensions)
        return b"".join(record(HANDSHAKE, m[i:i + size], version)
                        for i in range(0, len(m), size))


class Peer:
    """A socket to the daemon, and the records it sends back."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, n, deadline):
        while len(self.buf) < n and not self.closed:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                d = b""
            if not d:
                self.closed = True
                break
            self.buf += d
        return len(self.buf) >= n

    def record(self, timeout=5.0):
        """The next record (type, version, body), or None at close or timeout."""
        deadline = time.monotonic() + timeout
        if not self._fill(5, deadline):
            return None
        n = struct.unpack(">H", self.buf[3:5])[0]
        if not self._fill(5 + n, deadline):
            return None
        r = (self.buf[0], struct.unpack(">H", self.buf[1:3])[0], self.buf[5:5 + n])
        self.buf = self.buf[5 + n:]
        return r

    def all_records(self, timeout=5.0, until=None):
        """Every record until the server closes, until(record) is true, or
        timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.record(deadline - time.monotonic())
            if r is None:
                break
            out.append(r)
            if until and until(r):
                break
        return out

    def close(self):
        self.sock.close()


def alerts_of(records):
    """The plaintext alerts among records: [(level, description)]."""
    return [(r[2][0], r[2][1]) for r in records if r[0] == ALERT and len(r[2]) == 2]


def is_server_hello(rec):
    return rec[0] == HANDSHAKE and rec[2][:1] == b"\x02"


def answer(port, data, timeout=5.0, until=None):
    """Sends data on a new connection; every record the server sent before
    closing (or until(record)), and whether it closed."""
    p = Peer(port, timeout=timeout)
    p.send(data)
    recs = p.all_records(timeout, until)
    closed = p.closed
    p.close()
    return recs, closed


def server_hello(records):
    """The first ServerHello in records: (version, suite, is_hrr, exts) or None."""
    for t, _, body in records:
        if t == HANDSHAKE and body[:1] == b"\x02":
            b = body[4:]
            rnd = b[2:34]
            sid_len = b[34]
            off = 35 + sid_len
            suite = struct.unpack(">H", b[off:off + 2])[0]
            exts = {}
            e = b[off + 5:]
            while len(e) >= 4:
                et, el = struct.unpack(">HH", e[:4])
                exts[et] = e[4:4 + el]
                e = e[4 + el:]
            hrr = rnd == HRR_RANDOM
            return {"version": struct.unpack(">H", b[:2])[0], "suite": suite, "hrr": hrr,
                    "exts": exts, "session_id": b[35:35 + sid_len]}
    return None


HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret, label, context, length):
    info = u16(length) + vec8(b"tls13 " + label) + vec8(context)
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + u8(i), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def derive_secret(secret, label, transcript):
    return hkdf_expand_label(secret, label, hashlib.sha256(transcript).digest(), 32)


class Keys:
    """One direction's AES-128-GCM traffic keys and sequence number."""

    def __init__(self, secret):
        self.secret = secret
        self.aead = AESGCM(hkdf_expand_label(secret, b"key", b"", 16))
        self.iv = hkdf_expand_label(secret, b"iv", b"", 12)
        self.seq = 0

    def nonce(self):
        n = bytes(4) + struct.pack(">Q", self.seq)
        self.seq += 1
        return bytes(a ^ b for a, b in zip(self.iv, n))

    def seal(self, ctype, data, pad=0):
        inner = data + u8(ctype) + bytes(pad)
        hdr = u8(APPDATA) + u16(0x0303) + u16(len(inner) + 16)
        return hdr + self.aead.encrypt(self.nonce(), inner, hdr)

    def open(self, rec):
        t, v, body = rec
        hdr = u8(t) + u16(v) + u16(len(body))
        inner = self.aead.decrypt(self.nonce(), body, hdr).rstrip(b"\x00")
        return inner[-1], inner[:-1]

    def updated(self):
        return Keys(hkdf_expand_label(self.secret, b"traffic upd", b"", 32))


class Ticket:
    """A NewSessionTicket and the PSK it stands for (RFC 8446 4.6.1)."""

    def __init__(self, body, res_master):
        self.lifetime, self.age_add = struct.unpack(">II", body[:8])
        n = body[8]
        self.nonce = body[9:9 + n]
        off = 9 + n
        tl = struct.unpack(">H", body[off:off + 2])[0]
        self.ticket = body[off + 2:off + 2 + tl]
        self.exts = body[off + 2 + tl:]
        self.psk = hkdf_expand_label(res_master, b"resumption", self.nonce, 32)
        self.received = time.monotonic()


def psk_hello(ticket, early_data=True, sni="example.test"):
    """A ClientHello that resumes ticket (psk_dhe_ke), offering early data
    if asked; its binder is set by TLS13 (it needs the whole message)."""
    h = Hello(tls13=True, sni=sni, suites=[0x1301])
    if early_data:
        h.exts.append((EXT_EARLY, b""))
    age = (int((time.monotonic() - ticket.received) * 1000) + ticket.age_add) & 0xffffffff
    identity = vec16(ticket.ticket) + struct.pack(">I", age)
    h.exts.append((EXT_PSK, vec16(identity) + vec16(vec8(bytes(32)))))
    h.psk = ticket.psk
    return h


class TLS13:
    """A TLS 1.3 handshake done by hand (X25519, TLS_AES_128_GCM_SHA256),
    full or resumed from a Ticket (psk_hello: with early_data, 0-RTT
    records made by early(data) are sent after the ClientHello); after it,
    send()/recv() at the record layer."""

    def __init__(self, port, hello=None, before_finished=b"", sni="example.test", early=b""):
        self.hello = hello or Hello(tls13=True, sni=sni, suites=[0x1301])
        self.peer = Peer(port)
        self.tickets = []
        psk = getattr(self.hello, "psk", None)
        self.early_secret = hkdf_extract(bytes(32), psk or bytes(32))
        ch = self._bound(self.hello.message()) if psk else self.hello.message()
        self.transcript = ch
        zero_rtt = b""
        if early:
            ek = Keys(derive_secret(self.early_secret, b"c e traffic", ch))
            zero_rtt = ek.seal(APPDATA, early)
        self.peer.send(self._records(ch) + zero_rtt + before_finished)
        self.ok = self._server_flight() and self._finish()

    @staticmethod
    def _records(msg):
        return b"".join(record(HANDSHAKE, msg[i:i + 16384], 0x0301)
                        for i in range(0, len(msg), 16384))

    def _bound(self, msg):
        """msg with its PSK binder (RFC 8446 4.2.11.2): over the hello up to
        the binders list."""
        truncated = msg[:-(2 + 1 + 32)]
        binder_key = derive_secret(self.early_secret, b"res binder", b"")
        fkey = hkdf_expand_label(binder_key, b"finished", b"", 32)
        binder = hmac.new(fkey, hashlib.sha256(truncated).digest(), hashlib.sha256).digest()
        return truncated + vec16(vec8(binder))

    def _server_flight(self):
        sh_rec = self.peer.record()
        while sh_rec and sh_rec[0] == CCS:
            sh_rec = self.peer.record()
        if not sh_rec or sh_rec[0] != HANDSHAKE or sh_rec[2][:1] != b"\x02":
            self.first = sh_rec
            return False
        sh = server_hello([sh_rec])
        self.transcript += sh_rec[2]
        share = sh["exts"][EXT_KEY_SHARE]
        peer_pub = x25519.X25519PublicKey.from_public_bytes(share[4:4 + 32])
        shared = self.hello.keys[X25519].exchange(peer_pub)
        self.psk_accepted = EXT_PSK in sh["exts"]
        early = self.early_secret if self.psk_accepted else hkdf_extract(bytes(32), bytes(32))
        hs = hkdf_extract(derive_secret(early, b"derived", b""), shared)
        self.c_hs = derive_secret(hs, b"c hs traffic", self.transcript)
        self.s_hs = derive_secret(hs, b"s hs traffic", self.transcript)
        self.master = hkdf_extract(derive_secret(hs, b"derived", b""), bytes(32))
        self.rkeys, self.wkeys = Keys(self.s_hs), Keys(self.c_hs)
        self.ccs_seen = False
        msgs = b""
        while True:
            r = self.peer.record()
            if r is None:
                return False
            if r[0] == CCS:
                self.ccs_seen = True
                continue
            t, data = self.rkeys.open(r)
            msgs += data
            if self._has_finished(msgs):
                break
        self.transcript += msgs
        self.early_accepted = self._ee_has(msgs, EXT_EARLY)
        return True

    @staticmethod
    def _ee_has(msgs, ext_type):
        """Whether the EncryptedExtensions in msgs has extension ext_type."""
        if msgs[:1] != b"\x08":
            return False
        e = msgs[4 + 2:4 + 2 + int.from_bytes(msgs[4:6], "big")]
        while len(e) >= 4:
            t, n = struct.unpack(">HH", e[:4])
            if t == ext_type:
                return True
            e = e[4 + n:]
        return False

    @staticmethod
    def _has_finished(msgs):
        while len(msgs) >= 4:
            n = int.from_bytes(msgs[1:4], "big")
            if len(msgs) < 4 + n:
                return False
            if msgs[0] == 20:
                return True
            msgs = msgs[4 + n:]
        return False

    def _finish(self):
        c_ap = derive_secret(self.master, b"c ap traffic", self.transcript)
        s_ap = derive_secret(self.master, b"s ap traffic", self.transcript)
        fkey = hkdf_expand_label(self.c_hs, b"finished", b"", 32)
        verify = hmac.new(fkey, hashlib.sha256(self.transcript).digest(),
                          hashlib.sha256).digest()
        finished = handshake(20, verify)
        self.peer.send(self.wkeys.seal(HANDSHAKE, finished))
        self.res_master = derive_secret(self.master, b"res master", self.transcript + finished)
        self.rkeys, self.wkeys = Keys(s_ap), Keys(c_ap)
        return True

    def send(self, ctype, data, pad=0):
        return self.peer.send(self.wkeys.seal(ctype, data, pad))

    def recv(self, timeout=5.0):
        """The next record from the server, decrypted: (type, data), an
        ('alert', (level, desc)) for a plaintext alert, or None."""
        while True:
            r = self.peer.record(timeout)
            if r is None:
                return None
            if r[0] == ALERT:
                return ("alert", (r[2][0], r[2][1]))
            t, data = self.rkeys.open(r)
            if t == HANDSHAKE and data[:1] == b"\x04":      # NewSessionTicket
                self.tickets.append(Ticket(data[4:], self.res_master))
                continue
            if t == ALERT:
                return ("alert", (data[0], data[1]))
            return (t, data)

    def read_all(self, timeout=5.0):
        """The application data the server sends until it closes."""
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = self.recv(deadline - time.monotonic())
            except Exception:
                break
            if r is None or r[0] == "alert":
                break
            if r[0] == APPDATA:
                out += r[1]
        return out

    def alerts_until_close(self, timeout=5.0):
        """Every alert the server sends before it closes."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = self.recv(deadline - time.monotonic())
            except Exception:
                out.append(("undecryptable", None))
                break
            if r is None:
                break
            if r[0] == "alert":
                out.append(r[1])
        return out

    def close(self):
        self.peer.close()
