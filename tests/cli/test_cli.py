"""The weightbridge CLI against real archives: bad input gives a specific
message, exit 2 and no output file; good input converts; the report is
golden; the HDF5 file is read back with h5py."""
import hashlib
import json
import pathlib

import h5py
import numpy as np
import pytest

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"

BAD_ARCHIVES = [
    # (fixture, words the message must contain)
    ("bad_truncated.npz", ["truncated"]),
    ("bad_notzip.npz", ["not a zip"]),
    ("bad_empty.npz", ["zip"]),
    ("bad_nonnpy.npz", ["readme.txt"]),
    ("bad_pickle.npz", ["pickle"]),
    ("bad_header.npz", ["'evil'", "byte 66"]),
    ("bad_overflow.npz", ["overflow"]),
    ("bad_short.npz", ["'short'", "holds 100"]),
    ("bad_long.npz", ["'long'", "holds 132"]),
    ("bad_dup.npz", ["duplicate"]),
    ("bad_traversal.npz", [".."]),
    ("bad_encrypted.npz", ["encrypt"]),
    ("bad_bzip2.npz", ["compression"]),
    ("bad_complex.npz", ["complex"]),
]

SPEC_ANY = {"weightbridge_spec": 1, "unmapped": "ignore",
            "layers": [{"name": "fc", "type": "Dense", "from": "fc"}]}


def leftovers(d: pathlib.Path):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("name,words", BAD_ARCHIVES)
def test_bad_archive(cli, tmp_path, name, words):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC_ANY))
    out = tmp_path / "out.h5"
    rep = tmp_path / "r.json"
    p = cli("convert", DATA / "npz" / name, "--spec", spec, "-o", out,
            "--report", rep)
    assert p.returncode == 2, (p.stdout, p.stderr)
    msg = p.stderr.lower()
    for w in words:
        assert w.lower() in msg, (w, p.stderr)
    assert not out.exists()
    assert leftovers(tmp_path) == ["r.json", "spec.json"]
    r = json.loads(rep.read_text())
    assert r["status"] == "failed" and r["problems"]
    # inspect refuses the same archive the same way
    q = cli("inspect", DATA / "npz" / name)
    assert q.returncode == 2 and q.stderr


def test_zip_bomb_stopped_by_caps(cli, tmp_path):
    p = cli("inspect", DATA / "npz" / "bad_bomb.npz", "--max-tensor-bytes",
            1 << 20)
    assert p.returncode == 2
    assert "limit" in p.stderr.lower() or "cap" in p.stderr.lower()


def test_lying_member_refused_while_reading(cli, tmp_path):
    """A deflate member that inflates past its declared size is stopped."""
    s = tmp_path / "spec.json"
    s.write_text(json.dumps({"weightbridge_spec": 1, "layers": [
        {"name": "z", "type": "Custom",
         "weights": [{"name": "z", "from": "zeros"}]}]}))
    out = tmp_path / "z.h5"
    p = cli("convert", DATA / "npz" / "bad_bomb_lying.npz", "--spec", s,
            "-o", out)
    assert p.returncode == 2 and "'zeros'" in p.stderr
    assert "not written" in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["spec.json"]


def write_cnn(path, dtype=np.float32):
    rng = np.random.default_rng(7)
    sd = {
        "features.0.weight": rng.standard_normal((4, 3, 3, 3)),
        "features.0.bias": rng.standard_normal(4),
        "features.1.weight": rng.standard_normal(4),
        "features.1.bias": rng.standard_normal(4),
        "features.1.running_mean": rng.standard_normal(4),
        "features.1.running_var": rng.random(4) + 0.5,
        "features.1.num_batches_tracked": np.array(3, dtype=np.int64),
        "fc.weight": rng.standard_normal((5, 4 * 2 * 2)),
        "fc.bias": rng.standard_normal(5),
    }
    sd = {k: (v.astype(dtype) if v.dtype.kind == "f" else v)
          for k, v in sd.items()}
    np.savez_compressed(path, **sd)
    return sd


CNN_SPEC = {
    "weightbridge_spec": 1,
    "layers": [
        {"name": "conv1", "type": "Conv2D", "from": "features.0"},
        {"name": "bn1", "type": "BatchNormalization", "from": "features.1"},
        {"name": "fc", "type": "Dense", "from": "fc",
         "flatten": {"chw": [4, 2, 2]}},
    ],
}


def run_bad_spec(cli, tmp_path, spec, words):
    npz = tmp_path / "m.npz"
    write_cnn(npz)
    s = tmp_path / "spec.json"
    s.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    out = tmp_path / "out.h5"
    rep = tmp_path / "rep.json"
    p = cli("convert", npz, "--spec", s, "-o", out, "--report", rep)
    assert p.returncode == 2, (p.stdout, p.stderr)
    for w in words:
        assert w in p.stderr + p.stdout, (w, p.stderr, p.stdout)
    assert not out.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == \
        ["m.npz", "rep.json", "spec.json"]
    return json.loads(rep.read_text())


def test_unknown_layer_type(cli, tmp_path):
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"][0]["type"] = "Conv2d"
    r = run_bad_spec(cli, tmp_path, spec, ["unknown layer type 'Conv2d'"])
    assert any("Conv2D" in p["message"] for p in r["problems"])


def test_bad_regex(cli, tmp_path):
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"].append({"match": "^(features", "name": "x$1",
                           "type": "Conv2D"})
    run_bad_spec(cli, tmp_path, spec, ["layers[3].match", "bad regular"])


def test_missing_key(cli, tmp_path):
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"][0]["from"] = "features.9"
    r = run_bad_spec(cli, tmp_path, spec, ["features.9.weight"])
    assert r["missing"][0]["key"] == "features.9.weight"
    # all problems listed, not just the first: the unused conv is too
    assert any("features.0.weight" in p["message"] for p in r["problems"])


def test_shape_mismatch(cli, tmp_path):
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"][2]["flatten"] = {"chw": [4, 3, 3]}
    run_bad_spec(cli, tmp_path, spec, ["36 features", "16 inputs"])
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"][0]["expect"] = {"kernel": [3, 3, 4, 3]}
    r = run_bad_spec(cli, tmp_path, spec, ["(3, 3, 4, 3)"])
    w = r["layers"][0]["weights"][0]
    assert w["status"] == "mismatch" and w["shape"] == [3, 3, 3, 4]


def test_spec_not_json(cli, tmp_path):
    run_bad_spec(cli, tmp_path, '{"weightbridge_spec": 1,,}',
                 ["not valid JSON", "line 1"])


def test_unmapped_error_and_warn(cli, tmp_path):
    spec = json.loads(json.dumps(CNN_SPEC))
    spec["layers"].pop()
    run_bad_spec(cli, tmp_path, spec, ["'fc.weight' is not used"])
    spec["unmapped"] = "warn"
    (tmp_path / "rep.json").unlink()
    s = tmp_path / "spec.json"
    s.write_text(json.dumps(spec))
    p = cli("convert", tmp_path / "m.npz", "--spec", s, "-o",
            tmp_path / "o.h5", check=0)
    assert "not used" in p.stdout


def test_usage_errors(cli, tmp_path):
    assert cli("convert").returncode == 2
    assert cli("bogus").returncode == 2
    assert cli("convert", "--help").returncode == 0
    for c in ("inspect", "template", "convert"):
        h = cli(c, "--help", check=0)
        assert "usage" in h.stdout
    p = cli("inspect", tmp_path / "nope.npz")
    assert p.returncode == 2 and "nope.npz" in p.stderr


def test_convert_reads_back(cli, tmp_path):
    npz = tmp_path / "m.npz"
    sd = write_cnn(npz, np.float64)
    s = tmp_path / "spec.json"
    s.write_text(json.dumps(CNN_SPEC))
    out = tmp_path / "w.h5"
    p = cli("convert", npz, "--spec", s, "-o", out, "--report", "-",
            "--quiet", check=0)
    rep = json.loads(p.stdout)
    assert rep["status"] == "ok" and rep["result"]["bytes"] > 0
    # The file's own digest only when asked for (--checksum).
    assert "sha256" not in rep["result"]
    assert rep["ignored"] == ["features.1.num_batches_tracked"]
    with h5py.File(out, "r") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == \
            ["conv1", "bn1", "fc"]
        assert f.attrs["keras_version"]
        k = f["conv1/conv1/kernel:0"][()]
        assert k.dtype == np.float32
        np.testing.assert_array_equal(
            k, sd["features.0.weight"].astype(np.float32).transpose(2, 3, 1, 0))
        names = [n.decode() for n in f["bn1"].attrs["weight_names"]]
        assert names == ["bn1/gamma:0", "bn1/beta:0", "bn1/moving_mean:0",
                         "bn1/moving_variance:0"]
        fc = f["fc/fc/kernel:0"][()]
        w = sd["fc.weight"].astype(np.float32)
        np.testing.assert_array_equal(
            fc, w.reshape(5, 4, 2, 2).transpose(2, 3, 1, 0).reshape(16, 5))
    # keras3 layout
    out3 = tmp_path / "w.weights.h5"
    cli("convert", npz, "--spec", s, "-o", out3, "--format", "keras3",
        "--quiet", check=0)
    with h5py.File(out3, "r") as f:
        assert set(f["layers"].keys()) == {"conv2d", "batch_normalization",
                                           "dense"}
        assert f["layers/batch_normalization/vars/3"].shape == (4,)
    q = cli("convert", npz, "--spec", s, "-o", tmp_path / "c.h5",
            "--checksum", "--quiet", "--report", "-", "--threads", "1",
            check=0)
    r = json.loads(q.stdout)["result"]
    assert r["sha256"] == hashlib.sha256(
        (tmp_path / "c.h5").read_bytes()).hexdigest()
    # one thread or several: the same bytes
    assert (tmp_path / "c.h5").read_bytes() == out.read_bytes()
    # dry run writes nothing
    out4 = tmp_path / "dry.h5"
    cli("convert", npz, "--spec", s, "-o", out4, "--dry-run", check=0)
    assert not out4.exists()


def test_inspect_and_template(cli, tmp_path):
    npz = tmp_path / "m.npz"
    write_cnn(npz)
    j = json.loads(cli("inspect", npz, "--json", check=0).stdout)
    keys = [t["key"] for t in j["tensors"]]
    assert "fc.weight" in keys and j["count"] == 9
    fw = next(t for t in j["tensors"] if t["key"] == "fc.weight")
    assert fw["shape"] == [5, 16] and fw["dtype"] == "float32"
    assert fw["method"] == "deflated"
    t = json.loads(cli("template", npz, check=0).stdout)
    types = [(l["name"], l["type"]) for l in t["layers"]]
    assert types == [("features_0", "Conv2D"),
                     ("features_1", "BatchNormalization"), ("fc", "Dense")]
    # the template warns that the Linear follows convolutions
    assert "flatten" in t["layers"][2]["note"]


def normalise(rep):
    rep = json.loads(json.dumps(rep))
    rep["source"].pop("file", None)
    rep.pop("result", None)
    for l in rep["layers"]:
        for w in l["weights"]:
            for k in ("min", "max", "mean", "std"):
                w["stats"][k] = round(w["stats"][k], 5)
    return rep


def test_golden_report(cli, tmp_path):
    """The report of a fixed archive is exactly the checked-in one."""
    npz = tmp_path / "m.npz"
    sd = {"conv.weight": np.arange(2 * 1 * 2 * 2, dtype=np.float32)
          .reshape(2, 1, 2, 2),
          "conv.bias": np.array([0.5, -0.5], np.float32),
          "fc.weight": np.arange(3 * 8, dtype=np.float32).reshape(3, 8) / 8,
          "fc.bias": np.zeros(3, np.float32)}
    np.savez(npz, **sd)
    s = tmp_path / "spec.json"
    s.write_text(json.dumps({"weightbridge_spec": 1, "layers": [
        {"name": "conv", "type": "Conv2D", "from": "conv"},
        {"name": "fc", "type": "Dense", "from": "fc",
         "flatten": {"chw": [2, 2, 2]}}]}))
    rep = tmp_path / "r.json"
    cli("convert", npz, "--spec", s, "-o", tmp_path / "o.h5", "--report",
        rep, check=0)
    got = normalise(json.loads(rep.read_text()))
    golden = DATA / "golden" / "small.report.json"
    want = json.loads(golden.read_text())
    assert got == want


def test_big_transpose_stored_in_chunks(cli, tmp_path):
    """A kernel of 64 MiB or more is stored in chunks of its last axis and
    streamed a chunk at a time; read whole by h5py it is the plain
    transpose, its report digest is of that array, and the bytes do not
    depend on the thread count.  The second layer reads the same tensor,
    so it is made from the tensor held in memory instead."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((25000, 700), dtype=np.float32)
    b = rng.standard_normal(25000, dtype=np.float32)
    npz = tmp_path / "big.npz"
    np.savez(npz, **{"fc.weight": w, "fc.bias": b})
    spec = {"weightbridge_spec": 1, "layers": [
        {"name": "fc", "type": "Dense", "from": "fc"},
        {"name": "again", "type": "Dense", "from": "fc"}]}
    s = tmp_path / "spec.json"
    s.write_text(json.dumps(spec))
    out = tmp_path / "w.h5"
    p = cli("convert", npz, "--spec", s, "-o", out, "--report", "-",
            "--quiet", check=0)
    rep = json.loads(p.stdout)
    want = np.ascontiguousarray(w.T)
    with h5py.File(out, "r") as f:
        for name in ("fc/fc/kernel:0", "again/again/kernel:0"):
            d = f[name]
            assert d.chunks == (700, 2500)
            assert d.compression is None
            np.testing.assert_array_equal(d[()], want)
        assert f["fc/fc/bias:0"].chunks is None
    for layer in rep["layers"]:
        k = layer["weights"][0]
        assert k["sha256"] == hashlib.sha256(want.tobytes()).hexdigest()
        assert k["stats"]["max"] == pytest.approx(float(w.max()), rel=1e-6)
    one = tmp_path / "one.h5"
    cli("convert", npz, "--spec", s, "-o", one, "--threads", "1", "--quiet",
        check=0)
    assert one.read_bytes() == out.read_bytes()
    # A byte changed deep inside the big member: its chunks were already
    # written when the member's CRC-32 tells, and still no file is left.
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    npz.write_bytes(bytes(raw))
    bad = tmp_path / "bad.h5"
    p = cli("convert", npz, "--spec", s, "-o", bad, "--quiet", check=2)
    assert "fc.weight" in p.stderr and "CRC-32" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == \
        ["big.npz", "one.h5", "spec.json", "w.h5"]


def test_convert_from_a_pipe(tmp_path):
    """An archive on a pipe is copied into $TMPDIR (convert reads it twice)
    and converts to the same bytes as the file; a cut-short one fails
    naming the pipe, and the copy stops at what the limits allow.  Nothing
    is left in $TMPDIR either way."""
    import os
    import subprocess

    CLI = pathlib.Path(os.environ.get(
        "WB_BUILD", pathlib.Path(__file__).resolve().parents[2] / "build")) \
        / "weightbridge"
    npz = tmp_path / "m.npz"
    write_cnn(npz)
    s = tmp_path / "spec.json"
    s.write_text(json.dumps(CNN_SPEC))
    spool = tmp_path / "tmpdir"
    spool.mkdir()
    env = dict(os.environ, TMPDIR=str(spool))
    data = npz.read_bytes()

    def run(payload, out, *extra):
        return subprocess.run(
            [str(CLI), "convert", "/dev/stdin", "--spec", str(s), "-o",
             str(out), "--report", "-", "-q", *extra],
            input=payload, capture_output=True, env=env, timeout=120)

    ref = tmp_path / "ref.h5"
    assert subprocess.run([str(CLI), "convert", str(npz), "--spec", str(s),
                           "-o", str(ref), "-q"]).returncode == 0
    out = tmp_path / "piped.h5"
    p = run(data, out)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["source"]["file"] == "/dev/stdin"
    assert out.read_bytes() == ref.read_bytes()

    cut = tmp_path / "cut.h5"
    p = run(data[:len(data) // 2], cut)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "'/dev/stdin'" in err and "truncated" in err and "/proc" not in err
    rep = json.loads(p.stdout)
    assert all("/proc" not in q["message"] for q in rep["problems"])
    assert not cut.exists()

    p = run(data, cut, "--max-total-bytes", "100", "--max-members", "1")
    assert p.returncode == 2
    assert "more than the" in p.stderr.decode()
    assert not cut.exists()
    assert list(spool.iterdir()) == []
