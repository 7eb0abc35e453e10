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
