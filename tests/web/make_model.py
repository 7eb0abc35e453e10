"""Export the PyTorch models the browser test uploads, as users do.

net.npz is the README's small CNN (Conv2d, BatchNorm2d, then a Linear
after torch.flatten of a 16x8x8 map); tiny.npz a single Linear layer,
small enough for a daemon started with the smallest --upload-limit.

usage: make_model.py OUTDIR
"""
import os
import sys

import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def export(model, path):
    np.savez_compressed(path, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    net = Net()
    # One training-mode pass so the BatchNorm statistics are not the defaults.
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 16, 16))
    export(net.eval(), os.path.join(out, "net.npz"))
    export(nn.Linear(8, 4), os.path.join(out, "tiny.npz"))


if __name__ == "__main__":
    main()
