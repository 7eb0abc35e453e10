"""Fixtures of the reliability suites (helpers live in harness.py)."""
import json

import numpy as np
import pytest

import harness as h


@pytest.fixture(scope="session")
def cnn(tmp_path_factory):
    """A small CNN as users export it: a real PyTorch model's state_dict,
    np.savez_compressed, and the spec of the README's walk-through."""
    import torch    # in tests/requirements.txt: a missing one is a failure
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16),
                                          nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Linear(16 * 8 * 8, 10)

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    d = tmp_path_factory.mktemp("cnn")
    model = Net().eval()
    npz = d / "net.npz"
    np.savez_compressed(npz, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})
    spec = {"weightbridge_spec": 1, "layers": [
        {"name": "conv", "type": "Conv2D", "from": "features.0"},
        {"name": "bn", "type": "BatchNormalization", "from": "features.1"},
        {"name": "fc", "type": "Dense", "from": "classifier", "flatten": {"chw": [16, 8, 8]}}]}
    specf = d / "spec.json"
    specf.write_text(json.dumps(spec))
    ref = d / "net.h5"
    rc, out, err, _, _ = h.cli("convert", npz, "--spec", specf, "-o", ref, "-q")
    assert rc == 0, err
    return {"npz": npz, "spec": spec, "spec_path": specf, "ref": ref,
            "ref_bytes": ref.read_bytes()}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = h.Daemon(tmp_path_factory.mktemp("daemon"), ["--workers", "2"]).start()
    yield d
    assert d.stop() == 0, d.logtext()[-3000:]
