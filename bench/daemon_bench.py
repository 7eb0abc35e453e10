#!/usr/bin/env python3
"""Benchmark weightbridged on loopback: upload throughput, RSS, job latency.

    daemon_bench.py --build DIR --data DIR [--quick] [--uploads N]
                    [--jobs1 N] [--jobs8 N] [--workers N] [--deadline S]
                    [--results FILE]

Starts BUILD/weightbridged on 127.0.0.1 with port 0 (--port-file tells us the
port it bound), a temporary spool and default settings otherwise (workers =
CPUs unless --workers), waits for /readyz, and then:

  upload   POSTs the large archive (large.npz; resnet50.npz with --quick)
           --uploads times as a raw application/octet-stream body with the
           spec in the X-Weightbridge-Spec header (base64url JSON), streamed
           from the file in 1 MiB writes.  Throughput = archive bytes / time
           from the first byte sent to the 202 answer, which comes once the
           upload is on disk and hashed.  A thread samples the daemon's VmRSS
           (/proc/PID/status) every 20 ms.  All but the last job are
           cancelled right away; the last one is left to convert, and the
           RSS while it converts is reported too.
  baseline resnet50.npz uploaded alone (the job deleted once accepted) and
           converted by the CLI (weightbridge convert -q), --jobs1 times
           each: what an end-to-end job is compared with.
  latency  for resnet50.npz, end to end per job: POST ?wait=60 (the daemon
           answers when the job has ended), GET ?wait=60 while it has not,
           then GET the result (timed to its last byte, and again once the
           client has checked it against the job's SHA-256); the job is
           then deleted.  First with 1 client (--jobs1
           jobs in sequence), then 8 concurrent clients (--jobs8 jobs each).

Bounded: a --deadline (default 900 s) stops issuing new work, each request
has a timeout, and at the end the daemon it started, and only that one, gets
SIGTERM by PID (SIGKILL by PID if it has not exited 30 s later); the
temporary spool is removed.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MB = 1e6
IO_TIMEOUT = 600


class Daemon:
    def __init__(self, binary, workdir, extra=()):
        self.dir = workdir
        self.spool = os.path.join(workdir, "spool")
        self.port_file = os.path.join(workdir, "port")
        self.log_path = os.path.join(workdir, "daemon.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--spool", self.spool,
             "--port-file", self.port_file, "--shutdown-grace", "5",
             "--drain-delay", "0"] + list(extra),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self.port = None

    def wait_ready(self, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("weightbridged exited with %d:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if self.port is None:
                try:
                    with open(self.port_file) as f:
                        txt = f.read().strip()
                    self.port = int(txt) if txt else None
                except (OSError, ValueError):
                    pass
            if self.port is not None:
                try:
                    st, _, _ = request(self.port, "GET", "/readyz", timeout=2)
                    if st == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("weightbridged not ready after %d s:\n%s" % (timeout, self.log_tail()))

    def workers(self):
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == "ready":
                    return int(rec.get("workers", 0))
        return 0

    def log_tail(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class RssSampler(threading.Thread):
    """Samples VmRSS of one process; peak and samples between mark()s."""

    def __init__(self, pid, period=0.02):
        super().__init__(daemon=True)
        self.path = "/proc/%d/status" % pid
        self.period = period
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.peak = 0

    def read(self, field="VmRSS"):
        try:
            with open(self.path) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def mark(self):
        """Return the peak since the last mark and start a new window."""
        with self.lock:
            p, self.peak = self.peak, self.read()
        return p

    def run(self):
        while not self.stop_ev.is_set():
            v = self.read()
            with self.lock:
                self.peak = max(self.peak, v)
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join()


def request(port, method, path, body=None, headers=None, timeout=IO_TIMEOUT, sink=None):
    """One request on a fresh connection: (status, parsed JSON or None, bytes read)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, blocksize=1 << 20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        if sink is not None and r.status == 200:
            n = 0
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                sink(b)
                n += len(b)
            return r.status, None, n
        data = r.read()
        ctype = r.getheader("Content-Type", "")
        js = json.loads(data) if "json" in ctype and data else None
        return r.status, js, len(data)
    finally:
        c.close()


def spec_header(path):
    with open(path, "rb") as f:
        return base64.urlsafe_b64encode(f.read()).decode().rstrip("=")


def post_job(port, archive, spec, wait=0):
    size = os.path.getsize(archive)
    hdr = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
           "X-Weightbridge-Spec": spec}
    path = "/v1/jobs" + ("?wait=%d" % wait if wait else "")
    with open(archive, "rb") as f:
        st, js, _ = request(port, "POST", path, body=f, headers=hdr)
    if st not in (200, 202) or js is None:
        raise RuntimeError("POST /v1/jobs: %d %s" % (st, js))
    return js


def wait_job(port, job, deadline):
    while job["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError("job %s still %s at the deadline" % (job["id"], job["state"]))
        st, job, _ = request(port, "GET", "/v1/jobs/%s?wait=60" % job["id"])
        if st != 200:
            raise RuntimeError("GET job: %d %s" % (st, job))
    return job


def delete_job(port, jid):
    request(port, "DELETE", "/v1/jobs/%s" % jid, timeout=60)


def one_job(port, archive, spec, deadline):
    """End-to-end latency of one job (s): until the result's last byte has
    arrived, and until the client has also checked its SHA-256.  A second
    thread hashes the chunks as they arrive (hashlib lets go of the GIL),
    as a client that checks what it downloads would."""
    t0 = time.perf_counter()
    job = post_job(port, archive, spec, wait=60)
    job = wait_job(port, job, deadline)
    if job["state"] != "succeeded":
        raise RuntimeError("job %s %s: %s" % (job["id"], job["state"], job.get("error")))
    h = hashlib.sha256()
    q = queue.Queue(maxsize=16)

    def hasher():
        while True:
            b = q.get()
            if b is None:
                return
            h.update(b)

    ht = threading.Thread(target=hasher)
    ht.start()
    try:
        st, _, n = request(port, "GET", "/v1/jobs/%s/result" % job["id"], sink=q.put)
        lat = time.perf_counter() - t0
    finally:
        q.put(None)
        ht.join()
    checked = time.perf_counter() - t0
    if st != 200 or h.hexdigest() != job["result"]["sha256"]:
        raise RuntimeError("result of job %s: status %d, SHA-256 mismatch" % (job["id"], st))
    delete_job(port, job["id"])
    return lat, checked


def upload_phase(port, sampler, archive, spec, n, deadline):
    size = os.path.getsize(archive)
    out = {"archive": os.path.basename(archive), "bytes": size, "runs": []}
    for i in range(n):
        if time.monotonic() > deadline:
            break
        sampler.mark()
        base = sampler.read()
        t0 = time.perf_counter()
        job = post_job(port, archive, spec)
        dt = time.perf_counter() - t0
        peak = sampler.mark()
        run = {"seconds": dt, "mb_per_s": size / MB / dt, "rss_before": base,
               "rss_peak_upload": peak}
        if i < n - 1:
            delete_job(port, job["id"])
        else:
            t1 = time.perf_counter()
            job = wait_job(port, job, deadline)
            run["convert_seconds"] = time.perf_counter() - t1
            run["convert_state"] = job["state"]
            run["rss_peak_convert"] = sampler.mark()
            delete_job(port, job["id"])
        out["runs"].append(run)
        print("upload %d/%d: %.0f MB in %.2f s = %.0f MB/s, daemon RSS %.0f -> peak %.0f MB%s" % (
            i + 1, n, size / MB, dt, size / MB / dt, base / MB, peak / MB,
            ", then converted in %.1f s (%s), peak RSS %.0f MB" % (
                run["convert_seconds"], run["convert_state"], run["rss_peak_convert"] / MB)
            if "convert_seconds" in run else ""), file=sys.stderr)
    if out["runs"]:
        out["median_mb_per_s"] = statistics.median(r["mb_per_s"] for r in out["runs"])
        out["median_rss_peak_upload"] = statistics.median(r["rss_peak_upload"] for r in out["runs"])
    return out


def baseline_phase(port, cli, archive, spec_path, spec, n, deadline):
    """What an end-to-end job is compared with: uploading the archive alone
    (the job is deleted as soon as it is accepted) and converting it with
    the CLI, both as `convert -q` and producing what a job produces (the
    JSON report with per-weight digests and statistics, and the file's
    SHA-256: --report --checksum), medians of n each."""
    ups, clis, fulls = [], [], []
    out = os.path.join(os.path.dirname(archive), "out", "daemon-baseline.h5")
    rep = out + ".report.json"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        job = post_job(port, archive, spec)
        ups.append(time.perf_counter() - t0)
        delete_job(port, job["id"])
    # A deleted job may still be stopping: let the CPUs go quiet first.
    time.sleep(1.0)
    for _ in range(len(ups)):
        t0 = time.perf_counter()
        subprocess.run([cli, "convert", "-q", archive, "--spec", spec_path, "-o", out],
                       check=True, timeout=IO_TIMEOUT)
        clis.append(time.perf_counter() - t0)
        os.unlink(out)
        t0 = time.perf_counter()
        subprocess.run([cli, "convert", "-q", "--report", rep, "--checksum", archive,
                        "--spec", spec_path, "-o", out], check=True, timeout=IO_TIMEOUT)
        fulls.append(time.perf_counter() - t0)
        os.unlink(out)
        os.unlink(rep)
    res = {"upload_s": statistics.median(ups), "cli_s": statistics.median(clis),
           "cli_report_s": statistics.median(fulls)}
    print("baseline for %s: upload alone %.3f s, CLI %.3f s, CLI with --report "
          "--checksum %.3f s (medians of %d)" % (
              os.path.basename(archive), res["upload_s"], res["cli_s"],
              res["cli_report_s"], len(ups)), file=sys.stderr)
    return res


def latency_phase(port, sampler, archive, spec, clients, jobs_each, deadline):
    lats, checks, errors = [], [], []
    lock = threading.Lock()

    def client():
        for _ in range(jobs_each):
            if time.monotonic() > deadline:
                return
            try:
                lat, checked = one_job(port, archive, spec, deadline)
                with lock:
                    lats.append(lat)
                    checks.append(checked)
            except (RuntimeError, OSError) as e:
                with lock:
                    errors.append(str(e))
                return

    sampler.mark()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    res = {"clients": clients, "jobs": len(lats), "errors": errors, "wall_s": wall,
           "rss_peak": sampler.mark()}
    if lats:
        s = sorted(lats)
        res.update({"median_s": statistics.median(s), "min_s": s[0], "max_s": s[-1],
                    "p90_s": s[min(len(s) - 1, int(0.9 * len(s)))],
                    "jobs_per_s": len(s) / wall,
                    "median_checked_s": statistics.median(checks)})
    print("latency, %d client(s): %d jobs, median %.2f s (%.2f s with the client's SHA-256 "
          "check), p90 %.2f s, max %.2f s, %.2f jobs/s, daemon peak RSS %.0f MB%s" % (
              clients, len(lats), res.get("median_s", 0), res.get("median_checked_s", 0),
              res.get("p90_s", 0),
              res.get("max_s", 0), res.get("jobs_per_s", 0), res["rss_peak"] / MB,
              ", errors: %s" % errors[:3] if errors else ""), file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="build/bench-data")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--uploads", type=int, default=0, help="upload runs (3; 2 with --quick)")
    ap.add_argument("--jobs1", type=int, default=0, help="jobs of the single client (5; 3)")
    ap.add_argument("--jobs8", type=int, default=0, help="jobs of each of 8 clients (2; 1)")
    ap.add_argument("--workers", type=int, default=0,
                    help="the daemon's --workers (default: its own, one per CPU)")
    ap.add_argument("--deadline", type=float, default=900)
    ap.add_argument("--results", default="")
    a = ap.parse_args()
    uploads = a.uploads or (2 if a.quick else 3)
    jobs1 = a.jobs1 or (3 if a.quick else 5)
    jobs8 = a.jobs8 or (1 if a.quick else 2)

    binary = os.path.join(a.build, "weightbridged")
    big = "resnet50" if a.quick or not os.path.isfile(os.path.join(a.data, "large.npz")) else "large"
    for name in {big, "resnet50"}:
        if not os.path.isfile(os.path.join(a.data, name + ".npz")):
            sys.exit("daemon_bench: %s/%s.npz missing; run bench/gen.py" % (a.data, name))
    deadline = time.monotonic() + a.deadline

    work = tempfile.mkdtemp(prefix="daemon-", dir=a.data)
    d = sampler = None
    results = {}
    try:
        d = Daemon(binary, work, ["--workers", str(a.workers)] if a.workers else [])
        d.wait_ready()
        sampler = RssSampler(d.pid)
        sampler.start()
        results["workers"] = d.workers()
        results["rss_idle"] = sampler.read()
        print("weightbridged pid %d on 127.0.0.1:%d, %d workers, idle RSS %.0f MB" % (
            d.pid, d.port, results["workers"], results["rss_idle"] / MB), file=sys.stderr)
        results["upload"] = upload_phase(
            d.port, sampler, os.path.join(a.data, big + ".npz"),
            spec_header(os.path.join(a.data, big + ".spec.json")), uploads, deadline)
        r50 = os.path.join(a.data, "resnet50.npz")
        r50spec = spec_header(os.path.join(a.data, "resnet50.spec.json"))
        results["baseline"] = baseline_phase(
            d.port, os.path.join(a.build, "weightbridge"), r50,
            os.path.join(a.data, "resnet50.spec.json"), r50spec, jobs1, deadline)
        results["latency"] = [
            latency_phase(d.port, sampler, r50, r50spec, 1, jobs1, deadline),
            latency_phase(d.port, sampler, r50, r50spec, 8, jobs8, deadline)]
        results["rss_hwm"] = sampler.read("VmHWM")
    finally:
        if sampler is not None:
            sampler.stop()
        if d is not None:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)

    up = results["upload"]
    print("\n| daemon (%d workers) | value |\n|---|---|" % results["workers"])
    if up["runs"]:
        print("| upload %s (%.0f MB), median of %d | %.0f MB/s |" % (
            up["archive"], up["bytes"] / MB, len(up["runs"]), up["median_mb_per_s"]))
        print("| daemon RSS idle / peak during upload | %.0f / %.0f MB |" % (
            results["rss_idle"] / MB, up["median_rss_peak_upload"] / MB))
        last = up["runs"][-1]
        if "convert_seconds" in last:
            print("| converting it: time / daemon peak RSS | %.1f s / %.0f MB |" % (
                last["convert_seconds"], last["rss_peak_convert"] / MB))
    for lr in results["latency"]:
        if lr["jobs"]:
            print("| resnet50.npz end to end, %d client(s), %d jobs: median / p90 / max "
                  "| %.2f / %.2f / %.2f s (%.2f jobs/s) |" % (
                      lr["clients"], lr["jobs"], lr["median_s"], lr["p90_s"], lr["max_s"],
                      lr["jobs_per_s"]))
        if lr["errors"]:
            print("| errors with %d client(s) | %s |" % (lr["clients"], lr["errors"][0]))
    bl, l1 = results.get("baseline"), results["latency"][0]
    if bl and "median_s" in l1:
        print("| resnet50.npz alone: upload / CLI -q / CLI --report --checksum (medians) "
              "| %.3f / %.3f / %.3f s |" % (bl["upload_s"], bl["cli_s"], bl["cli_report_s"]))
        print("| end to end with 1 client, with the client's check: median | %.2f s |" % (
            l1["median_checked_s"]))
        print("| end to end with 1 client / (upload + CLI -q): to the last byte / "
              "with the client's check | %.2fx / %.2fx |" % (
                  l1["median_s"] / (bl["upload_s"] + bl["cli_s"]),
                  l1["median_checked_s"] / (bl["upload_s"] + bl["cli_s"])))
        print("| end to end with 1 client / (upload + CLI --report --checksum): to the last "
              "byte / with the client's check | %.2fx / %.2fx |" % (
                  l1["median_s"] / (bl["upload_s"] + bl["cli_report_s"]),
                  l1["median_checked_s"] / (bl["upload_s"] + bl["cli_report_s"])))
    print("| daemon peak RSS over the run (VmHWM) | %.0f MB |" % (results["rss_hwm"] / MB))
    if a.results:
        with open(a.results, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    if any(lr["errors"] for lr in results["latency"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
