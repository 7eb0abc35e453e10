"""The zoo's Keras twins compute what the PyTorch models compute.

Weights are copied by hand (NumPy transforms in zoo.py, no weightbridge), so
these tests validate the model pairs, their layer order and the tolerances
independently of the converter.
"""

import numpy as np
import pytest

from .conftest import max_abs_diff
from .zoo import CASES, KeyLog, keras_output, weight_layer_names

TOL = 1e-4


@pytest.mark.parametrize("kmod", ["keras", "tf_keras"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hand_copied_weights_reproduce_torch(case, kmod, frameworks, exported,
                                             record_diff):
    ex = exported(case)
    model = case.build_keras(getattr(frameworks, kmod))
    state = KeyLog(ex.state)
    table = case.hand_weights(state)

    # The spec's layer order is the model's weight-bearing layer order.
    assert weight_layer_names(model) == [name for name, _ in table]
    for name, weights in table:
        model.get_layer(name).set_weights(weights)

    # Every tensor of the export is used, except BN's step counter.
    assert sorted(set(ex.state) - state.read) == sorted(
        k for k in ex.state if k.endswith(".num_batches_tracked"))

    y = keras_output(model, case.keras_input(ex.x))
    # The reference is not near zero, so the tolerance means something.
    assert np.std(ex.ref) > 0.05, np.std(ex.ref)
    assert record_diff(max_abs_diff(y, ex.ref)) <= TOL
