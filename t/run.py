#!/usr/bin/env python3
"""
run.py — runs tlsoffd's integration tests: t/t*.py (sorted), or the files
named as arguments, each with a time limit; streams their output, counts
the TAP lines and ends with one line, alone:

    N passed, M failed                  (nothing skipped)
    N passed, M failed, K skipped       (K > 0)

`ok N - ...` is passed, `not ok N - ...` failed, `ok N # skip ...` skipped
(not passed). Known breakages (tlsoffd_test.xfail, TAP's `# TODO`) are
counted apart, on the `== N files` line before it: `not ok N - ... # TODO
still broken` fails nothing and is neither passed nor failed; `ok N - ... #
TODO FIXED` is passed and listed loudly ("!! FIXED"), but does not fail the
run (as git's test_expect_failure: the fix is good news, the marker stale).

A file that exits non-zero without a failed check, crashes or runs out of
time counts as one more failure. Exit status: 0 if nothing failed, else 1.

    python3 t/run.py [FILE[:CASE[,CASE...]] ...]
    python3 t/run.py t/t0100-basic.py t0800-resumption.py:tickets t0300:'echo_*'
    TLSOFFD_TEST_TIMEOUT=300 (seconds per file)

FILE is a path, a name in t/ or a prefix of one (t0800). After a colon, the
cases to run (see tlsoffd_test: a case's name, or its part before a "/";
shell patterns allowed), passed to the file as TLSOFFD_TEST_ONLY; a name that
matches no case in the file is a failure.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = float(os.environ.get("TLSOFFD_TEST_TIMEOUT", "300"))
OK_RE = re.compile(r"^(not )?ok \d+\b(.*)$")
SKIP_RE = re.compile(r"#\s*skip\b", re.I)
TODO_RE = re.compile(r"#\s*TODO\b", re.I)


def find_files(a):
    for cand in (a, os.path.join(HERE, a), os.path.join(HERE, os.path.basename(a)),
                 os.path.join(HERE, a + ".py")):
        if os.path.isfile(cand):
            return [cand]
    return sorted(glob.glob(os.path.join(HERE, f"{a}*.py")))


def find_tests(args):
    """[(path or None if not found, cases or None)]: FILE or FILE:CASE,CASE."""
    if not args:
        return [(p, None) for p in sorted(glob.glob(os.path.join(HERE, "t[0-9]*.py")))]
    out = []
    for a in args:
        files, cases = find_files(a), None
        if not files and ":" in a:
            a, cases = a.rsplit(":", 1)
            files = find_files(a)
            if not cases.strip(", "):
                print(f"run.py: no case name after the colon in {a + ':'!r}", flush=True)
                out.append((None, None))
                continue
        if not files:
            print(f"run.py: no test file {a!r}", flush=True)
            out.append((None, None))
        out += [(f, cases) for f in files]
    return out


def run_one(path, cases=None):
    """Returns (counts: passed, failed, skipped, broken, fixed; problem or None)."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "broken": 0, "fixed": 0}
    env = dict(os.environ)
    env.pop("TLSOFFD_TEST_ONLY", None)
    if cases:
        env["TLSOFFD_TEST_ONLY"] = cases
    # Its own process group, so that a timeout can end it and everything it
    # started; SIGTERM first lets the file stop its daemons itself.
    p = subprocess.Popen([sys.executable, "-u", path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True,
                         cwd=os.path.dirname(HERE), env=env)

    fixed_lines = []

    def reader():
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            print("    " + line, flush=True)
            m = OK_RE.match(line)
            if not m:
                continue
            rest = m.group(2)
            if TODO_RE.search(rest):
                if m.group(1):
                    counts["broken"] += 1       # expected to fail: fails nothing
                else:
                    counts["fixed"] += 1        # an expected failure passes
                    counts["passed"] += 1
                    fixed_lines.append(line)
            elif m.group(1):
                counts["failed"] += 1
            elif SKIP_RE.search(rest):
                counts["skipped"] += 1
            else:
                counts["passed"] += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    problem = None
    try:
        rc = p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        problem = f"timed out after {TIMEOUT:g} s"
        try:
            os.kill(p.pid, signal.SIGTERM)
            rc = p.wait(timeout=15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            rc = None
        try:
            os.killpg(p.pid, signal.SIGKILL)    # the group we created for it
        except ProcessLookupError:
            pass
        p.wait()
    t.join(timeout=10)
    if problem is None and rc != 0 and counts["failed"] == 0:
        problem = (f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}") + \
            " without a failed check"
    if problem is None and rc == 0 and counts["failed"]:
        problem = f"exited with status 0 despite {counts['failed']} failed checks"
    counts["fixed_lines"] = fixed_lines
    return counts, problem


def main():
    tests = find_tests(sys.argv[1:])
    total = {"passed": 0, "failed": 0, "skipped": 0, "broken": 0, "fixed": 0}
    bad_files, fixed = [], []
    start = time.monotonic()
    for path, cases in tests:
        if path is None:
            total["failed"] += 1
            continue
        name = os.path.basename(path) + (f":{cases}" if cases else "")
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        c, problem = run_one(path, cases)
        for k in total:
            total[k] += c[k]
        fixed += [f"{name}: {l}" for l in c["fixed_lines"]]
        if problem:
            total["failed"] += 1
            print(f"not ok - {name}: {problem}", flush=True)
        if c["failed"] or problem:
            bad_files.append(name)
        extra = "".join(f", {c[k]} {k}" for k in ("skipped", "broken", "fixed") if c[k])
        print(f"== {name}: {c['passed']} passed, {c['failed']} failed{extra}"
              f"{', ' + problem if problem else ''} ({time.monotonic() - t0:.1f} s)", flush=True)
    for l in fixed:
        print(f"!! FIXED (an expected failure passes; make it an ok()): {l}", flush=True)
    print(f"== {len(tests)} files in {time.monotonic() - start:.1f} s"
          + (f"; {total['broken']} known breakages still broken" if total["broken"] else "")
          + (f"; {total['fixed']} known breakages FIXED" if total["fixed"] else "")
          + (f"; failures in: {' '.join(bad_files)}" if bad_files else ""), flush=True)
    print(f"{total['passed']} passed, {total['failed']} failed"
          + (f", {total['skipped']} skipped" if total["skipped"] else ""), flush=True)
    return 1 if total["failed"] or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
