"""Fixtures for the interop suite: real PyTorch in, real Keras out.

TensorFlow, Keras 3 and tf_keras are imported once, by the session-scoped
`frameworks` fixture; every test runs in this one process.  The
`weightbridge` binary is taken from $WB_BUILD (default <repo>/build).
Generated files (npz exports, specs, converted weights, reports) live in
pytest's tmp directories.  Each zoo model is exported and converted once per
output format and shared by the tests that load it.

The max abs differences measured by the tests are printed in the terminal
summary, one line per test id.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from .zoo import CASES, export_npz, torch_reference

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 60            # seconds; conversions here take milliseconds

_DIFFS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if not _DIFFS:
        return
    terminalreporter.section("interop: max abs difference vs PyTorch")
    width = max(len(k) for k in _DIFFS)
    for test_id in sorted(_DIFFS):
        terminalreporter.write_line(f"{test_id:<{width}}  {_DIFFS[test_id]:.3g}")


@pytest.fixture
def record_diff(request):
    """Remember a test's measured difference for the summary."""
    def record(value: float) -> float:
        _DIFFS[request.node.name] = float(value)
        return value
    return record


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"output shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def frameworks():
    """TensorFlow, Keras 3 (TF backend) and tf_keras, imported once."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras
    import tf_keras

    assert keras.__version__.startswith("3."), keras.__version__
    assert keras.backend.backend() == "tensorflow"
    assert tf_keras.__version__.startswith("2."), tf_keras.__version__
    return SimpleNamespace(tf=tf, keras=keras, tf_keras=tf_keras)


class Weightbridge:
    """The CLI under test, run as a subprocess."""

    def __init__(self, path: Path):
        self.path = path

    def run(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.path), *map(str, args)],
                              capture_output=True, text=True,
                              timeout=CLI_TIMEOUT)

    def convert(self, npz: Path, spec: dict, out: Path, fmt: str | None = None,
                report: Path | None = None):
        """Write `spec` beside `out`, convert, return (process, report|None)."""
        spec_path = out.with_name(out.name.split(".")[0] + ".spec.json")
        spec_path.write_text(json.dumps(spec, indent=1))
        # --checksum: the report then carries the file's SHA-256, which
        # every conversion here checks against the bytes on disk.
        args = ["convert", npz, "--spec", spec_path, "-o", out, "--checksum"]
        if fmt:
            args += ["--format", fmt]
        if report is None:
            report = out.with_name(out.name.split(".")[0] + ".report.json")
        args += ["--report", report]
        proc = self.run(*args)
        rep = json.loads(report.read_text()) if report.exists() else None
        return proc, rep


@pytest.fixture(scope="session")
def weightbridge() -> Weightbridge:
    build = Path(os.environ.get("WB_BUILD", REPO / "build"))
    path = build / "weightbridge"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no weightbridge binary at {path}: build it, or point "
                    "WB_BUILD at the directory that holds it")
    return Weightbridge(path)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """case -> namespace(npz, state, x, ref): the model exported the way
    users do, the state read back from that file, a random input in PyTorch
    layout and PyTorch's output in Keras layout."""
    root = tmp_path_factory.mktemp("export")
    cache = {}

    def get(case):
        if case.name not in cache:
            model = case.torch_model()
            npz = root / f"{case.name}.npz"
            export_npz(model, npz)
            with np.load(npz) as f:
                state = {k: f[k] for k in f.files}
            x = case.torch_input()
            cache[case.name] = SimpleNamespace(
                npz=npz, state=state, x=x,
                ref=torch_reference(case, model, x))
        return cache[case.name]
    return get


OUT_SUFFIX = {"keras-h5": ".h5", "keras3": ".weights.h5"}


@pytest.fixture(scope="session")
def converted(weightbridge, exported, tmp_path_factory):
    """(case, format) -> (output path, report): converted once with the
    case's spec and checked to have succeeded."""
    root = tmp_path_factory.mktemp("converted")
    cache = {}

    def get(case, fmt):
        key = (case.name, fmt)
        if key not in cache:
            out = root / f"{case.name}-{fmt}{OUT_SUFFIX[fmt]}"
            proc, report = weightbridge.convert(
                exported(case).npz, case.spec_copy(), out, fmt=fmt)
            assert proc.returncode == 0, (
                f"convert {case.name} to {fmt} exited {proc.returncode}:\n"
                f"{proc.stderr}\nreport: {json.dumps(report, indent=1)}")
            assert out.is_file()
            assert report is not None and report["status"] == "ok", report
            assert report["result"]["format"] == fmt
            assert report["result"]["bytes"] == out.stat().st_size
            assert report["result"]["sha256"] == sha256_file(out)
            cache[key] = (out, report)
        return cache[key]
    return get


def case_ids(cases=CASES):
    return [c.name for c in cases]
