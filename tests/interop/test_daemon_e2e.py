"""End to end through the daemon: real PyTorch models exported as users do,
uploaded to a real weightbridged on 127.0.0.1, converted by its workers,
downloaded over HTTP and loaded into Keras, which must reproduce PyTorch
(max abs difference <= 1e-4), exactly as the CLI's results do."""
import hashlib
import json
import sys
from pathlib import Path

import pytest

from .conftest import max_abs_diff, sha256_file
from .zoo import CASE_BY_NAME, keras_output

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import wbd  # noqa: E402  (the integration suite's daemon harness)

TOL = 1e-4
# bighead: kernels stored in chunks, written through the page cache in the
# daemon and checked against each chunk's CRC-64.
CASES = ["cnn", "resblock", "recurrent", "bighead"]
SUFFIX = {"keras-h5": ".h5", "keras3": ".weights.h5"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = wbd.Daemon(tmp_path_factory.mktemp("e2e"), args=["--workers", "2"])
    d.start()
    yield d
    d.stop()


@pytest.mark.parametrize("fmt,kmod", [("keras-h5", "keras"),
                                      ("keras-h5", "tf_keras"),
                                      ("keras3", "keras")])
@pytest.mark.parametrize("name", CASES)
def test_daemon_result_loads_in_keras(name, fmt, kmod, daemon, frameworks,
                                      exported, converted, tmp_path,
                                      record_diff):
    case = CASE_BY_NAME[name]
    ex = exported(case)
    r = daemon.submit(ex.npz, case.spec_copy(), query=f"?wait=60&format={fmt}",
                      filename=f"{name}.npz")
    assert r.status == 200, (r.status, r.body[:500])
    job = r.json()
    assert job["state"] == "succeeded", job
    res = daemon.request("GET", f"/v1/jobs/{job['id']}/result")
    assert res.status == 200
    assert res.header("ETag") == f'"{job["result"]["sha256"]}"'
    assert hashlib.sha256(res.body).hexdigest() == job["result"]["sha256"]
    out = tmp_path / f"{name}{SUFFIX[fmt]}"
    out.write_bytes(res.body)

    # The daemon and the CLI run the same code: the same bytes.
    cli_out, _ = converted(case, fmt)
    assert sha256_file(out) == sha256_file(cli_out)

    rep = daemon.request("GET", f"/v1/jobs/{job['id']}/report").json()
    assert rep["status"] == "ok"
    assert rep["source"]["file"] == job["input"]["filename"] == name

    model = case.build_keras(getattr(frameworks, kmod))
    model.load_weights(str(out))
    y = keras_output(model, case.keras_input(ex.x))
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


def test_daemon_mapping_error_names_the_key(daemon, exported):
    case = CASE_BY_NAME["cnn"]
    spec = case.spec_copy()
    spec["layers"][0]["from"] = "nope.0"
    r = daemon.submit(exported(case).npz, spec, query="?wait=60")
    job = r.json()
    assert job["state"] == "failed"
    assert job["error"]["type"].endswith("/mapping-failed")
    assert "nope.0.weight" in job["error"]["detail"]
    assert daemon.request("GET", f"/v1/jobs/{job['id']}/result").status == 409
    rep = daemon.request("GET", f"/v1/jobs/{job['id']}/report").json()
    assert rep["missing"][0]["key"] == "nope.0.weight"
