#!/usr/bin/env python3
"""Allocation and I/O failure torture of `weightbridge convert`.

One clean run, with the wbfault shim only counting, gives the number of
allocations, reads, writes, fsyncs and renames the conversion makes after
it opens the archive.  Then the conversion is run again once per selected
(class, N), with the N-th call of that class failing (ENOMEM or EIO), each
run in a directory of its own.  Every run must end cleanly:

  - exit 1 or 2 with an "error:" line on stderr, no output file, and no
    temporary file left (only the report, which is written on failure);
    or, when only writing the report failed, the complete output and no
    report;
  - or exit 0 with an output byte-identical to the clean run's (a failed
    allocation with a fallback, say), except for write, fsync and rename
    failures, which must never go unnoticed;
  - never a signal, a sanitizer report (a leak under ASan), a timeout or
    any other status.

A crash is symbolized (the shim writes the stack; addr2line names our
static functions; under ASan the sanitizer's report is read) and compared
with tests/fault/known.txt, the list of reported bugs not fixed yet: a
failed run whose class is listed and whose stack holds the listed
function (or whose stderr matches a listed "stderr:REGEX") counts as
known instead of failed, and an entry that no run hits is pointed out.

Usage (from the repository root):
  torture.py --cli build/weightbridge --shim build/fault/libwbfault.so \\
             --npz net.npz --spec spec.json --work DIR [--classes alloc,read]
             [--first 300] [--stride 1] [--jobs 2] [--asan]

--first N runs every N up to N and then every --stride-th one after it
(offset so that successive strides do not always land on the same kind of
call); the default is every N.  The last line is "torture: N passed,
N failed"; the exit status is 1 if any run failed.
"""
import argparse
import concurrent.futures
import filecmp
import os
import re
import shutil
import subprocess
import sys
import time

CLASSES = ("alloc", "read", "write", "fsync", "rename")
MUST_FAIL = {"write", "fsync", "rename"}
HERE = os.path.dirname(os.path.abspath(__file__))
# Distinct from the program's own exit statuses (0, 1, 2).
ASAN_EXIT, UBSAN_EXIT = 86, 87


def load_known(path):
    """[(class, function, note)] from known.txt."""
    known = []
    if not os.path.exists(path):
        return known
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                cls, func, *note = line.split(None, 2)
                known.append((cls, func, note[0] if note else ""))
    return known


def symbolize(crash_file):
    """Function names of a stack written by the shim's crash handler."""
    names = []
    with open(crash_file, errors="replace") as fh:
        lines = fh.read().splitlines()
    for line in lines:
        m = re.match(r"(.+?)\((\w*)\+?(0x[0-9a-f]+)?\)\[", line)
        if not m:
            continue
        obj, sym, off = m.groups()
        if sym:
            names.append(sym)
        elif off and os.path.exists(obj):
            try:
                out = subprocess.run(["addr2line", "-f", "-i", "-e", obj, off],
                                     capture_output=True, text=True,
                                     timeout=30).stdout.splitlines()
            except (OSError, subprocess.TimeoutExpired):
                out = []
            names.extend(out[0::2])
    return names


def sanitizer_frames(text):
    return re.findall(r"#\d+ 0x[0-9a-f]+ in (\w+)", text)


def run(args, env, workdir, timeout):
    out = os.path.join(workdir, "out.h5")
    rep = os.path.join(workdir, "report.json")
    cmd = [args.cli, "convert", args.npz, "--spec", args.spec, "-o", out,
           "--report", rep, "-q"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace",
                           timeout=timeout)
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = "timeout", (e.stderr or b"").decode(errors="replace")
    return rc, err, time.monotonic() - t0


def shim_env(args, workdir, fail=None):
    env = dict(os.environ)
    env["LD_PRELOAD"] = os.path.abspath(args.shim)
    env["WBFAULT_MARK"] = os.path.basename(args.npz)
    env["WBFAULT_REPORT"] = os.path.join(workdir, ".wbfault")
    env["WBFAULT_SKIP"] = args.skip + (",ld-linux" if args.asan else "")
    env.pop("WBFAULT_FAIL", None)
    if fail:
        env["WBFAULT_FAIL"] = fail
    if args.asan:
        # The shim is preloaded ahead of the sanitizer runtime.
        env["ASAN_OPTIONS"] = ("verify_asan_link_order=0:detect_leaks=1:"
                               "exitcode=%d:log_path=%s" % (
                                   ASAN_EXIT, os.path.join(workdir, ".asan")))
        env["UBSAN_OPTIONS"] = ("print_stacktrace=1:halt_on_error=1:"
                                "exitcode=%d:log_path=%s" % (
                                    UBSAN_EXIT, os.path.join(workdir, ".ubsan")))
        env["LSAN_OPTIONS"] = ("print_suppressions=0:suppressions=" +
                               os.path.join(HERE, "lsan.supp"))
    return env


def read_counts(path):
    counts, injected = {}, "-"
    with open(path) as fh:
        for line in fh:
            k, _, v = line.strip().partition(" ")
            if k == "injected":
                injected = v
            else:
                counts[k] = int(v)
    return counts, injected


def check(args, cls, n, reference):
    workdir = os.path.join(args.work, "%s-%d" % (cls, n))
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    rc, err, secs = run(args, shim_env(args, workdir, "%s:%d" % (cls, n)),
                        workdir, args.timeout)
    problems = []
    injected = "-"
    frames = []
    if os.path.exists(os.path.join(workdir, ".wbfault")):
        injected = read_counts(os.path.join(workdir, ".wbfault"))[1]
    if os.path.exists(os.path.join(workdir, ".wbfault.crash")):
        with open(os.path.join(workdir, ".wbfault.crash")) as fh:
            m = re.search(r"^injected (.*)$", fh.read(), re.M)
            injected = m.group(1) if m else injected
        frames = symbolize(os.path.join(workdir, ".wbfault.crash"))
    left = sorted(f for f in os.listdir(workdir) if not f.startswith("."))
    sanitizer = sorted(f for f in os.listdir(workdir)
                       if f.startswith((".asan", ".ubsan")))
    if rc == "timeout":
        problems.append("timed out after %ss" % args.timeout)
    elif rc in (1, 2):
        if "error:" not in err:
            problems.append("exit %d without an error message" % rc)
        if left == ["out.h5"]:
            # The conversion finished and only the report could not be
            # written (the CLI keeps the weight file then): it must be
            # the whole, verified file.
            if not filecmp.cmp(os.path.join(workdir, "out.h5"), reference,
                               shallow=False):
                problems.append("report failed and the output differs")
        elif left not in ([], ["report.json"]):
            problems.append("files left after failing: %s" % left)
    elif rc == 0:
        if injected != "-" and cls in MUST_FAIL:
            problems.append("injected %s went unnoticed (exit 0)" % injected)
        if left != ["out.h5", "report.json"]:
            problems.append("files after success: %s" % left)
        elif not filecmp.cmp(os.path.join(workdir, "out.h5"), reference,
                             shallow=False):
            problems.append("exit 0 but the output differs from the clean run")
    else:
        problems.append("exit status %s" % rc)
    if sanitizer:
        with open(os.path.join(workdir, sanitizer[0]), errors="replace") as fh:
            text = fh.read()
        frames = sanitizer_frames(text)
        problems.append("sanitizer report:\n" + text[:3000])
    elif rc in (ASAN_EXIT, UBSAN_EXIT) and args.asan:
        frames = sanitizer_frames(err)
    if frames:
        problems.append("stack: " + " < ".join(frames[:12]))
    known = None
    for kcls, func, note in args.known:
        if not problems or kcls != cls:
            continue
        if (func.startswith("stderr:") and re.search(func[7:], err)) or \
                func in frames:
            known = (kcls, func)
            break
    if not problems:
        shutil.rmtree(workdir, ignore_errors=True)
    return cls, n, injected, rc, secs, problems, err, known


def plan(counts, classes, first, stride):
    runs_planned = []
    stride = max(stride, 1)
    for cls in classes:
        k = counts.get(cls, 0)
        if stride == 1:
            first = k
        runs_planned.extend((cls, n) for n in range(1, min(first, k) + 1))
        # Block b of the rest contributes one N, at a rotating offset.
        b = 0
        while first + b * stride < k:
            n = first + 1 + b * stride + (b * 7) % stride
            if n <= k:
                runs_planned.append((cls, n))
            b += 1
        # One past the last call: nothing fails, the run must succeed.
        runs_planned.append((cls, k + 1))
    return runs_planned


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--npz", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--asan", action="store_true")
    ap.add_argument("--skip", default="libhdf5,libarchive,libcrypto",
                    help="libraries whose own allocations are left alone "
                    "(see WBFAULT_SKIP in wbfault.c); with --asan the "
                    "dynamic loader's too (thread TLS blocks), which the "
                    "sanitizer runtime itself cannot do without")
    ap.add_argument("--known", default=os.path.join(HERE, "known.txt"))
    args = ap.parse_args()
    args.known = load_known(args.known)
    classes = [c for c in args.classes.split(",") if c]
    for c in classes:
        if c not in CLASSES:
            ap.error("unknown class %s" % c)

    os.makedirs(args.work, exist_ok=True)
    clean = os.path.join(args.work, "clean")
    shutil.rmtree(clean, ignore_errors=True)
    os.makedirs(clean)
    rc, err, secs = run(args, shim_env(args, clean), clean, args.timeout)
    if rc != 0:
        print("torture: the clean run failed (exit %s):\n%s" % (rc, err))
        print("torture: 0 passed, 1 failed")
        return 1
    counts, _ = read_counts(os.path.join(clean, ".wbfault"))
    reference = os.path.join(clean, "out.h5")
    runs_planned = plan(counts, classes, args.first, args.stride)
    print("torture: clean run %.2fs; calls after the archive is opened: %s; "
          "%d runs" % (secs, " ".join("%s=%d" % (c, counts.get(c, 0))
                                       for c in CLASSES), len(runs_planned)))
    sys.stdout.flush()

    failed = []
    exits = {}
    seen = {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for cls, n, injected, rc, secs, problems, err, known in pool.map(
                lambda t: check(args, t[0], t[1], reference), runs_planned):
            exits[rc] = exits.get(rc, 0) + 1
            if known:
                seen.setdefault(known, []).append(n)
            elif problems:
                failed.append((cls, n, injected, rc, problems, err))
    wall = time.monotonic() - t0
    for cls, n, injected, rc, problems, err in failed[:25]:
        print("FAIL %s:%d (injected %s, exit %s): %s\n    stderr: %s" % (
            cls, n, injected, rc, "; ".join(problems),
            err.strip().replace("\n", "\n            ")[-1500:]))
    for kcls, func, note in args.known:
        hits = seen.get((kcls, func), [])
        if hits:
            print("torture: known (tests/fault/known.txt): %s in %s, %d runs "
                  "(e.g. N=%s): %s" % (kcls, func, len(hits), min(hits), note))
        elif kcls in classes:
            print("torture: known entry not hit, fixed?: %s %s" % (kcls, func))
    print("torture: exits %s in %.1fs" % (
        ", ".join("%s: %d" % (k, v) for k, v in sorted(exits.items(),
                                                        key=str)), wall))
    nknown = sum(len(v) for v in seen.values())
    print("torture: %d passed, %d failed" % (len(runs_planned) - len(failed) - nknown,
                                              len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
