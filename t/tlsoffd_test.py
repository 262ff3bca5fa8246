"""
tlsoffd_test — a small library for tlsoffd's integration tests (stdlib only).

A test file is a plain script:

    from tlsoffd_test import *
    be = Backend()
    d = Daemon(upstream=be.address)

    @case
    def curl_through():
        r = curl(d.port, "/")
        ok(r.returncode == 0 and r.stdout == b"hello from backend\n", "curl through the daemon")

    d.stop()
    done()

It prints TAP-ish lines (`ok N - desc` / `not ok N - desc`, diagnostics as
`# ...`), and done() exits 1 if any check failed. Every process it starts is
killed by PID when the script ends, however it ends.

Checks:
    ok(cond, desc, detail=None)     a check; detail and the live daemons' log
                                    tails are printed when it fails
    skip(desc, why)                 `ok N # skip desc: why`; run.py counts it as
                                    skipped, not passed
    xfail(cond, desc, why, detail)  known breakage, as git's test_expect_failure:
                                    while cond is false it prints
                                    `not ok N - desc # TODO still broken: why`,
                                    which fails nothing; once cond is true it
                                    prints `ok N - desc # TODO FIXED: why`
                                    (turn it back into ok()). run.py counts both
                                    apart and reports each FIXED one loudly; a
                                    FIXED check does not fail the run (git's
                                    choice: a fix is good news, the marker is
                                    just stale).

Cases: `@case` runs a function now, as one named case (the function's name;
`@case("name")` names it, e.g. inside a loop; `@case(setup=True)` marks a case
that later cases need, run whatever the selection). An exception in a case is
a failed check, not the end of the file. A name may have a variant after a
slash, "tickets/tls12": selecting "tickets" runs every variant.

Selecting cases: TLSOFFD_TEST_ONLY=name[,name...] (run.py sets it from
`t/t0800-resumption.py:tickets`) runs only the cases whose name, or the part
of it before a "/", matches one of the names (shell patterns allowed: `tls1?_*`);
the file's top-level code (daemons, backends, checks outside cases) still runs.
A name that matches no case is a failed check.

Environment (set by `make daemon-check`): TLSOFFD, TLSOFFD_HELPERS,
TLSOFFD_CERTS, TLSOFFD_SANITIZE; TLSOFFD_TEST_ONLY (see above).
"""
import atexit
import fnmatch
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

__all__ = [
    "ROOT", "TLSOFFD", "HELPERS", "CERTS", "SANITIZE", "SLOW", "CA", "CERT", "KEY",
    "ok", "skip", "xfail", "diag", "done", "case", "poll_until", "free_port", "stamp",
    "Backend", "Daemon", "PyBackend", "daemon_stats", "curl", "s_client", "tls_context",
    "tls_connect",
    "TLSClient", "pattern_sha256", "pattern_bytes", "tmpdir", "run", "proc_state",
    "pid_alive", "children_of", "listen_backlog", "config_text", "parse_access",
    "frontend_text", "check_config", "s_client_info", "parse_proxy_v2", "ProxyRecorder",
    "line_of", "bad_config", "config_value",
]

# ---------------------------------------------------------------- paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANITIZE = os.environ.get("TLSOFFD_SANITIZE", "") == "1"
_BUILD = os.path.join(ROOT, "build-san" if SANITIZE else "build")


def _path(var, default):
    p = os.environ.get(var) or default
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


TLSOFFD = _path("TLSOFFD", os.path.join(_BUILD, "tlsoffd"))
HELPERS = _path("TLSOFFD_HELPERS", os.path.join(_BUILD, "t", "helper"))
CERTS = _path("TLSOFFD_CERTS", os.path.join(_BUILD, "t", "certs"))
CA = os.path.join(CERTS, "ca.pem")
CERT = os.path.join(CERTS, "example.test.pem")
KEY = os.path.join(CERTS, "example.test.key")

# Slower under ASan: scale the generous bounds (never the asserted ones).
SLOW = 2.0 if SANITIZE else 1.0

# ---------------------------------------------------------------- reporting

_count = 0
_failed = 0
_skipped = 0
_broken = 0            # xfail checks still failing
_fixed = 0             # xfail checks that pass
_lock = threading.Lock()
_daemons = []          # live Daemon objects, for failure diagnostics
_procs = []            # every Popen we started, killed at exit
_tmpdir = None

# TLSOFFD_TEST_ONLY: the case names to run ({} when every case runs), each with
# how many cases it selected.
_only = {n.strip(): 0 for n in os.environ.get("TLSOFFD_TEST_ONLY", "").split(",") if n.strip()}
_cases_run = _cases_left_out = 0


def diag(text):
    for line in str(text).rstrip("\n").split("\n"):
        print("# " + line, flush=True)


def ok(cond, desc, detail=None):
    """One check. On failure prints detail and the tails of the live daemons' logs."""
    global _count, _failed
    with _lock:
        _count += 1
        n = _count
        if cond:
            print(f"ok {n} - {desc}", flush=True)
            return True
        _failed += 1
        print(f"not ok {n} - {desc}", flush=True)
        if detail is not None:
            diag(detail)
        for d in _daemons:
            d.dump_tail()
        return False


def skip(desc, why):
    global _count, _skipped
    with _lock:
        _count += 1
        _skipped += 1
        print(f"ok {_count} # skip {desc}: {why}", flush=True)


def xfail(cond, desc, why, detail=None):
    """A check of a known breakage (git's test_expect_failure): cond is what
    should hold once the bug named by why is fixed. False: `not ok N - desc #
    TODO still broken: why` (not a failure); true: `ok N - desc # TODO FIXED:
    why`, reported loudly by run.py: make it an ok() again. Returns cond."""
    global _count, _broken, _fixed
    with _lock:
        _count += 1
        if cond:
            _fixed += 1
            print(f"ok {_count} - {desc} # TODO FIXED: {why}", flush=True)
            diag("an expected failure passes: the bug looks fixed; make this check an ok()")
            return True
        _broken += 1
        print(f"not ok {_count} - {desc} # TODO still broken: {why}", flush=True)
        if detail is not None:
            diag(detail)
        return False


def _check_selection():
    """A selected name that matched no case is a failed check."""
    if not _only:
        return
    for name, n in _only.items():
        if n == 0:
            ok(False, f"TLSOFFD_TEST_ONLY: no case named {name!r} in "
               f"{os.path.basename(sys.argv[0])}")
    diag(f"TLSOFFD_TEST_ONLY={','.join(_only)}: ran {_cases_run} cases, "
         f"left out {_cases_left_out}")


def done():
    """Stops everything and exits: 0 if every check passed, else 1."""
    _check_selection()
    _cleanup()
    print(f"1..{_count}", flush=True)
    if _broken or _fixed:
        diag(f"known breakages: {_broken} still broken, {_fixed} FIXED")
    if _failed:
        diag(f"{_failed} of {_count} checks failed; files kept in {_tmpdir}")
    elif _tmpdir:
        shutil.rmtree(_tmpdir, ignore_errors=True)
    sys.exit(1 if _failed or _count == 0 else 0)


def _selected(name):
    """Whether the case called name runs under TLSOFFD_TEST_ONLY (and counts it)."""
    if not _only:
        return True
    base = name.split("/", 1)[0]
    hit = False
    for pat in _only:
        if fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(base, pat):
            _only[pat] += 1
            hit = True
    return hit


def case(fn=None, *, name=None, setup=False):
    """Decorator: runs fn now, as the case called name (fn's name unless given;
    `@case("name")` works too); an exception is a failed check, not the end of
    the file. Under TLSOFFD_TEST_ONLY a case not selected is left out, unless
    setup (later cases need what it does). If a running daemon has lost all its
    workers (and nothing respawned them), the case fails at once instead of
    waiting out every client timeout."""
    if isinstance(fn, str):
        fn, name = None, fn
    if fn is None:
        return lambda f: case(f, name=name, setup=setup)
    global _cases_run, _cases_left_out
    name = name or fn.__name__
    if not _selected(name) and not setup:
        _cases_left_out += 1
        return fn
    _cases_run += 1
    for d in _daemons:
        if d.proc and d.proc.poll() is None and d.workers and not d.worker_pids():
            ok(False, f"{name}: not run: {d.name} has no worker left",
               "(an earlier failure killed them and none was respawned)")
            return fn
    try:
        fn()
    except Exception:
        ok(False, f"{name}: unexpected exception", traceback.format_exc())
    return fn


def stamp(offset=0.0):
    """Now (+ offset seconds), in the access log's time format: lines logged
    later compare >= it."""
    t = time.time() + offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int(t % 1 * 1000)


def poll_until(pred, timeout, interval=0.05):
    """Calls pred until it returns something true or timeout seconds pass;
    returns the last value. Used instead of sleeping for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def tmpdir():
    """This test file's temporary directory (kept if a check fails)."""
    global _tmpdir
    if _tmpdir is None:
        base = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        _tmpdir = tempfile.mkdtemp(prefix=f"tlsoffd-{base}-")
    return _tmpdir


# ---------------------------------------------------------------- processes

def _register(p):
    _procs.append(p)
    return p


def _kill(p, grace=5.0):
    """SIGTERM, bounded wait, SIGKILL: by PID, only processes we started."""
    if p.poll() is not None:
        return p.returncode
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
    except ProcessLookupError:
        pass
    return p.returncode


def _cleanup():
    for d in list(_daemons):
        try:
            d.stop(check=True)     # still report sanitizer findings
        except Exception:
            pass
    for p in _procs:
        try:
            _kill(p, grace=2.0)
        except Exception:
            pass


atexit.register(_cleanup)


def _on_term(sig, frame):
    # run.py's timeout: clean up our processes, then fail.
    print(f"not ok {_count + 1} - killed by signal {sig} (timeout?)", flush=True)
    _cleanup()
    os._exit(1)


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGHUP, _on_term)


def run(argv, input=None, timeout=30, **kw):
    """subprocess.run with a bound; a timeout is returned as returncode -999."""
    try:
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout * SLOW, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, -999, e.stdout or b"", e.stderr or b"")


def proc_state(pid):
    """'R', 'S', 'Z', ... or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def pid_alive(pid):
    s = proc_state(pid)
    return s is not None and s != "Z"


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def children_of(pid, prober=False, role=None):
    """The child processes of pid: the workers; with prober=True the health
    prober (its comm is 'tlsoffd-health'); with role="park" the park
    process ('tlsoffd-park'), with role="keys" the key processes
    ('tlsoffd-keys')."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = sorted(int(x) for x in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        return []
    want = "tlsoffd-health" if prober else f"tlsoffd-{role}" if role else None
    return [k for k in kids
            if (_comm(k) == want if want else
                _comm(k) not in ("tlsoffd-health", "tlsoffd-park", "tlsoffd-keys"))]


def listen_backlog(port):
    """Connections waiting in the accept queue of the listener on 127.0.0.1:port."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return None


# ---------------------------------------------------------------- ports

_ports_given = set()


def free_port(ipv6=False, tries=50):
    """A port free on 127.0.0.1 (and on [::1] too, if ipv6), never one this
    test has been given before: the kernel hands a just-closed ephemeral
    port out again, so two calls in a row could otherwise both get it."""
    for _ in range(tries):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port in _ports_given:
            continue
        if ipv6:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                s6.bind(("::1", port))
            except OSError:
                continue
            finally:
                s6.close()
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


# ---------------------------------------------------------------- backends

class Backend:
    """The helper backend: `with Backend("echo", "b1") as be: be.port, be.address`."""

    def __init__(self, mode="http", name="backend", listen=None):
        self.mode, self.name = mode, name
        argv = [os.path.join(HELPERS, "backend"), "-m", mode, "-n", name]
        if listen:
            argv += ["-l", listen]
        self.proc = _register(subprocess.Popen(argv, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE))
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if r else ""
        m = re.match(r"PORT (\d+)$", line.strip())
        if not m:
            _kill(self.proc)
            raise RuntimeError(f"backend did not report its port: {line!r} "
                               f"{self.proc.stderr.read().decode(errors='replace')}")
        self.port = int(m.group(1))
        self.address = f"127.0.0.1:{self.port}"

    def stop(self):
        _kill(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


class PyBackend:
    """A backend written in Python for behaviours the helper does not have.
    handler(conn) runs in a thread for each connection."""

    def __init__(self, handler, backlog=16):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.handler = handler
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c)
        except OSError:
            pass

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy_v2(buf):
    """A PROXY v2 header at the start of buf: (its length, a dict), or None if buf
    holds only part of one; ValueError if it is not one. The dict: cmd (0 LOCAL,
    1 PROXY), family (0x11 TCP4, 0x21 TCP6, 0 UNSPEC), src and dst ((ip, port) or
    None), tlvs ({type: value bytes}, the last of a type), and ssl (None, or
    {client, verify, tlvs: {subtype: value bytes}} from PP2_TYPE_SSL 0x20)."""
    if len(buf) < 16:
        if not PP2_SIG.startswith(bytes(buf[:12])):
            raise ValueError(f"not a PROXY v2 header: {bytes(buf[:16])!r}")
        return None
    if buf[:12] != PP2_SIG or buf[12] >> 4 != 2:
        raise ValueError(f"not a PROXY v2 header: {bytes(buf[:16])!r}")
    total = 16 + (buf[14] << 8 | buf[15])
    if len(buf) < total:
        return None
    body = bytes(buf[16:total])
    h = {"cmd": buf[12] & 0x0f, "family": buf[13], "src": None, "dst": None, "tlvs": {},
         "ssl": None}
    alen = {0x11: 12, 0x21: 36}.get(buf[13], 0)
    if alen == 12:
        h["src"] = (socket.inet_ntop(socket.AF_INET, body[0:4]), body[8] << 8 | body[9])
        h["dst"] = (socket.inet_ntop(socket.AF_INET, body[4:8]), body[10] << 8 | body[11])
    elif alen == 36:
        h["src"] = (socket.inet_ntop(socket.AF_INET6, body[0:16]), body[32] << 8 | body[33])
        h["dst"] = (socket.inet_ntop(socket.AF_INET6, body[16:32]), body[34] << 8 | body[35])

    def tlvs(b):
        out, off = {}, 0
        while off < len(b):
            if off + 3 > len(b):
                raise ValueError(f"a TLV header runs past the end: {b[off:]!r}")
            t, n = b[off], b[off + 1] << 8 | b[off + 2]
            if off + 3 + n > len(b):
                raise ValueError(f"TLV 0x{t:02x} of {n} bytes runs past the end")
            out[t] = b[off + 3:off + 3 + n]
            off += 3 + n
        return out

    h["tlvs"] = tlvs(body[alen:])
    ssl_tlv = h["tlvs"].get(0x20)
    if ssl_tlv is not None:
        if len(ssl_tlv) < 5:
            raise ValueError(f"PP2_TYPE_SSL too short: {ssl_tlv!r}")
        h["ssl"] = {"client": ssl_tlv[0], "verify": int.from_bytes(ssl_tlv[1:5], "big"),
                    "tlvs": tlvs(ssl_tlv[5:])}
    return total, h


class ProxyRecorder(PyBackend):
    """A backend that reads a PROXY v2 header, records it (self.headers: dicts from
    parse_proxy_v2, or {"error": text}), then answers one HTTP request with
    "hello from NAME\\n" and closes. A connection closed before its first
    byte is not recorded: that is a TCP health check, whose timing would
    otherwise decide which header a test reads."""

    def __init__(self, name="pp"):
        self.name = name
        self.headers = []
        super().__init__(self._handle)

    def _handle(self, c):
        c.settimeout(10 * SLOW)
        buf = b""
        try:
            while True:
                got = parse_proxy_v2(buf)
                if got:
                    break
                chunk = c.recv(4096)
                if not chunk and not buf:
                    c.close()
                    return
                if not chunk:
                    raise ValueError(f"EOF inside the header after {buf!r}")
                buf += chunk
        except (ValueError, OSError) as e:
            self.headers.append({"error": str(e)})
            c.close()
            return
        n, h = got
        self.headers.append(h)
        buf = buf[n:]
        while b"\r\n\r\n" not in buf:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
        body = f"hello from {self.name}\n".encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(body) + body)
        c.close()

    def wait_header(self, n=1, timeout=5):
        """The n-th recorded header (1-based), waiting for it; None if none came."""
        return poll_until(lambda: self.headers[n - 1] if len(self.headers) >= n else None,
                          timeout * SLOW)


# ---------------------------------------------------------------- config

def _q(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


_NAME_RE = re.compile(r"^[A-Za-z*][-A-Za-z0-9_*]*$")     # a libconfig setting name


def _val(v):
    """A libconfig value: bool, number, string, array (list) or group (dict)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(_val(x) for x in v) + " ]"
    if isinstance(v, dict):
        return "{ " + " ".join(f"{k} = {_val(x)};" for k, x in v.items()) + " }"
    return _q(v)


config_value = _val


def _cert_entry(c):
    """One element of a frontend's certificates list: a dict {cert, key, ocsp_file}
    (key and ocsp_file optional), a (cert, key) tuple or a cert path alone."""
    if isinstance(c, str):
        c = {"cert": c}
    elif isinstance(c, (list, tuple)):
        c = dict(zip(("cert", "key", "ocsp_file"), c))
    return "{ " + " ".join(f"{k} = {_val(v)};" for k, v in c.items() if v is not None) + " }"


# Frontend keys written as plain values, in this order, when given.
FRONTEND_KEYS = ("cert_dir", "strict_sni", "alpn", "verify_client", "client_ca", "client_crl",
                 "verify_depth")


def frontend_text(fe):
    """One frontend group. fe: {name, listen: [...], upstream} and optionally:
    cert, key (one certificate; the defaults CERT and KEY; key None: none);
    certificates: a list (see _cert_entry; [] writes an empty list, None leaves the
    key out); any of FRONTEND_KEYS; alpn_upstreams: {protocol: upstream} (written
    as a group when every protocol is a valid setting name, else as the list form)
    or [(protocol, upstream), ...] (always the list form); extra: raw text."""
    out = ["  {", f"    name = {_q(fe['name'])};", f"    listen = {_val(list(fe['listen']))};"]
    if "certificates" in fe:
        if fe["certificates"] is not None:
            out.append("    certificates = ( " + ", ".join(_cert_entry(c) for c in
                                                          fe["certificates"])
                       + (" );" if fe["certificates"] else ");"))
    else:
        key = fe.get("key", KEY)
        out.append(f"    certificates = ( {{ cert = {_q(fe.get('cert', CERT))}; "
                   + (f"key = {_q(key)}; " if key else "") + "} );")
    for k in FRONTEND_KEYS:
        if fe.get(k) is not None:
            out.append(f"    {k} = {_val(fe[k])};")
    au = fe.get("alpn_upstreams")
    if au is not None:
        if isinstance(au, dict) and all(_NAME_RE.match(p) for p in au):
            out.append("    alpn_upstreams = { " + " ".join(f"{p} = {_q(u)};"
                                                            for p, u in au.items()) + " };")
        else:
            items = au.items() if isinstance(au, dict) else au
            out.append("    alpn_upstreams = ( " + ", ".join(
                f"{{ protocol = {_q(p)}; upstream = {_q(u)}; }}" for p, u in items) + " );")
    if fe.get("extra"):
        out.append("    " + fe["extra"])
    if fe.get("upstream") is not None:
        out.append(f"    upstream = {_q(fe['upstream'])};")
    out.append("  }")
    return "\n".join(out)


# Tests make hundreds of connections a second from 127.0.0.1, which the
# per-client limits' defaults would refuse: a configuration without a
# limits group gets none (t1250-capacity tests the limits, defaults too).
NO_LIMITS = "limits = { per_client = 0; handshake_rate = 0; };"


def config_text(frontends, upstreams, workers=2, timeouts=None, tls=None, log=None,
                daemon=False, pidfile=""):
    """libconfig text. frontends: [{name, listen: [...], cert, key, upstream, ...}]
    (see frontend_text); upstreams: {name: address}, or {name: {address, and
    upstream settings such as proxy_protocol}}; timeouts/tls: dicts of raw
    libconfig values (strings are quoted, lists become arrays)."""
    out = [f"daemon = {_val(daemon)};", f"pidfile = {_q(pidfile)};", NO_LIMITS]
    if log:
        out.append("log = { " + " ".join(f"{k} = {_val(v)};" for k, v in log.items()) + " };")
    if workers is not None:
        out.append(f"workers = {{ count = {workers}; }};")
    if timeouts:
        out.append("timeouts = { " + " ".join(f"{k} = {_val(v)};" for k, v in timeouts.items())
                   + " };")
    if tls:
        out.append("tls = { " + " ".join(f"{k} = {_val(v)};" for k, v in tls.items()) + " };")
    out.append("frontends = (")
    out.append(",\n".join(frontend_text(fe) for fe in frontends))
    out.append(");")
    out.append("upstreams = (")
    items = list(upstreams.items())
    for i, (name, up) in enumerate(items):
        up = dict(up) if isinstance(up, dict) else {"address": up}
        addr = up.pop("address")
        settings = "".join(f"{k} = {_val(v)}; " for k, v in up.items())
        out.append(f"  {{ name = {_q(name)}; {settings}servers = ( {{ address = {_q(addr)}; }} ); }}"
                   + ("," if i + 1 < len(items) else ""))
    out.append(");")
    return "\n".join(out) + "\n"


def check_config(lines, name="conf"):
    """Writes lines (a list, or text) to NAME.conf in tmpdir() and runs `tlsoffd -t -c`
    on it: (exit status, stderr text, the line number of "tlsoffd: FILE:LINE: " or
    None, the file's path)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    path = os.path.join(tmpdir(), name + ".conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run([TLSOFFD, "-t", "-c", path])
    err = r.stderr.decode(errors="replace").strip()
    m = re.match(rf"tlsoffd: {re.escape(path)}:(\d+): ", err)
    return r.returncode, err, int(m.group(1)) if m else None, path


OUTCOMES = ("ok", "handshake-failed", "handshake-timeout", "backend-refused", "backend-timeout",
            "backend-unreachable", "backend-error", "client-error", "idle-timeout", "shed",
            "internal-error", "no-server", "backend-tls-failed")
# The documented fields, in order; a field added later (key=value, or key="quoted
# value" with spaces and \" or \\ escapes) is let through.
_X = r'(?: [a-z_]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]+))*'
ACCESS_LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    r"client=(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:.]+\]):\d+" + _X + " frontend=\\S+" + _X +
    r" backend=\S+" + _X + r" tls=(TLSv1\.[23]|-)" + _X + r" cipher=\S+" + _X +
    r" sni=\S+" + _X + r" in=\d+" + _X + r" out=\d+" + _X + r" duration=\d+\.\d{3}" + _X +
    r" outcome=(?P<outcome>" + "|".join(OUTCOMES) + r")"
    r'(?P<reason> reason="[^"]+")?$')

_ACCESS_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')



def line_of(lines, needle):
    """The 1-based number of the first line containing needle."""
    for i, l in enumerate(lines):
        if needle in l:
            return i + 1
    raise KeyError(needle)


def bad_config(name, lines, where, rx):
    """Checks that `tlsoffd -t` refuses lines: status 1, one stderr line
    "tlsoffd: FILE:LINE: ..." with LINE in where, matching rx."""
    rc, err, line, path = check_config(lines, re.sub(r"[^a-z0-9]+", "-", name.lower())[:40])
    ok(rc == 1, f"{name}: tlsoffd -t exits with status 1", f"rc={rc} {err}")
    ok(line in where, f"{name}: 'tlsoffd: FILE:LINE: ' with line "
       f"{' or '.join(map(str, where))}", err)
    ok(re.search(rx, err) is not None, f"{name}: the message says /{rx}/", err)
    ok(len(err.splitlines()) == 1, f"{name}: one line on stderr", err)

def parse_access(line):
    """An access log line as a dict; numbers converted; 'ts' is the timestamp,
    'client_port' the client's port."""
    ts, _, rest = line.partition(" ")
    d = {"ts": ts, "raw": line}
    for k, v in _ACCESS_RE.findall(rest):
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        d[k] = v
    for k in ("in", "out"):
        if k in d:
            d[k] = int(d[k])
    if "duration" in d:
        d["duration"] = float(d["duration"])
    if "client" in d:
        d["client_port"] = int(d["client"].rsplit(":", 1)[1])
    return d


# ---------------------------------------------------------------- the daemon

class DaemonFailed(Exception):
    pass


class Daemon:
    """Runs `tlsoffd -f -c FILE` from a per-daemon temporary directory.

    Either pass config (libconfig text; `log`, `daemon` and `pidfile` are
    added unless present), or let it build one: one frontend "fe" listening
    on 127.0.0.1:PORT (plus [::1]:PORT if ipv6) with upstream "up" at
    `upstream`. `d.port` is the (first) frontend port.
    """
    _seq = 0

    def __init__(self, config=None, *, upstream=None, workers=2, timeouts=None, tls=None,
                 ipv6=False, frontends=None, upstreams=None, level="debug", start=True,
                 wait_workers=True, name=None, log=None, pidfile=""):
        Daemon._seq += 1
        self.name = name or f"d{Daemon._seq}"
        self.dir = os.path.join(tmpdir(), self.name)
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "main.log")
        self.access_path = os.path.join(self.dir, "access.log")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.conf_path = os.path.join(self.dir, "tlsoffd.conf")
        self.workers = workers
        self.proc = None
        self.probe_ports = set()
        self.ready_stamp = None
        self.known_workers = set()
        self._stopped = False
        logcfg = {"destination": self.log_path, "level": level, "access_log": self.access_path}
        logcfg.update(log or {})
        log = {k: v for k, v in logcfg.items() if v is not None}
        # Where the logs really go (relative names are taken from self.dir, the cwd).
        self.log_path = {"stderr": self.stderr_path, "syslog": None}.get(
            log["destination"], os.path.join(self.dir, log["destination"]))
        self.access_path = os.path.join(self.dir, log["access_log"]) \
            if log.get("access_log") else None
        self.pidfile = os.path.join(self.dir, pidfile) if pidfile else None
        if config is None:
            if frontends is None:
                self.port = free_port(ipv6=ipv6)
                listen = [f"127.0.0.1:{self.port}"] + ([f"[::1]:{self.port}"] if ipv6 else [])
                frontends = [{"name": "fe", "listen": listen, "upstream": "up"}]
                upstreams = {"up": upstream}
            config = config_text(frontends, upstreams, workers=workers, timeouts=timeouts,
                                 tls=tls, log=log, pidfile=pidfile)
            self.listen = [a for fe in frontends for a in fe["listen"]]
        else:
            head = []
            if not re.search(r"^\s*log\s*[=:]", config, re.M):
                head.append("log = { " + " ".join(f"{k} = {_q(v)};" for k, v in log.items())
                            + " };")
            if not re.search(r"^\s*daemon\s*[=:]", config, re.M):
                head.append("daemon = false;")
            if not re.search(r"^\s*pidfile\s*[=:]", config, re.M):
                head.append(f"pidfile = {_q(pidfile)};")
            if not re.search(r"^\s*limits\s*[=:]", config, re.M):
                head.append(NO_LIMITS)
            config = "\n".join(head) + ("\n" if head else "") + config
            self.listen = re.findall(r'"((?:\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):\d+)"',
                                     re.split(r"^\s*upstreams\s*[=:]", config, 1, re.M)[0])
        if not hasattr(self, "port"):
            self.port = int(self.listen[0].rsplit(":", 1)[1]) if self.listen else None
        self.config = config
        with open(self.conf_path, "w") as f:
            f.write(config)
        self.env = dict(os.environ)
        if SANITIZE:
            self.env["ASAN_OPTIONS"] = f"log_path={self.dir}/asan:detect_leaks=0"
            self.env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={self.dir}/ubsan"
        if start:
            self.start(wait_workers=wait_workers)

    # -- life cycle

    def start(self, wait_workers=True):
        self.stderr_f = open(self.stderr_path, "ab")
        self.proc = _register(subprocess.Popen([TLSOFFD, "-f", "-c", self.conf_path],
                                               stdin=subprocess.DEVNULL, stdout=self.stderr_f,
                                               stderr=self.stderr_f, env=self.env,
                                               cwd=self.dir))
        self.pid = self.proc.pid
        _daemons.append(self)
        try:
            self._wait_ready(wait_workers)
        except Exception:
            self.dump_tail()
            raise

    def _wait_ready(self, wait_workers):
        deadline = time.monotonic() + 10 * SLOW
        pending = list(self.listen)
        while pending:
            if self.proc.poll() is not None:
                raise DaemonFailed(f"tlsoffd exited with status {self.proc.returncode} "
                                   f"at start: {self.stderr_text().strip()}")
            if time.monotonic() > deadline:
                raise DaemonFailed(f"tlsoffd does not accept on {pending} after 10 s")
            addr = pending[0]
            host, port = addr.rsplit(":", 1)
            fam = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1)
            try:
                s.connect((host.strip("[]"), int(port)))
                self.probe_ports.add(s.getsockname()[1])
                pending.pop(0)
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        if wait_workers:
            got = poll_until(lambda: len(self.worker_pids()) >= self.workers, 10 * SLOW)
            if not got:
                raise DaemonFailed(f"tlsoffd has {len(self.worker_pids())} workers, "
                                   f"not {self.workers}, after 10 s")
            # The prober and the park process name themselves right after
            # their fork: until then they look like workers.
            seen = [None]
            poll_until(lambda: seen.__setitem__(0, self.worker_pids()) or
                       (time.sleep(0.1) or self.worker_pids() == seen[0]), 2 * SLOW)
            self.known_workers.update(self.worker_pids())
        # A probe's line (a connect-and-close fails at once) is logged by then.
        self.ready_stamp = stamp(2.0)

    def worker_pids(self):
        return children_of(self.pid) if self.proc and self.proc.poll() is None else []

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout):
        """The master's exit status, or None if it still runs after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, check=True, sig=signal.SIGTERM, timeout=2):
        """Stops the master (sig, bounded wait, then SIGKILL) and returns its exit
        status. With check, a sanitizer report is a failing check."""
        if self._stopped:
            return self.proc.returncode if self.proc else None
        self._stopped = True
        if self in _daemons:
            _daemons.remove(self)
        rc = None
        if self.proc:
            workers = set(self.known_workers) | set(self.worker_pids())
            if self.proc.poll() is None:
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                rc = self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                diag(f"tlsoffd pid {self.pid} still runs {timeout * SLOW:g} s after "
                     f"signal {sig}; SIGKILL")
                self.proc.kill()
                rc = self.proc.wait(timeout=10)
            # Workers die with the master (PR_SET_PDEATHSIG); make sure.
            for w in workers:
                if not poll_until(lambda: not pid_alive(w), 5 * SLOW):
                    diag(f"worker pid {w} outlived the master; SIGKILL")
                    try:
                        os.kill(w, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.stderr_f.close()
        if check:
            self.check_sanitizers()
            self.check_access_format()
        return rc

    def check_access_format(self):
        """A failing check unless every access line is well-formed, as in
        tlsoffd(8): the fields in order, a known outcome, a reason iff not ok."""
        bad = []
        for line in self._read(self.access_path).splitlines():
            m = ACCESS_LINE_RE.match(line)
            if not m or (m.group("outcome") == "ok") != (m.group("reason") is None):
                bad.append(line)
        return ok(not bad, f"{self.name}: every access log line is well-formed "
                  f"(fields, outcome; a reason unless outcome=ok)", "\n".join(bad[:5]) or None)

    def check_sanitizers(self):
        """A failing check if ASan/UBSan wrote a report for this daemon."""
        if not SANITIZE:
            return True
        reports = sorted(f for f in os.listdir(self.dir)
                         if f.startswith("asan.") or f.startswith("ubsan."))
        text = ""
        for f in reports:
            with open(os.path.join(self.dir, f), errors="replace") as fh:
                text += f"--- {f}\n" + fh.read()[-6000:]
        return ok(not reports, f"{self.name}: no sanitizer reports", text or None)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    # -- logs

    def _read(self, path):
        if not path:
            return ""
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_text(self):
        return self._read(self.log_path)

    def stderr_text(self):
        return self._read(self.stderr_path)

    def access(self, include_probes=False):
        """Access log lines as dicts (without the readiness probes' lines)."""
        lines = [parse_access(l) for l in self._read(self.access_path).splitlines() if l.strip()]
        if not include_probes:
            lines = [l for l in lines if not self._is_probe(l)]
        return lines

    def _is_probe(self, l):
        return (l.get("client_port") in self.probe_ports and l.get("outcome") ==
                "handshake-failed" and l.get("in") == 0 and
                (not self.ready_stamp or l["ts"] <= self.ready_stamp))

    def main_log_access(self):
        """Access lines written to the main log: a list of (level, dict)."""
        out = []
        for line in self.log_text().splitlines():
            m = re.match(r"^(\S+) tlsoffd\[\d+\] worker \d+ (\w+): (client=.*)$", line)
            if m:
                out.append((m.group(2), parse_access(m.group(1) + " " + m.group(3))))
        return [(lv, l) for lv, l in out if not self._is_probe(l)]

    def wait_access(self, timeout=5, after=None, **match):
        """The first access line whose fields equal match (None if none within
        timeout). after: a stamp() taken before the connection began; older lines
        are skipped (a client port is reused across frontends)."""
        def find():
            for l in self.access():
                if after and l["ts"] < after:
                    continue
                if all(l.get(k) == v for k, v in match.items()):
                    return l
            return None
        return poll_until(find, timeout * SLOW)

    def wait_log(self, pattern, timeout=5):
        """The first match of the regex in the main log (None if none within timeout)."""
        rx = re.compile(pattern, re.M)
        return poll_until(lambda: rx.search(self.log_text()), timeout * SLOW)

    def tail_text(self, n=15):
        out = [f"--- {self.name} ({self.dir}) main log tail:",
               "\n".join(self.log_text().splitlines()[-n:]) or "(empty)",
               f"--- {self.name} access log tail:",
               "\n".join(self._read(self.access_path).splitlines()[-6:]) or "(empty)"]
        err = self.stderr_text().strip()
        if err:
            out += [f"--- {self.name} stderr:", "\n".join(err.splitlines()[-10:])]
        return "\n".join(out)

    def dump_tail(self, n=15):
        diag(self.tail_text(n))


# ---------------------------------------------------------------- clients

def daemon_stats(d):
    """`tlsoffd -s stats` of daemon d (it needs a pidfile): {key: value} of
    its total and pool lines, and the top clients as {network: connections}."""
    out = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], cwd=d.dir, timeout=10).stdout.decode()
    vals = {}
    for line in out.splitlines():
        if line.startswith(("total ", "pool ")):
            vals.update((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
    top = {m[0]: int(m[1]) for m in re.findall(r"^client=(\S+) connections=(\d+)", out, re.M)}
    return vals, top


def curl(port, path="/", host="127.0.0.1", name="example.test", args=(), timeout=15):
    """curl https://NAME:PORT/PATH resolved to host, verifying against the test CA.
    stdout is the body; `-w` output can be added through args."""
    h = f"[{host}]" if ":" in host else host
    argv = ["curl", "-sS", "--cacert", CA, "--max-time", str(int(timeout * SLOW)),
            "--resolve", f"{name}:{port}:{h}", *args, f"https://{name}:{port}{path}"]
    return run(argv, timeout=timeout + 5)


def s_client(port, args=(), input=b"", host="127.0.0.1", timeout=10):
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile", CA, *args]
    return run(argv, input=input, timeout=timeout)


def s_client_info(port, sni=None, args=(), input=b"", host="127.0.0.1", timeout=10):
    """openssl s_client, its output read: a dict with cn (the leaf's subject CN),
    bits (its public key size), alpn (None if none), ocsp ('good', 'none' for "no
    response sent", or other text), session ('New'/'Reused'), version, verify
    (the verify return code), rc, out (stdout and stderr). sni None: no SNI."""
    a = (["-servername", sni] if sni else ["-noservername"]) + list(args)
    r = s_client(port, a, input=input, host=host, timeout=timeout)
    out = r.stdout.decode(errors="replace") + "\n" + r.stderr.decode(errors="replace")

    def find(rx, group=1):
        m = re.search(rx, out, re.M)
        return m.group(group) if m else None

    ocsp = find(r"^\s*Cert Status: (\S+)")
    if ocsp is None and re.search(r"^OCSP response: no response sent", out, re.M):
        ocsp = "none"
    if ocsp is None:
        ocsp = find(r"^\s*OCSP Response Status: (.*)$")
    alpn = find(r"^ALPN protocol: (\S+)")
    return {"cn": find(r"^subject=.*?CN ?= ?([^,/\n]+?)\s*$"),
            "bits": int(find(r"^Server public key is (\d+) bit") or 0),
            "alpn": alpn, "ocsp": ocsp,
            "session": find(r"^(New|Reused), TLSv1\.[23]"),
            "version": find(r"^(?:New|Reused), (TLSv1\.[23])"),
            "verify": find(r"^\s*Verify return code: (\d+)"),
            "rc": r.returncode, "out": out}


def tls_context(version=None, ca=CA):
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_connect(port, host="127.0.0.1", sni="example.test", version=None, timeout=10,
                source=None):
    """A verified SSLSocket (blocking, with a timeout); source: the client's
    own address (127.0.0.2 is another client than 127.0.0.1)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return tls_context(version).wrap_socket(s, server_hostname=sni)


class TLSClient:
    """A TLS client over a non-blocking socket and memory BIOs, driven by one
    select loop: it can send and receive at once (no deadlock with an echo
    backend), and half-close with a TCP FIN or a close_notify while reading on."""

    def __init__(self, port, host="127.0.0.1", sni="example.test", version=None, timeout=5,
                 ctx=None, source=None):
        self.started = stamp()
        self.sock = socket.create_connection((host, port), timeout=timeout * SLOW,
                                             source_address=(source, 0) if source else None)
        self.local_port = self.sock.getsockname()[1]
        self.sock.setblocking(False)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = (ctx or tls_context(version)).wrap_bio(self.inc, self.out, server_hostname=sni)
        self.wbuf = bytearray()
        self.eof = False
        self.error = None
        deadline = time.monotonic() + timeout * SLOW
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._io(deadline, want_read=True)
                if self.eof:
                    raise ConnectionError("EOF during the handshake")
        self._flush_all(deadline)

    def version(self):
        return self.obj.version()

    def _io(self, deadline, want_read):
        self.wbuf += self.out.read()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TLSClient: deadline passed")
        r, w, _ = select.select([self.sock] if want_read and not self.eof else [],
                                [self.sock] if self.wbuf else [], [], min(left, 1.0))
        if w:
            try:
                n = self.sock.send(self.wbuf)
                del self.wbuf[:n]
            except BlockingIOError:
                pass
        if r:
            try:
                d = self.sock.recv(262144)
            except BlockingIOError:
                return
            except ConnectionResetError as e:
                self.error = e
                d = b""
            if d:
                self.inc.write(d)
            else:
                self.eof = True
                self.inc.write_eof()

    def _flush_all(self, deadline):
        self.wbuf += self.out.read()
        while self.wbuf:
            self._io(deadline, want_read=True)

    def _read_records(self, got, on_progress=None):
        """Decrypts every whole record received into got; returns None, or how
        the connection ended ('close_notify', 'eof', 'reset', 'error: ...')."""
        while True:
            try:
                b = self.obj.read(262144)
            except ssl.SSLWantReadError:
                return None
            except ssl.SSLZeroReturnError:
                return "close_notify"
            except ssl.SSLEOFError:
                return "reset" if self.error else "eof"
            except ssl.SSLError as e:
                return f"error: {e}"
            if not b:
                return "close_notify"
            got += b
            if on_progress:
                on_progress(len(got))

    def exchange(self, data=b"", then=None, read=True, timeout=20, chunk=65536,
                 on_progress=None):
        """Sends data while reading, then (then='fin': TCP SHUT_WR; 'close_notify':
        a TLS close_notify; None: nothing) and reads until the peer ends.
        Returns (received bytes, how) with how one of 'close_notify', 'eof'
        (FIN without close_notify), 'reset', 'timeout', 'error: ...'.
        on_progress(received_so_far) is called after each read (for pacing)."""
        deadline = time.monotonic() + timeout * SLOW
        got = bytearray()
        view = memoryview(data)
        sent = 0
        ended = False
        while True:
            # queue more plaintext when the socket has room
            while sent < len(view) and len(self.wbuf) < 4 * chunk:
                self.obj.write(view[sent:sent + chunk])
                sent += min(chunk, len(view) - sent)
                self.wbuf += self.out.read()
            if sent >= len(view) and not ended:
                if then == "close_notify":
                    # unwrap() is SSL_shutdown() twice: the first sends our
                    # close_notify, the second reads the records already in
                    # self.inc looking for the peer's, and OpenSSL 3 fails
                    # the connection on an application data record there
                    # (APPLICATION_DATA_AFTER_CLOSE_NOTIFY; later reads then
                    # raise SSLEOFError, which looked like the daemon's FIN).
                    # So every whole record is decrypted first: self.inc then
                    # holds at most part of one, which the second call cannot
                    # complete (nothing is added to self.inc meanwhile).
                    end = self._read_records(got, on_progress)
                    if end:
                        return bytes(got), end
                    try:
                        self.obj.unwrap()
                    except ssl.SSLWantReadError:
                        pass                    # sent; the peer's comes later
                    except ssl.SSLError as e:
                        return bytes(got), f"error: unwrap: {e}"
                    self.wbuf += self.out.read()
                elif then == "fin":
                    self._flush_all(deadline)
                    self.sock.shutdown(socket.SHUT_WR)
                ended = True
                if not read:
                    self._flush_all(deadline)
                    return bytes(got), None
            end = self._read_records(got, on_progress)
            if end:
                return bytes(got), end
            if self.eof and self.inc.pending == 0:
                return bytes(got), "reset" if self.error else "eof"
            try:
                self._io(deadline, want_read=True)
            except TimeoutError:
                return bytes(got), "timeout"

    def send(self, data, timeout=10):
        self.obj.write(data)
        self._flush_all(time.monotonic() + timeout * SLOW)

    def recv_exact(self, n, timeout=10):
        """Reads n bytes; returns (bytes, None) or (fewer bytes, how it ended)."""
        deadline = time.monotonic() + timeout * SLOW
        got = bytearray()
        while len(got) < n:
            try:
                got += self.obj.read(n - len(got))
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return bytes(got), "close_notify"
            except ssl.SSLError as e:
                return bytes(got), f"error: {e}"
            if self.eof and self.inc.pending == 0:
                return bytes(got), "reset" if self.error else "eof"
            try:
                self._io(deadline, want_read=True)
            except TimeoutError:
                return bytes(got), "timeout"
        return bytes(got), None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- data

def pattern_bytes(n):
    """The helper's /bytes/N body: byte i = i % 251."""
    block = bytes(range(251)) * 64
    full, rest = divmod(n, len(block))
    return block * full + block[:rest]


def pattern_sha256(n):
    block = bytes(range(251)) * 1024       # a multiple of 251, so blocks line up
    h = hashlib.sha256()
    full, rest = divmod(n, len(block))
    for _ in range(full):
        h.update(block)
    h.update(block[:rest])
    return h.hexdigest()
