#!/usr/bin/env python3
"""Upstreams with several servers: health checks taking a dead server out
and bringing it back (logged once per change, shown by `-s stats`);
failover through retries while a server is dead; weighted round-robin;
leastconn; source hashing that moves only a dead server's clients;
backups; no server up (outcome=no-server); passive checks only
(health type "none"); start = "down"."""
import contextlib
import os
import re
import socket
import ssl
import sys
import time
from collections import Counter
from multiprocessing.pool import ThreadPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

FAST = {"type": "http", "path": "/healthz", "expect": 200, "body": "hello", "interval": 0.5,
        "timeout": 0.4, "rise": 2, "fall": 2}
UP = "pool"                  # the upstream's name in every config here


# ---------------------------------------------------------------- helpers

val = group = config_value     # libconfig text of a value or a dict (tlsoffd_test)


def conf_text(port, servers, workers=2, **up):
    """A whole config: one frontend on 127.0.0.1:port, upstream UP with the
    servers (dicts of server settings) and the upstream settings in up
    (health: a dict)."""
    settings = ""
    for k, v in up.items():
        settings += f" {k} = {group(v) if isinstance(v, dict) else val(v)};"
    srv = ",\n    ".join(group(s) for s in servers)
    # The log settings here (relative: the daemon runs in its directory)
    # rather than the library's absolute paths, whose directory is named
    # after this file: Daemon looks for the listen addresses in the text
    # before the first "upstreams", which would then be in the log path.
    return ('log = { destination = "main.log"; level = "debug"; access_log = "access.log"; };\n'
            f"workers = {{ count = {workers}; }};\n"
            f'pidfile = "tlsoffd.pid";\n'
            f"timeouts = {{ connect = 2; idle = 30; }};\n"
            f"frontends = ( {{ name = \"fe\"; listen = [ \"127.0.0.1:{port}\" ];\n"
            f"  certificates = ( {{ cert = {val(CERT)}; key = {val(KEY)}; }} );\n"
            f"  upstream = {val(UP)}; }} );\n"
            f"upstreams = ( {{ name = {val(UP)};{settings}\n"
            f"  servers = (\n    {srv}\n  ); }} );\n")


def start(name, servers, workers=2, **up):
    """A daemon for servers: Backends or dicts with 'be' (a Backend) and settings."""
    specs = []
    for s in servers:
        if isinstance(s, Backend):
            s = {"be": s}
        specs.append({"address": s["be"].address,
                      **{k: v for k, v in s.items() if k != "be"}})
    text = conf_text(free_port(), specs, workers=workers, **up)
    return ES.enter_context(Daemon(text, workers=workers, pidfile="tlsoffd.pid", name=name))


def stats(d):
    """{address: {state, active, total, failures, fails, passes, last_error}} from -s stats."""
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], timeout=10, cwd=d.dir)
    out = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.startswith("server "):
            kv = {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}
            for k in ("active", "total", "failures", "fails", "passes"):
                kv[k] = int(kv[k])
            out[kv["address"]] = kv
    if not out:
        diag(f"-s stats: rc={r.returncode} {r.stdout!r} {r.stderr!r}")
    return out


CTX = tls_context()


def get(port, src=None, timeout=10):
    """One GET / through the daemon (a new TLS connection), from source
    address src. Returns the backend's name ("hello from NAME") or None, a
    description of what came back, and the client's port."""
    cport = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                     source_address=(src, 0) if src else None)
        cport = s.getsockname()[1]
        with CTX.wrap_socket(s, server_hostname="example.test") as t:
            t.sendall(b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n")
            buf = b""
            while True:
                try:
                    x = t.recv(65536)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    break
                if not x:
                    break
                buf += x
    except (OSError, ssl.SSLError) as e:
        return None, f"{e!r} (to port {port} from {src or '127.0.0.1'})", cport
    m = re.search(rb"\r\n\r\nhello from (\S+)\n$", buf)
    return (m.group(1).decode() if m else None), buf[-200:], cport


def many(port, n, src=None, threads=8):
    """n requests, threads at a time: a list of what get returns."""
    with ThreadPool(threads) as p:
        return p.map(lambda _: get(port, src), range(n), chunksize=1)


def names(results):
    return Counter(r[0] for r in results)


def access_of(d, results, since, n=None):
    """The access lines of the connections of results (client port, logged
    at or after since), waiting a little for them: a line is written after
    the client has its answer."""
    ports = Counter(r[2] for r in results)
    want = len(results) if n is None else n

    def find():
        got = [a for a in d.access() if a["ts"] >= since and a["client_port"] in ports]
        return got if len(got) >= want else None
    return poll_until(find, 5 * SLOW) or [a for a in d.access() if a["ts"] >= since
                                           and a["client_port"] in ports]


def changes(d, be, what):
    """The log lines saying that be's server went down / came up."""
    rx = re.compile(rf"upstream '{UP}': server {re.escape(be.address)} is "
                    + ("down: " if what == "down" else r"up(: | again)"))
    return [l for l in d.log_text().splitlines() if rx.search(l)]


def wait_change(d, be, what, timeout):
    """The first such line within timeout seconds (already scaled), or None."""
    lines = poll_until(lambda: changes(d, be, what), timeout)
    return lines[0] if lines else None


def restart(be):
    """A new helper backend of the same name on the (now free) port of be."""
    return ES.enter_context(Backend(be.mode, be.name, listen=be.address))


def backends(*names_):
    """Helper backends, stopped when the case ends."""
    return [ES.enter_context(Backend("http", n)) for n in names_]


ES = None


def case_(fn):
    """case, with everything a case starts (daemon, backends) stopped when it
    ends, however it ends: a failing case leaves nothing running behind it."""
    def wrapped():
        global ES
        with contextlib.ExitStack() as ES:
            fn()
    wrapped.__name__ = fn.__name__
    return case(wrapped)


# ---------------------------------------------------------------- cases

@case_
def health_down_and_up():
    bs = backends(*(f"hc{i}" for i in range(3)))
    d = start("health", bs, health=FAST)
    got = names(many(d.port, 9))
    ok(got == Counter({"hc0": 3, "hc1": 3, "hc2": 3}),
       "all three servers serve at first (3 each of 9, round-robin)", got)
    dead = bs[1]
    t0 = time.monotonic()
    dead.stop()
    bound = FAST["fall"] * FAST["interval"] + FAST["timeout"] + 2.0 * SLOW
    line = wait_change(d, dead, "down", bound)
    took = time.monotonic() - t0
    ok(line is not None and "(2 failed checks in a row)" in line
       and "Connection refused" in line,
       f"the prober logs 'is down' within fall*interval+timeout+slack ({bound:.1f} s)",
       f"after {took:.2f} s: {line!r}")
    st = stats(d).get(dead.address, {})
    ok(st.get("state") == "down" and "Connection refused" in st.get("last_error", ""),
       "-s stats: the dead server is state=down, last_error says why", st)
    res = many(d.port, 30, threads=4)
    got = names(res)
    ok(got.get("hc1", 0) == 0 and sum(got.values()) == 30 and set(got) == {"hc0", "hc2"},
       "30 requests after 'down': all served, none by the dead server", (got, res[:3]))
    diag(f"split between the live servers: {dict(got)}")
    restart(dead)
    t0 = time.monotonic()
    line = wait_change(d, dead, "up", FAST["rise"] * FAST["interval"] + FAST["timeout"]
                       + 2.0 * SLOW)
    ok(line is not None and "(2 good checks in a row)" in line and "HTTP 200" in line,
       "restarted on its port: 'is up' after rise good checks",
       f"after {time.monotonic() - t0:.2f} s: {line!r}")
    ok(stats(d).get(dead.address, {}).get("state") == "up", "-s stats: state=up again")
    got = names(many(d.port, 30, threads=4))
    ok(got == Counter({"hc0": 10, "hc1": 10, "hc2": 10}),
       "it gets its share of traffic again (10 of 30)", got)
    # Enough probe rounds have run since (and more pass while counting) for a
    # flapping server to show twice.
    poll_until(lambda: False, 2 * FAST["interval"])
    downs, ups = changes(d, dead, "down"), changes(d, dead, "up")
    ok(len(downs) == 1 and len(ups) == 1, "each change is logged exactly once",
       "\n".join(downs + ups))
    others = [l for b in (bs[0], bs[2]) for w in ("down", "up") for l in changes(d, b, w)]
    ok(not others, "the live servers never changed state", "\n".join(others))


@case_
def thousand_with_one_dead():
    bs = backends(*(f"th{i}" for i in range(3)))
    # The default interval (2 s) and fall (3): the prober takes at least 4 s
    # to notice, so the first requests after the kill meet the dead server.
    d = start("thousand", bs, health={"type": "http", "path": "/healthz"})
    ok(names(many(d.port, 3)) == Counter({"th0": 1, "th1": 1, "th2": 1}),
       "three servers serve before the kill")
    since = stamp()
    bs[2].stop()
    t0 = time.monotonic()
    res = many(d.port, 1000, threads=8)
    took = time.monotonic() - t0
    got = names(res)
    bad = [r for r in res if r[0] not in ("th0", "th1")]
    ok(not bad and sum(got.values()) == 1000,
       f"1000 of 1000 requests served while one of three servers is dead ({took:.1f} s)",
       (got, bad[:3]))
    lines = access_of(d, res, since)
    oks = sum(1 for a in lines if a["outcome"] == "ok")
    ok(oks == 1000 and len(lines) == 1000, "the access log: outcome=ok for all 1000",
       (oks, len(lines), [a["raw"] for a in lines if a["outcome"] != "ok"][:3]))
    fo = [l for l in d.log_text().splitlines()
          if f"connect to {bs[2].address} failed" in l and "trying another server" in l]
    ok(fo, "some went to the dead server first and failed over (log: trying another server)")
    ok(all(a["backend"] != bs[2].address for a in lines),
       "no access line names the dead server as the backend")
    down = changes(d, bs[2], "down")
    ok(len(down) == 1, "the dead server is marked down, logged once", "\n".join(down))


@case_
def weighted_roundrobin():
    bs = backends(*(f"w{i}" for i in range(3)))
    d = start("weights", [{"be": b, "weight": w} for b, w in zip(bs, (1, 2, 3))],
              balance="roundrobin", health={"type": "tcp"})
    res = many(d.port, 600)
    got = names(res)
    want = {"w0": 100, "w1": 200, "w2": 300}
    within = all(abs(got.get(k, 0) - v) <= 0.05 * v for k, v in want.items())
    ok(within and sum(got.values()) == 600,
       "weights 1:2:3 over 600 requests: 100/200/300 within 5% each", got)
    if got != Counter(want):
        diag(f"not exact (one shared counter should make it exact): {dict(got)}")
    st = stats(d)
    totals = {b.name: st.get(b.address, {}).get("total") for b in bs}
    ok(totals == dict(got), "-s stats: total per server matches what the client saw",
       (totals, dict(got)))


@case_
def leastconn():
    bs = backends(*(f"lc{i}" for i in range(3)))
    d = start("leastconn", bs, workers=4, balance="leastconn",
              health={"type": "tcp", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2})
    got = names([get(d.port) for _ in range(6)])
    ok(set(got) == {"lc0", "lc1", "lc2"}, "leastconn: with nothing open, all servers serve", got)
    # Only lc0 up while two connections are opened: they stay open on lc0.
    bs[1].stop()
    bs[2].stop()
    bound = 3 * FAST["interval"] + 2.0 * SLOW
    ok(wait_change(d, bs[1], "down", bound) and wait_change(d, bs[2], "down", bound),
       "leastconn: lc1 and lc2 marked down")
    held = [TLSClient(d.port) for _ in range(2)]
    for c in held:
        ES.callback(c.close)
    active = poll_until(lambda: stats(d).get(bs[0].address, {}).get("active") == 2, 5 * SLOW)
    ok(active, "leastconn: two idle connections open on lc0 (stats active=2)", stats(d))
    restart(bs[1])
    restart(bs[2])
    ok(wait_change(d, bs[1], "up", bound) and wait_change(d, bs[2], "up", bound),
       "leastconn: lc1 and lc2 up again")
    got = names([get(d.port) for _ in range(20)])
    ok(got.get("lc0", 0) == 0 and sum(got.values()) == 20 and got.get("lc1") and got.get("lc2"),
       "leastconn: 20 new connections go to the servers with none open, not lc0", got)
    for c in held:
        c.close()
    idle = poll_until(lambda: stats(d).get(bs[0].address, {}).get("active") == 0, 5 * SLOW)
    ok(idle, "leastconn: lc0's connections closed (active=0)")
    got = names([get(d.port) for _ in range(9)])
    ok(got.get("lc0", 0) > 0, "leastconn: then lc0 gets traffic again", got)


@case_
def source_hashing():
    bs = backends(*(f"sh{i}" for i in range(3)))
    d = start("source", bs, balance="source", health=FAST)
    srcs = [f"127.0.0.{i}" for i in range(2, 22)]

    def where():
        return {s: get(d.port, s)[0] for s in srcs}

    first = where()
    again = where()
    ok(None not in first.values() and first == again,
       "source: each of 20 client addresses sticks to one server", (first, again))
    local = names(many(d.port, 10, threads=2))
    ok(len(local) == 1 and None not in local, "source: 10 requests from 127.0.0.1 hit one server",
       local)
    load = Counter(first.values())
    ok(len(load) >= 2, "source: the 20 clients are spread over several servers", load)
    victim = next(b for b in bs if b.name == load.most_common(1)[0][0])
    victim.stop()
    ok(wait_change(d, victim, "down", FAST["fall"] * FAST["interval"] + FAST["timeout"]
                   + 2.0 * SLOW), f"source: {victim.name} killed and marked down")
    moved = where()
    stayed = {s: (first[s], moved[s]) for s in srcs if first[s] != victim.name}
    ok(all(a == b for a, b in stayed.values()),
       f"source: the clients of the live servers did not move ({len(stayed)})", stayed)
    gone = {s: moved[s] for s in srcs if first[s] == victim.name}
    ok(gone and all(m not in (None, victim.name) for m in gone.values()),
       f"source: the dead server's {len(gone)} clients moved to live servers", gone)
    restart(victim)
    ok(wait_change(d, victim, "up", FAST["rise"] * FAST["interval"] + FAST["timeout"]
                   + 2.0 * SLOW), f"source: {victim.name} restarted and up")
    back = where()
    ok(back == first, "source: every client is back on its original server",
       {s: (first[s], back[s]) for s in srcs if first[s] != back[s]})


@case_
def backups():
    p1, p2, bk = backends("p1", "p2", "bk")
    tcp = {"type": "tcp", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
    d = start("backup", [p1, p2, {"be": bk, "backup": True}], health=tcp)
    got = names(many(d.port, 30))
    ok(set(got) == {"p1", "p2"} and sum(got.values()) == 30,
       "backup: only the primaries get traffic", got)
    # Round-robin "in proportion to the weights" (tlsoffd.conf(5)): two
    # primaries of weight 1 share equally; a backup must not change that.
    ok(abs(got.get("p1", 0) - 15) <= 2 and abs(got.get("p2", 0) - 15) <= 2,
       "backup: the two primaries (weight 1 each) share 30 requests equally (15 +- 2)", got)
    p1.stop()
    p2.stop()
    bound = tcp["fall"] * tcp["interval"] + tcp["timeout"] + 2.0 * SLOW
    ok(wait_change(d, p1, "down", bound) and wait_change(d, p2, "down", bound),
       "backup: both primaries marked down")
    got = names(many(d.port, 6))
    ok(got == Counter({"bk": 6}), "backup: with no primary up, the backup serves", got)
    restart(p1)
    ok(wait_change(d, p1, "up", bound), "backup: p1 restarted and up")
    got = names(many(d.port, 6))
    ok(got == Counter({"p1": 6}), "backup: traffic leaves the backup for the primary", got)


@case_
def no_server_up():
    bs = backends(*(f"ns{i}" for i in range(2)))
    tcp = {"type": "tcp", "interval": 0.5, "timeout": 0.4, "rise": 2, "fall": 2}
    d = start("noserver", bs, health=tcp)
    for b in bs:
        b.stop()
    bound = tcp["fall"] * tcp["interval"] + tcp["timeout"] + 2.0 * SLOW
    ok(all(wait_change(d, b, "down", bound) for b in bs), "no server: both marked down")
    since = stamp()
    c = TLSClient(d.port)
    ok(c.version() in ("TLSv1.2", "TLSv1.3"), "no server: the TLS handshake completes")
    got, how = c.exchange(b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    c.close()
    ok(got == b"" and how == "close_notify",
       "no server: then the connection is closed cleanly (close_notify, nothing relayed)",
       (got[:100], how))
    a = d.wait_access(after=since, client_port=c.local_port)
    ok(a is not None and a["outcome"] == "no-server" and a.get("backend") == "-"
       and f"upstream '{UP}'" in a.get("reason", ""),
       "no server: access line outcome=no-server, the reason names the upstream",
       a and a["raw"])
    m = d.wait_log(rf"worker \d+ warning: upstream '{UP}' has no server up", 2)
    ok(m, "no server: the main log says so too (warning: upstream 'pool' has no server up)",
       "main log but the prober's debug lines:\n" + "\n".join(
           l for l in d.log_text().splitlines() if "health debug" not in l)[-1500:])
    r = curl(d.port)
    ok(r.returncode != 0 and r.stdout == b"", "no server: curl gets no reply",
       (r.returncode, r.stderr))


@case_
def passive_only():
    bs = backends(*(f"pa{i}" for i in range(3)))
    d = start("passive", bs, health={"type": "none", "interval": 0.5, "timeout": 0.4})
    ok(names(many(d.port, 3)) == Counter({"pa0": 1, "pa1": 1, "pa2": 1}),
       "health none: all three serve")
    since = stamp()
    bs[1].stop()
    res = [get(d.port) for _ in range(12)]
    got = names(res)
    ok(sum(got.values()) == 12 and got.get("pa1", 0) == 0,
       "health none: 12 requests with one server dead all served by the others", (got, res[:2]))
    lines = access_of(d, res, since)
    ok(len(lines) == 12 and all(a["outcome"] == "ok" for a in lines),
       "health none: access log outcome=ok for all 12", [a["raw"] for a in lines][:3])
    down = changes(d, bs[1], "down")
    ok(len(down) == 1 and "(passive check)" in down[0] and "Connection refused" in down[0],
       "health none: a failed connect marks it down, logged once '(passive check)'",
       "\n".join(down))
    restart(bs[1])
    # It is tried again once its hold-off (interval) is over.
    back = poll_until(lambda: "pa1" in names(many(d.port, 3, threads=1)), 5 * SLOW)
    ok(back, "health none: restarted, it is tried again and serves")
    up = changes(d, bs[1], "up")
    ok(len(up) == 1 and "a connect worked" in up[0], "health none: logged 'is up again' once",
       "\n".join(up))


@case_
def start_down():
    bs = backends(*(f"sd{i}" for i in range(3)))
    slow = {"type": "http", "path": "/healthz", "interval": 1, "timeout": 0.5, "rise": 3,
            "fall": 2, "start": "down"}
    d = start("startdown", bs, health=slow)
    before_up = not any(changes(d, b, "up") for b in bs)
    since = stamp()
    name, detail, _ = get(d.port)
    a = d.wait_access(after=since, outcome="no-server")
    if before_up and not any(changes(d, b, "up") for b in bs):
        ok(name is None and a is not None, "start down: no traffic before rise checks passed "
           "(no-server)", (name, detail, a and a["raw"]))
        st = stats(d)
        ok(st and all(s["state"] == "down" and s["total"] == 0 for s in st.values()),
           "start down: -s stats: every server down, no connection made", st)
    else:
        skip("start down: no traffic before rise checks", "the servers came up before "
             "the first request could be made")
    ok(all(wait_change(d, b, "up", slow["rise"] * slow["interval"] + 3.0 * SLOW) for b in bs),
       "start down: all three come up")
    ups = [changes(d, b, "up")[0] for b in bs]
    ok(all("(3 good checks in a row)" in l for l in ups), "start down: after 3 good checks",
       "\n".join(ups))
    # The first probe runs when the prober starts; the third one interval*2 later.
    m = re.search(r"^(\S+) .* health debug: checking 3 servers", d.log_text(), re.M)
    t_up = [l.split()[0] for l in ups]
    if m:
        def secs(ts):
            return time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + float(ts[19:23])
        gaps = [secs(t) - secs(m.group(1)) for t in t_up]
        ok(all(g >= (slow["rise"] - 1) * slow["interval"] - 0.05 for g in gaps),
           "start down: up no sooner than (rise-1)*interval after the prober started",
           [f"{g:.3f}" for g in gaps])
    got = names(many(d.port, 9))
    ok(got == Counter({"sd0": 3, "sd1": 3, "sd2": 3}), "start down: then all serve", got)


done()
