#!/usr/bin/env python3
"""Generate the benchmark inputs: .npz state_dict exports and their mapping specs.

    gen.py [--data DIR] [--sets resnet50,torch,large,small] [--force]

Everything is deterministic: tensor values come from numpy's PCG64 seeded per
tensor (a fixed set seed plus the tensor's index), and the real ResNet-50 from
torch.manual_seed(0).  The archives are written by np.savez_compressed and
np.savez themselves, exactly as users export a state_dict; only the zip
members' timestamps differ between two generations, so manifest.json records a
SHA-256 over every tensor's key, dtype, shape and bytes to compare contents.

Data sets (written to DIR, default build/bench-data):

  resnet50        320 tensors, ~102 MB raw: the key set and shapes of
                  torchvision's ResNet-50 (53 conv kernels, 53 BatchNorms with
                  int64 num_batches_tracked, fc 1000x2048).  resnet50.npz
                  (savez_compressed) and resnet50_stored.npz (savez).
  torch           resnet50_torch.npz: a real ResNet-50 state_dict (the
                  torchvision architecture written in plain torch, its own
                  initialisation, BatchNorm running statistics randomised),
                  savez_compressed.  Only when torch is importable.
  large           130 tensors, ~1.49 GB raw: 4096x25088, 4096x4096, 1000x4096
                  Linear layers and 512x512x3x3 conv kernels with BatchNorms.
                  large.npz and large_stored.npz.
  small           20,000 tensors, ~26 MB raw: 2,500 blocks of a 16x16x3x3
                  conv, a BatchNorm(16) and a Linear(16, 16).  small.npz.
  tiny            one Linear(4, 4): the tools' fixed cost (start-up time,
                  baseline RSS).  tiny.npz.

Values: float32 normal noise with a He-style standard deviation, rounded to
nearest with the lowest 6 of the 23 mantissa bits cleared (17 significant
bits).  Deflate then gets about 1.2x, like exported weights do (fresh float32
noise gives 1.08x, noise rounded to float16 precision 1.7x, which would
flatter whoever decompresses fastest).  BatchNorm vectors use the same
rounding around their usual values.

Each archive gets a spec mapping every module with one entry,
{"match": "^(.*)$", "name": "$1", "type": "auto"}: the Keras layer name is the
module prefix ('.' is allowed in layer names), the preset is inferred
(Conv2D, BatchNormalization, Dense), and num_batches_tracked is ignored as it
always is.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

GEN_VERSION = 1
MANTISSA_DROP = 6

SPEC = {
    "weightbridge_spec": 1,
    "target": {"format": "keras-h5"},
    "unmapped": "error",
    "layers": [{"match": "^(.*)$", "name": "$1", "type": "auto"}],
}


def quantise(a):
    """Round float32 values to nearest, clearing the low MANTISSA_DROP bits."""
    u = a.view(np.uint32)
    u += np.uint32(1 << (MANTISSA_DROP - 1))
    u &= np.uint32((0xFFFFFFFF << MANTISSA_DROP) & 0xFFFFFFFF)
    return a


class Tensors:
    """An ordered state_dict of deterministic numpy arrays."""

    def __init__(self, seed):
        self.seed = seed
        self.d = {}

    def _rng(self):
        return np.random.default_rng([self.seed, len(self.d)])

    def weight(self, key, shape, fan_in):
        rng = self._rng()
        a = rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(np.sqrt(2.0 / fan_in))
        self.d[key] = quantise(a)

    def vector(self, key, n, loc, scale, uniform=False):
        rng = self._rng()
        if uniform:
            a = rng.uniform(loc - scale, loc + scale, n).astype(np.float32)
        else:
            a = rng.standard_normal(n, dtype=np.float32) * np.float32(scale)
            a += np.float32(loc)
        self.d[key] = quantise(a)

    def conv(self, p, cout, cin, k, bias=False):
        self.weight(p + ".weight", (cout, cin, k, k), cin * k * k)
        if bias:
            self.vector(p + ".bias", cout, 0.0, 0.01)

    def bn(self, p, c, steps=10000):
        self.vector(p + ".weight", c, 1.0, 0.1)
        self.vector(p + ".bias", c, 0.0, 0.1)
        self.vector(p + ".running_mean", c, 0.0, 0.1)
        self.vector(p + ".running_var", c, 1.0, 0.5, uniform=True)
        self.d[p + ".num_batches_tracked"] = np.array(steps, dtype=np.int64)

    def linear(self, p, out, inp):
        self.weight(p + ".weight", (out, inp), inp)
        self.vector(p + ".bias", out, 0.0, 0.01)


def resnet50_like():
    """torchvision ResNet-50's keys and shapes, synthetic values."""
    t = Tensors(50)
    t.conv("conv1", 64, 3, 7)
    t.bn("bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
        for b in range(blocks):
            p = "layer%d.%d" % (li, b)
            t.conv(p + ".conv1", planes, inplanes, 1)
            t.bn(p + ".bn1", planes)
            t.conv(p + ".conv2", planes, planes, 3)
            t.bn(p + ".bn2", planes)
            t.conv(p + ".conv3", planes * 4, planes, 1)
            t.bn(p + ".bn3", planes * 4)
            if b == 0:
                t.conv(p + ".downsample.0", planes * 4, inplanes, 1)
                t.bn(p + ".downsample.1", planes * 4)
            inplanes = planes * 4
    t.linear("fc", 1000, 2048)
    return t.d


def large():
    """130 large tensors, ~1.49 GB: conv/BN features, two VGG-style heads, an MLP."""
    t = Tensors(1500)
    for i in range(18):
        t.conv("features.%d.conv" % i, 512, 512, 3)
        t.bn("features.%d.bn" % i, 512)
    for h in range(2):
        t.linear("heads.%d.fc1" % h, 4096, 25088)
        t.linear("heads.%d.fc2" % h, 4096, 4096)
        t.linear("heads.%d.fc3" % h, 1000, 4096)
    for i in range(5):
        t.linear("mlp.%d" % i, 4096, 4096)
    return t.d


def small():
    """20,000 small tensors: 2,500 conv/BN/Linear blocks."""
    t = Tensors(20000)
    for i in range(2500):
        p = "blocks.%d" % i
        t.conv(p + ".conv", 16, 16, 3)
        t.bn(p + ".bn", 16)
        t.linear(p + ".fc", 16, 16)
    return t.d


def tiny():
    """One Linear(4, 4)."""
    t = Tensors(4)
    t.linear("fc", 4, 4)
    return t.d


def resnet50_torch():
    """A real ResNet-50 state_dict from torch (torchvision's architecture)."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + idt)

    class ResNet(nn.Module):
        def __init__(self, layers=(3, 4, 6, 3), num_classes=1000):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(64, layers[0])
            self.layer2 = self._make(128, layers[1], 2)
            self.layer3 = self._make(256, layers[2], 2)
            self.layer4 = self._make(512, layers[3], 2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def _make(self, planes, blocks, stride=1):
            down = None
            if stride != 1 or self.inplanes != planes * 4:
                down = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * 4))
            mods = [Bottleneck(self.inplanes, planes, stride, down)]
            self.inplanes = planes * 4
            mods += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*mods)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    torch.manual_seed(0)
    model = ResNet().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(10000)
    return {k: v.cpu().numpy() for k, v in model.state_dict().items()}


SETS = {
    # set: (builder, [(file, writer)], needs torch)
    "resnet50": (resnet50_like, [("resnet50.npz", "compressed"),
                                 ("resnet50_stored.npz", "stored")], False),
    "torch": (resnet50_torch, [("resnet50_torch.npz", "compressed")], True),
    "large": (large, [("large.npz", "compressed"), ("large_stored.npz", "stored")], False),
    "small": (small, [("small.npz", "compressed")], False),
    "tiny": (tiny, [("tiny.npz", "compressed")], False),
}


def digest(d):
    h = hashlib.sha256()
    for k, v in d.items():
        h.update(("%s %s %s\n" % (k, v.dtype.str, list(v.shape))).encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def write_npz(path, d, kind):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        if kind == "compressed":
            np.savez_compressed(f, **d)
        else:
            np.savez(f, **d)
    os.replace(tmp, path)


def cached(entry, data):
    if entry is None or entry.get("gen_version") != GEN_VERSION:
        return False
    for inp in entry["inputs"]:
        for k in ("file", "spec"):
            p = os.path.join(data, inp[k])
            if not os.path.isfile(p):
                return False
        if os.path.getsize(os.path.join(data, inp["file"])) != inp["file_bytes"]:
            return False
    return True


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="build/bench-data")
    ap.add_argument("--sets", default="resnet50,torch,large,small,tiny",
                    help="comma-separated: " + ",".join(SETS))
    ap.add_argument("--force", action="store_true", help="regenerate cached sets")
    a = ap.parse_args()

    os.makedirs(a.data, exist_ok=True)
    mpath = os.path.join(a.data, "manifest.json")
    manifest = {"gen_version": GEN_VERSION, "sets": {}}
    if os.path.isfile(mpath):
        with open(mpath) as f:
            old = json.load(f)
        if old.get("gen_version") == GEN_VERSION:
            manifest = old

    for name in [s for s in a.sets.split(",") if s]:
        if name not in SETS:
            sys.exit("gen.py: unknown set %r (known: %s)" % (name, ", ".join(SETS)))
        build, files, needs_torch = SETS[name]
        if needs_torch and not torch_available():
            print("gen: %s: torch is not importable, skipped" % name, file=sys.stderr)
            continue
        if not a.force and cached(manifest["sets"].get(name), a.data):
            print("gen: %s: cached" % name, file=sys.stderr)
            continue
        t0 = time.time()
        d = build()
        raw = sum(v.nbytes for v in d.values())
        big = max(d, key=lambda k: d[k].nbytes)
        entry = {"gen_version": GEN_VERSION, "tensors": len(d), "raw_bytes": raw,
                 "largest_tensor": big, "largest_tensor_bytes": d[big].nbytes,
                 "content_sha256": digest(d), "inputs": []}
        for fname, kind in files:
            path = os.path.join(a.data, fname)
            spec = fname[:-len(".npz")] + ".spec.json"
            with open(os.path.join(a.data, spec), "w") as f:
                json.dump(SPEC, f, indent=2)
                f.write("\n")
            write_npz(path, d, kind)
            entry["inputs"].append({"name": fname[:-len(".npz")], "file": fname,
                                    "spec": spec, "storage": kind,
                                    "file_bytes": os.path.getsize(path)})
            print("gen: %s: %d tensors, %.1f MB raw, %.1f MB %s (%.0f s)" % (
                fname, len(d), raw / 1e6, os.path.getsize(path) / 1e6, kind,
                time.time() - t0), file=sys.stderr)
        del d
        manifest["sets"][name] = entry
        tmp = mpath + ".tmp"
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.replace(tmp, mpath)


if __name__ == "__main__":
    main()
