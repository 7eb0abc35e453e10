"""weightbridge's output, loaded by real Keras, reproduces PyTorch.

For every zoo model and every supported loader: export the PyTorch state
dict to .npz, convert it with the CLI, load the file into a freshly built
Keras twin and compare outputs on the same input.

Loaders:
  h5-keras3-order    legacy .h5, Keras 3, by layer order
  h5-keras3-byname   legacy .h5, Keras 3, by_name=True
  h5-tfkeras-order   legacy .h5, tf_keras, by layer order
  h5-tfkeras-byname  legacy .h5, tf_keras, by_name=True
  keras3-keras3      Keras 3 .weights.h5, Keras 3
"""

from dataclasses import dataclass

import pytest

from .conftest import max_abs_diff
from .zoo import CASES, CASE_BY_NAME, keras_output, weight_layer_names

TOL = 1e-4


@dataclass(frozen=True)
class Loader:
    id: str
    kmod: str           # attribute of the `frameworks` fixture
    fmt: str            # weightbridge output format
    by_name: bool

    def load(self, model, path):
        if self.by_name:
            model.load_weights(str(path), by_name=True)
        else:
            model.load_weights(str(path))


LOADERS = [
    Loader("h5-keras3-order", "keras", "keras-h5", False),
    Loader("h5-keras3-byname", "keras", "keras-h5", True),
    Loader("h5-tfkeras-order", "tf_keras", "keras-h5", False),
    Loader("h5-tfkeras-byname", "tf_keras", "keras-h5", True),
    Loader("keras3-keras3", "keras", "keras3", False),
]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda l: l.id)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_converted_weights_reproduce_torch(case, loader, frameworks, exported,
                                           converted, record_diff):
    ex = exported(case)
    path, _ = converted(case, loader.fmt)
    model = case.build_keras(getattr(frameworks, loader.kmod))
    before = keras_output(model, case.keras_input(ex.x))
    loader.load(model, path)
    y = keras_output(model, case.keras_input(ex.x))
    # Loading changed the model (freshly initialised Keras weights differ).
    assert max_abs_diff(before, ex.ref) > 1e-3
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


@pytest.mark.parametrize("fmt", ["keras-h5", "keras3"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_report_lists_layers_in_keras_order(case, fmt, frameworks, converted):
    """The report's layers (after `match` expansion) are the Keras model's
    weight-bearing layers, in order, each with every weight written."""
    _, report = converted(case, fmt)
    model = case.build_keras(frameworks.keras)
    assert [l["name"] for l in report["layers"]] == weight_layer_names(model)
    for entry in report["layers"]:
        layer = model.get_layer(entry["name"])
        shapes = [list(w.shape) for w in layer.weights]
        assert [w["shape"] for w in entry["weights"]] == shapes, entry["name"]
        assert all(w["status"] == "ok" for w in entry["weights"]), entry
    assert report["missing"] == [] and report["unused"] == []
    assert report["problems"] == []


def test_resnet_match_entries_expand_per_block(converted):
    """`match` entries expand in place, one layer per module prefix, with
    the `$N` captures substituted and the preset inferred for "auto"."""
    _, report = converted(CASE_BY_NAME["resnet"], "keras-h5")
    by_name = {l["name"]: l for l in report["layers"]}
    assert by_name["layer1_1_bn2"]["from"] == "layer1.1.bn2"
    assert by_name["layer1_1_bn2"]["type"] == "BatchNormalization"
    assert by_name["layer2_1_conv1"]["type"] == "Conv2D"
    assert by_name["layer2_0_conv2"]["from"] == "layer2.0.conv2"
    assert by_name["layer2_1_conv1"]["inferred"] is True
    assert by_name["conv1"]["inferred"] is False


def test_dataparallel_export_with_plain_savez(tmp_path, frameworks, weightbridge,
                                              record_diff):
    """A model saved from nn.DataParallel (keys under `module.`) with the
    uncompressed np.savez: `strip_prefixes` maps it with the same layers."""
    import numpy as np
    import torch

    case = CASE_BY_NAME["cnn"]
    model = case.torch_model()
    wrapped = torch.nn.DataParallel(model)
    npz = tmp_path / "dp.npz"
    np.savez(npz, **{k: v.cpu().numpy()
                     for k, v in wrapped.state_dict().items()})
    with np.load(npz) as f:
        assert all(k.startswith("module.") for k in f.files)
    spec = case.spec_copy()
    spec["source"] = {"strip_prefixes": ["module."]}
    out = tmp_path / "dp.weights.h5"
    proc, report = weightbridge.convert(npz, spec, out, fmt="keras3")
    assert proc.returncode == 0, proc.stderr
    x = case.torch_input()
    with torch.no_grad():
        ref = case.output_to_keras(model(torch.from_numpy(x)).numpy())
    keras_model = case.build_keras(frameworks.keras)
    keras_model.load_weights(str(out))
    y = keras_output(keras_model, case.keras_input(x))
    assert record_diff(max_abs_diff(y, ref)) <= TOL


# The ResNet spec in archive order, as `match` entries naturally produce it:
# every block's conv/bn first, then the projection conv, then its BN.  Keras
# puts the projection at conv2's and bn2's graph depth instead, so this
# order only suits name-based loading.
ARCHIVE_ORDER_RESNET_LAYERS = [
    {"name": "conv1", "type": "Conv2D", "from": "conv1"},
    {"name": "bn1", "type": "BatchNormalization", "from": "bn1"},
    {"match": "^layer([1-4])\\.([0-9]+)\\.(conv[12]|bn[12])$",
     "name": "layer$1_$2_$3", "type": "auto"},
    {"match": "^layer([2-4])\\.0\\.downsample\\.0$",
     "name": "layer$1_0_downsample_0", "type": "Conv2D"},
    {"match": "^layer([2-4])\\.0\\.downsample\\.1$",
     "name": "layer$1_0_downsample_1", "type": "BatchNormalization"},
    {"name": "fc", "type": "Dense", "from": "fc"},
]


@pytest.fixture(scope="module")
def archive_order_resnet(tmp_path_factory, weightbridge, exported):
    case = CASE_BY_NAME["resnet"]
    spec = case.spec_copy()
    spec["layers"] = ARCHIVE_ORDER_RESNET_LAYERS
    out = tmp_path_factory.mktemp("archive_order") / "resnet.h5"
    proc, report = weightbridge.convert(exported(case).npz, spec, out)
    assert proc.returncode == 0, proc.stderr
    names = [l["name"] for l in report["layers"]]
    assert names.index("layer2_1_bn2") < names.index("layer2_0_downsample_0")
    return case, out


@pytest.mark.parametrize("kmod", ["keras", "tf_keras"])
def test_archive_order_resnet_loads_by_name(kmod, archive_order_resnet,
                                            frameworks, exported, record_diff):
    case, out = archive_order_resnet
    ex = exported(case)
    model = case.build_keras(getattr(frameworks, kmod))
    model.load_weights(str(out), by_name=True)
    y = keras_output(model, case.keras_input(ex.x))
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL


@pytest.mark.parametrize("kmod", ["keras", "tf_keras"])
def test_archive_order_resnet_is_refused_by_order(kmod, archive_order_resnet,
                                                  frameworks):
    """By order, weight-bearing layer #13 (0-based) of the file, a BN, meets
    the projection conv: both Kerases refuse the file rather than mis-load
    it (Keras 3 on the weight count; tf_keras fails trying to transpose the
    BN vector as a conv kernel)."""
    case, out = archive_order_resnet
    model = case.build_keras(getattr(frameworks, kmod))
    match = "Weight count mismatch" if kmod == "keras" else None
    with pytest.raises(ValueError, match=match):
        model.load_weights(str(out))


@pytest.mark.parametrize("fmt,kernels", [
    ("keras-h5", ["fc1/fc1/kernel:0", "fc2/fc2/kernel:0"]),
    ("keras3", ["layers/dense/vars/0", "layers/dense_1/vars/0"])])
def test_bighead_kernels_are_stored_in_chunks(fmt, kernels, converted):
    """The bighead case above is the chunked path: both kernels are over
    the 64 MiB threshold and stored in chunks of their last axis."""
    import h5py

    out, _ = converted(CASE_BY_NAME["bighead"], fmt)
    with h5py.File(out, "r") as f:
        assert [f[k].chunks for k in kernels] == [(25088, 70), (700, 2500)]
