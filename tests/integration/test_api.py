"""Every route of weightbridged against one shared daemon."""
import hashlib
import json
import subprocess
import time

from wbd import CLI, SPEC, b64url, multipart


def test_health_and_limits(daemon):
    r = daemon.request("GET", "/livez")
    assert r.status == 200 and r.json()["status"] == "ok"
    assert daemon.request("GET", "/readyz").status == 200
    r = daemon.request("GET", "/v1/limits")
    lim = r.json()
    assert r.status == 200 and lim["upload_limit"] > 0 and "keras3" in lim["formats"]
    assert r.header("X-Request-Id")


def test_multipart_job_wait_and_download(daemon, small_npz, tmp_path):
    r = daemon.submit(small_npz, SPEC, "?wait=30")
    assert r.status == 200, r.body
    job = r.json()
    assert job["state"] == "succeeded"
    assert r.header("Location") is None or r.header("Location") == f"/v1/jobs/{job['id']}"
    assert job["input"]["filename"] == "model"
    assert job["progress"]["tensors_done"] == job["progress"]["tensors_total"] == 2
    for k in ("created_at", "started_at", "finished_at"):
        assert job[k].endswith("Z") and "T" in job[k]
    res = daemon.request("GET", job["links"]["result"])
    assert res.status == 200
    assert res.header("Content-Disposition") == 'attachment; filename="model.h5"'
    assert hashlib.sha256(res.body).hexdigest() == job["result"]["sha256"]
    assert res.header("ETag") == '"%s"' % job["result"]["sha256"]
    assert len(res.body) == job["result"]["bytes"]
    # The CLI on the same input gives the same bytes: one code path.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "cli.h5"
    subprocess.run([CLI, "convert", str(small_npz), "--spec", str(spec), "-o", str(out), "-q"],
                   check=True, timeout=60)
    assert out.read_bytes() == res.body
    rep = daemon.request("GET", job["links"]["report"])
    assert rep.status == 200 and rep.header("Content-Type") == "application/json"
    assert rep.json()


def test_raw_upload_spec_in_header_and_query(daemon, small_npz):
    data = open(small_npz, "rb").read()
    r = daemon.request("POST", "/v1/jobs?wait=30&format=keras3", data,
                       {"Content-Type": "application/zip", "X-Weightbridge-Spec": b64url(SPEC)})
    assert r.status == 200, r.body
    job = r.json()
    assert job["state"] == "succeeded" and job["format"] == "keras3"
    assert job["result"]["format"] == "keras3"
    res = daemon.request("GET", f"/v1/jobs/{job['id']}/result")
    assert res.header("Content-Disposition") == 'attachment; filename="weights.weights.h5"'
    r = daemon.request("POST", "/v1/jobs?spec=" + b64url(SPEC), data,
                       {"Content-Type": "application/octet-stream"})
    assert r.status == 202
    assert r.header("Location") == f"/v1/jobs/{r.json()['id']}"
    assert r.header("Retry-After") is not None or r.json()["state"] in ("succeeded",)
    j = daemon.wait_state(r.json()["id"], {"succeeded"})
    assert j["format"] is None and j["result"]["format"] == "keras-h5"


def test_get_wait_returns_when_job_ends(daemon, small_npz):
    r = daemon.submit(small_npz, SPEC)
    assert r.status == 202
    j = daemon.request("GET", f"/v1/jobs/{r.json()['id']}?wait=30").json()
    assert j["state"] == "succeeded"


def test_range_etag(daemon, small_npz):
    job = daemon.submit(small_npz, SPEC, "?wait=30").json()
    url = job["links"]["result"]
    full = daemon.request("GET", url).body
    etag = '"%s"' % job["result"]["sha256"]
    r = daemon.request("GET", url, headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.header("ETag") == etag
    r = daemon.request("GET", url, headers={"If-None-Match": '"other"'})
    assert r.status == 200
    r = daemon.request("GET", url, headers={"Range": "bytes=4-99"})
    assert r.status == 206 and r.body == full[4:100]
    assert r.header("Content-Range") == f"bytes 4-99/{len(full)}"
    r = daemon.request("GET", url, headers={"Range": "bytes=-10"})
    assert r.status == 206 and r.body == full[-10:]
    r = daemon.request("GET", url, headers={"Range": f"bytes={len(full)}-"})
    assert r.status == 416 and r.header("Content-Range") == f"bytes */{len(full)}"
    r.problem()


def test_idempotency(daemon, small_npz):
    key = {"Idempotency-Key": "k-%f" % time.time()}
    a = daemon.submit(small_npz, SPEC, headers=key)
    b = daemon.submit(small_npz, SPEC, headers=key)
    assert a.status == 202 and b.status in (200, 202)
    assert a.json()["id"] == b.json()["id"]
    assert b.header("Idempotent-Replayed") == "true"
    other = dict(SPEC, comment="different")
    c = daemon.submit(small_npz, other, headers=key)
    assert c.status == 422 and c.problem()["type"].endswith("/idempotency-key-reused")
    bad = daemon.submit(small_npz, SPEC, headers={"Idempotency-Key": "x" * 300})
    assert bad.status == 400


def test_failed_job_has_error_report_and_409(daemon, small_npz):
    spec = {"weightbridge_spec": 1, "layers": [{"name": "fc", "type": "Dense", "from": "nothere"}]}
    job = daemon.submit(small_npz, spec, "?wait=30").json()
    assert job["state"] == "failed"
    assert job["error"]["type"].startswith("https://weightbridge.dev/problems/")
    assert job["error"]["status"] == 422
    r = daemon.request("GET", f"/v1/jobs/{job['id']}/result")
    assert r.status == 409 and r.problem()["job_id"] == job["id"]
    rep = daemon.request("GET", f"/v1/jobs/{job['id']}/report")
    assert rep.status == 200


def test_spec_errors(daemon, small_npz):
    ct, body = multipart([("weights", "m.npz", open(small_npz, "rb").read()),
                          ("spec", None, b'{\n  "layers": [1,\n  ]\n}')])
    r = daemon.request("POST", "/v1/jobs", body, {"Content-Type": ct})
    p = r.problem()
    assert r.status == 422 and p["type"].endswith("/spec-json-invalid")
    assert p["line"] == 3 and "line 3" in p["detail"]
    deep = b'{"a":' + b"[" * 100 + b"]" * 100 + b"}"
    ct, body = multipart([("weights", "m.npz", open(small_npz, "rb").read()), ("spec", None, deep)])
    r = daemon.request("POST", "/v1/jobs", body, {"Content-Type": ct})
    assert r.status == 422 and "deeper" in r.problem()["detail"]
    ct, body = multipart([("weights", "m.npz", open(small_npz, "rb").read())])
    r = daemon.request("POST", "/v1/jobs", body, {"Content-Type": ct})
    assert r.status == 400 and r.problem()["type"].endswith("/spec-missing")
    r = daemon.submit(small_npz, SPEC, "?format=tfjs")
    assert r.status == 422 and r.problem()["type"].endswith("/format-invalid")
    ct, body = multipart([("spec", None, json.dumps(SPEC).encode())])
    r = daemon.request("POST", "/v1/jobs", body, {"Content-Type": ct})
    assert r.status == 400 and r.problem()["type"].endswith("/upload-missing")
    r = daemon.request("POST", "/v1/jobs", b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status == 400 and r.problem()["type"].endswith("/multipart-invalid")


def test_404_405_415(daemon, small_npz):
    r = daemon.request("GET", "/nope")
    assert r.status == 404 and r.problem()["type"].endswith("/route-not-found")
    r = daemon.request("GET", "/v1/jobs/" + "0" * 32)
    assert r.status == 404 and r.problem()["type"].endswith("/job-not-found")
    r = daemon.request("GET", "/v1/jobs/../../etc/passwd")
    assert r.status == 404
    r = daemon.request("PUT", "/v1/jobs")
    assert r.status == 405 and r.header("Allow") == "POST, GET, HEAD"
    r.problem()
    r = daemon.request("POST", "/livez")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    r = daemon.request("POST", "/v1/inspect", b"hello", {"Content-Type": "text/plain"})
    assert r.status == 415 and r.problem()["type"].endswith("/unsupported-media-type")


def test_inspect_and_template(daemon, small_npz):
    data = open(small_npz, "rb").read()
    r = daemon.request("POST", "/v1/inspect", data, {"Content-Type": "application/zip"})
    assert r.status == 200
    keys = {t["key"] for t in r.json()["tensors"]}
    assert keys == {"fc.weight", "fc.bias"}
    ct, body = multipart([("weights", "m.npz", data)])
    r = daemon.request("POST", "/v1/template", body, {"Content-Type": ct})
    assert r.status == 200 and "layers" in r.json()
    r = daemon.request("POST", "/v1/inspect", b"not a zip", {"Content-Type": "application/zip"})
    assert r.status == 422 and r.problem()["type"].endswith("/archive-invalid")
    # The message names the upload, never a path inside the spool.
    ct, body = multipart([("weights", "mine.npz", b"not a zip")])
    p = daemon.request("POST", "/v1/template", body, {"Content-Type": ct}).problem()
    assert "not a zip" in p["detail"] and str(daemon.spool) not in p["detail"]
    assert "spool" not in p["detail"] and "tmp" not in p["detail"], p["detail"]


def test_list_pagination(daemon, small_npz):
    ids = [daemon.submit(small_npz, SPEC).json()["id"] for _ in range(3)]
    seen = []
    url = "/v1/jobs?limit=2"
    for _ in range(100):
        page = daemon.request("GET", url).json()
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        if "next" not in page["links"]:
            break
        url = page["links"]["next"]
    assert len(seen) == len(set(seen))
    assert seen[:3] == ids[::-1]
    assert daemon.request("GET", "/v1/jobs?limit=0").status == 400
    assert daemon.request("GET", "/v1/jobs?cursor=zz").status == 400


def test_delete(daemon, small_npz, slow_archive):
    job = daemon.submit(small_npz, SPEC, "?wait=30").json()
    r = daemon.request("DELETE", f"/v1/jobs/{job['id']}")
    assert r.status == 204
    assert daemon.request("GET", f"/v1/jobs/{job['id']}").status == 404
    assert not (daemon.spool / "jobs" / job["id"]).exists()
    npz, spec = slow_archive
    job = daemon.submit(npz, spec).json()
    daemon.wait_state(job["id"], {"running"})
    t0 = time.monotonic()
    r = daemon.request("DELETE", f"/v1/jobs/{job['id']}")
    assert r.status == 200 and r.json()["state"] == "cancelled"
    assert r.json()["progress"]["tensors_done"] < r.json()["progress"]["tensors_total"]
    assert time.monotonic() - t0 < 5
    assert not (daemon.spool / "jobs" / job["id"]).exists()
    assert daemon.request("GET", f"/v1/jobs/{job['id']}/result").status == 409


def test_openapi_matches_routes(daemon):
    r = daemon.request("GET", "/v1/openapi.json")
    assert r.status == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, item in doc["paths"].items()
                  for m in item if m in ("get", "post", "put", "delete", "patch")}
    out = subprocess.run([daemon_bin(), "--print-routes"], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    routed = {tuple(line.split(" ", 1)) for line in out.splitlines() if line}
    assert documented == routed
    # The served document is the file in docs/.
    import os
    src = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.json")
    assert json.load(open(src)) == doc


def daemon_bin():
    from wbd import DAEMON
    return DAEMON


def test_metrics(daemon, small_npz):
    daemon.submit(small_npz, SPEC, "?wait=30")
    daemon.request("GET", "/nope")
    # A request is counted when its connection completes, just after its
    # answer is sent: the next scrape may come first, so look a few times.
    deadline = time.monotonic() + 5
    while True:
        r = daemon.request("GET", "/metrics")
        text = r.body.decode()
        if 'route="unmatched",code="404"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert r.status == 200 and r.header("Content-Type").startswith("text/plain")
    for needle in ('weightbridged_http_requests_total{route="POST /v1/jobs",code="200"}',
                   'weightbridged_http_requests_total{route="unmatched",code="404"}',
                   'weightbridged_http_request_duration_seconds_bucket{route="POST /v1/jobs",code="200",le="+Inf"}',
                   "weightbridged_upload_bytes_total ",
                   'weightbridged_jobs_total{outcome="succeeded"}',
                   'weightbridged_job_phase_seconds_count{phase="running"}',
                   "weightbridged_queue_depth ", "weightbridged_workers_busy ",
                   "weightbridged_build_info{version="):
        assert needle in text, needle
    ok = [line for line in text.splitlines() if line.startswith('weightbridged_jobs_total{outcome="succeeded"}')]
    assert int(ok[0].split()[-1]) >= 1


def test_request_log_lines(daemon):
    daemon.request("GET", "/livez")
    lines = [json.loads(line) for line in daemon.logtext().splitlines() if line.startswith("{")]
    reqs = [x for x in lines if x.get("event") == "request"]
    assert reqs and all(x["req_id"] and x["status"] for x in reqs)
    jobs = [x for x in lines if x.get("event") == "job"]
    assert jobs and all(len(x["job_id"]) == 32 for x in jobs)
