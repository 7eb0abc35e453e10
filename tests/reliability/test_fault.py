"""Injected failures: allocation and I/O torture of a real conversion, and a
daemon whose spool runs out of space.

The torture (tests/fault/torture.py with the wbfault shim) converts a small
CNN exported from PyTorch once per allocation, read, write, fsync and
rename it makes, failing that one call: every run must end in a clean
error with no output and no temporary file, or in the identical output.
The plain build is run for every N; the ASan build (leaks, memory errors)
for every N of the I/O calls and a spread of the allocations.
"""
import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import harness as h

TORTURE = h.ROOT / "tests" / "fault" / "torture.py"


def torture(cnn, work, cli, *extra):
    p = subprocess.run([sys.executable, str(TORTURE), "--cli", str(cli), "--shim", str(h.SHIM),
                        "--npz", str(cnn["npz"]), "--spec", str(cnn["spec_path"]),
                        "--work", str(work), "--jobs", "2", *extra],
                       capture_output=True, text=True, timeout=1200)
    print(p.stdout[-6000:])
    print(p.stderr[-3000:])
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    m = re.match(r"torture: (\d+) passed, (\d+) failed", last)
    assert m, p.stdout[-3000:] + p.stderr[-3000:]
    counts = re.search(r"calls after the archive is opened: (.*); (\d+) runs", p.stdout)
    known = re.findall(r"^torture: known .*?: (\w+) in (\S+), (\d+) runs", p.stdout, re.M)
    return p.returncode, int(m.group(1)), int(m.group(2)), counts, known, p.stdout


def test_torture_plain_every_call(cnn, tmp_path):
    assert h.SHIM.exists(), "build the shim first (tests/reliability/run.sh)"
    rc, passed, failed, counts, known, out = torture(cnn, tmp_path, h.BUILD / "weightbridge")
    assert rc == 0 and failed == 0, out[-4000:]
    assert passed > 500, out[-2000:]
    h.record("fault", plain_calls=counts.group(1), plain_runs=int(counts.group(2)),
             plain_passed=passed, plain_known={f"{c} in {f}": int(n) for c, f, n in known},
             plain_exits=re.search(r"torture: exits (.*) in", out).group(1))


def test_torture_asan_subset(cnn, tmp_path):
    cli = h.ASAN_BUILD / "weightbridge"
    assert cli.exists(), "build the ASan binaries first (make SANITIZER=address all)"
    rc, passed, failed, counts, known, out = torture(cnn, tmp_path, cli, "--asan",
                                                     "--first", "100", "--stride", "4")
    assert rc == 0 and failed == 0, out[-4000:]
    assert passed > 200, out[-2000:]
    h.record("fault", asan_calls=counts.group(1), asan_runs=int(counts.group(2)),
             asan_passed=passed, asan_known={f"{c} in {f}": int(n) for c, f, n in known})


def test_torture_chunked_io(tmp_path):
    """The chunked path (a 70 MB kernel read from a deflated member a chunk
    at a time, written and read back chunk by chunk): every read, write,
    fsync and rename failing in turn, and a spread of the allocations, ends
    cleanly too."""
    rng = np.random.default_rng(3)
    npz = tmp_path / "big.npz"
    np.savez_compressed(npz, **{"fc.weight": rng.standard_normal((25000, 700), dtype=np.float32),
                                "fc.bias": np.zeros(25000, np.float32)})
    spec = tmp_path / "spec.json"
    spec.write_text('{"weightbridge_spec": 1, "layers": '
                    '[{"name": "fc", "type": "Dense", "from": "fc"}]}')
    rc, passed, failed, counts, known, out = torture(
        {"npz": npz, "spec_path": spec}, tmp_path / "work", h.BUILD / "weightbridge",
        "--first", "160", "--stride", "3")
    assert rc == 0 and failed == 0, out[-4000:]
    assert passed > 50, out[-2000:]
    h.record("fault", chunked_calls=counts.group(1), chunked_passed=passed)


# ---- a full disk ---------------------------------------------------------------

@contextlib.contextmanager
def small_disk(path, size):
    """A tmpfs of size bytes at path (we are root here).  If mounting is not
    permitted, yield None: the daemon is then run with RLIMIT_FSIZE, which
    fails writes past size with EFBIG the way a full disk fails them."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0700" % size, "tmpfs",
                        str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fsize_limit(size):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


def big_model(path, layers=4, n=1024):
    """A few KB upload whose conversion writes layers * n * n * 4 bytes."""
    d = {}
    for i in range(layers):
        d[f"l{i}.weight"] = np.zeros((n, n), np.float32)
        d[f"l{i}.bias"] = np.zeros(n, np.float32)
    np.savez_compressed(path, **d)
    return path, {"weightbridge_spec": 1,
                  "layers": [{"name": f"l{i}", "type": "Dense", "from": f"l{i}"}
                             for i in range(layers)]}


def stray_files(spool):
    """Temporaries anywhere in the spool (ours and the converter's)."""
    return sorted(str(p.relative_to(spool)) for p in spool.rglob("*")
                  if p.is_file() and (".tmp" in p.name or p.name.startswith("upload-")))


def spool_used(spool, disk):
    """Bytes in use: the tmpfs's own count (open but unlinked files
    included), else the sizes of the files in the spool."""
    if disk is not None:
        st = os.statvfs(disk)
        return (st.f_blocks - st.f_bfree) * st.f_frsize
    return sum(p.stat().st_size for p in spool.rglob("*") if p.is_file())


def answer(r):
    """A response as (status, JSON or the raw body), for the tests to judge."""
    try:
        return r.status, r.json()
    except ValueError:
        return r.status, r.body[:500]


@pytest.fixture(scope="module")
def disk_full(cnn, tmp_path_factory):
    """A daemon on a 12 MiB spool: a job that fits, a job whose output does
    not, an upload that does not, and a job after space is freed.  What
    happened is returned whole for the tests below to judge, so a failure
    shows every answer and the daemon's log."""
    tmp = tmp_path_factory.mktemp("diskfull")
    size = 12 << 20
    out = {}
    with small_disk(tmp / "disk", size) as disk:
        spool = (disk or tmp) / "spool"
        out["spool"] = spool
        d = h.Daemon(tmp, ["--workers", "1", "--max-ratio", "100000"], spool=spool)
        d.start(preexec_fn=None if disk else fsize_limit(size))
        try:
            out["a"] = answer(d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=60"))
            out["used_a"] = spool_used(spool, disk)
            npz, spec = big_model(tmp / "big.npz")
            out["b"] = answer(d.submit(npz.read_bytes(), spec, "?wait=120"))
            b_id = out["b"][1].get("id") if isinstance(out["b"][1], dict) else None
            out["b_result"] = b_id is not None and \
                (spool / "jobs" / b_id / "result.h5").exists()
            out["b_strays"] = stray_files(spool)
            out["upload"] = answer(d.request("POST", "/v1/inspect", os.urandom(14 << 20),
                                             {"Content-Type": "application/zip"}, timeout=60))
            # The partial upload goes when the request ends, just after the
            # answer is sent; its space when its last descriptor closes.
            deadline = time.monotonic() + 30
            while (list((spool / "tmp").iterdir()) or
                   spool_used(spool, disk) > out["used_a"] + (1 << 20)) and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            out["tmp_left"] = sorted(p.name for p in (spool / "tmp").iterdir())
            out["used_after_upload"] = spool_used(spool, disk)
            out["livez"] = d.request("GET", "/livez").status
            a_id = out["a"][1].get("id") if isinstance(out["a"][1], dict) else "none"
            res = d.request("GET", f"/v1/jobs/{a_id}/result")
            out["a_result"] = (res.status, res.body)
            out["delete"] = d.request("DELETE", f"/v1/jobs/{b_id}").status
            out["c"] = answer(d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=60"))
            c_id = out["c"][1].get("id") if isinstance(out["c"][1], dict) else "none"
            out["c_result"] = d.request("GET", f"/v1/jobs/{c_id}/result").body
        finally:
            out["exit"] = d.stop()
            out["log"] = d.logtext()
    out["method"] = "tmpfs" if disk else "RLIMIT_FSIZE"
    b = out["b"][1] if isinstance(out["b"][1], dict) else {}
    h.record("disk_full", method=out["method"], size_bytes=size,
             job_error=b.get("error", {}).get("detail", "")[:160],
             upload_status=out["upload"][0], daemon_exit_status=out["exit"])
    return out


def test_disk_full_fails_job_keeps_serving(cnn, disk_full):
    """The job whose output cannot fit fails with a problem that says so,
    with no partial result and no temporary left; an upload that cannot
    fit gets a clear 5xx and leaves nothing, its space included; the
    daemon keeps serving, the earlier result is intact byte for byte, and
    once space is freed new jobs succeed."""
    r = disk_full
    seen = {k: v for k, v in r.items() if k not in ("log", "a_result", "c_result")}
    why = f"{seen}\n--- daemon log ---\n{r['log'][-3000:]}"
    assert r["a"][0] == 200 and r["a"][1]["state"] == "succeeded", why
    b = r["b"][1]
    assert r["b"][0] == 200 and b["state"] == "failed", why
    assert b["error"]["status"] >= 500 and \
        b["error"]["code"] in ("io-error", "output-failed"), why
    assert re.search(r"No space left|File too large|write failed", b["error"]["detail"]), why
    assert not r["b_result"] and r["b_strays"] == [], why
    status, problem = r["upload"]
    assert status == 500 and problem["type"].endswith("/io-error"), why
    assert r["tmp_left"] == [], why
    assert r["used_after_upload"] <= r["used_a"] + (1 << 20), why
    assert r["livez"] == 200, why
    assert r["a_result"] == (200, cnn["ref_bytes"]), why
    assert r["delete"] == 204, why
    assert r["c"][0] == 200 and r["c"][1]["state"] == "succeeded", why
    assert r["c_result"] == cnn["ref_bytes"], why


def test_disk_full_daemon_still_stops_cleanly(disk_full):
    assert disk_full["exit"] == 0, disk_full["log"][-2000:]


def test_daemon_output_errors_do_not_show_the_spool(cnn, tmp_path):
    """Under the fault shim, the first write after a job opens its input
    fails (HDF5 creating the result) and the one after (reserving its
    space) does: the job fails with an error that names the file by its
    own name, and neither the job nor its report shows the spool's path."""
    assert h.SHIM.exists(), "build the shim first (tests/reliability/run.sh)"
    seen = []
    for n, want in ((1, r"^cannot create 'result\.h5\.tmp-\w+' \(HDF5: file write failed: "
                        r"Input/output error\)$"),
                    (2, r"^the weight file needs at least \d+ bytes: No space left on device$")):
        spool = tmp_path / f"spool{n}"
        d = h.Daemon(tmp_path, ["--workers", "1"], spool=spool, name=f"d{n}",
                     env={"LD_PRELOAD": str(h.SHIM), "WBFAULT_FAIL": f"write:{n}",
                          "WBFAULT_MARK": "input.npz"})
        d.start()
        try:
            r = d.submit(cnn["npz"].read_bytes(), cnn["spec"], "?wait=60")
            job = r.json()
            rep = d.request("GET", f"/v1/jobs/{job['id']}/report")
        finally:
            assert d.stop() == 0, d.logtext()[-2000:]
        assert job["state"] == "failed", job
        detail = job["error"]["detail"]
        seen.append(detail)
        assert re.match(want, detail), detail
        assert str(spool) not in r.body.decode() and str(spool) not in rep.body.decode()
    h.record("fault", daemon_output_errors=seen)
