"""Security properties of the daemon that can be observed from outside:
unguessable job ids, private files whatever the caller's umask, and no
request path that reaches the file system outside the spool.  (Token
comparison and the non-root unit and image are reviewed in
docs/reliability.md; tests/integration/test_packaging.py checks the unit's
DynamicUser and the image's USER.)"""
import os
import re
import stat


import harness as h

HOSTILE_PATHS = [
    "/v1/jobs/../../etc/passwd", "/v1/jobs/%2e%2e/%2e%2e/etc/passwd",
    "/v1/jobs/..%2f..%2fetc%2fpasswd", "/v1/jobs/....//....//etc/passwd",
    "/v1/jobs/%00", "/v1/jobs/" + "0" * 31 + "/result", "/v1/jobs/" + "0" * 33 + "/result",
    "/v1/jobs/" + "A" * 32 + "/result", "/v1/jobs/" + "0" * 32 + "%2f..%2fresult",
    "/v1/jobs/" + "0" * 32 + "/../../../../etc/passwd", "//etc/passwd", "/v1//jobs",
    "/v1/jobs/..\\..\\etc\\passwd", "/web/../../etc/passwd", "/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/v1/jobs/" + "a" * 5000, "/" + "x/" * 1000,
]


def test_hostile_paths_never_reach_the_file_system(cnn, tmp_path):
    """Every hostile path is answered 4xx (never a file), the daemon runs in
    an empty working directory that stays empty, and nothing appears next
    to the spool."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    d = h.Daemon(tmp_path, ["--workers", "1"])
    orig = os.getcwd()
    os.chdir(cwd)
    try:
        d.start()
    finally:
        os.chdir(orig)
    try:
        job = d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=30",
                       filename="../../../etc/evil.npz").json()
        assert job["state"] == "succeeded"
        for path in HOSTILE_PATHS:
            for method in ("GET", "DELETE", "HEAD"):
                r = d.request(method, path)
                assert 400 <= r.status < 500, (method, path, r.status, r.body[:200])
                assert b"root:" not in r.body
        # The client's file name reaches only a header, sanitized.
        res = d.request("GET", f"/v1/jobs/{job['id']}/result")
        cd = res.header("Content-Disposition")
        assert res.status == 200 and cd == 'attachment; filename="evil.h5"', cd
        assert d.request("GET", f"/v1/jobs/{job['id']}").json()["input"]["filename"] == "evil"
    finally:
        assert d.stop() == 0
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in d.dir.iterdir()) == ["log", "port", "spool"]
    assert sorted(p.name for p in d.spool.iterdir()) == ["jobs", "tmp"]


def test_job_ids_are_128_bit_random(cnn, tmp_path):
    """64 ids: 32 lower-case hex digits, all distinct, and every one of the
    128 bits set in between 8 and 56 of them (a counter, a clock or a
    truncated id fails this; 64 random ids fail it with probability about
    1e-7)."""
    d = h.Daemon(tmp_path, ["--workers", "2", "--queue-size", "128"]).start()
    try:
        ids = [d.submit(cnn["npz"].read_bytes(), cnn["spec"]).json()["id"] for _ in range(64)]
    finally:
        assert d.stop() == 0
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    ones = [sum((int(i, 16) >> b) & 1 for i in ids) for b in range(128)]
    assert min(ones) >= 8 and max(ones) <= 56, ones
    h.record("security", job_id_bit_ones_min=min(ones), job_id_bit_ones_max=max(ones))


def test_files_private_whatever_the_umask(cnn, tmp_path):
    """Started with a permissive umask (022), the daemon still creates every
    spool file 0600 and every directory 0700: uploads, specs, states,
    reports and results are readable by its user alone."""
    d = h.Daemon(tmp_path, ["--workers", "1"])
    d.start(preexec_fn=lambda: os.umask(0o022))
    try:
        ok = d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=30").json()
        bad = d.submit(cnn["npz"].read_bytes(), dict(cnn["spec"], layers=[
            {"name": "x", "type": "Dense", "from": "nope"}]), "?wait=30").json()
        assert ok["state"] == "succeeded" and bad["state"] == "failed"
        k3 = d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=30&format=keras3").json()
        assert k3["state"] == "succeeded"
        seen = set()
        for p in [d.spool, *d.spool.rglob("*")]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            if p.is_dir():
                assert mode == 0o700, (p, oct(mode))
            else:
                assert mode == 0o600, (p, oct(mode))
                seen.add(p.name)
        assert {"input.npz", "spec.json", "state.json", "report.json", "result.h5",
                "result.weights.h5"} <= seen, seen
    finally:
        assert d.stop() == 0
