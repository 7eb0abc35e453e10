"""weightbridge's files hold what Keras itself would have written.

The Keras twin is given hand-copied weights (zoo.py) and saved by Keras
(Keras 3 `.weights.h5`, tf_keras legacy `.h5`); the converted file must hold
the same arrays under the same Keras 3 paths, or in the same legacy layer and
weight order, equal to float32 rounding (computed weights, such as LSTM's
summed biases and SeparableConv2D's folded bias, may differ in the last bit).
"""

import h5py
import numpy as np
import pytest

# Keras 3's save_weights trips a NumPy 2 deprecation inside Keras itself.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword"
    ":DeprecationWarning")

from .zoo import CASES


def _datasets(group):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
    group.visititems(visit)
    return out


def _strings(attr):
    return [s.decode() if isinstance(s, bytes) else str(s) for s in attr]


def _legacy_layers(path):
    """[(layer name, [arrays in weight_names order])] for layers with weights."""
    with h5py.File(path, "r") as f:
        out = []
        for name in _strings(f.attrs["layer_names"]):
            wn = _strings(f[name].attrs.get("weight_names", []))
            if wn:
                out.append((name, [f[name][w][()] for w in wn]))
        return out


def _hand_model(case, K, state):
    model = case.build_keras(K)
    for name, weights in case.hand_weights(state):
        model.get_layer(name).set_weights(weights)
    return model


def _same_array(a, b):
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.allclose(a, b, rtol=1e-6, atol=1e-7))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_keras3_file_equals_keras_save_weights(case, tmp_path, frameworks,
                                               exported, converted):
    ours, _ = converted(case, "keras3")
    ref = tmp_path / "keras.weights.h5"
    _hand_model(case, frameworks.keras, exported(case).state).save_weights(
        str(ref))
    with h5py.File(ref, "r") as f:
        want = _datasets(f)
    with h5py.File(ours, "r") as f:
        got = _datasets(f)
    assert sorted(got) == sorted(want)
    bad = [p for p in want if not _same_array(got[p], want[p])]
    assert bad == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_legacy_h5_equals_tf_keras_save_weights(case, tmp_path, frameworks,
                                                exported, converted):
    ours, _ = converted(case, "keras-h5")
    ref = tmp_path / "tf_keras.h5"
    _hand_model(case, frameworks.tf_keras, exported(case).state).save_weights(
        str(ref))
    want = _legacy_layers(ref)
    got = _legacy_layers(ours)
    assert [n for n, _ in got] == [n for n, _ in want]
    for (name, gw), (_, ww) in zip(got, want):
        assert len(gw) == len(ww), name
        assert all(_same_array(g, w) for g, w in zip(gw, ww)), name
