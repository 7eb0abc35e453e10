"""Interop negatives: the numeric comparison and the CLI's checks bite.

A spec that is wrong but loads (shapes fit) must be caught by the output
comparison; a spec that names a tensor the archive lacks must be refused
with exit status 2, a message naming the key, and no output file.
"""

import pytest

from .conftest import max_abs_diff
from .zoo import CASE_BY_NAME, keras_output

WRONG = 1e-3


def _load_and_diff(case, spec, tmp_path, weightbridge, exported, frameworks,
                   record_diff):
    ex = exported(case)
    out = tmp_path / "wrong.h5"
    proc, report = weightbridge.convert(ex.npz, spec, out)
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok"
    model = case.build_keras(frameworks.keras)
    model.load_weights(str(out))
    y = keras_output(model, case.keras_input(ex.x))
    return record_diff(max_abs_diff(y, ex.ref))


def test_dense_without_flatten_loads_but_is_wrong(tmp_path, weightbridge,
                                                  exported, frameworks,
                                                  record_diff):
    """Model 1 with a plain W.T for the Linear after the 16x4x4 flatten:
    the shapes fit, Keras loads it, and the outputs are wrong."""
    case = CASE_BY_NAME["cnn"]
    spec = case.spec_copy()
    fc1 = next(l for l in spec["layers"] if l["name"] == "fc1")
    del fc1["flatten"]
    assert _load_and_diff(case, spec, tmp_path, weightbridge, exported,
                          frameworks, record_diff) > WRONG


def test_square_in_out_kernel_as_dense_is_wrong(tmp_path, weightbridge,
                                                exported, frameworks,
                                                record_diff):
    """Model 6's (in, out)-stored 16x16 weight mapped with the Dense preset
    (which transposes): loads without complaint, computes the wrong thing."""
    case = CASE_BY_NAME["custom"]
    spec = case.spec_copy()
    i = next(i for i, l in enumerate(spec["layers"]) if l["name"] == "mix")
    spec["layers"][i] = {"name": "mix", "type": "Dense", "from": "mix"}
    assert _load_and_diff(case, spec, tmp_path, weightbridge, exported,
                          frameworks, record_diff) > WRONG


@pytest.mark.parametrize("fmt", ["keras-h5", "keras3"])
@pytest.mark.parametrize("where,key", [
    ("preset", "features.9.weight"),
    ("custom", "proj.wieght"),
])
def test_missing_key_exits_2_and_writes_nothing(where, key, fmt, tmp_path,
                                                weightbridge, exported):
    if where == "preset":
        case = CASE_BY_NAME["cnn"]
        spec = case.spec_copy()
        spec["layers"][4]["from"] = "features.9"
    else:
        case = CASE_BY_NAME["custom"]
        spec = case.spec_copy()
        spec["layers"][0]["weights"][0]["from"] = key
    out = tmp_path / ("out.h5" if fmt == "keras-h5" else "out.weights.h5")
    proc, report = weightbridge.convert(exported(case).npz, spec, out,
                                        fmt=fmt)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert key in proc.stderr, proc.stderr
    assert not out.exists()
    # Nothing else was left behind either (no temporary file).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.report.json", "out.spec.json"]
    assert report["status"] == "failed"
    assert key in report["missing"] or any(
        key in p["message"] for p in report["problems"]), report
