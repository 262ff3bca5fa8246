#!/usr/bin/env python3
"""Where log lines go (access_log unset, "" or a file; log.level), file
modes and relative names, the pidfile (lock, stale file, removal), and
running detached (daemon = true)."""
import os
import re
import signal
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "web")


def one_ok_one_failed(d):
    """An ok request and a failed one (a plain TCP connect-and-close)."""
    d.last_stamp = stamp()
    r = curl(d.port, "/", args=["-w", r"\n%{local_port}"])
    body, _, lp = r.stdout.decode(errors="replace").rpartition("\n")
    s = socket.create_connection(("127.0.0.1", d.port))
    bad_port = s.getsockname()[1]
    s.close()
    ok(r.returncode == 0 and body == "hello from web\n", f"{d.name}: a request succeeds",
       r.stderr)
    return int(lp) if lp.isdigit() else None, bad_port


@case
def access_to_main_log():
    d = Daemon(upstream=be.address, workers=1, level="info", log={"access_log": None},
               name="main-info")
    good, bad = one_ok_one_failed(d)
    lines = poll_until(lambda: (lambda m: len([1 for _, l in m if l["client_port"] in
                                                (good, bad)]) >= 2 and m)(d.main_log_access()), 5)
    got = {l["client_port"]: (lv, l["outcome"]) for lv, l in (lines or [])}
    ok(got.get(good) == ("info", "ok"),
       "access_log unset: an ok connection goes to the main log at level info", got)
    ok(got.get(bad) == ("notice", "handshake-failed"),
       "access_log unset: a failed one goes to the main log at level notice", got)
    ok(not os.path.exists(os.path.join(d.dir, "access.log")), "no access log file is made")
    d.stop()


@case
def level_notice_drops_ok_lines():
    d = Daemon(upstream=be.address, workers=1, level="notice", log={"access_log": None},
               name="main-notice")
    good, bad = one_ok_one_failed(d)
    lines = poll_until(lambda: [l for _, l in d.main_log_access() if l["client_port"] == bad], 5)
    ok(lines, "level notice: the failed connection is logged", d.log_text()[-600:])
    ok(not [l for _, l in d.main_log_access() if l["client_port"] == good],
       "level notice: the ok connection (level info) is not")
    text = d.log_text()
    ok(" debug: " not in text and " info: " not in text,
       "level notice: no info or debug line at all", text[-600:])
    ok(re.search(r"master notice: tlsoffd \S+ running", text),
       "level notice: the startup notice is there", text[-600:])
    d.stop()


@case
def access_log_off():
    d = Daemon(upstream=be.address, workers=1, level="info", log={"access_log": ""},
               name="access-off")
    good, bad = one_ok_one_failed(d)
    lines = poll_until(lambda: [(lv, l) for lv, l in d.main_log_access()
                                if l["client_port"] == bad], 5)
    ok(lines and lines[0][0] == "notice",
       "access_log = \"\": a failed connection still goes to the main log at notice",
       d.log_text()[-600:])
    ok(not [l for _, l in d.main_log_access() if l["client_port"] == good],
       "access_log = \"\": an ok connection is logged nowhere")
    ok(sorted(os.listdir(d.dir)) == ["main.log", "stderr", "tlsoffd.conf"],
       "access_log = \"\": no other file is made", os.listdir(d.dir))
    d.stop()


@case
def file_modes_and_relative_names():
    d = Daemon(upstream=be.address, workers=1,
               log={"destination": "logs-main.log", "access_log": "logs-access.log"},
               name="relative")
    good, bad = one_ok_one_failed(d)
    l = d.wait_access(client_port=good, after=d.last_stamp)
    ok(l is not None and l["outcome"] == "ok",
       "relative log file names are taken from the directory tlsoffd was started in",
       os.listdir(d.dir))
    for p in (d.log_path, d.access_path):
        mode = stat.S_IMODE(os.stat(p).st_mode) if os.path.exists(p) else None
        ok(mode == 0o640, f"{os.path.basename(p)} is created with mode 0640",
           oct(mode) if mode is not None else "missing")
    lines = open(d.access_path).read().splitlines()
    ok(lines and all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z client=", x) for x in lines),
       "access log file lines: the time, a space, then client=...", "\n".join(lines[:3]))
    d.stop()


@case
def links_and_fifos_refused():
    """A log file that is a symbolic link or a FIFO stops the start, with the
    path; the file the link points to is left as it was."""
    target = os.path.join(tmpdir(), "not-a-log")
    with open(target, "w") as f:
        f.write("keep me\n")
    os.chmod(target, 0o600)
    before = os.stat(target)
    for key, make in (("destination", lambda p: os.symlink(target, p)),
                      ("access_log", lambda p: os.symlink(target, p)),
                      ("destination", os.mkfifo)):
        d = Daemon(upstream=be.address, workers=1, start=False,
                   name=f"refused-{key}-{len(os.listdir(tmpdir()))}")
        path = d.log_path if key == "destination" else d.access_path
        make(path)
        kind = "a FIFO" if os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode) \
            else "a symbolic link"
        r = run([TLSOFFD, "-f", "-c", d.conf_path], timeout=10, cwd=d.dir)
        err = r.stderr.decode(errors="replace")
        want = "is a symbolic link: refusing to follow it" if kind == "a symbolic link" \
            else "is not a regular file: refusing it"
        ok(r.returncode == 1 and f"log file '{path}' {want}" in err,
           f"{key} is {kind}: the start fails at once, naming the path", f"{r.returncode} {err!r}")
    after = os.stat(target)
    ok((after.st_uid, after.st_mode, after.st_size) ==
       (before.st_uid, before.st_mode, before.st_size) and open(target).read() == "keep me\n",
       "the file the links point to keeps its owner, mode and content")


@case
def pidfile():
    d = Daemon(upstream=be.address, workers=1, pidfile="tlsoffd.pid", name="pid1")
    content = open(d.pidfile).read() if os.path.exists(d.pidfile) else None
    ok(content == f"{d.pid}\n", "the pidfile holds the master's pid and a newline",
       repr(content))
    # A second instance with the same pidfile (on another port) must refuse.
    conf2 = os.path.join(tmpdir(), "second.conf")
    text = open(d.conf_path).read().replace(f"127.0.0.1:{d.port}", f"127.0.0.1:{free_port()}")
    text = re.sub(r'pidfile = "[^"]*";', f'pidfile = "{d.pidfile}";', text)
    text = text.replace(d.log_path, os.path.join(tmpdir(), "second.log"))
    text = text.replace(d.access_path, os.path.join(tmpdir(), "second-access.log"))
    with open(conf2, "w") as f:
        f.write(text)
    r = run([TLSOFFD, "-f", "-c", conf2], timeout=10)
    err = r.stderr.decode(errors="replace")
    ok(r.returncode == 1 and f"is locked: tlsoffd is already running as pid {d.pid}" in err,
       "a second instance with the same pidfile exits 1: 'is locked: ... running as pid N'",
       f"rc={r.returncode} {err!r}")
    ok(open(d.pidfile).read() == f"{d.pid}\n", "... and leaves the pidfile alone")
    # -t touches neither the pidfile nor the log files.
    text_t = re.sub(r'destination = "[^"]*";', 'destination = "/nonexistent-dir/x.log";', text)
    conf_t = os.path.join(tmpdir(), "check.conf")
    with open(conf_t, "w") as f:
        f.write(text_t)
    r = run([TLSOFFD, "-t", "-c", conf_t])
    ok(r.returncode == 0, "-t passes while the pidfile is locked and the log directory "
       "does not exist (neither is touched)", r.stderr)
    rc = d.stop()
    ok(rc == 0 and not os.path.exists(d.pidfile), "SIGTERM: exit 0 and the pidfile is removed",
       f"rc={rc} exists={os.path.exists(d.pidfile)}")


@case
def pidfile_link_refused():
    target = os.path.join(tmpdir(), "not-a-pidfile")
    with open(target, "w") as f:
        f.write("keep me\n")
    d = Daemon(upstream=be.address, workers=1, pidfile="link.pid", name="pid-link", start=False)
    os.symlink(target, d.pidfile)
    r = run([TLSOFFD, "-f", "-c", d.conf_path], timeout=10, cwd=d.dir)
    err = r.stderr.decode(errors="replace")
    ok(r.returncode == 1 and
       f"pidfile '{d.pidfile}': a symbolic link: refusing to follow it" in err,
       "a pidfile that is a symbolic link stops the start, naming it", f"{r.returncode} {err!r}")
    ok(open(target).read() == "keep me\n", "... and the file it points to is untouched")


@case
def pidfile_directory_made():
    """The default pidfile is /run/tlsoffd/tlsoffd.pid: a missing directory
    just above the pidfile is made (mode 0755), one level only."""
    d = Daemon(upstream=be.address, workers=1, pidfile="rundir/tlsoffd.pid", name="pid-dir")
    st = os.stat(os.path.dirname(d.pidfile))
    ok(open(d.pidfile).read() == f"{d.pid}\n" and stat.S_IMODE(st.st_mode) == 0o755,
       "a missing pidfile directory is made, mode 0755", oct(st.st_mode))
    d.stop()
    d = Daemon(upstream=be.address, workers=1, pidfile="a/b/tlsoffd.pid", name="pid-dirs",
               start=False)
    r = run([TLSOFFD, "-f", "-c", d.conf_path], timeout=10, cwd=d.dir)
    ok(r.returncode == 1 and f"pidfile '{d.pidfile}': No such file or directory".encode()
       in r.stderr, "two missing levels: an error naming the pidfile", r.stderr)


@case
def stale_pidfile():
    d = Daemon(upstream=be.address, workers=1, pidfile="stale.pid", name="pid2", start=False)
    with open(d.pidfile, "w") as f:
        f.write("999999\n")            # left by a killed master: not locked
    d.start()
    ok(open(d.pidfile).read() == f"{d.pid}\n", "a stale (unlocked) pidfile is taken over",
       open(d.pidfile).read())
    d.stop()


@case
def detached():
    work = os.path.join(tmpdir(), "detached")
    os.makedirs(work)
    port = free_port()
    conf = os.path.join(work, "tlsoffd.conf")
    with open(conf, "w") as f:
        f.write(config_text([{"name": "fe", "listen": [f"127.0.0.1:{port}"], "upstream": "up"}],
                            {"up": be.address}, workers=2, daemon=True,
                            pidfile="run/tlsoffd.pid",
                            log={"destination": "main.log", "level": "debug",
                                 "access_log": "access.log"}))
    os.makedirs(os.path.join(work, "run"))
    pidfile = os.path.join(work, "run", "tlsoffd.pid")
    env = dict(os.environ)
    if SANITIZE:
        env["ASAN_OPTIONS"] = f"log_path={work}/asan:detect_leaks=0"
        env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={work}/ubsan"
    t0 = time.monotonic()
    r = run([TLSOFFD, "-c", "tlsoffd.conf"], timeout=15, cwd=work, env=env)
    secs = time.monotonic() - t0
    ok(r.returncode == 0 and secs < 10, "daemon = true: the command exits 0 once the daemon runs",
       f"rc={r.returncode} after {secs:.1f} s: {r.stderr!r}")
    pid = int(open(pidfile).read()) if os.path.exists(pidfile) else None
    ok(pid and pid_alive(pid), "the pidfile (a relative name) names a running master", pid)
    if not (pid and pid_alive(pid)):
        return
    try:
        ok(os.readlink(f"/proc/{pid}/cwd") == "/", "the detached master runs in /",
           os.readlink(f"/proc/{pid}/cwd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ok(int(fields[3]) == pid, "it leads its own session (setsid)", fields[:4])
        ok(poll_until(lambda: len(children_of(pid)) == 2, 5), "it runs 2 workers",
           children_of(pid))
        r = curl(port, "/")
        ok(r.returncode == 0 and r.stdout == b"hello from web\n", "the detached daemon serves",
           r.stderr)
        ok(os.path.exists(os.path.join(work, "main.log")) and
           poll_until(lambda: os.path.exists(os.path.join(work, "access.log")) and
                      "outcome=ok" in open(os.path.join(work, "access.log")).read(), 5),
           "its relative log file names were taken from the start directory, not /",
           os.listdir(work))
        workers = children_of(pid)
        os.kill(pid, signal.SIGTERM)
        gone = poll_until(lambda: not pid_alive(pid), 5 * SLOW)
        ok(gone, "SIGTERM to the pid in the pidfile stops it")
        ok(poll_until(lambda: not os.path.exists(pidfile), 3), "the pidfile is removed at exit")
        ok(poll_until(lambda: not any(pid_alive(w) for w in workers), 3), "no worker is left")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)      # the daemon we started, by its pid
    reports = [f for f in os.listdir(work) if f.startswith(("asan.", "ubsan."))]
    ok(not reports, "detached: no sanitizer reports",
       "\n".join(open(os.path.join(work, f)).read()[-3000:] for f in reports) or None)


@case
def detached_failure():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    conf = os.path.join(tmpdir(), "detached-fail.conf")
    with open(conf, "w") as f:
        f.write(config_text([{"name": "fe", "listen": [f"127.0.0.1:{port}"], "upstream": "up"}],
                            {"up": be.address}, daemon=True,
                            log={"destination": os.path.join(tmpdir(), "df.log")}))
    try:
        r = run([TLSOFFD, "-c", conf], timeout=15)
    finally:
        s.close()
    ok(r.returncode == 1 and b"Address already in use" in r.stderr,
       "daemon = true, port in use: the command exits 1 with the reason on stderr",
       f"{r.returncode} {r.stderr!r}")


be.stop()
done()
