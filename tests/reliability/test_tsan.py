"""The daemon built with ThreadSanitizer under concurrent work: uploads,
waits (suspended requests woken by workers and the timer), cancels of
running and queued jobs, listings and metrics, a SIGHUP, then SIGTERM with
jobs still running (the shutdown grace and requeue path).  Not a single
ThreadSanitizer report."""
import signal
import threading
import time

import numpy as np
import pytest

import harness as h

SECS = 8


def slow_model(path):
    d = {f"l{i}.weight": np.zeros((1024, 1024), np.float32) for i in range(8)}
    np.savez_compressed(path, **d)
    return path, {"weightbridge_spec": 1, "layers": [
        {"name": f"l{i}", "type": "Dense", "from": f"l{i}"} for i in range(8)]}


def test_tsan_daemon_concurrency(cnn, tmp_path):
    binary = h.TSAN_BUILD / "weightbridged"
    if not binary.exists():
        pytest.fail("build the TSan daemon first (make SANITIZER=thread all)")
    tokens = tmp_path / "tokens"
    tokens.write_text("t0k3n\n")
    d = h.Daemon(tmp_path, ["--workers", "2", "--queue-size", "8", "--max-ratio", "100000",
                            "--tokens-file", str(tokens), "--shutdown-grace", "0",
                            "--reap-interval", "1", "--ttl", "3"],
                 build=h.TSAN_BUILD,
                 env={"TSAN_OPTIONS": "halt_on_error=0:exitcode=%d:second_deadlock_stack=1:"
                      "suppressions=%s" % (h.TSAN_EXIT, h.ROOT / "tests" / "reliability" /
                                           "tsan.supp")})
    d.start(timeout=120)
    auth = {"Authorization": "Bearer t0k3n"}
    npz = cnn["npz"].read_bytes()
    snpz, sspec = slow_model(tmp_path / "slow.npz")
    slow = snpz.read_bytes()
    stop = threading.Event()
    codes = {}
    lock = threading.Lock()

    def count(c):
        with lock:
            codes[c] = codes.get(c, 0) + 1

    def submitter(i):
        while not stop.is_set():
            r = d.submit(npz if i % 3 else slow, cnn["spec"] if i % 3 else sspec,
                         "?wait=2" if i % 2 else "", headers=auth, timeout=60)
            count(r.status)
            if r.status in (200, 202) and i % 4 == 0:
                # Cancel it, running or queued.
                count(d.request("DELETE", "/v1/jobs/" + r.json()["id"], headers=auth,
                                timeout=60).status)

    def reader():
        while not stop.is_set():
            count(d.request("GET", "/v1/jobs?limit=10", headers=auth).status)
            count(d.request("GET", "/metrics").status)
            count(d.request("GET", "/readyz").status)

    threads = [threading.Thread(target=submitter, args=(i,), daemon=True) for i in range(8)]
    threads += [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(SECS / 2)
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(SECS / 2)
    # Leave a slow job running into the shutdown.
    d.submit(slow, sspec, headers=auth, timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    rc = d.stop(timeout=120)
    log = d.logtext()
    reports = log.count("WARNING: ThreadSanitizer")
    h.record("tsan_daemon", seconds=SECS, answers={str(k): v for k, v in sorted(codes.items())},
             reports=reports, exit_status=rc)
    assert reports == 0, log[log.find("WARNING: ThreadSanitizer"):][:8000]
    assert rc == 0, log[-3000:]
    assert set(codes) <= {200, 202, 204, 429, 503}, codes
    assert codes.get(202, 0) + codes.get(200, 0) > 20, codes
