#!/usr/bin/env python3
"""The TLS policy of tlsoffd.conf(5) on the wire: the server's cipher
order wins, IANA suite names, groups, presets and protocols, no
renegotiation, a key read from the certificate file."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "web")
echo = Backend("echo", "echo")

# The chain and the key in one file, as `key` may be left out.
combined = os.path.join(tmpdir(), "chain-and-key.pem")
with open(combined, "w") as f:
    f.write(open(CERT).read() + open(KEY).read())

p_web, p_echo = free_port(), free_port()
d = Daemon(frontends=[
    {"name": "web", "listen": [f"127.0.0.1:{p_web}"], "upstream": "web", "cert": combined,
     "key": None},
    {"name": "echo", "listen": [f"127.0.0.1:{p_echo}"], "upstream": "echo"},
], upstreams={"web": be.address, "echo": echo.address}, workers=2, tls={
    "ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
    "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256:TLS13-AES128-GCM-SHA256",
    "groups": ["P-384"],
}, name="policy")


def sclient(port, args, input=b"GET / HTTP/1.0\r\n\r\n"):
    r = s_client(port, ["-servername", "example.test", "-ign_eof", *args], input=input)
    return r, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


@case
def combined_pem():
    r = curl(p_web, "/")
    ok(r.returncode == 0 and r.stdout == b"hello from web\n",
       "a certificate file holding the chain and the key (no `key` setting) is served",
       f"{r.returncode} {r.stdout!r} {r.stderr!r}")


@case
def server_order_tls12():
    r, out = sclient(p_web, ["-tls1_2", "-cipher",
                             "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"])
    ok(r.returncode == 0 and "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out,
       "TLS 1.2: the server's preference (ChaCha20 first) wins over the client's (AES first)",
       out[-1500:])


@case
def server_order_tls13():
    r, out = sclient(p_web, ["-tls1_3", "-ciphersuites",
                             "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"])
    ok(r.returncode == 0 and "Cipher is TLS_CHACHA20_POLY1305_SHA256" in out,
       "TLS 1.3: the server's order wins, and its IANA-named suite is offered", out[-1500:])
    l = poll_until(lambda: [x for x in d.access() if x["tls"] == "TLSv1.3"], 5)
    ok(l and l[-1]["cipher"] == "TLS13-CHACHA20-POLY1305-SHA256",
       "access: the cipher in wolfSSL's naming (TLS13-CHACHA20-POLY1305-SHA256)",
       l and l[-1]["raw"])


@case
def suites_not_configured_are_refused():
    r, out = sclient(p_web, ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"])
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "TLS 1.3 client offering only AES-256-GCM (a default suite, but not configured) "
       "is refused", out[-800:])
    r, out = sclient(p_web, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"])
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "TLS 1.2 client offering only ECDHE-ECDSA-AES256-GCM-SHA384 (not configured) is refused",
       out[-800:])


@case
def groups():
    r, out = sclient(p_web, ["-tls1_3"])
    ok(r.returncode == 0 and "Server Temp Key: ECDH, secp384r1" in out,
       "groups = [\"P-384\"]: a client offering several groups gets P-384", out[-1500:])
    r, out = sclient(p_web, ["-tls1_3", "-groups", "X25519"])
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "groups = [\"P-384\"]: a client offering only X25519 is refused", out[-800:])


@case
def groups_tls12():
    # The client lists P-256 too: a TLS 1.2 client checks the server's
    # certificate (P-256) against its own groups.
    r, out = sclient(p_web, ["-tls1_2", "-groups", "secp256k1:P-256:P-384"])
    ok(r.returncode == 0 and "Server Temp Key: ECDH, secp384r1" in out,
       "TLS 1.2: of secp256k1, P-256 and P-384 the server picks its configured P-384",
       out[-1500:])
    for g in ("secp256k1", "X25519"):
        r, out = sclient(p_web, ["-tls1_2", "-groups", g])
        ok(r.returncode != 0 and "Cipher is (NONE)" in out,
           f"TLS 1.2: groups = [\"P-384\"] refuses a client offering only {g}", out[-800:])


@case
def no_ccm8():
    # wolfSSL 5.5.4's cipher-list parser adds TLS_AES_128_CCM_8_SHA256 (an
    # 8-byte tag) to any list naming TLS 1.3 suites; tlsoffd sets exact bytes.
    for port in (p_web, p_echo):
        r, out = sclient(port, ["-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_8_SHA256"])
        ok(r.returncode != 0 and "Cipher is (NONE)" in out,
           "TLS 1.3: a client offering only TLS_AES_128_CCM_8_SHA256 is refused", out[-800:])


@case
def no_renegotiation():
    before = len(d.access())
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{p_echo}", "-tls1_2",
                          "-servername", "example.test", "-CAfile", CA],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = ""
    try:
        p.stdin.write(b"hello\n")
        p.stdin.flush()
        time.sleep(0.5 * SLOW)             # pacing, not a check: let "hello" go round
        p.stdin.write(b"R\n")              # s_client: renegotiate
        p.stdin.flush()
        out = p.communicate(timeout=10)[0].decode(errors="replace")
    except (BrokenPipeError, subprocess.TimeoutExpired) as e:
        p.kill()
        out += f"\n({type(e).__name__})\n" + p.communicate()[0].decode(errors="replace")
    ok("RENEGOTIATING" in out and p.returncode != 0,
       "TLS 1.2: a client's renegotiation is refused and the connection ends", out[-800:])
    l = poll_until(lambda: d.access()[before:], 5)
    ok(l and l[0]["outcome"] == "client-error" and l[0]["in"] == 6 and l[0]["out"] == 6,
       "access: outcome=client-error after 'hello\\n' went both ways", l and l[0]["raw"])


d.stop()

# -- presets and protocols
modern = Daemon(upstream=be.address, workers=1, tls={"preset": "modern"}, name="modern")


@case
def preset_modern():
    r, out = sclient(modern.port, ["-tls1_2"])
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "preset \"modern\": a TLS 1.2 client is refused", out[-800:])
    r, out = sclient(modern.port, [])
    ok(r.returncode == 0 and "New, TLSv1.3" in out and "hello from web" in out,
       "preset \"modern\": TLS 1.3 is served", out[-800:])


modern.stop()
tls12 = Daemon(upstream=be.address, workers=1, tls={"preset": "modern", "protocols": "TLSv1.2"},
               name="tls12")


@case
def protocols_override_preset():
    r, out = sclient(tls12.port, ["-tls1_3"])
    ok(r.returncode != 0 and "Cipher is (NONE)" in out,
       "protocols = \"TLSv1.2\" (overriding preset modern): a TLS 1.3-only client is refused",
       out[-800:])
    r, out = sclient(tls12.port, [])
    ok(r.returncode == 0 and "Protocol  : TLSv1.2" in out and "hello from web" in out,
       "protocols = \"TLSv1.2\": a client offering both gets TLS 1.2", out[-800:])


tls12.stop()
be.stop()
echo.stop()
done()
