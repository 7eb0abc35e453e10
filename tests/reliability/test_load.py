"""A bounded load test on loopback.

For LOAD_SECS seconds: 64 Python clients upload a small CNN and poll until
their job ends, verifying each result byte for byte; 8 slow clients trickle
request bodies and heads a few bytes at a time; wrk hammers the read paths
(a job resource, a result revalidation, /metrics); a prober times /livez on
a fresh connection every 50 ms; a sampler reads the daemon's RSS.

Asserted: the daemon never answers 5xx and never dies, refuses excess only
with 429 (queue full) or 503, every accepted job succeeds with the right
bytes, RSS stays bounded, and /livez answers every probe, the 99th
percentile of the sample (about 300 probes) within the issue's 100 ms and
the slowest within a second.  The load generator shares the two cores with
the daemon, so the maximum is recorded rather than held to 100 ms: it met
that in most runs here but not all (docs/reliability.md has the figures).

Then memory across jobs: four 10,000-tensor jobs in a row, and the
daemon's resident size must come back near idle after each.
"""
import json
import os
import re
import shutil
import subprocess
import threading
import time

import harness as h

LOAD_SECS = float(os.environ.get("WB_LOAD_SECS", "20"))
UPLOADERS = 64
SLOW = 8
LIVEZ_P99_MS = 100.0
LIVEZ_MAX_MS = 1000.0
RSS_BOUND_KIB = 1024 * 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes = {}
        self.accepted = 0
        self.succeeded = 0
        self.bad = []

    def code(self, c):
        with self.lock:
            self.codes[c] = self.codes.get(c, 0) + 1

    def fail(self, what):
        with self.lock:
            self.bad.append(what)


def uploader(d, cnn, stats, stop, idx):
    """Submit, poll until the end, fetch and compare the result; repeat."""
    npz = cnn["npz"].read_bytes()
    while not stop.is_set():
        try:
            r = d.submit(npz, cnn["spec"], timeout=30)
        except OSError as e:
            stats.fail("upload: %r" % e)
            return
        stats.code(r.status)
        if r.status in (429, 503):
            time.sleep(0.05 + (idx % 7) * 0.02)
            continue
        if r.status != 202:
            stats.fail("POST %d %s" % (r.status, r.body[:200]))
            continue
        with stats.lock:
            stats.accepted += 1
        jid = r.json()["id"]
        deadline = time.monotonic() + 120
        while True:
            g = d.request("GET", f"/v1/jobs/{jid}?wait=5", timeout=30)
            stats.code(g.status)
            if g.status != 200:
                stats.fail("GET %d" % g.status)
                break
            j = g.json()
            if j["state"] in ("succeeded", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                stats.fail("job %s never ended" % jid)
                break
        if g.status == 200 and j["state"] == "succeeded":
            res = d.request("GET", f"/v1/jobs/{jid}/result", timeout=30)
            stats.code(res.status)
            if res.status == 200 and res.body == cnn["ref_bytes"]:
                with stats.lock:
                    stats.succeeded += 1
            else:
                stats.fail("result of %s: %d, %d bytes" % (jid, res.status, len(res.body)))
        elif g.status == 200:
            stats.fail("job %s ended %s" % (jid, j["state"]))


def slow_client(d, stop, idx, answers):
    """Trickle: half send a body 64 bytes every 100 ms, half a head."""
    while not stop.is_set():
        if idx % 2:
            head = (b"POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: application/zip\r\n"
                    b"Content-Length: 4096\r\n\r\n")
            chunks = [b"x" * 64] * 64
        else:
            head = b"GET /v1/limits HTTP/1.1\r\n"
            chunks = [b"X-Slow: %d\r\n" % i for i in range(40)] + [b"Host: x\r\n\r\n"]
        a = h.slow_socket(d.port, head, chunks, 0.1, source="127.0.0.2", timeout=30)
        answers.append(a.split(b"\r\n", 1)[0])


def prober(d, stop, lat):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            r = d.request("GET", "/livez", timeout=10, source="127.0.0.3")
            ok = r.status == 200
        except OSError:
            ok = False
        lat.append(((time.monotonic() - t0) * 1000.0, ok))
        time.sleep(0.05)


def sampler(d, stop, rss):
    while not stop.is_set():
        try:
            rss.append(h.rss_kib(d.proc.pid)[0])
        except OSError:
            return
        time.sleep(0.25)


def run_wrk(port, path, secs, headers=()):
    cmd = ["wrk", "-t", "2", "-c", "16", "-d", "%ds" % secs, "--latency"]
    for hd in headers:
        cmd += ["-H", hd]
    p = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                       timeout=secs + 60)
    out = p.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    return {"rps": float(rps.group(1)) if rps else 0.0,
            "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "",
            "p99": p99.group(1) if p99 else "", "raw": out}


def test_load(cnn, tmp_path):
    assert shutil.which("wrk"), "wrk is not installed (tests/reliability/deps.sh installs it)"
    d = h.Daemon(tmp_path, ["--workers", "2", "--queue-size", "16", "--http-threads", "4",
                            "--connection-limit", "1024", "--per-ip-limit", "512",
                            "--connection-timeout", "10"]).start()
    stats = Stats()
    stop = threading.Event()
    lat, rss, slow_answers = [], [], []
    # One finished job for wrk to read.
    first = d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=30").json()
    assert first["state"] == "succeeded"
    sha = first["result"]["sha256"]
    threads = [threading.Thread(target=uploader, args=(d, cnn, stats, stop, i), daemon=True)
               for i in range(UPLOADERS)]
    threads += [threading.Thread(target=slow_client, args=(d, stop, i, slow_answers),
                                 daemon=True) for i in range(SLOW)]
    aux = [threading.Thread(target=prober, args=(d, stop, lat), daemon=True),
           threading.Thread(target=sampler, args=(d, stop, rss), daemon=True)]
    t0 = time.monotonic()
    for t in threads + aux:
        t.start()
    wrk_secs = max(2, int(LOAD_SECS / 3))
    wrk = {
        "job": run_wrk(d.port, f"/v1/jobs/{first['id']}", wrk_secs),
        "result_304": run_wrk(d.port, f"/v1/jobs/{first['id']}/result", wrk_secs,
                              [f'If-None-Match: "{sha}"']),
        "metrics": run_wrk(d.port, "/metrics", wrk_secs),
    }
    time.sleep(max(0.0, LOAD_SECS - (time.monotonic() - t0)))
    stop.set()
    for t in threads + aux:
        t.join(timeout=120)
    elapsed = time.monotonic() - t0
    alive = d.proc.poll() is None
    livez_after = d.request("GET", "/livez").status if alive else None
    rc = d.stop()

    ms = [m for m, ok in lat]
    failed_probes = sum(1 for m, ok in lat if not ok)
    figures = {
        "seconds": round(elapsed, 1), "uploaders": UPLOADERS, "slow_clients": SLOW,
        "jobs_accepted": stats.accepted, "jobs_verified": stats.succeeded,
        "answers": {str(k): v for k, v in sorted(stats.codes.items())},
        "refused_429": stats.codes.get(429, 0), "refused_503": stats.codes.get(503, 0),
        "livez_probes": len(lat), "livez_p50_ms": round(h.percentile(ms, 50), 2),
        "livez_p99_ms": round(h.percentile(ms, 99), 2), "livez_max_ms": round(max(ms), 2),
        "rss_max_kib": max(rss), "rss_first_kib": rss[0] if rss else 0,
        "slow_answers": sorted(set(a.decode(errors="replace") for a in slow_answers)),
    }
    for k, v in wrk.items():
        figures[f"wrk_{k}_rps"] = v["rps"]
        figures[f"wrk_{k}_p99"] = v["p99"]
    h.record("load", **figures)
    print(json.dumps(figures, indent=1))

    assert alive and livez_after == 200 and rc == 0, d.logtext()[-3000:]
    assert stats.bad == [], stats.bad[:10]
    assert all(c < 500 or c == 503 for c in stats.codes), stats.codes
    assert set(stats.codes) <= {200, 202, 429, 503}, stats.codes
    assert stats.accepted > 0 and stats.succeeded == stats.accepted
    for k, v in wrk.items():
        assert v["rps"] > 0 and v["non_2xx_3xx"] == 0, (k, v["raw"])
    assert failed_probes == 0, failed_probes
    assert len(ms) >= 50, len(ms)
    assert h.percentile(ms, 99) < LIVEZ_P99_MS and max(ms) < LIVEZ_MAX_MS, figures
    assert max(rss) < RSS_BOUND_KIB, figures
    # The daemon's own log has no 5xx but the deliberate 503.
    for line in d.logtext().splitlines():
        if '"event":"request"' in line:
            st = json.loads(line).get("status", "0")
            assert not st.startswith("5") or st == "503", line


def settled_rss(d, secs=5.0):
    """The daemon's VmRSS once it stops falling: a worker frees a job's
    report after answering it, and gives memory back after a second idle."""
    time.sleep(1.5)
    last, deadline = h.rss_kib(d.proc.pid)[0], time.monotonic() + secs
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = h.rss_kib(d.proc.pid)[0]
        if now >= last:
            return now
        last = now
    return last


def test_memory_goes_back_after_many_tensor_jobs(tmp_path):
    """Jobs of 10,000 tensors, one after another: what each job allocated
    (its report alone is tens of megabytes) goes back to the system, so
    the daemon's resident size, once idle, stays near idle and stops
    growing, instead of each worker's malloc arena keeping its peak."""
    import numpy as np
    n = 5000
    rng = np.random.default_rng(5)
    npz = tmp_path / "many.npz"
    np.savez_compressed(npz, **{k: v for i in range(n) for k, v in (
        (f"m{i}.weight", rng.standard_normal((8, 8), dtype=np.float32)),
        (f"m{i}.bias", rng.standard_normal(8, dtype=np.float32)))})
    spec = {"weightbridge_spec": 1,
            "layers": [{"name": f"m{i}", "type": "Dense", "from": f"m{i}"} for i in range(n)]}
    d = h.Daemon(tmp_path, ["--workers", "2"]).start()
    try:
        body = npz.read_bytes()
        idle = settled_rss(d)
        after = []
        for _ in range(4):
            r = d.submit(body, spec, "?wait=120", timeout=180)
            assert r.status == 200 and r.json()["state"] == "succeeded", r.body[:500]
            assert d.request("GET", f"/v1/jobs/{r.json()['id']}/report").status == 200
            after.append(settled_rss(d))
    finally:
        rc = d.stop()
    h.record("memory", many_tensors=2 * n, rss_idle_kib=idle, rss_after_jobs_kib=after)
    assert rc == 0
    # Measured: idle 12 MB, then 21, 38, 39, 39 MB (each of the two workers
    # keeps a little); without giving memory back, 86 MB after the first
    # job and 165 MB after the fourth.
    assert max(after) <= idle + 48 * 1024, (idle, after)
    assert after[-1] <= after[1] + 8 * 1024, (idle, after)
