#!/usr/bin/env python3
"""PROXY protocol v1 and v2 (lib/proxyproto.c), read by real third-party
parsers: nginx (1.22: addresses and ports only; its TLV variables came in
1.23.2) and haproxy (2.6: addresses, ports and the AUTHORITY TLV; it refuses
a header whose TLVs do not add up to its length, the nested SSL TLV
included). First the encoder's bytes are written straight to them by a small
driver compiled here; then whole connections go through tlsoffd with
proxy_protocol = "v1" / "v2" upstreams (and one per-server setting).

Skipped where nginx or haproxy is not installed (Debian: nginx haproxy)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlsoffd_test  # noqa: E402
from tlsoffd_test import *  # noqa: E402,F401,F403


def tool(name):
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


NGINX, HAPROXY = tool("nginx"), tool("haproxy")
CC = tool(os.environ.get("CC", "cc"))
if not NGINX and not HAPROXY:
    skip("PROXY protocol read by nginx and haproxy", "neither is installed (apt-get install nginx haproxy)")
    done()

# ---------------------------------------------------------------- the parsers

# What each one reports about the PROXY header it read, as key=value words.
NGINX_BODY = ("server={tag} addr=$proxy_protocol_addr port=$proxy_protocol_port "
              "saddr=$proxy_protocol_server_addr sport=$proxy_protocol_server_port\\n")
HAPROXY_BODY = ("src=%[src] sport=%[src_port] dst=%[dst] dport=%[dst_port] "
                "authority=%[fc_pp_authority] unique_id=%[fc_pp_unique_id] "
                "rcvd=%[fc_rcvd_proxy]\\n")


def wait_listening(proc, port, name, log):
    """Waits until 127.0.0.1:port accepts; raises if proc exits first."""
    deadline = time.monotonic() + 10 * SLOW
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}: {read(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} does not accept on port {port} after 10 s: {read(log)}")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-3000:]
    except FileNotFoundError:
        return ""


def spawn(argv, log):
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return tlsoffd_test._register(p)          # killed by PID when the script ends


class Nginx:
    """nginx with two proxy_protocol servers, "a" and "b", on their own ports."""

    def __init__(self):
        self.dir = os.path.join(tmpdir(), "nginx")
        os.makedirs(self.dir)
        self.ports = {"a": free_port(), "b": free_port()}
        self.log = os.path.join(self.dir, "error.log")
        temp = " ".join(f"{k}_temp_path {self.dir}/{k};"
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        servers = "\n".join(
            f"  server {{ listen 127.0.0.1:{port} proxy_protocol;\n"
            f"    location / {{ return 200 \"{NGINX_BODY.format(tag=tag)}\"; }} }}"
            for tag, port in self.ports.items())
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"worker_processes 1;\nevents {{ worker_connections 64; }}\n"
                    f"http {{\n  access_log off;\n  default_type text/plain;\n  {temp}\n"
                    f"{servers}\n}}\n")
        self.proc = spawn([NGINX, "-p", self.dir, "-e", self.log, "-c", conf, "-g",
                           f"daemon off; pid {self.dir}/nginx.pid; error_log {self.log} info;"],
                          self.log)
        for port in self.ports.values():
            wait_listening(self.proc, port, "nginx", self.log)


class Haproxy:
    """haproxy in http mode, one bind with accept-proxy."""

    def __init__(self):
        self.dir = os.path.join(tmpdir(), "haproxy")
        os.makedirs(self.dir)
        self.port = free_port()
        self.log = os.path.join(self.dir, "haproxy.log")
        conf = os.path.join(self.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n    maxconn 64\n"
                    "defaults\n    mode http\n    timeout connect 5s\n"
                    "    timeout client 10s\n    timeout server 10s\n"
                    f"frontend fe\n    bind 127.0.0.1:{self.port} accept-proxy\n"
                    "    http-request return status 200 content-type text/plain "
                    f"lf-string \"{HAPROXY_BODY}\"\n")
        self.proc = spawn([HAPROXY, "-db", "-f", conf], self.log)
        wait_listening(self.proc, self.port, "haproxy", self.log)


def report(raw):
    """An HTTP response's status and its body's key=value words as a dict;
    (None, {}) if there was no HTTP response (the header was refused)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return None, {}
    status = int(head.split()[1])
    words = body.decode(errors="replace").split()
    return status, dict(w.split("=", 1) for w in words if "=" in w)


nginx = haproxy = None
try:
    nginx = Nginx() if NGINX else None
except Exception as e:
    ok(False, "nginx starts", str(e))
try:
    haproxy = Haproxy() if HAPROXY else None
except Exception as e:
    ok(False, "haproxy starts", str(e))
if not nginx:
    skip("PROXY protocol read by nginx", "nginx is not installed or did not start")
if not haproxy:
    skip("PROXY protocol read by haproxy", "haproxy is not installed or did not start")

# ---------------------------------------------------------------- the encoder, directly

DRIVER = r"""
/* ppenc v1|v2 SRC SPORT DST DPORT [field=value ...]: a PROXY header on stdout. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

static const struct sockaddr *sa_of(const char *ip, const char *port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)atoi(port));
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)atoi(port));
    } else {
        exit(2);
    }
    return (const struct sockaddr *)ss;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage src, dst;
    struct proxy_info pi = { 0 };
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n;

    if (argc < 6)
        return 2;
    pi.src = sa_of(argv[2], argv[3], &src);
    pi.dst = sa_of(argv[4], argv[5], &dst);
    for (int i = 6; i < argc; i++) {
        char *k = argv[i], *v = strchr(k, '=');
        if (!v)
            return 2;
        *v++ = '\0';
        if (!strcmp(k, "alpn")) pi.alpn = v;
        else if (!strcmp(k, "authority")) pi.authority = v;
        else if (!strcmp(k, "tls_version")) pi.tls_version = v;
        else if (!strcmp(k, "cipher")) pi.cipher = v;
        else if (!strcmp(k, "sig_alg")) pi.sig_alg = v;
        else if (!strcmp(k, "key_alg")) pi.key_alg = v;
        else if (!strcmp(k, "cn")) pi.client_cn = v;
        else if (!strcmp(k, "cert_conn")) pi.client_cert_conn = atoi(v);
        else if (!strcmp(k, "cert_sess")) pi.client_cert_sess = atoi(v);
        else if (!strcmp(k, "verify")) pi.verify = (uint32_t)strtoul(v, NULL, 0);
        else return 2;
    }
    if (!strcmp(argv[1], "v1"))
        n = proxyproto_v1(&pi, (char *)buf, sizeof buf);
    else
        n = proxyproto_v2(&pi, buf, sizeof buf);
    if (n < 0)
        return 1;
    fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}
"""

ppenc = None


@case(setup=True)      # the direct_* cases use its driver
def build_driver():
    global ppenc
    if not CC:
        skip("the encoder driver", "no C compiler")
        return
    src = os.path.join(tmpdir(), "ppenc.c")
    exe = os.path.join(tmpdir(), "ppenc")
    with open(src, "w") as f:
        f.write(DRIVER)
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"] if SANITIZE else []
    r = run([CC, "-D_GNU_SOURCE", "-std=c11", "-Wall", "-Wextra", "-Werror", *san,
             "-I", os.path.join(ROOT, "lib"), "-o", exe, src,
             os.path.join(ROOT, "lib", "proxyproto.c")], timeout=60)
    if ok(r.returncode == 0, "the encoder driver compiles (lib/proxyproto.c)",
          r.stderr.decode(errors="replace")):
        ppenc = exe


TLS_FIELDS = ["alpn=h2", "authority=example.test", "tls_version=TLSv1.3",
              "cipher=TLS_AES_128_GCM_SHA256", "sig_alg=ECDSA-SHA256", "key_alg=EC256",
              "cn=client.example", "cert_conn=1", "cert_sess=1", "verify=0x01020304"]


def encode(version, src, sport, dst, dport, *fields):
    r = run([ppenc, version, src, str(sport), dst, str(dport), *fields])
    if r.returncode != 0:
        raise RuntimeError(f"ppenc exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def exchange(port, header):
    """header, then an HTTP/1.0 GET, to 127.0.0.1:port; returns the raw response."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as s:
        s.sendall(header + b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n")
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    return got


# (what, encoder arguments, what nginx must report, what haproxy must report);
# None: the parser keeps the real peer (127.0.0.1) and reports no PROXY address.
DIRECT = [
    ("v1 TCP4", ["v1", "192.0.2.1", 56324, "198.51.100.2", 443],
     ("192.0.2.1", "56324", "198.51.100.2", "443")),
    ("v1 TCP6", ["v1", "2001:db8::1", 56324, "2001:db8::2", 8443],
     ("2001:db8::1", "56324", "2001:db8::2", "8443")),
    ("v1 IPv4-mapped as TCP4", ["v1", "::ffff:192.0.2.1", 1, "::ffff:198.51.100.2", 65535],
     ("192.0.2.1", "1", "198.51.100.2", "65535")),
    ("v1 UNKNOWN (IPv4 to IPv6)", ["v1", "192.0.2.1", 56324, "2001:db8::2", 443], None),
    ("v2 TCP4 with every TLV", ["v2", "192.0.2.1", 56324, "198.51.100.2", 443, *TLS_FIELDS],
     ("192.0.2.1", "56324", "198.51.100.2", "443")),
    ("v2 TCP6 with every TLV", ["v2", "2001:db8::1", 56324, "2001:db8::2", 8443, *TLS_FIELDS],
     ("2001:db8::1", "56324", "2001:db8::2", "8443")),
    ("v2 TCP4 without TLVs", ["v2", "192.0.2.1", 56324, "198.51.100.2", 443],
     ("192.0.2.1", "56324", "198.51.100.2", "443")),
    ("v2 IPv4-mapped as TCP4", ["v2", "::ffff:192.0.2.1", 1, "::ffff:198.51.100.2", 65535,
                                *TLS_FIELDS],
     ("192.0.2.1", "1", "198.51.100.2", "65535")),
    ("v2 AF_UNSPEC with TLVs", ["v2", "192.0.2.1", 56324, "2001:db8::2", 443, *TLS_FIELDS],
     None),
]


@case
def direct_nginx():
    if not nginx or not ppenc:
        skip("encoder bytes read by nginx", "no nginx or no driver")
        return
    for what, args, want in DIRECT:
        status, r = report(exchange(nginx.ports["a"], encode(*args)))
        got = (r.get("addr"), r.get("port"), r.get("saddr"), r.get("sport"))
        expect = want or ("", "", "", "")
        ok(status == 200 and got == expect,
           f"nginx reads {what}: {expect}", f"status {status}, got {r}\n{read(nginx.log)}")


@case
def direct_haproxy():
    if not haproxy or not ppenc:
        skip("encoder bytes read by haproxy", "no haproxy or no driver")
        return
    for what, args, want in DIRECT:
        if args[0] == "v2" and want is None:
            # haproxy 2.6 walks the TLVs of a PROXY-command AF_UNSPEC header
            # from the signature on, so it refuses any (LOCAL is read right).
            # A socket's two addresses share a family: tlsoffd never sends it.
            skip(f"haproxy reads {what}", "haproxy 2.6 refuses v2 PROXY + AF_UNSPEC")
            continue
        status, r = report(exchange(haproxy.port, encode(*args)))
        got = (r.get("src"), r.get("sport"), r.get("dst"), r.get("dport"))
        expect = want or ("127.0.0.1", None, "127.0.0.1", str(haproxy.port))
        if want is None:                # the real peer's port is whatever it was
            got = (got[0], None, got[2], got[3])
        authority = "example.test" if "authority=example.test" in args else ""
        ok(status == 200 and got == expect and r.get("authority") == authority
           and r.get("unique_id") == "" and r.get("rcvd") == "1",
           f"haproxy reads {what}: {expect}, authority={authority!r}",
           f"status {status}, got {r}\n{read(haproxy.log)}")


@case
def direct_haproxy_checks_tlv_lengths():
    """haproxy walks the TLVs: the same header with the SSL TLV's length one
    too long (the total unchanged) is refused. So the good headers above were
    walked to their end, nested SSL TLV included."""
    if not haproxy or not ppenc:
        skip("haproxy refuses bad TLV lengths", "no haproxy or no driver")
        return
    good = bytearray(encode("v2", "192.0.2.1", 56324, "198.51.100.2", 443, *TLS_FIELDS))
    off = 16 + 12
    while good[off] != 0x20:            # ALPN and AUTHORITY come first
        off += 3 + (good[off + 1] << 8 | good[off + 2])
    bad = bytearray(good)
    n = (bad[off + 1] << 8 | bad[off + 2]) + 1
    bad[off + 1:off + 3] = bytes([n >> 8, n & 0xff])
    ok(report(exchange(haproxy.port, bytes(good)))[0] == 200,
       "haproxy accepts the header as encoded")
    status, r = report(exchange(haproxy.port, bytes(bad)))
    ok(status is None, "haproxy refuses it with the SSL TLV's length one too long",
       f"status {status}, got {r}")


# ---------------------------------------------------------------- through tlsoffd

def tlsoffd_config(routes):
    """routes: [(frontend name, port, upstream name, upstream proxy_protocol or None,
    server address, server proxy_protocol or None)]"""
    fes, ups = [], []
    for name, port, up, up_pp, addr, sv_pp in routes:
        fes.append(f'  {{ name = "{name}"; listen = [ "127.0.0.1:{port}" ];\n'
                   f'    certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} );\n'
                   f'    upstream = "{up}"; }}')
        ups.append(f'  {{ name = "{up}"; '
                   + (f'proxy_protocol = "{up_pp}"; ' if up_pp else "")
                   + f'servers = ( {{ address = "{addr}"; '
                   + (f'proxy_protocol = "{sv_pp}"; ' if sv_pp else "")
                   + "} ); }")
    return ("workers = { count = 2; };\n"
            "frontends = (\n" + ",\n".join(fes) + "\n);\n"
            "upstreams = (\n" + ",\n".join(ups) + "\n);\n")


routes = []
if nginx:
    routes += [("nginx-v1", free_port(), "nginx-v1", "v1", f"127.0.0.1:{nginx.ports['a']}", None),
               ("nginx-v2", free_port(), "nginx-v2", "v2", f"127.0.0.1:{nginx.ports['b']}", None)]
if haproxy:
    routes += [("haproxy-v2", free_port(), "haproxy-v2", "v2",
                f"127.0.0.1:{haproxy.port}", None),
               # off for the upstream, v1 for its one server: the server's setting wins
               ("haproxy-srv-v1", free_port(), "haproxy-srv-v1", "off",
                f"127.0.0.1:{haproxy.port}", "v1")]
daemon = None


@case(setup=True)      # through_tlsoffd uses this daemon
def tlsoffd_starts():
    global daemon
    try:
        d = Daemon(config=tlsoffd_config(routes), name="tlsoffd", pidfile="tlsoffd.pid")
    except tlsoffd_test.DaemonFailed as e:
        ok(False, "tlsoffd starts with proxy_protocol upstreams and servers", str(e))
        return
    notice = d.wait_log(r"running: 2 workers, (\d+) listeners")
    # the prober is named right after its fork: until then it looks like a worker
    poll_until(lambda: len(d.worker_pids()) == 2, 5 * SLOW)
    workers = d.worker_pids()
    if not ok(d.proc.poll() is None and len(workers) == 2 and notice
              and int(notice.group(1)) == len(routes),
              "tlsoffd starts with proxy_protocol upstreams and servers: the master runs with "
              f"its 2 workers and {len(routes)} listeners, one per route",
              f"master exit {d.proc.poll()}, workers {workers}, "
              f"notice {notice and notice.group(0)}"):
        d.stop()
        return
    daemon = d
    # Every route's server, as the running master knows it, up: the
    # proxy_protocol upstreams and servers are in its table.
    want = {(up, addr) for _, _, up, _, addr, _ in routes}
    r = None

    def servers_up():
        nonlocal r
        r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], cwd=d.dir, timeout=10)
        return want <= set(re.findall(r"^server upstream=(\S+) address=(\S+) state=up ",
                                      r.stdout.decode(errors="replace"), re.M))

    ok(poll_until(servers_up, 5 * SLOW), f"tlsoffd -s stats: each of the {len(want)} "
       "proxy_protocol servers is in the running master's table, up",
       r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace"))


def curl_through(port):
    """curl through tlsoffd; returns (status of curl, report dict, curl's local ip, port)."""
    r = curl(port, "/", args=["-w", "\\n%{local_ip} %{local_port}\\n"])
    lines = r.stdout.decode(errors="replace").strip().split("\n")
    local = lines[-1].split() if lines else []
    words = " ".join(lines[:-1]).split()
    return r, dict(w.split("=", 1) for w in words if "=" in w), local


@case
def through_tlsoffd():
    if not daemon:
        skip("connections through tlsoffd", "tlsoffd did not start")
        return
    for name, port, up, up_pp, addr, sv_pp in routes:
        r, got, local = curl_through(port)
        if not ok(r.returncode == 0 and len(local) == 2,
                  f"{name}: curl through tlsoffd gets an answer",
                  f"rc={r.returncode} {r.stderr.decode(errors='replace')} {r.stdout!r}"):
            continue
        client = (local[0], local[1])
        server = ("127.0.0.1", str(port))
        if name.startswith("nginx"):
            tag = "a" if addr.endswith(f":{nginx.ports['a']}") else "b"
            ok(got.get("server") == tag and (got.get("addr"), got.get("port")) == client,
               f"{name}: nginx sees curl's address and port {client}", f"got {got}")
            ok((got.get("saddr"), got.get("sport")) == server,
               f"{name}: nginx sees tlsoffd's listen address and port {server}", f"got {got}")
        else:
            ok((got.get("src"), got.get("sport")) == client,
               f"{name}: haproxy sees curl's address and port {client}", f"got {got}")
            ok((got.get("dst"), got.get("dport")) == server,
               f"{name}: haproxy sees tlsoffd's listen address and port {server}", f"got {got}")
            want = "example.test" if (sv_pp or up_pp) == "v2" else ""
            ok(got.get("authority") == want,
               f"{name}: haproxy sees authority={want!r} (the SNI, in v2 only)", f"got {got}")


if daemon:
    daemon.stop()
for server in (nginx, haproxy):
    if server:
        tlsoffd_test._kill(server.proc)
done()
