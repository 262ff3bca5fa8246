#!/usr/bin/env python3
"""Private keys live only in the key processes: no worker, prober or master
holds a key's secret bytes while serving TLS 1.2 and 1.3 (ECDSA, RSA); a key
process survives garbage from a worker and, killed, costs only the handshake
it was signing; encrypted PEM keys with key_password_file."""
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "keys")
RSA_CERT = os.path.join(CERTS, "rsa.test.pem")
RSA_KEY = os.path.join(CERTS, "rsa.test.key")


def conf(port, keys="", certs=None, extra=""):
    certs = certs or [(CERT, KEY), (RSA_CERT, RSA_KEY)]
    entries = ", ".join(f'{{ cert = "{c}"; key = "{k}"; {x} }}'
                        for c, k, *rest in certs for x in [rest[0] if rest else ""])
    return (f"{extra}\nworkers = {{ count = 2; }};\n"
            + (f"keys = {{ {keys} }};\n" if keys else "")
            + f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f"  certificates = ( {entries} ); upstream = \"up\"; }} );\n"
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def secrets_of(key):
    """The secret numbers of a PEM key, as byte strings: the EC scalar, or the
    RSA primes."""
    out = run(["openssl", "pkey", "-in", key, "-noout", "-text"]).stdout.decode()
    found = []
    for name in ("priv", "prime1", "prime2"):
        m = re.search(rf"^{name}:\s*\n((?:\s+[0-9a-f:]+\n)+)", out, re.M)
        if m:
            hexs = re.sub(r"[\s:]", "", m.group(1))
            b = bytes.fromhex(hexs).lstrip(b"\0")
            found.append(b)
    return found


def pem_lines(key):
    """Lines of the key's base64 body (a copy of the PEM text is a copy of the key)."""
    with open(key) as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith("-----")]
    return [l.encode() for l in lines[1:-1] if len(l) >= 48]


SCAN_CHUNK = 16 << 20
SCAN_SKIP = 4 << 30     # ASan's shadow: terabytes of metadata, never a heap


def _mappings(pid):
    """The readable mappings of pid worth scanning, as (lo, hi)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f.read().splitlines():
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or hi - lo > SCAN_SKIP:
                continue
            if len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]"):
                continue
            yield lo, hi


def memory_has(pid, needles):
    """Which of needles (bytes) the readable memory of pid holds, in big- or
    little-endian order (wolfSSL keeps numbers as little-endian digits).
    Read in chunks that overlap by the longest needle, so that a number
    split across two chunks is still found."""
    pats = {}
    for n in needles:
        pats[n] = n
        pats[n[::-1]] = n
    overlap = max(len(p) for p in pats) if pats else 0
    hits = set()
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for lo, hi in _mappings(pid):
            at = lo
            while at < hi:
                try:
                    mem.seek(at)
                    data = mem.read(min(SCAN_CHUNK + overlap, hi - at))
                except (OSError, ValueError, OverflowError):
                    break
                hits.update(n for p, n in pats.items() if p in data)
                at += SCAN_CHUNK
    return hits


def _comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def handshakes(port):
    ok_all = True
    for ver in ("-tls1_2", "-tls1_3"):
        for sni in ("example.test", "rsa.test"):
            info = s_client_info(port, sni=sni, args=[ver])
            ok_all &= info["verify"] == "0"
    return ok_all


@case
def no_key_in_workers():
    if os.geteuid() != 0:
        skip("reading other processes' memory", "the tests do not run as root")
        return
    port = free_port()
    both = os.path.join(tmpdir(), "rsa-with-key.pem")     # the key kept with its chain
    with open(both, "w") as f:
        f.write(open(RSA_CERT).read() + open(RSA_KEY).read())
    d = Daemon(conf(port, certs=[(CERT, KEY), (both, both)]), workers=2, name="scan")
    with d:
        ok(handshakes(port), "ECDSA and RSA certificates serve TLS 1.2 and 1.3")
        secrets = {"EC scalar": secrets_of(KEY)[0]}
        p, q = secrets_of(RSA_KEY)[:2]
        secrets.update({"RSA prime p": p, "RSA prime q": q})
        texts = {f"PEM line of {os.path.basename(k)}": l
                 for k in (KEY, RSA_KEY) for l in pem_lines(k)[:1]}
        wanted = list(secrets.values()) + list(texts.values())
        names = {v: k for k, v in list(secrets.items()) + list(texts.items())}
        keyprocs = children_of(d.pid, role="keys")
        ok(len(keyprocs) >= 1, "key processes run", keyprocs)
        others = d.worker_pids() + children_of(d.pid, prober=True) + [d.pid]
        for pid in others:
            hits = memory_has(pid, wanted)
            ok(not hits, f"{_comm_of(pid)} (pid {pid}) holds no secret of the keys",
               sorted(names[h] for h in hits))
        held = set()
        for pid in keyprocs:
            held |= memory_has(pid, list(secrets.values()))
        ok(held == set(secrets.values()), "the scan finds every secret in the key processes "
           "(so it can fail)", sorted(names[h] for h in held))


@case
def keys_in_workers_when_not_isolated():
    if os.geteuid() != 0:
        skip("reading other processes' memory", "the tests do not run as root")
        return
    port = free_port()
    d = Daemon(conf(port, keys="isolate = false;"), workers=1, name="inproc")
    with d:
        ok(handshakes(port), "keys.isolate = false serves too")
        ok(children_of(d.pid, role="keys") == [], "and runs no key process")
        w = d.worker_pids()[0]
        hits = memory_has(w, [secrets_of(KEY)[0]])
        ok(hits, "the same scan finds the EC scalar in a worker that signs itself")


@case
def key_processes_unprivileged():
    if os.geteuid() != 0:
        skip("user = nobody", "the tests do not run as root")
        return
    port = free_port()
    d = Daemon(conf(port, extra='user = "nobody";'), workers=2, name="kpriv", start=False)
    os.chmod(tmpdir(), 0o755)
    os.chmod(d.dir, 0o755)
    d.start()
    with d:
        ok(handshakes(port), "served with user = nobody")
        for pid in children_of(d.pid, role="keys"):
            with open(f"/proc/{pid}/status") as f:
                st = f.read()
            uid = int(re.search(r"^Uid:\s+(\d+)", st, re.M).group(1))
            ok(uid == 65534, f"key process {pid} runs as nobody", uid)
            root = os.readlink(f"/proc/{pid}/root")
            ok(root != "/", f"key process {pid} is confined to an empty root", root)
            ok(not os.path.exists(root.replace(" (deleted)", "")),
               "that directory is gone from the file system", root)
            fds = os.listdir(f"/proc/{pid}/fd")
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
            ok(not any("memfd:" in l for l in links), "it holds no shared segment", links)
            ok(len(fds) < 12, "and few descriptors (no listener)", links)
            # Undumpable: a process of the workers' user cannot read its memory.
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "cat", f"/proc/{pid}/mem"], capture_output=True)
            ok(r.returncode != 0 and b"ermission denied" in r.stderr,
               "a process running as nobody cannot read its memory", r.stderr)


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        r = libc.syscall(438, pidfd, fd, 0)     # pidfd_getfd
        if r < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return r
    finally:
        os.close(pidfd)


def rendezvous_of(worker):
    """A copy of a worker's rendezvous socket (its only datagram socket)."""
    for fd in sorted(int(x) for x in os.listdir(f"/proc/{worker}/fd")):
        if not os.readlink(f"/proc/{worker}/fd/{fd}").startswith("socket:"):
            continue
        mine = pidfd_getfd(worker, fd)
        s = socket.socket(fileno=mine)
        if s.type == socket.SOCK_DGRAM:
            return s
        s.detach()
        os.close(mine)
    return None


MAGIC = 0x746b7031


def request(key, op, data, rid=7, h=0, mgf=0):
    return struct.pack("<IIIBBBBHH", MAGIC, rid, key, op, h, mgf, 0, len(data), 0) + data


@case
def garbage_to_key_process():
    if os.geteuid() != 0 or not hasattr(os, "pidfd_open"):
        skip("taking a worker's socket", "needs root and pidfd_getfd")
        return
    port = free_port()
    d = Daemon(conf(port, keys="processes = 1;"), workers=1, name="garbage")
    with d:
        kp = children_of(d.pid, role="keys")
        rdv = rendezvous_of(d.worker_pids()[0])
        ok(rdv is not None, "a worker's rendezvous socket is found")
        rdv.send(b"hello?")                                     # no descriptor
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        socket.send_fds(rdv, [b"nope"], [b.fileno()])           # a descriptor, bad magic
        b.close()
        ok(poll_until(lambda: d.log_text().count("is not a channel") >= 1, 5),
           "the key process says what it was sent", d.tail_text())
        a.settimeout(5)
        try:
            gone = a.recv(16) == b""
        except OSError:
            gone = True
        ok(gone, "and does not take that channel")
        a.close()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        socket.send_fds(rdv, [struct.pack("<I", MAGIC)], [b.fileno()])
        b.close()
        a.settimeout(5)
        a.send(request(99, 1, b"\1" * 32))                      # no such key
        rep = a.recv(2048)
        ok(len(rep) >= 16 and struct.unpack("<III", rep[:12]) == (MAGIC, 7, 2),
           "a request for a key that does not exist: 'no such key'", rep[:16])
        a.send(request(0, 1, b"\1" * 32, rid=8))                # a real one
        rep = a.recv(2048)
        st, n = struct.unpack("<IH", rep[8:14])
        ok(st == 0 and 60 <= n <= 80 and len(rep) == 16 + n,
           "a well-formed request is signed", (st, n, len(rep)))
        for bad in (b"x", request(0, 9, b"\1" * 32), request(0, 1, b"\1" * 33),
                    request(0, 2, b"\1" * 40), b"\0" * 4000):
            a.send(bad)
            try:
                closed = a.recv(2048) == b""
            except OSError:
                closed = True
            ok(closed, f"garbage ({bad[:12]!r}...) closes its channel")
            a.close()
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            socket.send_fds(rdv, [struct.pack("<I", MAGIC)], [b.fileno()])
            b.close()
            a.settimeout(5)
        a.close()
        rdv.close()
        ok(children_of(d.pid, role="keys") == kp, "the key process is the same one")
        ok(handshakes(port), "and handshakes still work")


@case
def key_process_killed_mid_handshake():
    port = free_port()
    d = Daemon(conf(port, keys="processes = 1;"), workers=2, name="kill")
    with d:
        held = tls_connect(port)
        held.sendall(b"GET / HTTP/1.0\r\n\r\n")
        (kp,) = children_of(d.pid, role="keys")
        os.kill(kp, signal.SIGSTOP)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            info=s_client_info(port, sni="example.test", args=["-tls1_3"], timeout=15)))
        t.start()
        time.sleep(0.5 * SLOW)
        ok(t.is_alive(), "a handshake waits for its signature")
        os.kill(kp, signal.SIGKILL)
        t.join(20)
        ok(d.wait_log(r"key process 0 \(pid %d\) was killed by signal 9" % kp),
           "the master says the key process died", d.tail_text())
        diag(f"the handshake in flight: verify={result.get('info', {}).get('verify')}")
        new = poll_until(lambda: children_of(d.pid, role="keys") not in ([], [kp]), 5)
        ok(new, "another key process runs")
        ok(all(s_client_info(port, sni=n)["verify"] == "0"
               for n in ("example.test", "rsa.test", "example.test")),
           "the next handshakes are served")
        data = b""
        while True:
            chunk = held.recv(4096)
            if not chunk:
                break
            data += chunk
        ok(b"hello from keys" in data, "a connection made before is not touched")
        held.close()


def make_encrypted(path, password):
    pw = path + ".pass"
    with open(pw, "w") as f:
        f.write(password + "\n")
    run(["openssl", "pkey", "-in", KEY, "-aes256", "-passout", f"file:{pw}", "-out", path])
    return pw


def softhsm_tokens():
    """A SoftHSM2 token made for this test (t/helper/softhsm-token): its
    directory and {name: uri}; None if softhsm2 is not installed."""
    if not shutil.which("softhsm2-util"):
        return None
    d = os.path.join(tmpdir(), "tokens")
    env = dict(os.environ, KEEP_KEYS="1", CERTS=CERTS)
    r = run([os.path.join(ROOT, "t/helper/softhsm-token"), d], env=env, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.decode())
    with open(os.path.join(d, "uris")) as f:
        uris = dict(l.split(" ", 1) for l in f.read().splitlines())
    return d, {k: v.strip() for k, v in uris.items()}


@case
def pkcs11_keys():
    tok = softhsm_tokens()
    if not tok:
        skip("SoftHSM2 keys", "softhsm2 is not installed (sh contrib/deps.sh)")
        return
    d, uris = tok
    os.environ["SOFTHSM2_CONF"] = os.path.join(d, "softhsm2.conf")     # the daemon's too
    port = free_port()
    certs = [(os.path.join(d, "ec-key.pem"), uris["ec"]),
             (os.path.join(d, "rsa-key.pem"), uris["rsa"])]
    dm = Daemon(conf(port, certs=certs), workers=2, name="hsm")
    with dm:
        for ver in ("-tls1_2", "-tls1_3"):
            for sni, cn in (("ec-key.pkcs11.test", "ec"), ("rsa-key.pkcs11.test", "rsa")):
                info = s_client_info(port, sni=sni, args=[ver, "-sigalgs",
                                     "ECDSA+SHA256" if cn == "ec" else "RSA-PSS+SHA256"])
                ok(info["verify"] == "0" and info["bits"] in (256, 2048),
                   f"a SoftHSM2 {cn.upper()} key serves openssl s_client {ver}",
                   info["out"][-300:])
        r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                 "-sigalgs", "RSA+SHA256", "-CAfile", CA], input=b"")
        ok(b"Verify return code: 0" in r.stdout, "and RSA PKCS#1 in TLS 1.2")
        for name in ("ec-key.pkcs11.test", "rsa-key.pkcs11.test"):
            r = curl(port, "/", name=name)
            ok(r.returncode == 0 and b"hello from keys" in r.stdout, f"curl is served ({name})",
               r.stderr)
        if os.geteuid() == 0:
            secrets = secrets_of(os.path.join(d, "ec-key.key"))[:1] + \
                secrets_of(os.path.join(d, "rsa-key.key"))[:2]
            for pid in dm.worker_pids() + children_of(dm.pid, prober=True) + [dm.pid]:
                ok(not memory_has(pid, secrets),
                   f"{_comm_of(pid)} (pid {pid}) holds no secret of the token's keys")
    lines = conf(free_port(), certs=[(os.path.join(d, "ec-key.pem"),
                                      uris["ec"].replace("object=ec-key", "object=nope"))])
    rc, err, line, _ = check_config(lines, "hsm-missing")
    ok(rc == 1 and "nope" in err and "tlsoffd-test" in err,
       "a key the token does not have: an error naming the object and the token", err)
    wrong = os.path.join(d, "wrong-pin")
    with open(wrong, "w") as f:
        f.write("000000\n")
    lines = conf(free_port(), certs=[(os.path.join(d, "ec-key.pem"),
                                      uris["ec"].split("&pin-source")[0],
                                      f'key_password_file = "{wrong}";')])
    rc, err, line, _ = check_config(lines, "hsm-pin")
    ok(rc == 1 and re.search(r"PIN|C_Login", err), "a wrong PIN: a clear error", err)
    lines = conf(free_port(), certs=[(os.path.join(d, "rsa-key.pem"), uris["ec"])])
    rc, err, line, _ = check_config(lines, "hsm-mismatch")
    ok(rc == 1 and "does not match certificate" in err,
       "a token key that is not the certificate's: refused", err)
    del os.environ["SOFTHSM2_CONF"]


@case
def encrypted_keys():
    port = free_port()
    enc = os.path.join(tmpdir(), "enc.key")
    pw = make_encrypted(enc, "s3cret pass")
    with open(enc) as f:
        ok("ENCRYPTED PRIVATE KEY" in f.read(), "the key file is encrypted")
    d = Daemon(conf(port, certs=[(CERT, enc, f'key_password_file = "{pw}";')]), workers=1,
               name="enc")
    with d:
        ok(s_client_info(port, sni="example.test")["verify"] == "0",
           "an encrypted key with its key_password_file serves")
    lines = conf(free_port(), certs=[(CERT, enc)]).splitlines()
    rc, err, line, _ = check_config(lines, "enc-nopass")
    ok(rc == 1 and re.search(r"key '[^']*enc\.key': the key is encrypted: set key_password_file",
                             err), "without a password file: a clear error", err)
    wrong = os.path.join(tmpdir(), "wrong.pass")
    with open(wrong, "w") as f:
        f.write("not it\n")
    lines = conf(free_port(), certs=[(CERT, enc, f'key_password_file = "{wrong}";')])
    rc, err, line, _ = check_config(lines, "enc-wrong")
    ok(rc == 1 and "wrong.pass" in err and "wrong password" in err,
       "a wrong password: an error naming the password file", err)
    ok(line is not None, "which starts with FILE:LINE", err)
    r = run([TLSOFFD, "-f", "-c", os.path.join(tmpdir(), "enc-wrong.conf")], timeout=10)
    ok(r.returncode == 1 and b"wrong password" in r.stderr,
       "starting with it fails with the same message on stderr", r.stderr)


@case
def reload_with_a_bad_key():
    port = free_port()
    d = Daemon(conf(port), workers=1, name="reload")
    with d:
        kp = children_of(d.pid, role="keys")
        good = d.config
        with open(d.conf_path, "w") as f:
            f.write(good.replace(KEY, os.path.join(CERTS, "mismatch.key"), 1))
        d.send_signal(signal.SIGHUP)
        ok(d.wait_log(r"reload failed.*mismatch\.key' does not match"),
           "a reload with a key that does not match fails, saying why", d.tail_text())
        ok(children_of(d.pid, role="keys") == kp, "the key processes stay")
        ok(handshakes(port), "and serve as before")
        with open(d.conf_path, "w") as f:
            f.write(good)
        d.send_signal(signal.SIGHUP)
        ok(d.wait_log(r"configuration reloaded"), "a good reload works")
        ok(poll_until(lambda: not set(children_of(d.pid, role="keys")) & set(kp)
                      and children_of(d.pid, role="keys"), 20 * SLOW),
           "new key processes replace the old ones, which go after the handshake timeout")
        ok(handshakes(port), "and serve")


done()
