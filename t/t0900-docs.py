#!/usr/bin/env python3
"""The documentation keeps up with the code: the man pages pass mandoc's
lint, every long option is in tlsoffd(8), every configuration key the
loader accepts is in tlsoffd.conf(5) and in the sample configuration."""
import glob
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tlsoffd_test import *  # noqa: E402,F401,F403

man8 = open(os.path.join(ROOT, "man/tlsoffd.8")).read()
man5 = open(os.path.join(ROOT, "man/tlsoffd.conf.5")).read()
sample = open(os.path.join(ROOT, "etc/tlsoffd.conf")).read()
config_c = "".join(open(p).read() for p in sorted(glob.glob(os.path.join(ROOT, "lib/config*.c"))))
main_c = open(os.path.join(ROOT, "daemon/main.c")).read()


@case
def lint():
    if not shutil.which("mandoc"):
        skip("mandoc -Tlint", "mandoc is not installed")
        return
    # From man/, so that the two pages' cross references resolve.
    r = run(["mandoc", "-Tlint", "tlsoffd.8", "tlsoffd.conf.5"], cwd=os.path.join(ROOT, "man"))
    msgs = [l for l in (r.stdout + r.stderr).decode().splitlines() if "mandoc.db" not in l]
    ok(not msgs, "mandoc -Tlint finds nothing in the man pages", "\n".join(msgs))


@case
def long_options():
    opts = re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', main_c)
    ok(len(opts) >= 7, "main.c's long options were found", opts)
    missing = [o for o in opts if f"Fl -{o}" not in man8]
    ok(not missing, "every long option is described in tlsoffd(8)", missing)


@case
def config_keys():
    keys = set()
    for arr in re.findall(r"keys\[\] = \{([^}]*)\}", config_c):
        keys.update(re.findall(r'"([a-z_]+)"', arr))
    ok(len(keys) >= 30, "lib/config*.c's accepted keys were found", sorted(keys))
    missing = sorted(k for k in keys if not re.search(rf"\bIc {k}\b", man5) and
                     not re.search(rf"^\.Sh {k.upper()}$", man5, re.M))
    ok(not missing, "every accepted key has an entry in tlsoffd.conf(5)", missing)
    missing = sorted(k for k in keys if not re.search(rf"\b{k}\b", sample))
    ok(not missing, "every accepted key appears in etc/tlsoffd.conf", missing)


done()
