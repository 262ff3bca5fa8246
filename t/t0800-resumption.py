#!/usr/bin/env python3
"""Shared resumption: TLS 1.2 session IDs (shared cache), TLS 1.2 tickets and
TLS 1.3 tickets resume whichever worker a client lands on; ticket key
rotation; two daemons sharing a key file; `tlsoffd -s stats`;
`--gen-ticket-key`."""
import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

REQ = b"GET / HTTP/1.0\r\n\r\n"
RECONNECTS = 50
be = Backend("http", "resume")


def stats(d):
    """`tlsoffd -s stats` of daemon d as {'total': {...}, 'workers': [...], ...}."""
    r = run([TLSOFFD, "-c", d.conf_path, "-s", "stats"], timeout=10, cwd=d.dir)
    out = {"rc": r.returncode, "text": r.stdout.decode() + r.stderr.decode(), "workers": []}
    for line in r.stdout.decode().splitlines():
        kv = dict(re.findall(r"(\w+)=(\d+)", line))
        kv = {k: int(v) for k, v in kv.items()}
        if line.startswith("total "):
            out["total"] = kv
        elif line.startswith("worker="):
            out["workers"].append(kv)
        elif line.startswith("ticket_keys "):
            out["keys"] = kv
        elif line.startswith("session_cache "):
            out["cache"] = kv
    if "total" not in out:
        diag(f"tlsoffd -s stats failed: {out['text']}")
        out["total"] = {}
    return out


def connect(d, args, sess_in=None, sess_out=None):
    a = list(args)
    if sess_in:
        a += ["-sess_in", sess_in]
    if sess_out:
        a += ["-sess_out", sess_out]
    # -ign_eof: read until the server closes, so TLS 1.3 tickets (sent after
    # the handshake) arrive before the session is saved.
    r = s_client(d.port, a + ["-servername", "example.test", "-ign_eof"], input=REQ)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"^(New|Reused), (TLSv1\.[23])", out, re.M)
    return (m.group(1), m.group(2)) if m else (None, out[-400:])


def reconnect_many(d, args, want_version, sess):
    """One full handshake, then RECONNECTS resumptions from the saved session."""
    first = connect(d, args, sess_out=sess)
    ok(first == ("New", want_version), f"{args}: the first connection is New, {want_version}",
       first)
    reused = 0
    for _ in range(RECONNECTS):
        how, ver = connect(d, args, sess_in=sess)
        reused += how == "Reused" and ver == want_version
    ok(reused == RECONNECTS, f"{args}: {RECONNECTS} of {RECONNECTS} reconnects say Reused",
       f"{reused} reused")


def ticket_key_name(sess):
    """The first 16 bytes of the session's ticket: the name of its key."""
    r = run(["openssl", "sess_id", "-in", sess, "-text", "-noout"])
    m = re.search(r"TLS session ticket:\n\s*0000 - ([0-9a-f -]+?)\s\s", r.stdout.decode())
    return m.group(1).replace(" ", "").replace("-", "") if m else None


def spread(st, field):
    return sum(1 for w in st["workers"] if w.get(field, 0) > 0)


d = Daemon(upstream=be.address, workers=4, pidfile="tlsoffd.pid")


@case
def session_ids_tickets_off():
    # (a) TLS 1.2 session IDs through the shared cache, tickets off.
    text = config_text([{"name": "fe", "listen": [f"127.0.0.1:{free_port()}"],
                         "upstream": "up"}], {"up": be.address}, workers=4,
                       pidfile="tlsoffd.pid").replace(
        "frontends = (", "tls = { tickets = { enabled = false; }; };\nfrontends = (")
    with Daemon(text, workers=4, pidfile="tlsoffd.pid") as da:
        reconnect_many(da, ["-tls1_2"], "TLSv1.2", os.path.join(da.dir, "sess"))
        st = stats(da)
        ok(st["rc"] == 0, "tlsoffd -s stats reads the running daemon's counters", st["text"])
        t = st.get("total", {})
        ok(t.get("resumed_id") == RECONNECTS and t.get("full_handshakes") == 1,
           f"counters: resumed_id={RECONNECTS}, full_handshakes=1", st["text"])
        ok(t.get("cache_hits") == RECONNECTS and t.get("cache_stores") == 1,
           "counters: the cache was hit every time, stored once", st["text"])
        ok(t.get("resumed_ticket_tls12") == 0, "no ticket resumptions with tickets off",
           st["text"])
        ok(spread(st, "resumed_id") >= 2, "the resumptions were served by several workers",
           st["text"])
        ok("ticket_keys off" in st["text"],
           "stats: ticket keys are off", st["text"])
        l = [a for a in da.access() if a.get("resumed") == "id"]
        ok(len(l) == RECONNECTS, "access log: resumed=id on every reconnect", len(l))


def tickets(flag, ver, field):
    """(b) and (c): tickets under the shared key ring, for one TLS version."""
    before = stats(d)["total"]
    reconnect_many(d, [flag], ver, os.path.join(d.dir, "sess" + flag))
    st = stats(d)
    t = st["total"]
    ok(t[field] - before[field] == RECONNECTS, f"counters: {field} grew by {RECONNECTS}",
       st["text"])
    ok(spread(st, field) >= 2, f"{ver} ticket resumptions on several workers", st["text"])
    ok(any(a.get("resumed") == "ticket" and a.get("tls") == ver for a in d.access()),
       f"access log: resumed=ticket for {ver}")
    return t


@case("tickets/tls12")
def tls12_tickets():
    tickets("-tls1_2", "TLSv1.2", "resumed_ticket_tls12")


@case("tickets/tls13")
def tls13_tickets():
    t = tickets("-tls1_3", "TLSv1.3", "resumed_ticket_tls13")
    ok(t["cache_misses"] == 0, "TLS 1.3 never consults the session-ID cache", t)
    ok(any(a.get("resumed") == "no" for a in d.access()), "access log: resumed=no for full")


@case
def ticket_chain_max_age():
    """tickets.max_age: however often a client renews its TLS 1.3 ticket, it
    makes a full handshake once max_age has passed since the last one; a
    TLS 1.2 ticket too, whatever its lifetime."""
    text = config_text([{"name": "fe", "listen": [f"127.0.0.1:{free_port()}"],
                         "upstream": "up"}], {"up": be.address}, workers=2).replace(
        "frontends = (", "tls = { session_cache = { size = 0; }; tickets = { max_age = 3; }; };\n"
        "frontends = (")
    with Daemon(text, workers=2) as da:
        for flag, ver in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            sess = os.path.join(da.dir, "chain" + flag)
            start = time.monotonic()
            ok(connect(da, [flag], sess_out=sess) == ("New", ver), f"{ver}: a full handshake")
            got = connect(da, [flag], sess_in=sess, sess_out=sess)
            if time.monotonic() - start < 2.5:
                ok(got == ("Reused", ver), f"{ver}: resumed within max_age", got)
            time.sleep(max(0.0, start + 3.5 - time.monotonic()))
            got = connect(da, [flag], sess_in=sess, sess_out=sess)
            ok(got == ("New", ver), f"{ver}: max_age after the full handshake, the renewed "
               "ticket makes a full handshake", got)


@case
def ticket_from_a_stranger():
    # A ticket that no key here made: a full handshake, counted once.
    other = Daemon(upstream=be.address, workers=1, name="stranger")
    sess = os.path.join(other.dir, "sess")
    connect(other, ["-tls1_2"], sess_out=sess)
    other.stop()
    before = stats(d)["total"]["ticket_decrypt_failures"]
    how = connect(d, ["-tls1_2"], sess_in=sess)
    ok(how == ("New", "TLSv1.2"), "a foreign TLS 1.2 ticket: full handshake (New)", how)
    how = connect(d, ["-tls1_3"], sess_in=sess)
    after = stats(d)["total"]["ticket_decrypt_failures"]
    ok(after - before == 1, "ticket_decrypt_failures counted once for the rejected ticket",
       f"{before} -> {after}")


@case
def rotation():
    # rotate every 2 s, keep retired keys 4 s: a ticket under the previous
    # key resumes; once its key is dropped it does not.
    text = config_text([{"name": "fe", "listen": [f"127.0.0.1:{free_port()}"],
                         "upstream": "up"}], {"up": be.address}, workers=2,
                       pidfile="tlsoffd.pid").replace(
        "frontends = (", "tls = { tickets = { rotate = 2; lifetime = 4; }; };\nfrontends = (")
    with Daemon(text, workers=2, pidfile="tlsoffd.pid", name="rotating") as dr:
        sess = os.path.join(dr.dir, "sess")
        g0 = stats(dr)["keys"]["generation"]
        first = connect(dr, ["-tls1_2"], sess_out=sess)
        ok(first[0] == "New", "rotation: first connection New", first)
        sess13, renewed13 = sess + "13", sess + "13b"
        connect(dr, ["-tls1_3"], sess_out=sess13)
        got = poll_until(lambda: stats(dr)["keys"]["generation"] >= g0 + 1, 10)
        ok(got, "rotation: the master made a new key within 10 s")
        keys = stats(dr)["keys"]
        ok(keys["decrypting"] == 2, "rotation: two keys decrypt (current and previous)", keys)
        how = connect(dr, ["-tls1_2"], sess_in=sess)
        ok(how == ("Reused", "TLSv1.2"), "a ticket under the previous key is accepted", how)
        how = connect(dr, ["-tls1_3"], sess_in=sess13, sess_out=renewed13)
        old_name, new_name = ticket_key_name(sess13), ticket_key_name(renewed13)
        ok(how == ("Reused", "TLSv1.3") and old_name and new_name and old_name != new_name,
           "TLS 1.3: a ticket under the previous key resumes and is re-issued under the "
           "current key", (how, old_name, new_name))
        got = poll_until(lambda: stats(dr)["keys"]["generation"] >= g0 + 4, 15)
        ok(got, "rotation: three more rotations (the first key is now past its lifetime)")
        how = connect(dr, ["-tls1_2"], sess_in=sess)
        ok(how == ("New", "TLSv1.2"), "a ticket under a rotated-out key is refused (New)", how)
        ok(dr.wait_log(r"master info: ticket key rotated"), "the log says the key rotated")


def key_config(key, port=1):
    """A configuration file whose tickets come from the key file key."""
    text = config_text([{"name": "fe", "listen": [f"127.0.0.1:{port}"], "upstream": "up"}],
                       {"up": be.address}).replace(
        "frontends = (", f'tls = {{ tickets = {{ key_files = [ "{key}" ]; }}; }};\n'
                         "frontends = (")
    path = key + ".conf"
    with open(path, "w") as f:
        f.write(text)
    return path


@case
def shared_key_file():
    key = os.path.join(d.dir, "cluster.key")
    r = run([TLSOFFD, "--gen-ticket-key", key])
    ok(r.returncode == 0, "tlsoffd --gen-ticket-key FILE", r.stderr)
    st = os.stat(key)
    ok(stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 48,
       "the key file has mode 0600 and 48 bytes", (oct(st.st_mode), st.st_size))
    r = run([TLSOFFD, "--gen-ticket-key", key])
    ok(r.returncode == 1 and b"never overwritten" in r.stderr,
       "--gen-ticket-key refuses to overwrite a key file", r.stderr)

    def daemon(name):
        text = config_text([{"name": "fe", "listen": [f"127.0.0.1:{free_port()}"],
                             "upstream": "up"}], {"up": be.address}, workers=2).replace(
            "frontends = (", f'tls = {{ tickets = {{ key_files = [ "{key}" ]; }}; }};\n'
                             "frontends = (")
        return Daemon(text, workers=2, name=name)

    a, b = daemon("cluster-a"), daemon("cluster-b")
    for ver, flag in (("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")):
        sess = os.path.join(a.dir, "sess" + flag)
        first = connect(a, [flag], sess_out=sess)
        how = connect(b, [flag], sess_in=sess)
        ok(first[0] == "New" and how == ("Reused", ver),
           f"{ver}: a ticket from daemon A resumes at daemon B (shared key file)", (first, how))
    a.stop()
    b.stop()
    bad = os.path.join(d.dir, "bad.key")
    with open(bad, "w") as f:
        f.write("short")
    os.chmod(bad, 0o600)
    r = run([TLSOFFD, "-t", "-c", key_config(bad)])
    ok(r.returncode == 1 and b"must hold exactly 48 bytes" in r.stderr,
       "-t: a damaged key file is an error naming it", r.stderr)


@case
def key_file_modes():
    """A ticket key file that group or others may read or write, or that
    someone other than root owns, is refused (as ssh refuses such a
    private key), by -t and at start, naming the file."""
    key = os.path.join(d.dir, "modes.key")
    ok(run([TLSOFFD, "--gen-ticket-key", key]).returncode == 0, "a fresh key file (0600)")
    r = run([TLSOFFD, "-t", "-c", key_config(key)])
    ok(r.returncode == 0, "-t: a 0600 key file of root's is accepted", r.stderr)
    for mode, who in ((0o640, "its group"), (0o620, "its group"), (0o604, "anyone"),
                      (0o644, "anyone")):
        os.chmod(key, mode)
        r = run([TLSOFFD, "-t", "-c", key_config(key)])
        want = f"ticket key file '{key}' may be read or written by {who} (mode {mode:04o}): " \
               "chmod go-rw it"
        ok(r.returncode == 1 and want in r.stderr.decode(),
           f"-t: mode {mode:04o} is refused: 'ticket key file FILE may be read or written by "
           f"{who} (mode {mode:04o}): chmod go-rw it'", r.stderr)
    r = run([TLSOFFD, "-f", "-c", key_config(key, free_port())], timeout=10)
    ok(r.returncode == 1 and b"may be read or written by anyone" in r.stderr,
       "the start refuses it too", r.stderr)
    os.chmod(key, 0o600)
    if os.geteuid() == 0:
        os.chown(key, 65534, 65534)
        r = run([TLSOFFD, "-t", "-c", key_config(key)])
        ok(r.returncode == 1 and f"ticket key file '{key}' belongs to user ID 65534, not to "
           "root: chown root it".encode() in r.stderr,
           "-t: a key file owned by another user is refused", r.stderr)
    else:
        skip("a key file owned by another user", "the tests do not run as root")


@case
def stats_without_daemon():
    path = os.path.join(d.dir, "none.conf")
    with open(path, "w") as f:
        f.write(config_text([{"name": "fe", "listen": ["127.0.0.1:1"], "upstream": "up"}],
                            {"up": be.address}, pidfile=os.path.join(d.dir, "nope.pid")))
    r = run([TLSOFFD, "-c", path, "-s", "stats"])
    ok(r.returncode == 1 and b"no running master" in r.stderr,
       "-s stats with no running daemon fails and says so", r.stderr)
    r = run([TLSOFFD, "-c", path, "-s", "frobnicate"])
    ok(r.returncode == 2 and b"unknown command" in r.stderr, "-s with an unknown command: usage",
       r.stderr)


rc = d.stop()
ok(rc == 0, "the daemon stops cleanly", rc)
be.stop()
done()
