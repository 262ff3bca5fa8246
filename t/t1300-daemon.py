#!/usr/bin/env python3
"""Running as an appliance service: workers drop to an unprivileged user and
into a chroot; readiness is reported to systemd ($NOTIFY_SOCKET); the LSB
init script starts, checks, signals and stops the daemon."""
import os
import re
import signal
import shutil
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

be = Backend("http", "svc")
INIT = os.path.join(ROOT, "contrib/init.d/tlsoffd")
PARKING = b"parking idle connections: yes" in run([TLSOFFD, "-v"]).stdout


def conf(port, extra="", pidfile="tlsoffd.pid", daemon=False):
    return (f'daemon = {"true" if daemon else "false"};\npidfile = "{pidfile}";\n{extra}\n'
            f'workers = {{ count = 2; }};\n'
            f'frontends = ( {{ name = "fe"; listen = "127.0.0.1:{port}";\n'
            f'  certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} ); upstream = "up"; }} );\n'
            f'upstreams = ( {{ name = "up"; servers = ( {{ address = "{be.address}"; }} ); }} );\n')


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


@case
def unprivileged_workers():
    if os.geteuid() != 0:
        skip("user = nobody", "the tests do not run as root")
        return
    port = free_port()
    d = Daemon(conf(port, 'user = "nobody";'), workers=2, name="nobody", start=False)
    os.chmod(tmpdir(), 0o755)           # workers reopen logs here as nobody
    os.chmod(d.dir, 0o755)
    d.start()
    with d:
        ok(uid_of(d.pid) == 0, "the master stays root (to reopen logs, bind on reload)")
        ok("workers run as root" not in d.log_text(), "with user set, no warning about root",
           d.log_text()[-600:])
        # A worker drops its privileges right after fork: give it the time.
        poll_until(lambda: all(uid_of(w) == 65534 for w in d.worker_pids()), 5 * SLOW)
        ws = d.worker_pids()
        ok(ws and all(uid_of(w) == 65534 for w in ws), "the workers run as nobody",
           [(w, uid_of(w)) for w in ws])
        r = curl(port, "/")
        ok(r.returncode == 0 and r.stdout == b"hello from svc\n", "they serve", r.stderr)
        st = os.stat(d.access_path)
        ok(st.st_uid == 65534, "the access log belongs to nobody, so workers can reopen it")
        os.rename(d.access_path, d.access_path + ".1")
        d.send_signal(__import__("signal").SIGUSR1)
        ok(d.wait_log(r"log files reopened"), "USR1 reopens")
        curl(port, "/")
        ok(poll_until(lambda: os.path.exists(d.access_path) and d.access(), 5),
           "a worker running as nobody writes the new access log")
    r = run([TLSOFFD, "-t", "-c", "/dev/stdin"], input=conf(1, 'user = "no-such-user-x";').encode())
    ok(r.returncode == 1 and b"no such user 'no-such-user-x'" in r.stderr,
       "an unknown user is a configuration error", r.stderr)


def as_nobody(script):
    """Runs a shell script as nobody (uid and gid 65534, no other groups)."""
    return run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
                script])


def children_all(d):
    """The workers, the prober and the park process (if any) of d."""
    return (d.worker_pids() + children_of(d.pid, prober=True) +
            children_of(d.pid, role="park"))


@case
def root_workers_warned():
    if os.geteuid() != 0:
        skip("the warning about workers running as root", "the tests do not run as root")
        return
    with Daemon(conf(free_port()), workers=2, name="rootwarn") as d:
        ok(d.wait_log(r"^\S+ tlsoffd\[\d+\] warning: workers run as root: set user in " +
                      re.escape(d.conf_path)),
           "no user, started as root: a warning at start says the workers run as root",
           d.log_text()[-600:])


@case
def log_symlink_attack():
    """The log directory belongs to the workers' user, who puts a symbolic
    link to a root-only file where the access log was: the master's reopen
    (USR1) refuses it, and the file keeps its owner, mode and content."""
    if os.geteuid() != 0:
        skip("log symlink attack", "the tests do not run as root")
        return
    port = free_port()
    d = Daemon(conf(port, 'user = "nobody";'), workers=2, name="symlink", start=False)
    os.chmod(tmpdir(), 0o755)
    os.chown(d.dir, 65534, 65534)       # the log directory is nobody's
    target = os.path.join(tmpdir(), "root-only")
    with open(target, "w") as f:
        f.write("root's secret\n")
    os.chmod(target, 0o600)
    d.start()
    with d:
        r = as_nobody(f'mv "{d.access_path}" "{d.access_path}.1" && '
                      f'ln -s "{target}" "{d.access_path}"')
        ok(r.returncode == 0, "nobody replaces the access log by a link to a root-only file",
           r.stderr)
        d.send_signal(signal.SIGUSR1)
        ok(d.wait_log(r"master error: SIGUSR1: log file '" + re.escape(d.access_path) +
                      r"' is a symbolic link: refusing to follow it"),
           "USR1: the master refuses the link, naming the path")
        r = curl(port, "/")
        ok(r.returncode == 0 and r.stdout == b"hello from svc\n", "and serves on", r.stderr)
        st = os.stat(target)
        ok((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600),
           "the linked file still belongs to root, mode 0600",
           (st.st_uid, st.st_gid, oct(st.st_mode)))
        ok(open(target).read() == "root's secret\n", "... and its content is untouched",
           open(target).read()[:200])
        r = as_nobody(f'echo pwned >> "{target}"')
        ok(r.returncode != 0, "nobody still cannot write it", r.returncode)
        os.unlink(d.access_path)        # the access lines are in the old file
        os.rename(d.access_path + ".1", d.access_path)


@case
def pidfile_is_the_masters():
    """No child holds the pidfile's fd (they inherited it, locked and
    writable, before); the file is root's, mode 0644."""
    if os.geteuid() != 0:
        skip("pidfile and unprivileged children", "the tests do not run as root")
        return
    d = Daemon(conf(free_port(), 'user = "nobody";'), workers=2, name="pidfd", start=False,
               pidfile="tlsoffd.pid")
    os.chmod(tmpdir(), 0o755)
    os.chmod(d.dir, 0o755)
    old_umask = os.umask(0o077)         # the pidfile's mode does not depend on it
    try:
        d.start()
    finally:
        os.umask(old_umask)
    with d:
        pid = os.stat(d.pidfile)

        def holds_pidfile(p):
            fds = []
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    st = os.stat(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (pid.st_dev, pid.st_ino):
                    fds.append(fd)
            return fds

        poll_until(lambda: children_of(d.pid, prober=True), 5 * SLOW)
        kids = children_all(d)
        ok(holds_pidfile(d.pid), "the master holds the pidfile open (and locked)")
        ok(len(kids) >= 3 and all(uid_of(k) == 65534 for k in kids),
           "the workers and the prober run as nobody", [(k, uid_of(k)) for k in kids])
        held = {k: holds_pidfile(k) for k in kids}
        ok(not any(held.values()), "no worker, prober or park process has an fd to the pidfile",
           held)
        ok((pid.st_uid, stat.S_IMODE(pid.st_mode)) == (0, 0o644),
           "the pidfile belongs to root, mode 0644 (under umask 077 too)",
           (pid.st_uid, oct(pid.st_mode)))
        r = as_nobody(f'echo 1 > "{d.pidfile}"')
        ok(r.returncode != 0 and open(d.pidfile).read() == f"{d.pid}\n",
           "the workers' user cannot write a pid into it", open(d.pidfile).read())


@case
def unprivileged_workers_die_with_master():
    """setuid clears PR_SET_PDEATHSIG: every child arms it again after the
    drop (and exits if the master went meanwhile)."""
    if os.geteuid() != 0:
        skip("user = nobody, master killed", "the tests do not run as root")
        return
    port = free_port()
    text = conf(port, 'user = "nobody";', pidfile=os.path.join(tmpdir(), "orphans.pid"))
    d = Daemon(text, workers=2, name="orphans", start=False)
    os.chmod(d.dir, 0o755)
    d.start()
    poll_until(lambda: len(children_all(d)) >= 3 + PARKING and
               all(uid_of(k) == 65534 for k in children_all(d)), 5 * SLOW)
    kids = children_all(d)
    ok(len(kids) >= 3 + PARKING and all(uid_of(k) == 65534 for k in kids),
       "the workers" + (", the prober and the park process" if PARKING else " and the prober")
       + " run as nobody", [(k, uid_of(k)) for k in kids])
    os.kill(d.pid, signal.SIGKILL)
    ok(poll_until(lambda: not any(pid_alive(k) for k in kids), 2),
       "kill -9 of the master: within 2 s no worker, prober or park process is left",
       [(k, proc_state(k)) for k in kids if pid_alive(k)])
    d.stop(check=False)
    try:
        d2 = Daemon(text, workers=2, name="orphans-again")
    except Exception as e:
        d2 = None
        ok(False, "a new start with the same pidfile and port succeeds", e)
    if d2:
        ok("already running" not in d2.stderr_text() + d2.log_text(),
           "a new start with the same pidfile and port succeeds (no 'already running')",
           d2.stderr_text())
        d2.stop()


@case
def chrooted_workers():
    if os.geteuid() != 0:
        skip("chroot", "the tests do not run as root")
        return
    root = os.path.join(tmpdir(), "jail-root")
    port = free_port()
    os.makedirs(root)
    jail = f'chroot = "{root}"; user = "nobody";'
    r = run([TLSOFFD, "-t", "-c", "/dev/stdin"], input=conf(port, jail).encode())
    ok(r.returncode == 0, "-t does not check the chroot (it does not start anything)", r.stderr)
    d = Daemon(conf(port, jail), workers=2, name="nojail", start=False)
    rc = run([TLSOFFD, "-f", "-c", d.conf_path], cwd=d.dir, timeout=10)
    ok(rc.returncode == 1 and b"has no readable dev/urandom" in rc.stderr,
       "a chroot without dev/urandom is refused at start, with the reason", rc.stderr)
    os.makedirs(os.path.join(root, "dev"))
    os.mknod(os.path.join(root, "dev/urandom"), 0o444 | stat.S_IFCHR, os.makedev(1, 9))
    with Daemon(conf(port, jail), workers=2, name="jail") as dj:
        poll_until(lambda: all(os.readlink(f"/proc/{w}/root") == root
                               for w in dj.worker_pids()), 5 * SLOW)
        ws = dj.worker_pids()
        ok(ws and all(os.readlink(f"/proc/{w}/root") == root for w in ws),
           "the workers' root directory is the chroot", [os.readlink(f"/proc/{w}/root") for w in ws])
        for i in range(3):
            r = curl(port, "/")
            ok(r.returncode == 0 and r.stdout == b"hello from svc\n",
               f"request {i + 1} is served from inside the chroot", r.stderr)


@case
def systemd_notify():
    path = os.path.join(tmpdir(), "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        d = Daemon(conf(free_port()), workers=2, name="notify")
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        msg = s.recv(200).decode()
    except OSError as e:
        msg = f"nothing: {e}"
    ok("READY=1" in msg and f"MAINPID={d.pid}" in msg,
       "the master sends READY=1 and MAINPID to $NOTIFY_SOCKET once it serves", msg)
    d.stop()
    try:
        msg = s.recv(200).decode()
    except OSError as e:
        msg = f"nothing: {e}"
    ok("STOPPING=1" in msg, "and STOPPING=1 when it stops", msg)
    s.close()


@case
def init_script():
    work = os.path.join(tmpdir(), "init")
    os.makedirs(work)
    port = free_port()
    cfg = os.path.join(work, "tlsoffd.conf")
    pid = os.path.join(work, "tlsoffd.pid")
    logf = os.path.join(work, "main.log")
    with open(cfg, "w") as f:
        f.write(conf(port, f'log = {{ destination = "{logf}"; level = "info"; }};',
                     pidfile=pid, daemon=True))
    defaults = os.path.join(work, "defaults")
    with open(defaults, "w") as f:
        f.write(f"DAEMON={TLSOFFD}\nCONF={cfg}\nPIDFILE={pid}\nSTOP_TIMEOUT=10\n")
    env = dict(os.environ, TLSOFFD_DEFAULTS=defaults)

    def init(*args):
        return run(["sh", INIT, *args], env=env, timeout=30)

    r = init("configtest")
    ok(r.returncode == 0, "init configtest: 0", r.stderr)
    r = init("status")
    ok(r.returncode == 3, "init status before start: 3 (not running)", r.stdout)
    r = init("start")
    ok(r.returncode == 0 and os.path.exists(pid), "init start: 0, pidfile written",
       r.stdout + r.stderr)
    master = int(open(pid).read())
    try:
        r = init("status")
        ok(r.returncode == 0 and f"running (pid {master})".encode() in r.stdout,
           "init status: running, with the pid", r.stdout)
        r = curl(port, "/")
        ok(r.returncode == 0 and r.stdout == b"hello from svc\n", "the daemon serves", r.stderr)
        r = init("reload")
        ok(r.returncode == 0 and "SIGHUP: configuration reloaded" in open(logf).read(),
           "init reload: 0 once the master has reloaded (tlsoffd -s reload)", r.stdout)
        r = init("upgrade")
        m = re.search(rb"upgraded: pid (\d+) serves", r.stdout)
        new = int(m.group(1)) if m else 0
        ok(r.returncode == 0 and new not in (0, master) and int(open(pid).read()) == new,
           "init upgrade: 0 once the new master serves; it says the pid the pidfile names",
           r.stdout + r.stderr)
        ok(poll_until(lambda: not pid_alive(master), 10), "and the old master exits")
        old_master, master = master, new
        r = init("status")
        ok(r.returncode == 0 and f"running (pid {master})".encode() in r.stdout,
           "init status: running, with the new pid", (old_master, r.stdout))
        good = open(cfg).read()
        with open(cfg, "w") as f:
            f.write(good.replace(CERT, "/nonexistent/cert.pem"))
        r = init("reload")
        ok(r.returncode == 1 and b"reload failed" in r.stdout and
           f"{cfg}:".encode() in r.stderr and b"/nonexistent/cert.pem" in r.stderr,
           "init reload that the master refuses: 1, with its FILE:LINE error",
           r.stdout + r.stderr)
        ok(pid_alive(master) and curl(port, "/").returncode == 0, "the daemon serves on")
        with open(cfg, "w") as f:
            f.write(good.replace("workers = {", "workers = { bogus = 1;"))
        r = init("upgrade")
        ok(r.returncode == 6 and b"configuration test failed" in r.stdout,
           "init upgrade with a broken configuration: refused (6), nothing sent",
           r.stdout + r.stderr)
        r = init("restart")
        ok(r.returncode == 6 and int(open(pid).read()) == master and pid_alive(master),
           "init restart with a broken configuration: refused, the daemon keeps running",
           r.stdout + r.stderr)
        with open(cfg, "w") as f:
            f.write(good)
        r = init("stop")
        ok(r.returncode == 0 and poll_until(lambda: not pid_alive(master), 5),
           "init stop: the daemon stops (QUIT)", r.stdout + r.stderr)
        ok(not os.path.exists(pid), "the pidfile is removed")
        r = init("status")
        ok(r.returncode == 3, "init status after stop: 3", r.stdout)
    finally:
        if pid_alive(master):
            os.kill(master, 9)


be.stop()
done()
