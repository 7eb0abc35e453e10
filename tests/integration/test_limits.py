"""Limits and refusals that need their own daemon: 413, 429, 401, 503."""
import os
import signal
import subprocess
import time

import pytest

from wbd import DAEMON, SPEC, Daemon


def test_upload_limit(tmp_path, small_npz):
    d = Daemon(tmp_path, ["--upload-limit", "4K", "--spec-limit", "1K"]).start()
    try:
        big = os.urandom(8192)
        # From Content-Length, before reading the body.
        r = d.request("POST", "/v1/inspect", big, {"Content-Type": "application/zip"})
        assert r.status == 413 and r.problem()["type"].endswith("/payload-too-large")
        # While reading a chunked body (no Content-Length).
        def chunks():
            for _ in range(4):
                yield os.urandom(4096)
        r = d.request("POST", "/v1/inspect", chunks(),
                      {"Content-Type": "application/zip", "Transfer-Encoding": "chunked"})
        assert r.status == 413 and "exceeds" in r.problem()["detail"]
        # The spec has its own cap.
        spec = dict(SPEC, pad="x" * 2000)
        r = d.submit(small_npz, spec)
        assert r.status == 413 and r.problem()["type"].endswith("/spec-too-large")
        # Refused uploads leave nothing behind (removed when the request ends).
        deadline = time.monotonic() + 5
        while list((d.spool / "tmp").iterdir()):
            assert time.monotonic() < deadline, list((d.spool / "tmp").iterdir())
            time.sleep(0.02)
    finally:
        assert d.stop() == 0


def test_queue_full_429(tmp_path, small_npz, slow_archive):
    npz, spec = slow_archive
    d = Daemon(tmp_path, ["--workers", "1", "--queue-size", "1", "--max-ratio", "100000"]).start()
    try:
        a = d.submit(npz, spec).json()
        d.wait_state(a["id"], {"running"})
        b = d.submit(small_npz, SPEC)
        assert b.status == 202 and b.json()["state"] == "queued"
        c = d.submit(small_npz, SPEC)
        assert c.status == 429 and c.header("Retry-After") == "5"
        assert c.problem()["type"].endswith("/queue-full")
        m = d.request("GET", "/metrics").body.decode()
        assert "weightbridged_queue_depth 1" in m and "weightbridged_workers_busy 1" in m
        # Cancelling the queued job frees the slot at once.
        r = d.request("DELETE", f"/v1/jobs/{b.json()['id']}")
        assert r.status == 200 and r.json()["state"] == "cancelled"
        assert d.submit(small_npz, SPEC).status == 202
        assert d.request("DELETE", f"/v1/jobs/{a['id']}").json()["state"] == "cancelled"
    finally:
        assert d.stop() == 0


def test_bearer_tokens_and_sighup(tmp_path, small_npz):
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nsecret-one\n")
    d = Daemon(tmp_path, ["--tokens-file", str(tokens)]).start()
    try:
        r = d.request("GET", "/v1/jobs")
        assert r.status == 401 and r.header("WWW-Authenticate").startswith("Bearer")
        r.problem()
        r = d.request("GET", "/v1/jobs", headers={"Authorization": "Bearer wrong"})
        assert r.status == 401 and "invalid_token" in r.header("WWW-Authenticate")
        assert d.request("GET", "/v1/jobs", headers={"Authorization": "Bearer secret-one"}).status == 200
        # Health, metrics, limits and the API description stay open.
        for path in ("/livez", "/readyz", "/metrics", "/v1/limits", "/v1/openapi.json"):
            assert d.request("GET", path).status == 200, path
        # Uploads are refused before the body is read.
        r = d.request("POST", "/v1/inspect", open(small_npz, "rb").read(),
                      {"Content-Type": "application/zip"})
        assert r.status == 401
        tokens.write_text("secret-two\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if d.request("GET", "/v1/jobs", headers={"Authorization": "Bearer secret-two"}).status == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("SIGHUP did not reload the tokens")
        assert d.request("GET", "/v1/jobs", headers={"Authorization": "Bearer secret-one"}).status == 401
    finally:
        assert d.stop() == 0


def test_sigterm_drains_503_and_finishes_running_job(tmp_path, small_npz, slow_archive):
    npz, spec = slow_archive
    d = Daemon(tmp_path, ["--workers", "1", "--max-ratio", "100000", "--drain-delay", "1500"]).start()
    a = d.submit(npz, spec).json()
    d.wait_state(a["id"], {"running"})
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while d.request("GET", "/readyz").status != 503:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = d.request("GET", "/readyz")
    assert r.problem()["type"].endswith("/not-ready")
    r = d.submit(small_npz, SPEC)
    assert r.status == 503 and r.problem()["type"].endswith("/draining")
    assert d.stop(timeout=60) == 0
    # The running job was allowed to finish before exit.
    import json
    state = json.loads((d.spool / "jobs" / a["id"] / "state.json").read_text())
    assert state["state"] == "succeeded"


def test_shutdown_grace_requeues_running_job(tmp_path, slow_archive):
    npz, spec = slow_archive
    d = Daemon(tmp_path, ["--workers", "1", "--max-ratio", "100000", "--shutdown-grace", "0"]).start()
    a = d.submit(npz, spec).json()
    d.wait_state(a["id"], {"running"})
    assert d.stop() == 0
    import json
    state = json.loads((d.spool / "jobs" / a["id"] / "state.json").read_text())
    assert state["state"] == "queued"
    assert not [p for p in (d.spool / "jobs" / a["id"]).iterdir() if p.name.startswith("result")]
