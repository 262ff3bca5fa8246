#!/usr/bin/env python3
"""What a worker can write into the shared memory cannot hurt the master or
the others. As root, the test opens the running master's memfds
(/proc/MASTER/fd) read-write, as a hostile worker could have, and scribbles:
the scoreboard's number of slots, the ticket key ring's number of keys and
its sequence counter, the session cache's FIFO cursors, each in its own
case. Then the master must be alive and answering (-s stats, curl through
the daemon, a resumption that works or fails cleanly), with no process
dead or stuck. Last, the workers, the prober and the park process hold the
ticket keys read-only and no descriptor of the shared memory.

The offsets come from the headers they are documented in: lib/shm.h
(struct shm_header; the regions in enum shm_region's order) for the
segment, and the layouts that lib/stats.c, lib/sesscache.c and
lib/ticketkeys.c describe (also spelled out in their unit tests)."""
import mmap
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"

# ---------------------------------------------------------------- layouts

SHM_H = open(os.path.join(ROOT, "lib/shm.h")).read()
LAYOUT = int(re.search(r"#define SHM_LAYOUT_VERSION\s+(\d+)", SHM_H).group(1))
REGIONS = re.findall(r"\bSHM_([A-Z]+),", re.search(r"enum shm_region \{(.*?)\};", SHM_H,
                                                   re.S).group(1))
# struct shm_header: magic, layout_version, header_size, total_size, then
# {offset, size} for each region, then creator_pid (x86-64: natural alignment).
HEADER = "<QIIQ" + "QQ" * len(REGIONS) + "i"
HEADER_SIZE = (struct.calcsize(HEADER) + 7) // 8 * 8

STATS_NWORKERS = 4          # lib/stats.c struct region: magic, nworkers, ...
CACHE_NSHARDS = 4           # lib/sesscache.c struct header: magic, nshards, nslots, pad,
CACHE_SHARD_BYTES = 32      # seed, timeout, shard_bytes
CACHE_SHARDS = 64           # shards after the 64-byte header; each: its lock, then cursor
MUTEX_SIZE = 40             # sizeof(pthread_mutex_t), glibc x86-64
RING_SEQ = 4                # lib/ticketkeys.c struct ticketkeys: magic, seq, nkeys, ...
RING_NKEYS = 8


def memfd(pid, name):
    """The path of process pid's fd of the memfd called name, or None."""
    d = f"/proc/{pid}/fd"
    for fd in sorted(os.listdir(d), key=int):
        try:
            if os.readlink(f"{d}/{fd}").startswith(f"/memfd:{name} "):
                return f"{d}/{fd}"
        except OSError:
            pass
    return None


class Mapped:
    """Process pid's memfd called name, mapped read-write here."""

    def __init__(self, pid, name):
        path = memfd(pid, name)
        if not path:
            raise RuntimeError(f"process {pid} has no memfd {name}")
        fd = os.open(path, os.O_RDWR)
        self.m = mmap.mmap(fd, 0)
        os.close(fd)

    def get32(self, off):
        return struct.unpack_from("<I", self.m, off)[0]

    def put32(self, off, v):
        struct.pack_into("<I", self.m, off, v & 0xffffffff)


class Segment(Mapped):
    def __init__(self, pid):
        super().__init__(pid, "tlsoffd-shm")
        h = struct.unpack_from(HEADER, self.m, 0)
        if h[1] != LAYOUT or h[2] != HEADER_SIZE:
            raise RuntimeError(f"segment layout {h[1]}, header {h[2]} bytes: the test knows "
                               f"{LAYOUT}, {HEADER_SIZE}")
        self.region = {name: (h[4 + 2 * i], h[5 + 2 * i]) for i, name in enumerate(REGIONS)}

    def at(self, region):
        return self.region[region][0]


# ---------------------------------------------------------------- the daemon

be = Backend("http", "seg")
ROTATE, LIFETIME = 3, 30    # s: tls.tickets, so that the master rotates during a case


def conf(port):
    return (f'pidfile = "tlsoffd.pid";\nuser = "nobody";\n'
            f'workers = {{ count = 0; min_spare = 2; max_spare = 3; max = 6; }};\n'
            f'tls = {{ tickets = {{ rotate = {ROTATE}; lifetime = {LIFETIME}; }}; }};\n'
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} );\n'
            f'  health = {{ type = "tcp"; interval = 1; }}; }} );\n')


if os.geteuid() != 0:
    skip("the shared segment against a hostile writer", "the tests do not run as root")
    done()

port = free_port()
d = Daemon(conf(port), workers=2, name="seg", start=False)
os.chmod(tmpdir(), 0o755)           # workers reopen logs here as nobody
os.chmod(d.dir, 0o755)
d.start()


def stats_text():
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], timeout=10, cwd=d.dir)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def s_client(args, sess_in=None, sess_out=None):
    """(New|Reused, TLSv1.x) of one request, or (None, the output's tail)."""
    a = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
         "-servername", "example.test", "-ign_eof", *args]
    if sess_in:
        a += ["-sess_in", sess_in]
    if sess_out:
        a += ["-sess_out", sess_out]
    r = run(a, input=REQ, timeout=10)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"^(New|Reused), (TLSv1\.[23])", out, re.M)
    return (m.group(1), m.group(2)) if m and "hello from seg" in out else (None, out[-300:])


def crashes(since):
    """Log lines since the stamp since that say a process died of a signal."""
    return [l for l in d.log_text().splitlines()
            if l[:24] >= since and re.search(r"killed by signal|keep dying", l)]


def still_serving(what, since, resume=True, must_resume=False):
    """The checks after a scribble: the master lives and answers, and the
    workers serve, resume (or fail to resume cleanly, unless must_resume)
    and do not die."""
    ok(pid_alive(d.pid), f"{what}: the master is alive")
    rc, text = stats_text()
    ok(rc == 0 and re.search(r"^pool busy=\d+ idle=\d+", text, re.M),
       f"{what}: -s stats answers", text)
    for v in ("1.2", "1.3"):
        r = curl(port, "/", args=(f"--tlsv{v}", "--tls-max", v), timeout=10)
        ok(r.returncode == 0 and r.stdout == b"hello from seg\n",
           f"{what}: curl through the daemon, TLS {v}", r.stderr)
    if resume:
        for name, args in (("tls1.2-id", ["-tls1_2", "-no_ticket"]), ("tls1.2", ["-tls1_2"]),
                           ("tls1.3", ["-tls1_3"])):
            sess = os.path.join(d.dir, f"sess-{what.replace(' ', '_')}-{name}")
            first = s_client(args, sess_out=sess)
            again = s_client(args, sess_in=sess) if first[0] else (None, "no session")
            ok(first[0] == "New" and again[0] in (("Reused",) if must_resume else
                                                  ("New", "Reused")),
               f"{what}: {name}: a full handshake, then a resumption" +
               ("" if must_resume else " or a clean new one"), (first, again))
    ok(not crashes(since), f"{what}: no process died", crashes(since))
    ok(poll_until(lambda: len(d.worker_pids()) >= 2, 5 * SLOW), f"{what}: the workers are there")


@case(setup=True)
def layout():
    seg = Segment(d.pid)
    ok(set(seg.region) == {"SESSCACHE", "STATS", "CLIENTS", "PARKED"},
       "the segment's regions are the ones lib/shm.h names", seg.region)
    ring = Mapped(d.pid, "tlsoffd-ticketkeys")
    ok(ring.get32(RING_NKEYS) >= 1, "the ticket key ring holds a key", ring.get32(RING_NKEYS))
    still_serving("before", stamp(), must_resume=True)


@case
def nworkers():
    seg = Segment(d.pid)
    at = seg.at("STATS") + STATS_NWORKERS
    was = seg.get32(at)
    for garbage in (0, 1, 0xffffffff):
        since = stamp()
        seg.put32(at, garbage)
        time.sleep(0.5)                 # a few of the pool's ticks (every 100 ms)
        still_serving(f"nworkers={garbage}", since, resume=garbage == 0)
    seg.put32(at, was)


@case
def nkeys():
    ring = Mapped(d.pid, "tlsoffd-ticketkeys")
    for garbage in (33, 0xffffffff):
        since = stamp()
        ring.put32(RING_NKEYS, garbage)
        # The master rotates every ROTATE seconds: it reads the ring then.
        ok(poll_until(lambda: re.search(r"ticket key rotated",
                                        "\n".join(l for l in d.log_text().splitlines()
                                                  if l[:24] >= since)), (ROTATE + 3) * SLOW),
           f"nkeys={garbage}: the master rotates the keys after it")
        # Keys that still decrypt: one a rotation, for the lifetime, and
        # nothing read from past the ring's end.
        ok(ring.get32(RING_NKEYS) <= LIFETIME // ROTATE + 2,
           f"nkeys={garbage}: the rotation kept only real keys", ring.get32(RING_NKEYS))
        still_serving(f"nkeys={garbage}", since)


class KeepOdd:
    """While it runs, the ring's sequence counter is set odd every
    millisecond, as if a writer never finished (the master's rotation,
    every second, would mend it otherwise)."""

    def __init__(self, ring):
        self.ring, self.stop = ring, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.ring.put32(RING_SEQ, self.ring.get32(RING_SEQ) | 1)
            time.sleep(0.001)

    def __enter__(self):
        self.t.start()
        time.sleep(0.01)
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()


@case
def odd_seq():
    ring = Mapped(d.pid, "tlsoffd-ticketkeys")
    since = stamp()
    sess = os.path.join(d.dir, "sess-odd")
    ok(s_client(["-tls1_3"], sess_out=sess)[0] == "New", "odd seq: a TLS 1.3 session before")
    with KeepOdd(ring):
        for v in ("1.2", "1.3", "1.3"):
            t0 = time.monotonic()
            r = curl(port, "/", args=(f"--tlsv{v}", "--tls-max", v), timeout=5)
            ok(r.returncode == 0 and r.stdout == b"hello from seg\n",
               f"odd seq: curl through the daemon, TLS {v}, while the counter stays odd",
               r.stderr)
            ok(time.monotonic() - t0 < 1 * SLOW, f"odd seq: TLS {v}: the handshake did not wait",
               time.monotonic() - t0)
        again = s_client(["-tls1_3"], sess_in=sess)
        ok(again[0] in ("New", "Reused"), "odd seq: the session resumes, or a clean new one",
           again)
        ok(d.wait_log(r"worker \d+ warning: ticket keys: the shared key ring did not hold "
                      r"still"), "odd seq: a worker says so in the log")
    ok(poll_until(lambda: ring.get32(RING_SEQ) % 2 == 0, (ROTATE + 3) * SLOW),
       "odd seq: the master's next rotation mends the counter")
    still_serving("odd seq", since)


@case
def cursor():
    seg = Segment(d.pid)
    base = seg.at("SESSCACHE")
    nshards, sb = seg.get32(base + CACHE_NSHARDS), struct.unpack_from(
        "<Q", seg.m, base + CACHE_SHARD_BYTES)[0]
    ok(1 <= nshards <= 64 and sb > 0, "the session cache's header reads sanely", (nshards, sb))
    for garbage in (0xffffffff, 1 << 20):
        since = stamp()
        for i in range(nshards):
            seg.put32(base + CACHE_SHARDS + i * sb + MUTEX_SIZE, garbage)
        # Every new TLS 1.2 session is stored through some shard's cursor.
        sess = os.path.join(d.dir, f"sess-cursor-{garbage}")
        got = [s_client(["-tls1_2", "-no_ticket"], sess_out=sess)[0] for _ in range(8)]
        again = s_client(["-tls1_2", "-no_ticket"], sess_in=sess)
        ok(got == ["New"] * 8 and again[0] == "Reused",
           f"cursor={garbage:#x}: sessions are stored and resume", (got, again))
        still_serving(f"cursor={garbage:#x}", since)


def writable_memfds(pid):
    """The memfd mappings of pid that can be written, and its memfd descriptors."""
    maps = [l for l in open(f"/proc/{pid}/maps") if "/memfd:tlsoffd-" in l]
    keys = [l for l in maps if "/memfd:tlsoffd-ticketkeys " in l]
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("/memfd:"):
            fds.append(link)
    return keys, [l for l in keys if l.split()[1][1] == "w"], fds


@case
def children_cannot_write_keys():
    kids = d.worker_pids() + children_of(d.pid, prober=True) + children_of(d.pid, role="park")
    ok(len(kids) >= 3, "workers and the prober are there", kids)
    for pid in kids:
        keys, writable, fds = writable_memfds(pid)
        ok(keys and not writable, f"pid {pid}: the ticket keys are mapped read-only", keys)
        ok(not fds, f"pid {pid}: no descriptor of the shared memory", fds)
    keys, writable, fds = writable_memfds(d.pid)
    ok(writable and len(fds) >= 3, "the master keeps them read-write, and their descriptors",
       (keys, fds))


d.stop()
done()
