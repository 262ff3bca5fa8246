"""benchlib — what contrib/bench/compare and contrib/bench/held share.

Standard library only. /proc readers (process trees, CPU time, PSS), the
processes a benchmark starts (pinned, in their own session, stopped by PID),
free loopback ports, the test certificates, the nginx backend, the TLS
policy every server gets, and the machine's description.
"""
import datetime
import os
import platform
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROG = os.path.basename(sys.argv[0]) or "bench"

# The one TLS policy every server gets: tlsoffd's defaults (tlsoffd.conf(5)).
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
BODY = b"hello from the bench backend\n"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc

def read_stat(pid):
    """(ppid, cpu ticks incl. reaped children, starttime) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # field n of proc(5) is rest[n - 3]: ppid 4, utime 14 .. cstime 17, starttime 22
    return int(rest[1]), sum(int(x) for x in rest[11:15]), int(rest[19])


def ppids():
    """{pid: ppid} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st:
                out[int(d)] = st[0]
    return out


def tree(root, parents=None):
    """PIDs of root and all its descendants (parents: a ppids() to reuse)."""
    children = {}
    for p, pp in (parents if parents is not None else ppids()).items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(root):
    """Seconds of CPU used by root's tree: utime+stime of every live process,
    plus cutime+cstime (the exited children each has reaped)."""
    total = 0
    for p in tree(root):
        st = read_stat(p)
        if st:
            total += st[1]
    return total / CLK_TCK


def smaps_rollup(pid):
    """{field: KiB} from /proc/PID/smaps_rollup (Rss, Pss, Pss_Anon, ...), or
    None (gone, or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines()[1:]:
        k, _, v = line.partition(":")
        v = v.split()
        if v and v[0].isdigit():
            out[k] = int(v[0])
    return out or None


def tree_pss(root):
    """(KiB of PSS summed over root's tree, number of processes)."""
    kib, n = 0, 0
    for p in tree(root):
        r = smaps_rollup(p)
        if r and "Pss" in r:
            kib += r["Pss"]
            n += 1
    return kib, n


def proc_status(pid):
    """{field: value} from /proc/PID/status; sizes ('1234 kB') as int KiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                if v.endswith(" kB"):
                    out[k] = int(v[:-3])
                else:
                    out[k] = v
    except OSError:
        return None
    return out


def meminfo():
    """{field: KiB} from /proc/meminfo."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = int(v.split()[0])
    return out


def pcp_free_kib():
    """KiB of free pages parked on the per-CPU lists (/proc/zoneinfo, pagesets
    "count:"). MemFree and MemAvailable leave them out, and they come and go
    by tens of MiB as the allocator refills and drains the lists."""
    pages = 0
    try:
        with open("/proc/zoneinfo") as f:
            for line in f:
                s = line.split()
                if len(s) == 2 and s[0] == "count:":
                    pages += int(s[1])
    except OSError:
        return 0
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)


def core_ticks(cpu):
    """(busy, total) ticks of one CPU from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:9]]
                busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
                return busy, busy + v[3] + v[4]
    return 0, 0


# ------------------------------------------------------------------ processes

_started = []       # every Proc, stopped in reverse order at exit


class Proc:
    """A server we start, pinned with taskset, in its own session (so a Ctrl-C
    reaches only this script, which then stops it by PID)."""

    def __init__(self, name, argv, logfile, cpu=None, env=None, stop_timeout=8.0):
        self.name = name
        self.argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv
        self.logfile = logfile
        self.stop_timeout = stop_timeout
        self.log = open(logfile, "ab")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.pid = self.p.pid           # taskset execs: this is the server itself
        _started.append(self)

    def alive(self):
        return self.p.poll() is None

    def cpu(self):
        return tree_cpu(self.pid)

    def pss(self):
        return tree_pss(self.pid)

    def stop(self):
        if self.p.poll() is None:
            family = [(p, read_stat(p)) for p in tree(self.pid)]
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
            # Descendants its master failed to stop (same PID and start time).
            for p, st in family:
                now = read_stat(p)
                if p != self.pid and st and now and now[2] == st[2]:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        self.log.close()
        if self in _started:
            _started.remove(self)

    def tail(self, n=15):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def stop_all():
    for p in reversed(list(_started)):
        try:
            p.stop()
        except Exception as e:          # keep stopping the others
            log(f"{PROG}: stopping {p.name}: {e}")


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc and not proc.alive():
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def cmd_out(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=20)
        return (r.stdout + r.stderr).decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"


def default_tlsoffd():
    """build/tlsoffd (absolute): the default build, the optimised wolfSSL."""
    return os.path.join(ROOT, "build", "tlsoffd")


# Every benchmark client is 127.0.0.1: tlsoffd's per-client limits (its
# limits group, where the binary has one) are turned off, as hitch and
# HAProxy have none.
TLSOFFD_LIMITS_OFF = "limits = { per_client = 0; handshake_rate = 0; };"


def tlsoffd_has_limits(binary, tmp):
    """Whether binary knows the limits group: tlsoffd -t says "limits:
    unknown key" when it does not (and refuses the file)."""
    path = os.path.join(tmp, "probe-limits.conf")
    with open(path, "w") as f:
        f.write('daemon = false;\n' + TLSOFFD_LIMITS_OFF + '\n'
                'frontends = ( { name = "a"; listen = "127.0.0.1:1"; certificates = '
                '( { cert = "/nonexistent"; } ); upstream = "b"; } );\nupstreams = '
                '( { name = "b"; servers = ( { address = "127.0.0.1:2"; } ); } );\n')
    try:
        r = subprocess.run([binary, "-t", "-c", path], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"limits: unknown" not in r.stdout + r.stderr


def wolfssl_lib(binary):
    """The libwolfssl.so line of `ldd binary`."""
    for line in cmd_out(["ldd", binary]).splitlines():
        if "wolfssl" in line:
            return line.strip()
    return "not dynamically linked (static wolfSSL?)"


# ------------------------------------------------------------------ certificates

def get_certs(tmp):
    """build/t/certs (make check), else t/mkcerts into tmp. Returns a dict:
    ca; ec_/rsa_ chain, key, name, combined (key + chain, for hitch and
    HAProxy)."""
    src = os.path.join(ROOT, "build", "t", "certs")
    need = ["ca.pem", "example.test.pem", "example.test.key", "rsa.test.pem", "rsa.test.key"]
    if not all(os.path.exists(os.path.join(src, n)) for n in need):
        src = os.path.join(tmp, "certs")
        log(f"{PROG}: making certificates with t/mkcerts in {src}")
        subprocess.run(["sh", os.path.join(ROOT, "t", "mkcerts"), src], check=True,
                       stdout=subprocess.DEVNULL)
    d = os.path.join(tmp, "certs-combined")
    os.makedirs(d)
    certs = {"ca": os.path.join(src, "ca.pem"), "dir": src}
    for k, n in (("ec", "example.test"), ("rsa", "rsa.test")):
        certs[k + "_chain"] = os.path.join(src, n + ".pem")
        certs[k + "_key"] = os.path.join(src, n + ".key")
        certs[k + "_name"] = n
        comb = os.path.join(d, n + ".pem")      # key + chain, for hitch and HAProxy
        with open(comb, "w") as f:
            for part in (certs[k + "_key"], certs[k + "_chain"]):
                with open(part) as g:
                    f.write(g.read())
        os.chmod(comb, 0o600)
        certs[k + "_combined"] = comb
    return certs


# ------------------------------------------------------------------ backend

class Nginx:
    """The backend: one nginx worker (pinned to cpu when given), keep-alive,
    no access log. GET / answers BODY; GET /big the file big (if given);
    PUT /upload reads the body and answers ok."""
    name = "nginx"

    def __init__(self, tmp, cpu=None, big=None, worker_connections=8192,
                 rlimit_nofile=20000, backlog=1024, keepalive_timeout=600):
        self.port = free_port()
        d = os.path.join(tmp, "nginx")
        os.makedirs(d)
        self.big_file = big
        big_loc = (f"        location = /big {{ alias {big}; "
                   f"default_type application/octet-stream; }}\n" if big else "")
        conf = f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile {rlimit_nofile};
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    sendfile on;
    keepalive_timeout {keepalive_timeout}s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{self.port} backlog={backlog};
        location = / {{ default_type text/plain; return 200 "{BODY.decode().strip()}\\n"; }}
{big_loc}        location = /upload {{ client_max_body_size 0; default_type text/plain;
                             return 200 "ok\\n"; }}
    }}
}}
"""
        self.conf_file = os.path.join(d, "nginx.conf")
        with open(self.conf_file, "w") as f:
            f.write(conf)
        self.config = conf
        self.proc = Proc("nginx", ["nginx", "-c", self.conf_file, "-p", d],
                         os.path.join(d, "stderr.log"), cpu)
        if not wait_port(self.port, self.proc):
            raise RuntimeError("nginx did not start:\n" + self.proc.tail())
        self.paths = {"small": "/", "big": "/big", "upload": "/upload"}
        self.version = cmd_out(["nginx", "-v"])


# ------------------------------------------------------------------ machine

def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def machine():
    """CPU model, CPUs, kernel, memory, load average, date."""
    m = meminfo()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
        "mem_total_mib": m.get("MemTotal", 0) // 1024,
        "mem_available_mib": m.get("MemAvailable", 0) // 1024,
        "loadavg_before": loadavg(),
    }
