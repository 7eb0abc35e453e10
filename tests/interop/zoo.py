"""The interop model zoo: PyTorch models, their Keras twins, and mapping specs.

Each `Case` pairs a seeded PyTorch module with a Keras builder that computes
the same function on channels_last tensors, plus the weightbridge spec that
maps one onto the other.  `hand_weights` is an independent NumPy
implementation of the PyTorch -> Keras transforms (MAPPING.md); test_zoo.py
uses it to prove each pair really matches before any converter is involved,
so a failure in test_convert_load.py points at the converter and not at the
zoo.

Keras builders take the Keras module (`keras` or `tf_keras`) as their only
argument: the layer APIs used here are identical in both.  Layers that carry
weights are named explicitly, because legacy `.h5` files loaded with
`by_name=True` match on those names.

BatchNorm and LayerNorm parameters and running statistics are randomised so
that a BN/LN layer silently left at its initial values shows up as a large
difference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

EPS = 1e-5          # PyTorch's BatchNorm/LayerNorm default; Keras defaults to 1e-3
BATCH = 2


# --------------------------------------------------------------- PyTorch side

def _randomise_norms(model: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm/LayerNorm non-trivial parameters and statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                c = m.num_features
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.LayerNorm):
                shape = m.normalized_shape
                m.weight.copy_(torch.rand(shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(shape, generator=gen) * 0.2)


class SmallCNN(nn.Module):
    """(1) Conv-BN-ReLU-MaxPool x2, Flatten of a 16x4x4 map, two Linears."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(),
            nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    """(2) conv-bn-relu-conv-bn plus a strided 1x1 conv + BN projection."""

    def __init__(self, cin=8, cout=16, stride=2):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + self.shortcut(x))


class DepthwiseSeparable(nn.Module):
    """(3) depthwise 3x3 (groups=C, multiplier 2) + BN + ReLU + pointwise 1x1."""

    def __init__(self, c=8, mult=2, cout=12):
        super().__init__()
        self.dw = nn.Conv2d(c, c * mult, 3, padding=1, groups=c)
        self.bn = nn.BatchNorm2d(c * mult)
        self.pw = nn.Conv2d(c * mult, cout, 1)

    def forward(self, x):
        return self.pw(torch.relu(self.bn(self.dw(x))))


class Conv1dNet(nn.Module):
    """(4) Conv1d-BN-ReLU, strided Conv1d, Flatten of a 6x8 map, Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 8, 5)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(torch.flatten(h, 1))


class EmbeddingNet(nn.Module):
    """(5) Embedding + LayerNorm + mean over the sequence + Linear."""

    def __init__(self, vocab=50, dim=16, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.head(self.norm(self.embed(tokens)).mean(dim=1))


class InOutLinear(nn.Module):
    """A GPT-2-style "Conv1D": weight stored (in, out), y = x @ W + b.

    Its weight is already in Keras Dense layout, and it is square here, so a
    Dense preset (which transposes) would load without error and compute
    the wrong function: this is what Custom entries are for.
    """

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nin, nout) * 0.25)
        self.bias = nn.Parameter(torch.randn(nout) * 0.1)

    def forward(self, x):
        return x @ self.weight + self.bias


class CustomMix(nn.Module):
    """(6) Linear, a (in, out)-stored projection, Linear; tanh between."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(12, 16)
        self.mix = InOutLinear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.tanh(self.mix(torch.tanh(self.proj(x)))))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, key names included."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False),
                nn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.downsample is None else self.downsample(x)
        return torch.relu(h + s)


class TinyResNet(nn.Module):
    """(7) ResNet layout: stem, layer1 (2 blocks), layer2 (2 blocks, the
    first strided with a projection), global average pool, fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2),
                                    BasicBlock(16, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.layer2(self.layer1(h))
        return self.fc(h.mean(dim=(2, 3)))


class RecurrentNet(nn.Module):
    """(8) a 2-layer LSTM, a bidirectional GRU, Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, num_layers=2, batch_first=True)
        self.gru = nn.GRU(8, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.fc(h[:, -1])


class UpsampleNet(nn.Module):
    """(9) ConvTranspose2d k3 s2 p1 output_padding 1 (where Keras 'same'
    is off by a pixel), BN, ReLU, grouped ConvTranspose2d k4 s2 p1."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1,
                                      output_padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.up2 = nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2)

    def forward(self, x):
        return self.up2(torch.relu(self.bn(self.up1(x))))


class AttentionNet(nn.Module):
    """(10) Embedding, self-attention (2 heads) + residual, LayerNorm,
    mean over the sequence, Linear."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, tokens):
        h = self.embed(tokens)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(self.norm(h + a).mean(dim=1))


class SeparableNet(nn.Module):
    """(11) depthwise (multiplier 2) straight into a 1x1 conv (one Keras
    SeparableConv2D, biases folded), GroupNorm, per-channel PReLU,
    BatchNorm without affine parameters, Flatten of 6x4x4, Linear."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.pw = nn.Conv2d(8, 6, 1)
        self.gn = nn.GroupNorm(2, 6)
        self.act = nn.PReLU(6)
        self.bn = nn.BatchNorm2d(6, affine=False)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        with torch.no_grad():
            self.act.weight.uniform_(0.05, 0.5)
            self.gn.weight.uniform_(0.5, 1.5)
            self.gn.bias.normal_(0, 0.2)

    def forward(self, x):
        h = self.bn(self.act(self.gn(self.pw(self.dw(x)))))
        return self.fc(torch.flatten(h, 1))


class VolumeNet(nn.Module):
    """(12) Conv3d-BN3d-ReLU, Flatten of a 4x3x4x4 volume, Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4 * 3 * 4 * 4, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(h, 1))


class BigHead(nn.Module):
    """(13) A VGG-style head too big to hold twice: Flatten of a 512x7x7 map,
    Linear(25088, 700) (70 MB), ReLU, Linear(700, 25000) (70 MB).  Both
    kernels are over the converter's 64 MiB threshold, so they are stored in
    chunks and streamed a chunk at a time; fc1 also goes through the
    flatten permutation."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(512 * 7 * 7, 700)
        self.fc2 = nn.Linear(700, 25000)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


# ----------------------------------------------------------------- Keras side

def _bn(L, name):
    return L.BatchNormalization(axis=-1, epsilon=EPS, momentum=0.9, name=name)


def keras_cnn(K):
    L = K.layers
    x = K.Input((16, 16, 3))
    h = L.ZeroPadding2D(1)(x)
    h = L.Conv2D(8, 3, name="conv1")(h)
    h = L.ReLU()(_bn(L, "bn1")(h))
    h = L.MaxPooling2D(2)(h)
    h = L.ZeroPadding2D(1)(h)
    h = L.Conv2D(16, 3, name="conv2")(h)
    h = L.ReLU()(_bn(L, "bn2")(h))
    h = L.MaxPooling2D(2)(h)
    h = L.Flatten()(h)
    h = L.Dense(32, activation="relu", name="fc1")(h)
    y = L.Dense(10, name="fc2")(h)
    return K.Model(x, y, name="small_cnn")


def _keras_block(L, x, cout, stride, prefix, project, sep="_"):
    h = L.ZeroPadding2D(1)(x)
    h = L.Conv2D(cout, 3, strides=stride, use_bias=False,
                 name=f"{prefix}conv1")(h)
    h = L.ReLU()(_bn(L, f"{prefix}bn1")(h))
    h = L.ZeroPadding2D(1)(h)
    h = L.Conv2D(cout, 3, use_bias=False, name=f"{prefix}conv2")(h)
    h = _bn(L, f"{prefix}bn2")(h)
    s = x
    if project is not None:
        s = L.Conv2D(cout, 1, strides=stride, use_bias=False,
                     name=f"{prefix}{project[0]}")(x)
        s = _bn(L, f"{prefix}{project[1]}")(s)
    return L.ReLU()(L.Add()([h, s]))


def keras_resblock(K):
    L = K.layers
    x = K.Input((10, 10, 8))
    y = _keras_block(L, x, 16, 2, "", ("shortcut_conv", "shortcut_bn"))
    return K.Model(x, y, name="residual_block")


def keras_dwsep(K):
    L = K.layers
    x = K.Input((8, 8, 8))
    h = L.ZeroPadding2D(1)(x)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    h = L.ReLU()(_bn(L, "bn")(h))
    y = L.Conv2D(12, 1, name="pw")(h)
    return K.Model(x, y, name="depthwise_separable")


def keras_conv1d(K):
    L = K.layers
    x = K.Input((16, 4))
    h = L.ZeroPadding1D(2)(x)
    h = L.Conv1D(8, 5, name="conv1")(h)
    h = L.ReLU()(_bn(L, "bn1")(h))
    h = L.ZeroPadding1D(1)(h)
    h = L.Conv1D(6, 3, strides=2, activation="relu", name="conv2")(h)
    h = L.Flatten()(h)
    y = L.Dense(5, name="fc")(h)
    return K.Model(x, y, name="conv1d_net")


def keras_embedding(K):
    L = K.layers
    x = K.Input((7,), dtype="int32")
    h = L.Embedding(50, 16, name="embed")(x)
    h = L.LayerNormalization(axis=-1, epsilon=EPS, name="norm")(h)
    h = L.GlobalAveragePooling1D()(h)
    y = L.Dense(5, name="head")(h)
    return K.Model(x, y, name="embedding_net")


def keras_custom(K):
    L = K.layers
    x = K.Input((12,))
    h = L.Dense(16, activation="tanh", name="proj")(x)
    h = L.Dense(16, activation="tanh", name="mix")(h)
    y = L.Dense(4, name="head")(h)
    return K.Model(x, y, name="custom_mix")


def keras_resnet(K):
    L = K.layers
    x = K.Input((16, 16, 3))
    h = L.ZeroPadding2D(1)(x)
    h = L.Conv2D(8, 3, use_bias=False, name="conv1")(h)
    h = L.ReLU()(_bn(L, "bn1")(h))
    for stage, cout, stride0 in ((1, 8, 1), (2, 16, 2)):
        for i in range(2):
            stride = stride0 if i == 0 else 1
            project = None
            if i == 0 and stage == 2:
                project = ("downsample_0", "downsample_1")
            h = _keras_block(L, h, cout, stride, f"layer{stage}_{i}_", project)
    h = L.GlobalAveragePooling2D()(h)
    y = L.Dense(10, name="fc")(h)
    return K.Model(x, y, name="tiny_resnet")


def keras_recurrent(K):
    L = K.layers
    x = K.Input((7, 6))
    h = L.LSTM(8, return_sequences=True, name="lstm_l0")(x)
    h = L.LSTM(8, return_sequences=True, name="lstm_l1")(h)
    h = L.Bidirectional(L.GRU(5, return_sequences=True), merge_mode="concat",
                        name="bigru")(h)
    h = L.Flatten()(L.Cropping1D((6, 0))(h))     # the last time step
    y = L.Dense(3, name="fc")(h)
    return K.Model(x, y, name="recurrent_net")


def keras_upsample(K):
    L = K.layers
    x = K.Input((5, 5, 8))
    # PyTorch padding=p, output_padding=op: crop (p, p - op) per axis.
    h = L.Conv2DTranspose(4, 3, strides=2, padding="valid", name="up1")(x)
    h = L.Cropping2D(((1, 0), (1, 0)))(h)
    h = L.ReLU()(_bn(L, "bn")(h))
    h = L.Conv2DTranspose(6, 4, strides=2, padding="valid", name="up2")(h)
    y = L.Cropping2D(((1, 1), (1, 1)))(h)
    return K.Model(x, y, name="upsample_net")


def keras_attention(K):
    L = K.layers
    x = K.Input((6,), dtype="int32")
    h = L.Embedding(40, 16, name="embed")(x)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8, name="attn")(h, h)
    h = L.LayerNormalization(epsilon=EPS, name="norm")(L.Add()([h, a]))
    h = L.GlobalAveragePooling1D()(h)
    y = L.Dense(3, name="head")(h)
    return K.Model(x, y, name="attention_net")


def keras_separable(K):
    L = K.layers
    x = K.Input((4, 4, 4))
    h = L.ZeroPadding2D(1)(x)
    h = L.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(h)
    h = L.GroupNormalization(groups=2, epsilon=EPS, name="gn")(h)
    h = L.PReLU(shared_axes=[1, 2], name="act")(h)
    h = L.BatchNormalization(epsilon=EPS, center=False, scale=False,
                             name="bn")(h)
    h = L.Flatten()(h)
    y = L.Dense(5, name="fc")(h)
    return K.Model(x, y, name="separable_net")


def keras_volume(K):
    L = K.layers
    x = K.Input((3, 4, 4, 2))
    h = L.ZeroPadding3D(1)(x)
    h = L.Conv3D(4, 3, name="conv")(h)
    h = L.ReLU()(_bn(L, "bn")(h))
    h = L.Flatten()(h)
    y = L.Dense(3, name="fc")(h)
    return K.Model(x, y, name="volume_net")


def keras_bighead(K):
    L = K.layers
    x = K.Input((7, 7, 512))
    h = L.Flatten()(x)
    h = L.Dense(700, activation="relu", name="fc1")(h)
    y = L.Dense(25000, name="fc2")(h)
    return K.Model(x, y, name="big_head")


# ------------------------------------------- hand-written transforms (NumPy)

def conv_kernel(w):
    """(O, I/g, k...) -> (k..., I/g, O): out last, in second to last."""
    nd = w.ndim
    return np.transpose(w, tuple(range(2, nd)) + (1, 0))


def depthwise_kernel(w, mult):
    """(C*M, 1, kh, kw) -> (kh, kw, C, M); output channel c*M+m."""
    cm, _, kh, kw = w.shape
    return w.reshape(cm // mult, mult, kh, kw).transpose(2, 3, 0, 1)


def dense_kernel(w, flatten=None):
    """Linear (O, I) -> Dense (I, O); after an NCHW/NCL flatten the rows
    follow Keras's channels_last flatten order."""
    if flatten is None:
        return w.T
    o = w.shape[0]
    perm = tuple(range(2, len(flatten) + 1)) + (1, 0)
    return w.reshape((o,) + tuple(flatten)).transpose(perm).reshape(-1, o)


class KeyLog(dict):
    """A state dict that remembers which keys were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def bn_weights(sd, p):
    return [sd[f"{p}.weight"], sd[f"{p}.bias"],
            sd[f"{p}.running_mean"], sd[f"{p}.running_var"]]


def conv_weights(sd, p):
    ws = [conv_kernel(sd[f"{p}.weight"])]
    if f"{p}.bias" in sd:
        ws.append(sd[f"{p}.bias"])
    return ws


def dense_weights(sd, p, flatten=None):
    return [dense_kernel(sd[f"{p}.weight"], flatten), sd[f"{p}.bias"]]


def _hand_cnn(sd):
    return [("conv1", conv_weights(sd, "features.0")),
            ("bn1", bn_weights(sd, "features.1")),
            ("conv2", conv_weights(sd, "features.4")),
            ("bn2", bn_weights(sd, "features.5")),
            ("fc1", dense_weights(sd, "classifier.1", (16, 4, 4))),
            ("fc2", dense_weights(sd, "classifier.3"))]


def _hand_block(sd, tp, kp, proj_keras=None, proj_torch=None):
    """One BasicBlock, in Keras's functional layer order: the projection
    conv sits at the same graph depth as conv2 and its BN at bn2's."""
    out = [(f"{kp}conv1", conv_weights(sd, f"{tp}conv1")),
           (f"{kp}bn1", bn_weights(sd, f"{tp}bn1")),
           (f"{kp}conv2", conv_weights(sd, f"{tp}conv2"))]
    if proj_keras:
        out.append((f"{kp}{proj_keras[0]}",
                    conv_weights(sd, f"{tp}{proj_torch}.0")))
    out.append((f"{kp}bn2", bn_weights(sd, f"{tp}bn2")))
    if proj_keras:
        out.append((f"{kp}{proj_keras[1]}",
                    bn_weights(sd, f"{tp}{proj_torch}.1")))
    return out


def _hand_resblock(sd):
    return _hand_block(sd, "", "", ("shortcut_conv", "shortcut_bn"),
                       "shortcut")


def _hand_dwsep(sd):
    return [("dw", [depthwise_kernel(sd["dw.weight"], 2), sd["dw.bias"]]),
            ("bn", bn_weights(sd, "bn")),
            ("pw", conv_weights(sd, "pw"))]


def _hand_conv1d(sd):
    return [("conv1", conv_weights(sd, "conv1")),
            ("bn1", bn_weights(sd, "bn1")),
            ("conv2", conv_weights(sd, "conv2")),
            ("fc", dense_weights(sd, "fc", (6, 8)))]


def _hand_embedding(sd):
    return [("embed", [sd["embed.weight"]]),
            ("norm", [sd["norm.weight"], sd["norm.bias"]]),
            ("head", dense_weights(sd, "head"))]


def _hand_custom(sd):
    return [("proj", dense_weights(sd, "proj")),
            ("mix", [sd["mix.weight"], sd["mix.bias"]]),
            ("head", dense_weights(sd, "head"))]


def _hand_resnet(sd):
    out = [("conv1", conv_weights(sd, "conv1")), ("bn1", bn_weights(sd, "bn1"))]
    for stage in (1, 2):
        for i in range(2):
            proj = ("downsample_0", "downsample_1") if (stage, i) == (2, 0) \
                else None
            out += _hand_block(sd, f"layer{stage}.{i}.", f"layer{stage}_{i}_",
                               proj, "downsample")
    out.append(("fc", dense_weights(sd, "fc")))
    return out


def _gates_zrn(a):
    """PyTorch GRU gate blocks r, z, n (axis 0) -> Keras order z, r, n."""
    r, z, n = np.split(a, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def lstm_weights(sd, p, k, sfx=""):
    g = lambda name: sd[f"{p}.{name}_l{k}{sfx}"]
    return [g("weight_ih").T, g("weight_hh").T, g("bias_ih") + g("bias_hh")]


def gru_weights(sd, p, k, sfx=""):
    g = lambda name: _gates_zrn(sd[f"{p}.{name}_l{k}{sfx}"])
    return [g("weight_ih").T, g("weight_hh").T,
            np.stack([g("bias_ih"), g("bias_hh")])]


def convt_kernel(w, groups=1):
    """(I, O/g, kh, kw) -> (kh, kw, O, I), groups expanded block-diagonally
    (Keras transposed convolutions have no groups)."""
    i, og, kh, kw = w.shape
    full = np.zeros((i, og * groups, kh, kw), dtype=w.dtype)
    ig = i // groups
    for j in range(groups):
        full[j * ig:(j + 1) * ig, j * og:(j + 1) * og] = w[j * ig:(j + 1) * ig]
    return full.transpose(2, 3, 1, 0)


def mha_weights(sd, p, heads):
    w, b = sd[f"{p}.in_proj_weight"], sd[f"{p}.in_proj_bias"]
    e = w.shape[1]
    d = e // heads
    out = []
    for wi, bi in zip(np.split(w, 3), np.split(b, 3)):
        out += [wi.T.reshape(e, heads, d), bi.reshape(heads, d)]
    out += [sd[f"{p}.out_proj.weight"].T.reshape(heads, d, e),
            sd[f"{p}.out_proj.bias"]]
    return out


def _hand_recurrent(sd):
    return [("lstm_l0", lstm_weights(sd, "lstm", 0)),
            ("lstm_l1", lstm_weights(sd, "lstm", 1)),
            ("bigru", gru_weights(sd, "gru", 0)
             + gru_weights(sd, "gru", 0, "_reverse")),
            ("fc", dense_weights(sd, "fc"))]


def _hand_upsample(sd):
    return [("up1", [convt_kernel(sd["up1.weight"]), sd["up1.bias"]]),
            ("bn", bn_weights(sd, "bn")),
            ("up2", [convt_kernel(sd["up2.weight"], 2), sd["up2.bias"]])]


def _hand_attention(sd):
    return [("embed", [sd["embed.weight"]]),
            ("attn", mha_weights(sd, "attn", 2)),
            ("norm", [sd["norm.weight"], sd["norm.bias"]]),
            ("head", dense_weights(sd, "head"))]


def _hand_separable(sd):
    wpw = sd["pw.weight"]
    return [("sep", [depthwise_kernel(sd["dw.weight"], 2), conv_kernel(wpw),
                     sd["pw.bias"] + wpw[:, :, 0, 0] @ sd["dw.bias"]]),
            ("gn", [sd["gn.weight"], sd["gn.bias"]]),
            ("act", [sd["act.weight"].reshape(1, 1, -1)]),
            ("bn", [sd["bn.running_mean"], sd["bn.running_var"]]),
            ("fc", dense_weights(sd, "fc", (6, 4, 4)))]


def _hand_volume(sd):
    return [("conv", conv_weights(sd, "conv")),
            ("bn", bn_weights(sd, "bn")),
            ("fc", dense_weights(sd, "fc", (4, 3, 4, 4)))]


def _hand_bighead(sd):
    return [("fc1", dense_weights(sd, "fc1", (512, 7, 7))),
            ("fc2", dense_weights(sd, "fc2"))]


# ---------------------------------------------------------------------- specs

def _spec(layers, **extra):
    spec = {"weightbridge_spec": 1, "target": {"format": "keras-h5"},
            "unmapped": "error", "layers": layers}
    spec.update(extra)
    return spec


SPEC_CNN = _spec([
    {"name": "conv1", "type": "Conv2D", "from": "features.0"},
    {"name": "bn1", "type": "BatchNormalization", "from": "features.1"},
    {"name": "conv2", "type": "Conv2D", "from": "features.4"},
    {"name": "bn2", "type": "BatchNormalization", "from": "features.5"},
    {"name": "fc1", "type": "Dense", "from": "classifier.1",
     "flatten": {"chw": [16, 4, 4]}},
    {"name": "fc2", "type": "Dense", "from": "classifier.3"},
])

# Keras orders functional layers by graph depth, so the projection conv comes
# between conv2 and bn2 (see _hand_block); the spec lists them that way.
SPEC_RESBLOCK = _spec([
    {"name": "conv1", "type": "Conv2D", "from": "conv1"},
    {"name": "bn1", "type": "BatchNormalization", "from": "bn1"},
    {"name": "conv2", "type": "Conv2D", "from": "conv2"},
    {"name": "shortcut_conv", "type": "Conv2D", "from": "shortcut.0"},
    {"name": "bn2", "type": "BatchNormalization", "from": "bn2"},
    {"name": "shortcut_bn", "type": "BatchNormalization", "from": "shortcut.1"},
])

SPEC_DWSEP = _spec([
    {"name": "dw", "type": "DepthwiseConv2D", "from": "dw",
     "depth_multiplier": 2},
    {"name": "bn", "type": "BatchNormalization", "from": "bn"},
    {"name": "pw", "type": "Conv2D", "from": "pw"},
])

SPEC_CONV1D = _spec([
    {"name": "conv1", "type": "Conv1D", "from": "conv1"},
    {"name": "bn1", "type": "BatchNormalization", "from": "bn1"},
    {"name": "conv2", "type": "Conv1D", "from": "conv2"},
    {"name": "fc", "type": "Dense", "from": "fc", "flatten": {"cl": [6, 8]}},
])

SPEC_EMBEDDING = _spec([
    {"name": "embed", "type": "Embedding", "from": "embed"},
    {"name": "norm", "type": "LayerNormalization", "from": "norm"},
    {"name": "head", "type": "Dense", "from": "head"},
])

# A Custom entry has no Keras class to derive a Keras 3 path from, so every
# Dense here names its `layers/dense[_N]` key (N counts model.layers order).
SPEC_CUSTOM = _spec([
    {"name": "proj", "type": "Custom", "keras3_path": "layers/dense",
     "weights": [
         {"name": "kernel", "from": "proj.weight",
          "transform": {"transpose": [1, 0]}},
         {"name": "bias", "from": "proj.bias"}]},
    {"name": "mix", "type": "Custom", "keras3_path": "layers/dense_1",
     "weights": [
         {"name": "kernel", "from": "mix.weight"},
         {"name": "bias", "from": "mix.bias"}]},
    {"name": "head", "type": "Dense", "from": "head",
     "keras3_path": "layers/dense_2"},
])

# `match` expands in archive order (conv1, bn1, conv2, bn2, downsample.0,
# downsample.1 within a block) but Keras puts the projection at conv2's and
# bn2's graph depth, so the one projecting block is spelled out.
SPEC_RESNET = _spec([
    {"name": "conv1", "type": "Conv2D", "from": "conv1"},
    {"name": "bn1", "type": "BatchNormalization", "from": "bn1"},
    {"match": "^layer1\\.([0-9]+)\\.([a-z]+[0-9])$",
     "name": "layer1_$1_$2", "type": "auto"},
    {"match": "^layer2\\.0\\.(conv1|bn1|conv2)$",
     "name": "layer2_0_$1", "type": "auto"},
    {"name": "layer2_0_downsample_0", "type": "Conv2D",
     "from": "layer2.0.downsample.0"},
    {"name": "layer2_0_bn2", "type": "BatchNormalization",
     "from": "layer2.0.bn2"},
    {"name": "layer2_0_downsample_1", "type": "BatchNormalization",
     "from": "layer2.0.downsample.1"},
    {"match": "^layer2\\.([1-9][0-9]*)\\.([a-z]+[0-9])$",
     "name": "layer2_$1_$2", "type": "auto"},
    {"name": "fc", "type": "Dense", "from": "fc"},
])


# One PyTorch LSTM module with num_layers=2 is two Keras layers.
SPEC_RECURRENT = _spec([
    {"name": "lstm_l0", "type": "LSTM", "from": "lstm", "layer": 0},
    {"name": "lstm_l1", "type": "LSTM", "from": "lstm", "layer": 1},
    {"name": "bigru", "type": "GRU", "from": "gru"},
    {"name": "fc", "type": "Dense", "from": "fc"},
])

SPEC_UPSAMPLE = _spec([
    {"name": "up1", "type": "Conv2DTranspose", "from": "up1",
     "padding": 1, "output_padding": 1},
    {"name": "bn", "type": "BatchNormalization", "from": "bn"},
    {"name": "up2", "type": "Conv2DTranspose", "from": "up2", "groups": 2,
     "padding": 1},
])

SPEC_ATTENTION = _spec([
    {"name": "embed", "type": "Embedding", "from": "embed"},
    {"name": "attn", "type": "MultiHeadAttention", "from": "attn",
     "num_heads": 2},
    {"name": "norm", "type": "LayerNormalization", "from": "norm"},
    {"name": "head", "type": "Dense", "from": "head"},
])

SPEC_SEPARABLE = _spec([
    {"name": "sep", "type": "SeparableConv2D", "from": "dw", "pointwise": "pw",
     "depth_multiplier": 2},
    {"name": "gn", "type": "GroupNormalization", "from": "gn", "groups": 2},
    {"name": "act", "type": "PReLU", "from": "act", "input_rank": 4},
    {"name": "bn", "type": "BatchNormalization", "from": "bn"},
    {"name": "fc", "type": "Dense", "from": "fc",
     "flatten": {"chw": [6, 4, 4]}},
])

SPEC_VOLUME = _spec([
    {"name": "conv", "type": "Conv3D", "from": "conv"},
    {"name": "bn", "type": "BatchNormalization", "from": "bn"},
    {"name": "fc", "type": "Dense", "from": "fc",
     "flatten": {"cdhw": [4, 3, 4, 4]}},
])

SPEC_BIGHEAD = _spec([
    {"name": "fc1", "type": "Dense", "from": "fc1",
     "flatten": {"chw": [512, 7, 7]}},
    {"name": "fc2", "type": "Dense", "from": "fc2"},
])


# ---------------------------------------------------------------------- cases

def _nchw_to_nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _same(a):
    return a


@dataclass(frozen=True)
class Case:
    name: str
    torch_cls: Callable[[], nn.Module]
    input_shape: tuple          # PyTorch layout, batch included
    build_keras: Callable
    hand_weights: Callable[[dict], list]
    spec: dict
    seed: int
    tokens: int = 0             # >0: integer input in [0, tokens)
    input_to_keras: Callable = _nchw_to_nhwc
    output_to_keras: Callable = _same

    def torch_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        model = self.torch_cls()
        gen = torch.Generator().manual_seed(self.seed + 1)
        _randomise_norms(model, gen)
        return model.eval()

    def torch_input(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 2)
        if self.tokens:
            return rng.integers(0, self.tokens, self.input_shape,
                                dtype=np.int64)
        return rng.standard_normal(self.input_shape).astype(np.float32)

    def keras_input(self, x: np.ndarray) -> np.ndarray:
        if self.tokens:
            return x.astype(np.int32)
        return self.input_to_keras(x)

    def spec_copy(self) -> dict:
        return copy.deepcopy(self.spec)


CASES = [
    Case("cnn", SmallCNN, (BATCH, 3, 16, 16), keras_cnn, _hand_cnn,
         SPEC_CNN, seed=11, input_to_keras=_nchw_to_nhwc),
    Case("resblock", ResidualBlock, (BATCH, 8, 10, 10), keras_resblock,
         _hand_resblock, SPEC_RESBLOCK, seed=12,
         output_to_keras=_nchw_to_nhwc),
    Case("dwsep", DepthwiseSeparable, (BATCH, 8, 8, 8), keras_dwsep,
         _hand_dwsep, SPEC_DWSEP, seed=13, output_to_keras=_nchw_to_nhwc),
    Case("conv1d", Conv1dNet, (BATCH, 4, 16), keras_conv1d, _hand_conv1d,
         SPEC_CONV1D, seed=14),
    Case("embedding", EmbeddingNet, (BATCH, 7), keras_embedding,
         _hand_embedding, SPEC_EMBEDDING, seed=15, tokens=50),
    Case("custom", CustomMix, (BATCH, 12), keras_custom, _hand_custom,
         SPEC_CUSTOM, seed=16, input_to_keras=_same),
    Case("resnet", TinyResNet, (BATCH, 3, 16, 16), keras_resnet,
         _hand_resnet, SPEC_RESNET, seed=17),
    Case("recurrent", RecurrentNet, (BATCH, 7, 6), keras_recurrent,
         _hand_recurrent, SPEC_RECURRENT, seed=18, input_to_keras=_same),
    Case("upsample", UpsampleNet, (BATCH, 8, 5, 5), keras_upsample,
         _hand_upsample, SPEC_UPSAMPLE, seed=19,
         output_to_keras=_nchw_to_nhwc),
    Case("attention", AttentionNet, (BATCH, 6), keras_attention,
         _hand_attention, SPEC_ATTENTION, seed=20, tokens=40),
    Case("separable", SeparableNet, (BATCH, 4, 4, 4), keras_separable,
         _hand_separable, SPEC_SEPARABLE, seed=21),
    Case("volume", VolumeNet, (BATCH, 2, 3, 4, 4), keras_volume,
         _hand_volume, SPEC_VOLUME, seed=22),
    Case("bighead", BigHead, (BATCH, 512, 7, 7), keras_bighead,
         _hand_bighead, SPEC_BIGHEAD, seed=23),
]

CASE_BY_NAME = {c.name: c for c in CASES}


# -------------------------------------------------------------------- helpers

def export_npz(model: nn.Module, path) -> None:
    """Export exactly as users do."""
    np.savez_compressed(
        path, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})


def torch_reference(case: Case, model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    return case.output_to_keras(y)


def keras_output(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def weight_layer_names(model) -> list:
    """Names of the layers that carry weights, in `model.layers` order: the
    order legacy by-order loading and the Keras 3 layout both use."""
    return [layer.name for layer in model.layers if layer.weights]
