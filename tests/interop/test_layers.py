"""Layer coverage against real Keras: RNNs, transposed/grouped/separable
convs, GroupNorm/InstanceNorm/multi-axis LayerNorm, PReLU, attention and
weight norm (pairs in layers_zoo.py).

For each pair:
  test_hand_copy_matches_torch       the Keras twin, weights copied by a
                                     NumPy transform, reproduces PyTorch
                                     (validates the pair, not the converter)
  test_converted_weights_match_torch export .npz, convert with the CLI, load
                                     into a fresh twin, compare; one test id
                                     per (pair, loader)
  test_keras3_file_equals_keras_save_weights / test_legacy_h5_equals_...
                                     the converted files hold what Keras
                                     itself writes (paths, order, arrays)
  test_report_advice                 the report tells the user how to build
                                     the Keras layer that the twin uses
Then refusals (exit 2, layer and reason named, no file) and `template`.

Loaders:
  h5-keras3-order / h5-keras3-byname     legacy .h5 into Keras 3
  h5-tfkeras-order / h5-tfkeras-byname   legacy .h5 into tf_keras
  keras3-keras3                          Keras 3 .weights.h5 into Keras 3
Every layer used exists in both Keras 3 and tf_keras (including
GroupNormalization, Conv1DTranspose, DepthwiseConv1D, MultiHeadAttention).
"""

from __future__ import annotations

import json
import re
import warnings
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from .conftest import OUT_SUFFIX, max_abs_diff, sha256_file
from .layers_zoo import (PAIR_BY_NAME, PAIRS, _gru_gates, export_npz,
                         torch_reference)
from .test_convert_load import LOADERS, Loader  # noqa: F401  (one loader table)
from .zoo import KeyLog, keras_output, weight_layer_names

TOL = 1e-4
WRONG = 1e-3




@pytest.fixture(scope="session")
def layer_exports(tmp_path_factory):
    """pair -> namespace(npz, state, xs, ref): exported as users do, the
    state read back from the file, inputs (PyTorch layout) and PyTorch's
    output in Keras layout."""
    root = tmp_path_factory.mktemp("layers-export")
    cache = {}

    def get(pair):
        if pair.name not in cache:
            model = pair.torch_model()
            npz = root / f"{pair.name}.npz"
            export_npz(model, npz)
            with np.load(npz) as f:
                state = {k: f[k] for k in f.files}
            xs = pair.torch_inputs()
            cache[pair.name] = SimpleNamespace(
                npz=npz, state=state, xs=xs,
                ref=torch_reference(pair, model, xs))
        return cache[pair.name]
    return get


@pytest.fixture(scope="session")
def layer_conversions(weightbridge, layer_exports, tmp_path_factory):
    """(pair, format) -> (output path, report), converted once and checked
    to have succeeded."""
    root = tmp_path_factory.mktemp("layers-converted")
    cache = {}

    def get(pair, fmt):
        key = (pair.name, fmt)
        if key not in cache:
            out = root / f"{pair.name}-{fmt}{OUT_SUFFIX[fmt]}"
            proc, report = weightbridge.convert(
                layer_exports(pair).npz, pair.spec(), out, fmt=fmt)
            assert proc.returncode == 0, (
                f"convert {pair.name} to {fmt} exited {proc.returncode}:\n"
                f"{proc.stderr}")
            assert report is not None and report["status"] == "ok", report
            assert report["result"]["format"] == fmt
            assert report["result"]["bytes"] == out.stat().st_size
            assert report["result"]["sha256"] == sha256_file(out)
            assert report["unused"] == [] and report["missing"] == []
            cache[key] = (out, report)
        return cache[key]
    return get


# ------------------------------------------------------- the pairs themselves

@pytest.mark.parametrize("kmod", ["keras", "tf_keras"])
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_hand_copy_matches_torch(pair, kmod, frameworks, layer_exports,
                                 record_diff):
    ex = layer_exports(pair)
    model = pair.build_keras(getattr(frameworks, kmod))
    state = KeyLog(ex.state)
    table = pair.hand(state)
    assert weight_layer_names(model) == [name for name, _ in table]
    for name, weights in table:
        model.get_layer(name).set_weights(weights)
    assert sorted(set(ex.state) - state.read) == sorted(
        k for k in ex.state if k.endswith(".num_batches_tracked"))
    y = keras_output(model, pair.keras_inputs(ex.xs))
    assert np.std(ex.ref) > 0.05, np.std(ex.ref)
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


# ------------------------------------------------------- converted by the CLI

@pytest.mark.parametrize("loader", LOADERS, ids=lambda l: l.id)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_converted_weights_match_torch(pair, loader, frameworks,
                                       layer_exports, layer_conversions,
                                       record_diff):
    ex = layer_exports(pair)
    path, report = layer_conversions(pair, loader.fmt)
    model = pair.build_keras(getattr(frameworks, loader.kmod))

    # The report's layers are the model's weight-bearing layers, in order,
    # each weight with the shape the Keras variable has.
    assert [l["name"] for l in report["layers"]] == weight_layer_names(model)
    for entry in report["layers"]:
        shapes = [list(w.shape) for w in model.get_layer(entry["name"]).weights]
        assert [w["shape"] for w in entry["weights"]] == shapes, entry["name"]

    xs = pair.keras_inputs(ex.xs)
    before = keras_output(model, xs)
    loader.load(model, path)
    y = keras_output(model, xs)
    assert max_abs_diff(before, ex.ref) > WRONG     # loading changed it
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


def _datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def _legacy_layers(path):
    """[(layer name, [arrays in weight_names order])], layers with weights."""
    def strings(attr):
        return [s.decode() if isinstance(s, bytes) else str(s) for s in attr]
    with h5py.File(path, "r") as f:
        return [(n, [f[n][w][()] for w in strings(f[n].attrs["weight_names"])])
                for n in strings(f.attrs["layer_names"])
                if len(f[n].attrs.get("weight_names", []))]


def _same_array(a, b):
    # Summed, folded and weight-norm weights may differ in the last bit.
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.allclose(a, b, rtol=1e-6, atol=1e-7))


def _hand_model(pair, K, state):
    model = pair.build_keras(K)
    for name, weights in pair.hand(state):
        model.get_layer(name).set_weights(weights)
    return model


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_keras3_file_equals_keras_save_weights(pair, tmp_path, frameworks,
                                               layer_exports,
                                               layer_conversions):
    """Nested groups (RNN cell, Bidirectional forward/backward_layer, MHA
    query/key/value/output_dense) under the paths Keras 3 itself writes,
    with nothing extra or missing."""
    ours, _ = layer_conversions(pair, "keras3")
    ref = tmp_path / "keras.weights.h5"
    _hand_model(pair, frameworks.keras,
                layer_exports(pair).state).save_weights(str(ref))
    want, got = _datasets(ref), _datasets(ours)
    assert sorted(got) == sorted(want)
    assert [p for p in want if not _same_array(got[p], want[p])] == []


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_legacy_h5_equals_tf_keras_save_weights(pair, tmp_path, frameworks,
                                                layer_exports,
                                                layer_conversions):
    """Same layers in the same order, each with the same arrays in the
    same weight order as tf_keras's own legacy .h5."""
    ours, _ = layer_conversions(pair, "keras-h5")
    ref = tmp_path / "tf_keras.h5"
    _hand_model(pair, frameworks.tf_keras,
                layer_exports(pair).state).save_weights(str(ref))
    want, got = _legacy_layers(ref), _legacy_layers(ours)
    assert [n for n, _ in got] == [n for n, _ in want]
    for (name, gw), (_, ww) in zip(got, want):
        assert len(gw) == len(ww), name
        assert all(_same_array(g, w) for g, w in zip(gw, ww)), name


ADVISED = [p for p in PAIRS if p.advice]


@pytest.mark.parametrize("pair", ADVISED, ids=lambda p: p.name)
def test_report_advice(pair, layer_conversions):
    """The warning tells the user to build the layer the twin uses
    (shared_axes, Cropping, reset_after, Bidirectional, MHA dims)."""
    _, report = layer_conversions(pair, "keras-h5")
    text = "\n".join(w["message"] for w in report["warnings"])
    for advice in pair.advice:
        assert advice in text, (advice, text)


def test_gru_without_gate_reorder_loads_but_is_wrong(
        tmp_path, weightbridge, layer_exports, frameworks, record_diff):
    """The comparison bites: the GRU written by a Custom entry that keeps
    PyTorch's r,z,n gate order has every shape right and wrong outputs."""
    pair = PAIR_BY_NAME["gru2"]
    ex = layer_exports(pair)
    layers = []
    for k, name in enumerate(["gru_l0", "gru_l1"]):
        layers.append({"name": name, "type": "Custom", "weights": [
            {"name": "kernel", "from": f"rnn.weight_ih_l{k}",
             "transform": {"transpose": [1, 0]}},
            {"name": "recurrent_kernel", "from": f"rnn.weight_hh_l{k}",
             "transform": {"transpose": [1, 0]}},
            {"name": "bias", "from": [f"rnn.bias_ih_l{k}",
                                      f"rnn.bias_hh_l{k}"],
             "combine": "stack"}]})
    spec = dict(pair.spec(), layers=layers)
    out = tmp_path / "noreorder.h5"
    proc, report = weightbridge.convert(ex.npz, spec, out)
    assert proc.returncode == 0, proc.stderr
    model = pair.build_keras(frameworks.keras)
    model.load_weights(str(out))
    y = keras_output(model, pair.keras_inputs(ex.xs))
    assert record_diff(max_abs_diff(y, ex.ref)) > WRONG
    # ... and the same file with the reorder applied by hand is right,
    # so it is the gate order alone that made the difference.
    for k, name in enumerate(["gru_l0", "gru_l1"]):
        w = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights(
            [_gru_gates(w[0], 1), _gru_gates(w[1], 1), _gru_gates(w[2], 1)])
    y = keras_output(model, pair.keras_inputs(ex.xs))
    assert max_abs_diff(y, ex.ref) <= TOL


# ------------------------------------------------------------------- refusals

class _Wrap(nn.Module):
    def __init__(self, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)


def _refusal_models():
    torch.manual_seed(60)
    return {
        "gru": _Wrap(rnn=nn.GRU(5, 8, batch_first=True)),
        "lstm_proj": _Wrap(rnn=nn.LSTM(5, 8, proj_size=3, batch_first=True)),
        "mha_bias_kv": _Wrap(attn=nn.MultiheadAttention(8, 2,
                                                        add_bias_kv=True)),
        "mha": _Wrap(attn=nn.MultiheadAttention(8, 2)),
    }


REFUSALS = [
    # id, model, spec entry, substrings of the reason
    ("gru-reset_after-false", "gru",
     {"name": "gru_nra", "type": "GRU", "from": "rnn", "layer": 0,
      "reset_after": False}, ["reset_after"]),
    ("lstm-proj_size", "lstm_proj",
     {"name": "lstm_proj", "type": "LSTM", "from": "rnn", "layer": 0},
     ["proj_size", "rnn.weight_hr_l0"]),
    ("mha-add_bias_kv", "mha_bias_kv",
     {"name": "mha_bkv", "type": "MultiHeadAttention", "from": "attn",
      "num_heads": 2}, ["add_bias_kv", "attn.bias_k"]),
    ("mha-num_heads-3-of-8", "mha",
     {"name": "mha3", "type": "MultiHeadAttention", "from": "attn",
      "num_heads": 3}, ["num_heads=3", "8"]),
]


@pytest.fixture(scope="session")
def refusal_npz(tmp_path_factory):
    root = tmp_path_factory.mktemp("refusals")
    paths = {}
    for name, model in _refusal_models().items():
        paths[name] = root / f"{name}.npz"
        export_npz(model.eval(), paths[name])
    return paths


@pytest.mark.parametrize("fmt", ["keras-h5", "keras3"])
@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c[0])
def test_refused_with_reason_and_no_file(case, fmt, tmp_path, weightbridge,
                                         refusal_npz):
    _, model, entry, reasons = case
    spec = {"weightbridge_spec": 1, "unmapped": "ignore", "layers": [entry]}
    out = tmp_path / ("out" + OUT_SUFFIX[fmt])
    proc, report = weightbridge.convert(refusal_npz[model], spec, out,
                                        fmt=fmt)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    for needle in [entry["name"]] + reasons:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.report.json", "out.spec.json"]
    assert report["status"] == "failed"
    assert any(entry["name"] in p["message"] and
               all(r in p["message"] for r in reasons)
               for p in report["problems"]), report["problems"]


# ------------------------------------------------------------------- template

class TemplateNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, num_layers=2, batch_first=True)
        self.gru = nn.GRU(6, 5, bidirectional=True, batch_first=True)
        self.attn = nn.MultiheadAttention(10, 2, batch_first=True)
        self.act = nn.PReLU(10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.wn = nn.utils.weight_norm(nn.Conv1d(10, 4, 3))
        self.wn2 = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 4, 3))
        self.fc = nn.Linear(4, 2)


@pytest.fixture(scope="session")
def template_npz(tmp_path_factory):
    torch.manual_seed(61)
    path = tmp_path_factory.mktemp("template") / "net.npz"
    export_npz(TemplateNet(), path)
    return path


def _template(weightbridge, npz):
    proc = weightbridge.run("template", npz)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_template_recognises_layers(weightbridge, template_npz):
    """LSTM (one entry per layer), GRU, MultiheadAttention (num_heads
    placeholder and a note; its out_proj is no separate Dense), PReLU
    (input_rank and a note) and weight-norm convs, from parameter names."""
    layers = _template(weightbridge, template_npz)["layers"]
    got = [(l["type"], l.get("from"), l.get("layer")) for l in layers]
    assert got == [("LSTM", "lstm", 0), ("LSTM", "lstm", 1),
                   ("GRU", "gru", 0), ("MultiHeadAttention", "attn", None),
                   ("PReLU", "act", None), ("Conv1D", "wn", None),
                   ("Conv1D", "wn2", None), ("Dense", "fc", None)], layers
    assert len({l["name"] for l in layers}) == len(layers)
    by_from = {(l["from"], l.get("layer")): l for l in layers}
    mha = by_from[("attn", None)]
    assert isinstance(mha["num_heads"], int) and "num_heads" in mha["note"]
    prelu = by_from[("act", None)]
    assert isinstance(prelu["input_rank"], int)
    assert "input_rank" in prelu["note"]


def test_template_spec_converts_once_placeholders_are_set(
        tmp_path, weightbridge, template_npz):
    """The template is a starting spec: with num_heads and input_rank set
    to the model's values it converts, using every tensor."""
    spec = _template(weightbridge, template_npz)
    for l in spec["layers"]:
        if l["type"] == "MultiHeadAttention":
            l["num_heads"] = 2
        if l["type"] == "PReLU":
            l["input_rank"] = 3
    out = tmp_path / "net.h5"
    proc, report = weightbridge.convert(template_npz, spec, out)
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok" and report["unused"] == []
    shapes = {(l["name"], w["name"]): w["shape"]
              for l in report["layers"] for w in l["weights"]}
    assert shapes[("attn", "query_dense/kernel")] == [10, 2, 5]
    assert shapes[("act", "alpha")] == [1, 10]
    assert shapes[("wn", "kernel")] == [3, 10, 4]


ROOT_MODULES = [
    ("lstm", lambda: nn.LSTM(4, 6, num_layers=2), ["LSTM", "LSTM"]),
    ("mha", lambda: nn.MultiheadAttention(8, 2), ["MultiHeadAttention"]),
    ("prelu", lambda: nn.PReLU(), ["PReLU"]),
]


@pytest.mark.parametrize("name,make,types", ROOT_MODULES,
                         ids=[m[0] for m in ROOT_MODULES])
def test_template_root_module(name, make, types, tmp_path, weightbridge):
    """A module exported on its own (keys without a prefix, `from: ""`)
    is recognised as well."""
    torch.manual_seed(62)
    npz = tmp_path / f"{name}.npz"
    export_npz(make(), npz)
    layers = _template(weightbridge, npz)["layers"]
    assert [l["type"] for l in layers] == types, layers
    assert all(l["from"] == "" for l in layers), layers


@pytest.mark.parametrize("kmod", ["keras", "tf_keras"])
def test_template_of_transformer_layer_loads_by_name(
        kmod, tmp_path, weightbridge, layer_exports, frameworks, record_diff):
    """`template` on a TransformerEncoderLayer export: the attention
    module becomes one MultiHeadAttention (out_proj included), the rest
    Dense and LayerNormalization, named after the modules.  With num_heads
    set, the file loads by name into the Keras twin (whose layer order
    differs from the archive's) and reproduces PyTorch."""
    pair = PAIR_BY_NAME["transformer"]
    ex = layer_exports(pair)
    spec = _template(weightbridge, ex.npz)
    types = {l["name"]: (l["type"], l["from"]) for l in spec["layers"]}
    assert types == {
        "self_attn": ("MultiHeadAttention", "self_attn"),
        "linear1": ("Dense", "linear1"), "linear2": ("Dense", "linear2"),
        "norm1": ("LayerNormalization", "norm1"),
        "norm2": ("LayerNormalization", "norm2")}, spec["layers"]
    for l in spec["layers"]:
        if l["type"] == "MultiHeadAttention":
            l["num_heads"] = 4
    out = tmp_path / "template.h5"
    proc, report = weightbridge.convert(ex.npz, spec, out)
    assert proc.returncode == 0, proc.stderr
    model = pair.build_keras(getattr(frameworks, kmod))
    model.load_weights(str(out), by_name=True)
    y = keras_output(model, pair.keras_inputs(ex.xs))
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


def test_convt_crop_advice_is_never_negative(tmp_path, weightbridge):
    """With output_padding > padding (k3 s2 p0 op1) PyTorch's extra row
    lies outside the full transposed convolution (MAPPING.md 2.5): no
    Cropping2D can produce it, so the report must not advise a negative
    crop."""
    torch.manual_seed(63)
    npz = tmp_path / "convt.npz"
    export_npz(_Wrap(up=nn.ConvTranspose2d(3, 4, 3, stride=2, padding=0,
                                           output_padding=1)), npz)
    spec = {"weightbridge_spec": 1, "layers": [
        {"name": "up", "type": "Conv2DTranspose", "from": "up",
         "padding": 0, "output_padding": 1}]}
    proc, report = weightbridge.convert(npz, spec, tmp_path / "convt.h5")
    assert proc.returncode == 0, proc.stderr
    text = "\n".join(w["message"] for w in report["warnings"])
    crops = re.findall(r"Cropping2D with \((-?\d+), (-?\d+)\)", text)
    assert all(int(a) >= 0 and int(b) >= 0 for a, b in crops), text
