#!/usr/bin/env python3
"""Configuration checking: `tlsoffd -t` accepts a good file (and the sample
in etc/), and refuses each kind of mistake with exit status 1 and
"tlsoffd: FILE:LINE: ..." naming the offending setting's line; plus the
command line's own errors, and a listen port already in use."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

PORT = free_port()
OTHER_PORT = free_port()
COMBINED = os.path.join(tmpdir(), "chain-and-key.pem")
with open(COMBINED, "w") as f:
    f.write(open(CERT).read() + open(KEY).read())
BASE = f"""\
# tlsoffd test configuration; line numbers matter below
daemon = false;
pidfile = "";
log = {{
  destination = "stderr";
  level = "info";
}};
workers = {{
  count = 2;
}};
timeouts = {{
  handshake = 5;
  idle = 60;
}};
tls = {{
  protocols = [ "TLSv1.2", "TLSv1.3" ];
  ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
  ciphersuites = "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256";
  groups = [ "X25519", "P-256" ];
}};
frontends = (
  {{
    name = "web";
    listen = [ "127.0.0.1:{PORT}" ];
    certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} );
    upstream = "app";
  }}
);
upstreams = (
  {{
    name = "app";
    servers = ( {{ address = "127.0.0.1:9"; }} );
  }}
);
""".splitlines()


def line_of(lines, needle):
    """1-based number of the first line containing needle."""
    for i, l in enumerate(lines):
        if needle in l:
            return i + 1
    raise KeyError(needle)


def sub(old, new):
    def f(lines):
        i = line_of(lines, old) - 1
        lines[i] = lines[i].replace(old, new)
        return lines
    return f


def both(*changes):
    def f(lines):
        for c in changes:
            lines = c(lines)
        return lines
    return f


def after(needle, *new):
    """Inserts the lines new after the first line containing needle."""
    def f(lines):
        i = line_of(lines, needle)
        return lines[:i] + list(new) + lines[i:]
    return f


def write(name, lines):
    path = os.path.join(tmpdir(), name + ".conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def check_t(path, **kw):
    return run([TLSOFFD, "-t", "-c", path], **kw)


@case
def good_config():
    path = write("good", list(BASE))
    r = check_t(path)
    err = r.stderr.decode(errors="replace")
    ok(r.returncode == 0 and f"configuration file {path} is valid" in err and not r.stdout,
       "-t with a good configuration: exit 0, 'configuration file FILE is valid' on stderr",
       f"rc={r.returncode} stderr={err!r} stdout={r.stdout!r}")
    r = run([TLSOFFD, "--test", "--config", path])
    ok(r.returncode == 0, "--test --config: the same", r.stderr)
    # -t only checks: it must not start anything or bind the port.
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", PORT))
        bound = True
    except OSError:
        bound = False
    s.close()
    ok(bound, "-t leaves the listen port free (no daemon left running)")


@case
def sample_config():
    sample = os.path.join(ROOT, "etc", "tlsoffd.conf")
    if not os.path.exists(sample):
        skip("tlsoffd -t -c etc/tlsoffd.conf", "etc/tlsoffd.conf does not exist yet")
        return
    with open(sample) as f:
        text = f.read()
    text = re.sub(r'(\bcert\s*=\s*)"[^"]*"', lambda m: m.group(1) + f'"{CERT}"', text)
    text = re.sub(r'(\bkey\s*=\s*)"[^"]*"', lambda m: m.group(1) + f'"{KEY}"', text)
    path = os.path.join(tmpdir(), "sample.conf")
    with open(path, "w") as f:
        f.write(text)
    r = check_t(path)
    ok(r.returncode == 0, "tlsoffd -t accepts etc/tlsoffd.conf (certificate paths pointed "
       "at the test certificates)", r.stderr.decode(errors="replace"))


# (name, change, expected line: a needle found in the *changed* file or a
#  number, a regex the message must match)
CASES = [
    ("syntax error: a setting without '='", sub("count = 2;", "count 2;"),
     "count 2;", r"syntax error"),
    ("syntax error: two list entries without a comma",
     lambda l: l[:-2] + ["  }", "  {", '    name = "app2";',
                         '    servers = ( { address = "127.0.0.1:10"; } );', "  }", ");"],
     len(BASE), r"syntax error"),     # the line of the second entry's "{"
    ("syntax error: an unterminated string", sub('level = "info";', 'level = "info;'),
     None, r"syntax error"),
    ("unknown top-level key (timeouts -> timeout)", sub("timeouts = {", "timeout = {"),
     "timeout = {", r"\btimeout: unknown key \(known here: .*timeouts"),
    ("unknown nested key (timeouts.handshak)", sub("handshake = 5;", "handshak = 5;"),
     "handshak", r"timeouts\.handshak: unknown key \(known here: handshake"),
    ("unknown key in a frontend", sub('upstream = "app";', 'upstream = "app"; backend = "x";'),
     'backend = "x"', r"frontends\.?\[0\]\.backend: unknown key"),
    ("wrong type (workers.count = \"four\")", sub("count = 2;", 'count = "four";'),
     "count =", r"workers\.count: expected an integer, got a string"),
    ("out of range (workers.count = -1)", sub("count = 2;", "count = -1;"),
     "count =", r"workers\.count: must be from 0 to \d+, got -1"),
    ("out of range (workers.count = 100000)", sub("count = 2;", "count = 100000;"),
     "count =", r"workers\.count: must be from 0 to \d+, got 100000"),
    ("negative duration (timeouts.idle = -1)", sub("idle = 60;", "idle = -1;"),
     "idle =", r"timeouts\.idle: must be a duration .*got -1"),
    ("zero duration (timeouts.handshake = 0)", sub("handshake = 5;", "handshake = 0;"),
     "handshake =", r"timeouts\.handshake: must be a duration"),
    ("a duration that is a string", sub("idle = 60;", 'idle = "60s";'),
     "idle =", r"timeouts\.idle: expected a duration in seconds"),
    ("bad log level", sub('level = "info";', 'level = "verbose";'),
     "level =", r"log\.level: unknown level"),
    ("missing frontends",
     lambda l: l[:line_of(l, "frontends = (") - 1] + l[line_of(l, "upstreams = (") - 1:],
     "TOP", r"missing required key 'frontends'"),
    ("an empty frontends list",
     lambda l: l[:line_of(l, "frontends = (")] + l[line_of(l, "upstreams = (") - 2:],
     "frontends = (", r"frontends: must have at least one entry"),
    ("missing upstream reference (upstream = \"nope\")",
     sub('upstream = "app";', 'upstream = "nope";'),
     'upstream = "nope"', r"no upstream is named 'nope'"),
    ("duplicate frontend name",
     lambda l: l[:line_of(l, "frontends = (")] + [
         "  {", '    name = "web";', f'    listen = [ "127.0.0.1:{OTHER_PORT}" ];',
         f'    certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} );',
         '    upstream = "app";', "  },"] + l[line_of(l, "frontends = ("):],
     (line_of(BASE, "frontends = (") + 7, line_of(BASE, "frontends = (") + 8),
     r"frontend name 'web' is already used at .*:%d" % (line_of(BASE, "frontends = (") + 1)),
    ("bad listen address (no port)", sub(f"127.0.0.1:{PORT}", "127.0.0.1"),
     "listen =", r"'127\.0\.0\.1' has no port"),
    ("bad listen address ([::1:443)", sub(f"127.0.0.1:{PORT}", "[::1:443"),
     "listen =", r"'\[::1:443' is not \[IPv6\]:port"),
    ("bad listen address (port 70000)", sub(f"127.0.0.1:{PORT}", "127.0.0.1:70000"),
     "listen =", r"port must be a number from 1 to 65535"),
    ("bad listen address (a host name)", sub(f"127.0.0.1:{PORT}", "localhost:443"),
     "listen =", r"'localhost' is not an IP address"),
    ("unknown protocol TLSv1.1", sub('"TLSv1.2", "TLSv1.3"', '"TLSv1.1", "TLSv1.2"'),
     "protocols =", r"unsupported protocol 'TLSv1\.1'"),
    ("banned cipher NULL", sub("ECDHE-RSA-AES128-GCM-SHA256", "NULL-SHA256"),
     "ciphers =", r"'NULL-SHA256' is not an AEAD suite"),
    ("banned cipher RC4 in a ciphersuite", sub("TLS13-CHACHA20-POLY1305-SHA256", "RC4-SHA"),
     "ciphersuites =", r"'RC4-SHA' is not an AEAD suite"),
    ("a CBC cipher (ECDHE-ECDSA-AES128-SHA)", sub("ECDHE-RSA-AES128-GCM-SHA256",
                                                  "ECDHE-ECDSA-AES128-SHA"),
     "ciphers =", r"'ECDHE-ECDSA-AES128-SHA' is not an AEAD suite"),
    ("a keyword (HIGH) instead of suite names", sub(
        '"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"', '"HIGH:!aNULL"'),
     "ciphers =", r"'HIGH' is not an AEAD suite"),
    ("a TLS 1.2 suite without forward secrecy", sub("ECDHE-RSA-AES128-GCM-SHA256",
                                                    "AES128-GCM-SHA256"),
     "ciphers =", r"'AES128-GCM-SHA256' has no forward secrecy"),
    ("an AES-CCM-8 suite (an 8-byte tag)", sub("ECDHE-RSA-AES128-GCM-SHA256",
                                               "ECDHE-ECDSA-AES128-CCM-8"),
     "ciphers =", r"'ECDHE-ECDSA-AES128-CCM-8' is AES-CCM-8, whose 8-byte tag is too short"),
    ("a TLS 1.3 AES-CCM-8 suite", sub("TLS13-CHACHA20-POLY1305-SHA256", "TLS_AES_128_CCM_8_SHA256"),
     "ciphersuites =", r"'TLS_AES_128_CCM_8_SHA256' is AES-CCM-8"),
    ("a TLS 1.2 suite among the TLS 1.3 ones", sub("TLS13-CHACHA20-POLY1305-SHA256",
                                                   "ECDHE-ECDSA-AES128-GCM-SHA256"),
     "ciphersuites =", r"'ECDHE-ECDSA-AES128-GCM-SHA256' is not a TLS 1\.3 suite"),
    ("unknown cipher name", sub("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-FOO128-GCM-SHA256"),
     "ciphers =", r"(unknown|no) cipher 'ECDHE-ECDSA-FOO128-GCM-SHA256'"),
    ("unknown TLS 1.3 suite name", sub("TLS13-CHACHA20-POLY1305-SHA256", "TLS13-FOO128-GCM-SHA256"),
     "ciphersuites =", r"(unknown|no) suite 'TLS13-FOO128-GCM-SHA256'"),
    ("unknown group", sub('"X25519", "P-256"', '"X25519", "P-192"'),
     "groups =", r"unknown group 'P-192'"),
    ("missing certificate file", sub("example.test.pem", "no-such-cert.pem"),
     "certificates =", r"'[^']*no-such-cert\.pem': No such file or directory"),
    ("missing key file", sub("example.test.key", "no-such-key.key"),
     "certificates =", r"'[^']*no-such-key\.key': No such file or directory"),
    ("garbage certificate", sub("example.test.pem", "garbage.pem"),
     "certificates =", r"certificate '[^']*garbage\.pem': cannot load"),
    ("key that does not match the certificate", sub("example.test.key", "mismatch.key"),
     "certificates =", r"key '[^']*mismatch\.key' does not match certificate"),
    ("another server's key (other.key)", sub("example.test.key", "other.key"),
     "certificates =", r"key '[^']*other\.key' does not match certificate"),
    ("keys.processes out of range", sub("idle = 60;", "idle = 60; }; keys = { processes = 65;"),
     "keys = {", r"keys\.processes: .*1\.\.64|processes"),
    ("keys.processes not a number", sub("idle = 60;", 'idle = 60; }; keys = { processes = "all";'),
     "keys = {", r'expected a number of processes or "auto", got "all"'),
    ("an unknown key in keys", sub("idle = 60;", "idle = 60; }; keys = { isolated = true;"),
     "keys = {", r"isolated"),
    ("a PKCS#11 key without isolation", both(
        sub(f'key = "{KEY}";', 'key = "pkcs11:token=t;object=k";'),
        sub("idle = 60;", "idle = 60; }; keys = { isolate = false;")),
     "certificates =", r"a PKCS#11 key is only used by the key processes: it needs "
     r"keys\.isolate = true"),
    ("a missing key_password_file", sub(f'key = "{KEY}";',
                                        f'key = "{KEY}"; key_password_file = "/no/such.pass";'),
     "certificates =", r"cannot read '/no/such\.pass'"),
    ("upstream address without a port", sub('"127.0.0.1:9"', '"127.0.0.1"'),
     "address =", r"has no port"),
    ("a frontend without certificates", sub(
        f'certificates = ( {{ cert = "{CERT}"; key = "{KEY}"; }} );', "certificates = ( );"),
     "certificates =", r"has no certificate \(give certificates, or a cert_dir"),
    ("daemon is not a boolean", sub("daemon = false;", 'daemon = "no";'),
     "daemon =", r"daemon: expected true or false"),
    ("a key given twice in one group", sub("idle = 60;", "idle = 60; idle = 30;"),
     "idle = 60; idle = 30;", r"duplicate setting name|'idle'"),
    ("groups as a colon-separated string", sub('[ "X25519", "P-256" ]', '"X25519:P-256"'),
     "groups =", r"unknown group 'X25519:P-256'"),
    ("the same listen address twice", sub(f'"127.0.0.1:{PORT}"',
                                         f'"127.0.0.1:{PORT}", "127.0.0.1:{PORT}"'),
     "listen =", r"'127\.0\.0\.1:%d' is already listened on" % PORT),
    ("an upstream host name that does not resolve", sub('"127.0.0.1:9"',
                                                        '"no-such-host.invalid:80"'),
     "address =", r"cannot resolve 'no-such-host\.invalid'"),
    ("unknown preset", sub('protocols = [ "TLSv1.2", "TLSv1.3" ];', 'preset = "old";'),
     "preset =", r"tls\.preset: unknown preset"),
    ("chroot without user", after('pidfile = "";', 'chroot = "/tmp";'),
     "chroot =", r"chroot: needs user, other than root: root can leave a chroot"),
    ("chroot with user = root", after('pidfile = "";', 'user = "root";', 'chroot = "/tmp";'),
     "chroot =", r"chroot: needs user, other than root"),
    ("group without user", after('pidfile = "";', 'group = "nogroup";'),
     'group = "nogroup"', r"group: needs user: without it the workers keep user ID 0"),
]


for name, change, where, rx in CASES:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]

    @case(f"bad_config/{slug}")
    def bad_config():
        lines = change(list(BASE))
        path = write(slug, lines)
        r = check_t(path)
        err = r.stderr.decode(errors="replace").strip()
        ok(r.returncode == 1 and not r.stdout, f"{name}: -t exits with status 1",
           f"rc={r.returncode} stderr={err!r}")
        if where == "TOP":
            # A missing top-level key has no line of its own.
            m = re.match(rf"tlsoffd: {re.escape(path)}(:\d+)?: ", err)
            ok(m is not None, f"{name}: stderr starts 'tlsoffd: FILE: '", err)
        elif where is None:
            m = re.match(rf"tlsoffd: {re.escape(path)}:(\d+): ", err)
            ok(m is not None, f"{name}: stderr starts 'tlsoffd: FILE:LINE: '", err)
        else:
            want = where if isinstance(where, tuple) else \
                (where,) if isinstance(where, int) else (line_of(lines, where),)
            m = re.match(rf"tlsoffd: {re.escape(path)}:(\d+): ", err)
            ok(m is not None and int(m.group(1)) in want,
               f"{name}: stderr has FILE:LINE: with line {' or '.join(map(str, want))}",
               f"stderr: {err}\nline {want[0]}: {lines[want[0] - 1].strip()}")
        ok(re.search(rx, err) is not None, f"{name}: the message says /{rx}/", err)
        ok(len(err.splitlines()) == 1, f"{name}: one line on stderr", err)


@case
def good_variants():
    for name, change in (
            ("IANA suite names", sub(
                '"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"',
                '"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256"')),
            ("IANA TLS 1.3 suite names", sub(
                '"TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256"',
                '"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"')),
            ("listen on *:PORT", sub(f"127.0.0.1:{PORT}", f"*:{PORT}")),
            ("listen as one string, not an array", sub(f'[ "127.0.0.1:{PORT}" ]',
                                                       f'"127.0.0.1:{PORT}"')),
            ("an upstream named by a resolvable host (localhost)",
             sub('"127.0.0.1:9"', '"localhost:9"')),
            ("durations as decimals", sub("handshake = 5;", "handshake = 0.25;")),
            ("comments of all three kinds", lambda l: ["// one", "/* two */"] + l +
             ["# three"]),
            ("the key read from the cert file (key not set)",
             lambda l: [x.replace(f'cert = "{CERT}"; key = "{KEY}";',
                                  f'cert = "{COMBINED}";') for x in l]),
    ):
        path = write("good-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30],
                     change(list(BASE)))
        r = check_t(path)
        ok(r.returncode == 0, f"-t accepts: {name}", r.stderr.decode(errors="replace"))


@case
def include():
    # @include: relative to the directory tlsoffd is started in (tlsoffd.conf(5)).
    d = os.path.join(tmpdir(), "inc")
    os.makedirs(os.path.join(d, "conf.d"))
    lines = list(BASE)
    i = line_of(lines, "timeouts = {")
    main = lines[:i - 1] + ['@include "conf.d/timeouts.conf"'] + lines[i + 3:]
    with open(os.path.join(d, "conf.d", "timeouts.conf"), "w") as f:
        f.write("# included\ntimeouts = {\n  handshake = 5;\n  idle = 60;\n};\n")
    path = os.path.join(d, "conf.d", "main.conf")
    with open(path, "w") as f:
        f.write("\n".join(main) + "\n")
    r = run([TLSOFFD, "-t", "-c", "conf.d/main.conf"], cwd=d)
    ok(r.returncode == 0, "@include \"conf.d/timeouts.conf\" is found relative to the "
       "start directory", r.stderr)
    with open(os.path.join(d, "conf.d", "timeouts.conf"), "w") as f:
        f.write("# included\ntimeouts = {\n  handshake = 5;\n  idle = -2;\n};\n")
    r = run([TLSOFFD, "-t", "-c", "conf.d/main.conf"], cwd=d)
    err = r.stderr.decode(errors="replace")
    ok(r.returncode == 1 and re.match(r"tlsoffd: \S*conf\.d/timeouts\.conf:4: timeouts\.idle: ",
                                      err),
       "an error in an included file names that file and its line", err)


@case
def port_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", PORT))
    s.listen(1)
    try:
        path = write("port-in-use", list(BASE))
        r = run([TLSOFFD, "-f", "-c", path], timeout=10)
    finally:
        s.close()
    err = r.stderr.decode(errors="replace")
    ok(r.returncode == 1, "listen port already in use: the daemon exits with status 1",
       f"rc={r.returncode} {err!r}")
    ok(re.search(rf"cannot listen on 127\.0\.0\.1:{PORT}: Address already in use", err),
       "... saying 'cannot listen on ADDR: Address already in use'", err)
    want = (line_of(BASE, "frontends = (") + 1, line_of(BASE, "listen ="))
    m = re.search(rf"tlsoffd: {re.escape(path)}:(\d+): ", err)
    ok(m is not None and int(m.group(1)) in want,
       f"... at FILE:LINE of the frontend ({' or '.join(map(str, want))})", err)


@case
def command_line():
    r = run([TLSOFFD, "-h"])
    ok(r.returncode == 0 and b"usage: tlsoffd" in r.stdout, "-h: usage on stdout, exit 0",
       r.stdout)
    r = run([TLSOFFD, "--help"])
    ok(r.returncode == 0 and b"usage: tlsoffd" in r.stdout, "--help: the same")
    r = run([TLSOFFD, "-x"])
    ok(r.returncode == 2 and b"usage:" in r.stderr, "an unknown option: usage on stderr, exit 2",
       f"{r.returncode} {r.stderr!r}")
    r = run([TLSOFFD, "-t", "-c", os.devnull, "extra"])
    ok(r.returncode == 2 and b"unexpected argument 'extra'" in r.stderr,
       "an extra argument: exit 2, named", f"{r.returncode} {r.stderr!r}")
    r = run([TLSOFFD, "-c"])
    ok(r.returncode == 2, "-c without a file: exit 2", f"{r.returncode} {r.stderr!r}")
    missing = os.path.join(tmpdir(), "does-not-exist.conf")
    r = run([TLSOFFD, "-t", "-c", missing])
    ok(r.returncode == 1 and f"{missing}: cannot open: No such file or directory".encode()
       in r.stderr, "-c with a missing file: exit 1, 'cannot open: No such file or directory'",
       f"{r.returncode} {r.stderr!r}")
    empty = write("empty", [])
    r = run([TLSOFFD, "-t", "-c", empty])
    ok(r.returncode == 1 and b"missing required key" in r.stderr,
       "an empty file: exit 1, a required key is missing", f"{r.returncode} {r.stderr!r}")


done()
