"""The daemon under valgrind's memcheck serves a few hundred requests of
every kind, then stops on SIGTERM: no definite or indirect leak, no memory
error."""
import json
import re
import shutil

import harness as h


def test_valgrind_daemon_no_leak(cnn, tmp_path):
    assert shutil.which("valgrind"), "valgrind is not installed (tests/reliability/deps.sh)"
    vlog = tmp_path / "valgrind.log"
    d = h.Daemon(tmp_path, ["--workers", "2", "--queue-size", "64"],
                 wrapper=[shutil.which("valgrind"), "--leak-check=full",
                          "--show-leak-kinds=definite,indirect",
                          "--errors-for-leak-kinds=definite,indirect",
                          "--error-exitcode=99", "--num-callers=40", "--trace-children=no",
                          "--log-file=%s" % vlog])
    d.start(timeout=180)
    npz = cnn["npz"].read_bytes()
    n = 0

    def req(*a, **kw):
        nonlocal n
        n += 1
        return d.request(*a, timeout=120, **kw)

    ids = []
    for i in range(40):
        n += 1
        r = d.submit(npz, cnn["spec"], "?wait=60" if i % 3 == 0 else "",
                     headers={"Idempotency-Key": "k%d" % (i % 25)}, timeout=120)
        assert r.status in (200, 202), r.body
        ids.append(r.json()["id"])
    for jid in ids:
        j = d.wait_final(jid, timeout=180)
        n += 1
        assert j["state"] == "succeeded", j
        assert req("GET", f"/v1/jobs/{jid}/result").body == cnn["ref_bytes"]
        assert req("GET", f"/v1/jobs/{jid}/result", headers={"Range": "bytes=0-99"}).status == 206
        assert req("GET", f"/v1/jobs/{jid}/report").status == 200
    bad = dict(cnn["spec"], layers=[{"name": "x", "type": "Dense", "from": "nope"}])
    for i in range(10):
        n += 1
        assert d.submit(npz, bad, "?wait=60", timeout=120).json()["state"] == "failed"
        assert req("POST", "/v1/inspect", npz, {"Content-Type": "application/zip"}).status == 200
        ct, body = h.multipart([("weights", "m.npz", npz)])
        assert req("POST", "/v1/template", body, {"Content-Type": ct}).status == 200
        assert req("POST", "/v1/inspect", b"PK\x03\x04junk",
                   {"Content-Type": "application/zip"}).status == 422
        assert req("GET", "/v1/jobs?limit=5").status == 200
        assert req("GET", "/metrics").status == 200
        assert req("GET", "/v1/limits").status == 200
        assert req("GET", "/nope/%d" % i).status == 404
        assert req("PUT", "/v1/jobs").status == 405
        assert req("POST", "/v1/jobs", b"x", {"Content-Type": "text/plain"}).status == 415
        assert req("GET", "/v1/jobs/" + "0" * 32).status == 404
        ct, body = h.multipart([("weights", "m.npz", npz), ("spec", None, b"{bad json")])
        assert req("POST", "/v1/jobs", body, {"Content-Type": ct}).status == 422
    for jid in ids[:10]:
        assert req("DELETE", f"/v1/jobs/{jid}").status == 204
    rc = d.stop(timeout=180)
    text = vlog.read_text(errors="replace")
    assert "Memcheck" in text, text[:2000]
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    leaks = {k: int(v.replace(",", "")) for k, v in re.findall(
        r"(definitely lost|indirectly lost|possibly lost|still reachable): ([\d,]+) bytes", text)}
    h.record("valgrind", requests=n, exit_status=rc, error_summary=int(summary.group(1))
             if summary else None, leak_bytes=leaks)
    print(json.dumps(leaks))
    assert rc == 0, text[-6000:]
    assert summary and summary.group(1) == "0", text[-6000:]
    assert leaks.get("definitely lost", 0) == 0 and leaks.get("indirectly lost", 0) == 0, \
        text[-6000:]
    assert n >= 300, n
