#!/usr/bin/env python3
"""Time weightbridge against the Python way (peer.py) on the generated inputs.

    bench.py --build DIR --data DIR [--runs N] [--quick] [--inputs a,b]
             [--results FILE]

Normally started by bench/run.sh, which installs GNU time, builds and
generates the data first.  For each input:

  1. weightbridge convert --dry-run must plan the spec cleanly;
  2. both tools convert once and compare.py checks that the two files hold
     the same layers, weight names and values, bit for bit;
  3. one warm-up run of each, then N runs alternating ours, peer, ours, ...
     each under /usr/bin/time -v: wall time from the driver's monotonic clock
     around the process, peak RSS ("Maximum resident set size") and CPU
     time from GNU time.  The output file is deleted after every run.

Prints a Markdown table of medians with the ratios peer/ours and peak RSS
divided by the archive's largest tensor, then each tool's fixed cost (time
and RSS converting tiny.npz, one 4x4 Linear), and writes every sample to
--results (JSON).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FULL = ["resnet50", "resnet50_stored", "resnet50_torch", "large", "large_stored", "small"]
QUICK = ["resnet50", "resnet50_stored", "small"]


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def timed(cmd, out):
    """Run cmd under GNU time; (wall s, peak RSS bytes, user s, sys s)."""
    tf = out + ".time"
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", "-o", tf] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    stats = {}
    try:
        with open(tf) as f:
            for line in f:
                k, _, v = line.strip().rpartition(": ")
                stats[k] = v
        os.unlink(tf)
    except OSError:
        pass
    for path in (out, tf):
        if os.path.exists(path):
            os.unlink(path)
    if p.returncode != 0:
        sys.exit("bench: %s failed (exit %d):\n%s" % (
            " ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return (wall, int(stats["Maximum resident set size (kbytes)"]) * 1024,
            float(stats["User time (seconds)"]), float(stats["System time (seconds)"]))


def commands(a, inp, out):
    src = os.path.join(a.data, inp["file"])
    spec = os.path.join(a.data, inp["spec"])
    ours = [os.path.join(a.build, "weightbridge"), "convert", src, "--spec", spec,
            "-o", out, "-q"]
    peer = [sys.executable, os.path.join(HERE, "peer.py"), src, out]
    return ours, peer


def check(a, inp):
    src = os.path.join(a.data, inp["file"])
    spec = os.path.join(a.data, inp["spec"])
    wb = os.path.join(a.build, "weightbridge")
    p = subprocess.run([wb, "convert", src, "--spec", spec, "-o",
                        os.path.join(a.out, "dry.h5"), "--dry-run", "-q"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit("bench: %s: the spec does not plan cleanly:\n%s" % (
            inp["name"], p.stdout.decode(errors="replace")[-3000:]))
    ours, peer = commands(a, inp, os.path.join(a.out, "check-ours.h5"))
    subprocess.run(ours, check=True, stdout=subprocess.DEVNULL)
    peer[-1] = os.path.join(a.out, "check-peer.h5")
    subprocess.run(peer, check=True)
    p = subprocess.run([sys.executable, os.path.join(HERE, "compare.py"),
                        ours[-2], peer[-1]], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    for f in (ours[-2], peer[-1]):
        os.unlink(f)
    if p.returncode != 0:
        sys.exit("bench: %s: the outputs differ:\n%s" % (
            inp["name"], p.stdout.decode(errors="replace")))
    return p.stdout.decode().strip()


def summary(samples):
    walls = [s[0] for s in samples]
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls),
            "wall_max_s": max(walls),
            "rss_bytes": int(statistics.median(s[1] for s in samples)),
            "rss_max_bytes": max(s[1] for s in samples),
            "user_s": statistics.median(s[2] for s in samples),
            "sys_s": statistics.median(s[3] for s in samples)}


def ratio(a, b):
    r = a / b
    return "%.0f" % r if r >= 100 else "%.2f" % r


def table(rows):
    mb = 1e6
    head = ("| input | tensors | raw MB | file MB | ours s | peer s | peer/ours time "
            "| ours RSS MB | peer RSS MB | peer/ours RSS | RSS/largest ours | RSS/largest peer |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        o, p = r["ours"], r["peer"]
        lines.append("| %s | %d | %.1f | %.1f | %.3f | %.3f | %.2fx | %.0f | %.0f | %.2fx | %s | %s |" % (
            r["input"], r["tensors"], r["raw_bytes"] / mb, r["file_bytes"] / mb,
            o["wall_s"], p["wall_s"], p["wall_s"] / o["wall_s"],
            o["rss_bytes"] / mb, p["rss_bytes"] / mb, p["rss_bytes"] / o["rss_bytes"],
            ratio(o["rss_bytes"], r["largest_tensor_bytes"]),
            ratio(p["rss_bytes"], r["largest_tensor_bytes"])))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="build/bench-data")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--inputs", default="")
    ap.add_argument("--results", default="")
    a = ap.parse_args()
    if a.runs < 1:
        sys.exit("bench: --runs must be at least 1")

    with open(os.path.join(a.data, "manifest.json")) as f:
        manifest = json.load(f)
    avail = {}
    for entry in manifest["sets"].values():
        for inp in entry["inputs"]:
            avail[inp["name"]] = (entry, inp)
    wanted = [s for s in a.inputs.split(",") if s] or (QUICK if a.quick else FULL)
    a.out = os.path.join(a.data, "out")
    os.makedirs(a.out, exist_ok=True)

    m = machine()
    print("machine: %d CPUs, %s, %.1f GiB RAM, Linux %s; load average %s" % (
        m.get("nproc", 0), m.get("cpu", "?"), m.get("mem_gib", 0), m["kernel"], loadavg()))
    print("runs: 1 warm-up + %d measured per tool and input, alternating; medians\n" % a.runs)

    rows = []
    t_start = time.time()
    base = None
    if "tiny" in avail:
        out = os.path.join(a.out, "tiny.h5")
        ours, peer = commands(a, avail["tiny"][1], out)
        base = {"ours": summary([timed(ours, out) for _ in range(3)]),
                "peer": summary([timed(peer, out) for _ in range(3)])}
    for name in wanted:
        if name not in avail:
            print("bench: %s: not generated, skipped" % name, file=sys.stderr)
            continue
        entry, inp = avail[name]
        note = check(a, inp)
        print("%s: %s" % (name, note), file=sys.stderr)
        out = os.path.join(a.out, name + ".h5")
        ours, peer = commands(a, inp, out)
        timed(ours, out)
        timed(peer, out)
        so, sp = [], []
        for i in range(a.runs):
            so.append(timed(ours, out))
            sp.append(timed(peer, out))
            print("%s: run %d/%d: ours %.3f s %.0f MB, peer %.3f s %.0f MB" % (
                name, i + 1, a.runs, so[-1][0], so[-1][1] / 1e6, sp[-1][0],
                sp[-1][1] / 1e6), file=sys.stderr)
        rows.append({"input": name, "file": inp["file"], "storage": inp["storage"],
                     "tensors": entry["tensors"], "raw_bytes": entry["raw_bytes"],
                     "file_bytes": inp["file_bytes"],
                     "largest_tensor": entry["largest_tensor"],
                     "largest_tensor_bytes": entry["largest_tensor_bytes"],
                     "check": note, "ours": summary(so), "peer": summary(sp),
                     "samples": {"ours": so, "peer": sp}})

    print(table(rows))
    if base is not None:
        print("\nfixed cost (tiny.npz, one Linear(4, 4), median of 3): ours %.3f s %.0f MB, "
              "peer %.3f s %.0f MB (Python, numpy and h5py start-up)" % (
                  base["ours"]["wall_s"], base["ours"]["rss_bytes"] / 1e6,
                  base["peer"]["wall_s"], base["peer"]["rss_bytes"] / 1e6))
    print("\nours = %s convert -q (writes to a temporary name, reads every dataset back "
          "and checks it, fsyncs, renames); peer = bench/peer.py (numpy + h5py, no fsync).\n"
          "RSS/largest = peak RSS / bytes of the archive's largest tensor. "
          "Load average at the end: %s; %.0f s in all." % (
              os.path.join(a.build, "weightbridge"), loadavg(), time.time() - t_start))
    if a.results:
        with open(a.results, "w") as f:
            json.dump({"machine": m, "runs": a.runs, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "fixed_cost": base, "rows": rows}, f, indent=1)
            f.write("\n")
        print("samples: %s" % a.results)


if __name__ == "__main__":
    main()
