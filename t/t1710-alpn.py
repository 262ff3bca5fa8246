#!/usr/bin/env python3
"""ALPN: the frontend's first protocol that the client also offers is
negotiated (none in common: no ALPN, the handshake goes on); it is logged as
alpn= after sni=; alpn_upstreams sends a connection to the upstream of its
protocol (group and list forms), the others to the frontend's upstream;
PROXY v2 carries PP2_TYPE_ALPN; and a protocol in alpn_upstreams that the
frontend does not offer is a configuration error."""
import os
import re
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
ALPN = ["h2", "http/1.1"]

be = {n: Backend("http", n) for n in ("default", "h2", "h1")}
rec = ProxyRecorder("pp")
ports = {n: free_port() for n in ("list", "group", "plain", "noalpn", "pp")}


def fe(name, **kw):
    f = {"name": name, "listen": [f"127.0.0.1:{ports[name]}"], "upstream": "up"}
    f.update(kw)
    return f


FRONTENDS = [
    fe("list", alpn=ALPN, alpn_upstreams=[("h2", "up-h2"), ("http/1.1", "up-h1")]),
    fe("group", alpn=ALPN, alpn_upstreams={"h2": "up-h2"}),
    fe("plain", alpn=ALPN),
    fe("noalpn"),
    fe("pp", alpn=ALPN, upstream="pp"),
]
UPSTREAMS = {"up": be["default"].address, "up-h2": be["h2"].address, "up-h1": be["h1"].address,
             "pp": {"address": rec.address, "proxy_protocol": "v2"}}
try:
    d = Daemon(frontends=FRONTENDS, upstreams=UPSTREAMS)
except Exception as e:
    ok(False, "tlsoffd starts with these frontends", str(e))
    done()


SEQ = [0]


def go(name, offer, args=()):
    """s_client to frontend name offering offer (a list, or None for no ALPN
    extension): (negotiated protocol or None, the backend that answered or None,
    the access line, found by the server name of its own that each connection
    sends)."""
    t = stamp()
    SEQ[0] += 1
    sni = f"a{SEQ[0]}.example.test"
    a = ["-ign_eof", *args] + (["-alpn", ",".join(offer)] if offer else [])
    i = s_client_info(ports[name], sni, a, input=REQ)
    m = re.search(r"hello from (\S+)", i["out"])
    if i["alpn"] is None and "No ALPN negotiated" not in i["out"]:
        diag(f"{name} {offer}: s_client says nothing about ALPN:\n{i['out'][-800:]}")
    l = d.wait_access(after=t, frontend=name, sni=sni)
    if l and l["outcome"] != "ok":
        diag(f"{name} {offer}: {l['raw']}")
    return i["alpn"], m.group(1) if m else None, l


@case
def server_preference():
    for offer, want in ((["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"),
                        (["http/1.1"], "http/1.1"), (["spdy/3", "http/1.1"], "http/1.1"),
                        (["h2"], "h2")):
        got = go("plain", offer)
        ok(got[0] == want and got[1] == "default",
           f"plain: client offers {offer}: {want} negotiated, the frontend's upstream answers",
           got[:2])
        ok(got[2] is not None and got[2].get("alpn") == want,
           f"plain: access alpn={want}", got[2] and got[2]["raw"])


@case
def nothing_in_common():
    for name, offer in (("plain", ["spdy/3"]), ("plain", None), ("noalpn", ["h2", "http/1.1"]),
                        ("noalpn", None), ("list", ["spdy/3", "acme-tls/1"])):
        got = go(name, offer)
        ok(got[0] is None and got[1] == "default",
           f"{name}: client offers {offer}: no ALPN, the handshake goes on to the "
           "frontend's upstream", got[:2])
        ok(got[2] is not None and got[2].get("alpn") == "-",
           f"{name}, offer {offer}: access alpn=-", got[2] and got[2]["raw"])


@case
def alpn_upstreams():
    for name, offer, proto, backend in (
            ("list", ["h2", "http/1.1"], "h2", "h2"),
            ("list", ["http/1.1"], "http/1.1", "h1"),
            ("list", None, None, "default"),
            ("group", ["h2"], "h2", "h2"),
            ("group", ["http/1.1", "h2"], "h2", "h2"),
            ("group", ["http/1.1"], "http/1.1", "default")):
        for ver in ("-tls1_2", "-tls1_3"):
            got = go(name, offer, [ver])
            ok(got[0] == proto and got[1] == backend,
               f"{name} {ver}: offer {offer}: ALPN {proto}, to the backend {backend}", got[:2])
            want_be = be[backend].address
            ok(got[2] is not None and got[2].get("backend") == want_be,
               f"{name} {ver}, offer {offer}: access backend={want_be}",
               got[2] and got[2]["raw"])


@case
def other_clients():
    r = curl(ports["list"], "/", args=["--http1.1", "-w", "%{http_version}"])
    ok(r.returncode == 0 and r.stdout == b"hello from h1\n1.1",
       "curl --http1.1: ALPN http/1.1, to up-h1", (r.returncode, r.stdout, r.stderr))
    ctx = tls_context()
    ctx.set_alpn_protocols(["h2"])
    c = TLSClient(ports["list"], ctx=ctx)
    proto = c.obj.selected_alpn_protocol()
    got, how = c.exchange(REQ)
    c.close()
    ok(proto == "h2" and b"hello from h2" in got,
       "Python ssl offering h2: h2 selected, to up-h2", (proto, got[-100:], how))
    ctx = tls_context(ssl.TLSVersion.TLSv1_2)
    ctx.set_alpn_protocols(["foo", "http/1.1"])
    c = TLSClient(ports["group"], ctx=ctx)
    proto = c.obj.selected_alpn_protocol()
    got, how = c.exchange(REQ)
    c.close()
    ok(proto == "http/1.1" and b"hello from default" in got,
       "Python ssl, TLS 1.2, offering foo, http/1.1: http/1.1, the frontend's upstream",
       (proto, got[-100:], how))


@case
def access_field_order():
    got = go("list", ["h2"])
    raw = got[2]["raw"] if got[2] else ""
    ok(re.search(r" sni=a\d+\.example\.test alpn=h2 ", raw) is not None,
       "access: alpn= comes right after sni=", raw)


@case
def proxy_v2_alpn():
    n = len(rec.headers)
    got = go("pp", ["http/1.1", "h2"])
    h = rec.wait_header(n + 1)
    ok(got[0] == "h2" and got[1] == "pp", "pp: h2 negotiated, the PROXY backend answers", got[:2])
    ok(h is not None and "error" not in h and h["tlvs"].get(0x01) == b"h2",
       "PROXY v2: PP2_TYPE_ALPN (0x01) is 'h2'", h)
    ok(h is not None and h.get("tlvs", {}).get(0x02) == f"a{SEQ[0]}.example.test".encode(),
       "PROXY v2: PP2_TYPE_AUTHORITY (0x02) is the SNI", h)
    ok(h is not None and h.get("ssl") is not None and h["ssl"]["client"] & 1,
       "PROXY v2: PP2_TYPE_SSL with PP2_CLIENT_SSL", h)
    go("pp", ["http/1.1"], ["-tls1_2"])
    h = rec.wait_header(n + 2)
    ok(h is not None and h.get("tlvs", {}).get(0x01) == b"http/1.1",
       "PROXY v2, TLS 1.2: PP2_TYPE_ALPN is 'http/1.1'", h)
    go("pp", None)
    h = rec.wait_header(n + 3)
    ok(h is not None and "error" not in h and 0x01 not in h["tlvs"],
       "PROXY v2 without ALPN: no PP2_TYPE_ALPN", h)


# ---------------------------------------------------------------- configuration errors

def conf_lines(**kw):
    f = {"name": "web", "listen": ["127.0.0.1:1"], "upstream": "up"}
    f.update(kw)
    return config_text([f], {"up": "127.0.0.1:9", "up-h2": "127.0.0.1:10"}).splitlines()


@case
def config_errors():
    lines = conf_lines(alpn=["http/1.1"], alpn_upstreams={"h2": "up-h2"})
    bad_config("alpn_upstreams (group) with a protocol not in alpn", lines,
        (line_of(lines, "alpn_upstreams ="),), r"(?<![\w-])h2(?![\w-])")
    # the list form over several lines: its own line or its entry's
    lines = conf_lines(alpn=["h2"], alpn_upstreams=[("h2", "up-h2"), ("http/1.1", "up")])
    i = line_of(lines, "alpn_upstreams =") - 1
    lines[i:i + 1] = ["    alpn_upstreams = (", '      { protocol = "h2"; upstream = "up-h2"; },',
                      '      { protocol = "http/1.1"; upstream = "up"; }', "    );"]
    bad_config("alpn_upstreams (list) with a protocol not in alpn", lines,
        (i + 1, i + 3), r"(?<![\w-])http/1\.1(?![\w-])")
    lines = conf_lines(alpn_upstreams={"h2": "up-h2"})
    bad_config("alpn_upstreams without alpn", lines, (line_of(lines, "alpn_upstreams ="),),
        r"(?<![\w-])h2(?![\w-])")
    lines = conf_lines(alpn=ALPN, alpn_upstreams={"h2": "nope"})
    bad_config("alpn_upstreams naming an unknown upstream", lines,
        (line_of(lines, "alpn_upstreams ="),), r"(?<![\w-])nope(?![\w-])")
    lines = conf_lines(alpn=ALPN, alpn_upstreams=[("h2", "up-h2")])
    rc, err, _, _ = check_config(lines, "good-list")
    ok(rc == 0, "alpn_upstreams in the list form: accepted", err)
    lines = conf_lines(alpn=ALPN, alpn_upstreams={"h2": "up-h2"})
    rc, err, _, _ = check_config(lines, "good-group")
    ok(rc == 0, "alpn_upstreams in the group form: accepted", err)


d.stop()
for b in be.values():
    b.stop()
rec.stop()
done()
