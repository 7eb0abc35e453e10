"""SIGKILL with jobs queued and running; after a restart every job ends and
every result is byte-identical to the CLI's conversion of the same input."""
import json
import signal
import subprocess
import time

from wbd import CLI, Daemon, make_medium, make_slow


def test_sigkill_restart_loses_nothing(tmp_path):
    # The first job is slow (zeros, ~256 MB out), so it is surely still
    # running, and the rest surely queued, when the daemon is killed.
    inputs = [make_slow(tmp_path / "blocker.npz", layers=16)]
    for i in range(3):
        npz, spec = make_medium(tmp_path / f"m{i}.npz", layers=6, n=768 + 64 * i, seed=i)
        inputs.append((npz, spec))
    args = ["--workers", "1", "--queue-size", "16", "--max-ratio", "100000"]
    d = Daemon(tmp_path, args).start()
    ids = []
    for npz, spec in inputs:
        r = d.submit(npz, spec)
        assert r.status == 202
        ids.append(r.json()["id"])
    # Kill as soon as the first job runs: the others are still queued.
    d.wait_state(ids[0], {"running"})
    states = [d.request("GET", f"/v1/jobs/{i}").json()["state"] for i in ids]
    assert states == ["running", "queued", "queued", "queued"]
    d.stop(sig=signal.SIGKILL)

    # A crash's leftovers: a temporary in a job dir and a partial upload.
    (d.spool / "jobs" / ids[0] / ".state.json.tmp").write_text("{")
    (d.spool / "tmp" / "upload-crash").write_bytes(b"PK")
    d.start()
    assert not (d.spool / "tmp" / "upload-crash").exists()
    assert not (d.spool / "jobs" / ids[0] / ".state.json.tmp").exists()
    for i, (npz, spec) in zip(ids, inputs):
        j = d.wait_state(i, {"succeeded", "failed", "cancelled"}, timeout=120)
        assert j["state"] == "succeeded", j
        body = d.request("GET", f"/v1/jobs/{i}/result").body
        specf = tmp_path / f"{i}.json"
        specf.write_text(json.dumps(spec))
        out = tmp_path / f"{i}.h5"
        subprocess.run([CLI, "convert", str(npz), "--spec", str(specf), "-o", str(out), "-q",
                        "--max-ratio", "100000"], check=True, timeout=120)
        assert out.read_bytes() == body, i
        out.unlink()
    # Finished jobs survive a clean restart too.
    assert d.stop() == 0
    d.start()
    listed = {j["id"]: j["state"] for j in d.request("GET", "/v1/jobs?limit=100").json()["jobs"]}
    assert all(listed[i] == "succeeded" for i in ids)
    assert d.stop() == 0


def test_ttl_reaper(tmp_path, small_npz):
    from wbd import SPEC
    d = Daemon(tmp_path, ["--ttl", "1", "--reap-interval", "1"]).start()
    try:
        j = d.submit(small_npz, SPEC, "?wait=30").json()
        assert j["state"] == "succeeded"
        deadline = time.monotonic() + 10
        while d.request("GET", f"/v1/jobs/{j['id']}").status != 404:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not (d.spool / "jobs" / j["id"]).exists()
    finally:
        assert d.stop() == 0
