"""Layer-coverage model pairs: recurrent, transposed and grouped convs,
normalisations, PReLU, attention and weight norm.

Each `Pair` is a seeded PyTorch module, a Keras builder computing the same
function on channels_last / batch-first tensors, the weightbridge spec
layers that map one onto the other, and `hand`: an independent NumPy
implementation of the transforms (MAPPING.md) used by test_layers.py to
prove the pair matches before the converter is involved.  A failure of a
converted-weights test whose hand-copy twin passes points at the converter.

Keras builders take the Keras module (`keras` or `tf_keras`); every layer
used here exists in both with the same constructor arguments.  Layers with
weights are named after their spec entries for `by_name=True` loading, and
the spec lists them in `model.layers` order.

Everything that PyTorch initialises to a constant is randomised: norm
scales and shifts, BN statistics, attention biases (zero by default),
PReLU slopes (0.25 by default) and weight-norm magnitudes (g = |v| at
initialisation, which would make a converter that ignores g look right).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .zoo import conv_kernel, depthwise_kernel

EPS = 1e-5
BATCH = 2


# ------------------------------------------------------------- randomising

def randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Give every constant-initialised parameter a random value."""
    def rnd(t, scale=0.2, offset=0.0, positive=False):
        r = torch.rand(t.shape, generator=gen) if positive else \
            torch.randn(t.shape, generator=gen)
        t.copy_(r * scale + offset)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                rnd(m.weight, 1.0, 0.5, positive=True)
                rnd(m.bias)
                rnd(m.running_mean)
                rnd(m.running_var, 1.0, 0.5, positive=True)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm,
                                nn.modules.instancenorm._InstanceNorm)):
                if m.weight is not None:
                    rnd(m.weight, 1.0, 0.5, positive=True)
                    rnd(m.bias)
            elif isinstance(m, nn.PReLU):
                rnd(m.weight, 0.5, 0.05, positive=True)
            elif isinstance(m, nn.MultiheadAttention):
                if m.in_proj_bias is not None:
                    rnd(m.in_proj_bias)
                if m.out_proj.bias is not None:
                    rnd(m.out_proj.bias)
        for name, p in model.named_parameters():
            if name.endswith("weight_g") or name.endswith(
                    "parametrizations.weight.original0"):
                rnd(p, 1.0, 0.5, positive=True)


# ---------------------------------------------------------- PyTorch models

class StackedRNN(nn.Module):
    """A torch RNN module returning only its output sequence."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def lstm2():
    return StackedRNN(nn.LSTM(5, 8, num_layers=2, batch_first=True))


def bilstm2():
    return StackedRNN(nn.LSTM(5, 6, num_layers=2, bidirectional=True,
                              batch_first=True))


def gru2():
    return StackedRNN(nn.GRU(5, 8, num_layers=2, batch_first=True))


def bigru():
    return StackedRNN(nn.GRU(5, 6, bidirectional=True, batch_first=True))


class SimpleRNNs(nn.Module):
    """tanh RNN, then a bidirectional relu RNN on its outputs."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(5, 8, batch_first=True)
        self.rnn_bi = nn.RNN(8, 4, nonlinearity="relu", bidirectional=True,
                             batch_first=True)

    def forward(self, x):
        return self.rnn_bi(self.rnn(x)[0])[0]


class NoBiasRNNs(nn.Module):
    """LSTM then GRU, both bias=False."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 12, bias=False, batch_first=True)
        self.gru = nn.GRU(12, 8, bias=False, batch_first=True)

    def forward(self, x):
        return self.gru(self.lstm(x)[0])[0]


class Up(nn.Module):
    """conv 3x3, then one transposed conv."""

    def __init__(self, convt: nn.Module, cin: int, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.conv = conv(3, cin, 3, padding=1)
        self.up = convt

    def forward(self, x):
        return self.up(torch.relu(self.conv(x)))


def convt_k4s2p1():
    return Up(nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1), 6)


def convt_k3s2p1op1():
    return Up(nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1,
                                 output_padding=1), 6)


class Up3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.up = nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1,
                                     output_padding=1)

    def forward(self, x):
        return self.up(torch.relu(self.conv(x)))


def convt1d():
    return Up(nn.ConvTranspose1d(6, 5, 5, stride=2, padding=2,
                                 output_padding=1), 6, dims=1)


def convt_grouped():
    return Up(nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1,
                                 output_padding=1, groups=2), 8)


class ResNeXtBlock(nn.Module):
    """1x1 conv, grouped 3x3 conv (cardinality 4), 1x1 conv, each with BN;
    identity shortcut."""

    def __init__(self, c=16, groups=4):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return torch.relu(self.bn3(self.conv3(h)) + x)


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block (stride 1, expand 4), key names
    included: conv.0 = 1x1 expand + BN + ReLU6, conv.1 = depthwise 3x3 +
    BN + ReLU6, conv.2 = 1x1 project, conv.3 = BN; residual add."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        hidden = c * expand
        self.conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False),
                          nn.BatchNorm2d(hidden), nn.ReLU6()),
            nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden,
                                    bias=False),
                          nn.BatchNorm2d(hidden), nn.ReLU6()),
            nn.Conv2d(hidden, c, 1, bias=False),
            nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.conv(x)


class Separable(nn.Module):
    """Depthwise 3x3 (multiplier 2) straight into a 1x1 conv."""

    def __init__(self, dw_bias=True, pw_bias=True):
        super().__init__()
        self.dw = nn.Conv2d(6, 12, 3, padding=1, groups=6, bias=dw_bias)
        self.pw = nn.Conv2d(12, 5, 1, bias=pw_bias)

    def forward(self, x):
        return self.pw(self.dw(x))


class SeparableWeightNorm(Separable):
    """The same, both convs under parametrizations.weight_norm."""

    def __init__(self):
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.dw = wn(nn.Conv2d(6, 12, 3, padding=1, groups=6))
        self.pw = wn(nn.Conv2d(12, 5, 1))


class Depthwise1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv1d(4, 8, 3, padding=1, groups=4)
        self.fc = nn.Conv1d(8, 3, 1)

    def forward(self, x):
        return self.fc(torch.relu(self.dw(x)))


class NormNet(nn.Module):
    """conv 3x3, a normalisation layer, ReLU, conv 1x1."""

    def __init__(self, norm: nn.Module, c=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1)
        self.norm = norm
        self.conv2 = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.norm(self.conv1(x))))


def groupnorm():
    return NormNet(nn.GroupNorm(4, 8))


def instancenorm():
    return NormNet(nn.InstanceNorm2d(8, affine=True))


def layernorm_chw():
    # H != W, so a gamma left in (C, H, W) or moved to (W, H, C) cannot fit.
    return NormNet(nn.LayerNorm([8, 4, 5]))


class PReLUNet(nn.Module):
    """Per-channel PReLU, then a single-parameter PReLU, on inputs of
    rank 2 (Linear), 3 (Conv1d) or 4 (Conv2d)."""

    def __init__(self, rank: int):
        super().__init__()
        layer = {2: nn.Linear, 3: lambda i, o: nn.Conv1d(i, o, 3, padding=1),
                 4: lambda i, o: nn.Conv2d(i, o, 3, padding=1)}[rank]
        self.fc1 = layer(3, 6)
        self.act1 = nn.PReLU(6)
        self.fc2 = layer(6, 4)
        self.act2 = nn.PReLU()

    def forward(self, x):
        return self.act2(self.fc2(self.act1(self.fc1(x))))


def transformer():
    return nn.TransformerEncoderLayer(d_model=16, nhead=4,
                                      dim_feedforward=32, dropout=0.0,
                                      batch_first=True)


class CrossAttention(nn.Module):
    """MultiheadAttention with kdim/vdim != embed_dim: separate q/k/v
    projection weights."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, kdim=10, vdim=12,
                                          batch_first=True)

    def forward(self, q, k, v):
        return self.attn(q, k, v, need_weights=False)[0]


class SelfAttentionNoBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, bias=False, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class WeightNormConv1d(nn.Module):
    """Old-style weight_norm (weight_g/weight_v), then the parametrization
    form (parametrizations.weight.original0/1)."""

    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.conv1 = nn.utils.weight_norm(nn.Conv1d(4, 8, 3, padding=1))
        self.conv2 = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(8, 6, 3))

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


class WeightNormUpsampler(nn.Module):
    """A vocoder-style stage: weight-norm Conv1d and ConvTranspose1d
    (old style), then a Linear over channels (parametrization style)."""

    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.conv = nn.utils.weight_norm(nn.Conv1d(3, 6, 3, padding=1))
            self.up = nn.utils.weight_norm(
                nn.ConvTranspose1d(6, 4, 4, stride=2, padding=1))
        self.fc = nn.utils.parametrizations.weight_norm(nn.Linear(4, 3))

    def forward(self, x):
        h = self.up(torch.relu(self.conv(x)))
        return self.fc(h.transpose(1, 2)).transpose(1, 2)


# -------------------------------------------------------------- Keras side

def _rnn(L, cls, units, name, bi=False, **kw):
    if bi:
        return L.Bidirectional(
            getattr(L, cls)(units, return_sequences=True, **kw), name=name)
    return getattr(L, cls)(units, return_sequences=True, name=name, **kw)


def k_lstm2(K):
    L = K.layers
    x = K.Input((7, 5))
    h = _rnn(L, "LSTM", 8, "lstm_l0")(x)
    return K.Model(x, _rnn(L, "LSTM", 8, "lstm_l1")(h))


def k_bilstm2(K):
    L = K.layers
    x = K.Input((7, 5))
    h = _rnn(L, "LSTM", 6, "bilstm_l0", bi=True)(x)
    return K.Model(x, _rnn(L, "LSTM", 6, "bilstm_l1", bi=True)(h))


def k_gru2(K):
    L = K.layers
    x = K.Input((7, 5))
    h = _rnn(L, "GRU", 8, "gru_l0", reset_after=True)(x)
    return K.Model(x, _rnn(L, "GRU", 8, "gru_l1", reset_after=True)(h))


def k_bigru(K):
    L = K.layers
    x = K.Input((7, 5))
    return K.Model(x, _rnn(L, "GRU", 6, "bigru", bi=True,
                           reset_after=True)(x))


def k_simplernn(K):
    L = K.layers
    x = K.Input((7, 5))
    h = _rnn(L, "SimpleRNN", 8, "rnn_tanh", activation="tanh")(x)
    return K.Model(x, _rnn(L, "SimpleRNN", 4, "rnn_relu_bi", bi=True,
                           activation="relu")(h))


def k_rnn_nobias(K):
    L = K.layers
    x = K.Input((7, 5))
    h = L.LSTM(12, use_bias=False, return_sequences=True, name="lstm")(x)
    return K.Model(x, L.GRU(8, use_bias=False, reset_after=True,
                            return_sequences=True, name="gru")(h))


def _k_up(K, hw, cin, convt, crop, dims=2):
    L = K.layers
    x = K.Input(hw + (3,))
    pad, conv, cropping = {
        1: (L.ZeroPadding1D, L.Conv1D, L.Cropping1D),
        2: (L.ZeroPadding2D, L.Conv2D, L.Cropping2D),
        3: (L.ZeroPadding3D, L.Conv3D, L.Cropping3D)}[dims]
    h = conv(cin, 3, activation="relu", name="conv")(pad(1)(x))
    return K.Model(x, cropping(crop)(convt(L)(h)))


def k_convt_k4s2p1(K):
    return _k_up(K, (5, 6), 6, lambda L: L.Conv2DTranspose(
        4, 4, strides=2, padding="valid", name="up"), ((1, 1), (1, 1)))


def k_convt_k3s2p1op1(K):
    return _k_up(K, (5, 6), 6, lambda L: L.Conv2DTranspose(
        4, 3, strides=2, padding="valid", name="up"), ((1, 0), (1, 0)))


def k_convt1d(K):
    return _k_up(K, (9,), 6, lambda L: L.Conv1DTranspose(
        5, 5, strides=2, padding="valid", name="up"), (2, 1), dims=1)


def k_convt3d(K):
    return _k_up(K, (3, 4, 3), 4, lambda L: L.Conv3DTranspose(
        3, 3, strides=2, padding="valid", name="up"), ((1, 0),) * 3, dims=3)


def k_convt_grouped(K):
    return _k_up(K, (5, 6), 8, lambda L: L.Conv2DTranspose(
        6, 3, strides=2, padding="valid", name="up"), ((1, 0), (1, 0)))


def _bn(L, name):
    return L.BatchNormalization(axis=-1, epsilon=EPS, momentum=0.9, name=name)


def k_resnext(K):
    L = K.layers
    x = K.Input((6, 6, 16))
    h = L.ReLU()(_bn(L, "bn1")(L.Conv2D(16, 1, use_bias=False,
                                        name="conv1")(x)))
    h = L.Conv2D(16, 3, groups=4, use_bias=False,
                 name="conv2")(L.ZeroPadding2D(1)(h))
    h = L.ReLU()(_bn(L, "bn2")(h))
    h = _bn(L, "bn3")(L.Conv2D(16, 1, use_bias=False, name="conv3")(h))
    return K.Model(x, L.ReLU()(L.Add()([h, x])))


def k_mbv2(K):
    L = K.layers
    x = K.Input((6, 6, 8))
    h = L.Conv2D(32, 1, use_bias=False, name="expand")(x)
    h = L.ReLU(max_value=6.0)(_bn(L, "expand_bn")(h))
    h = L.DepthwiseConv2D(3, use_bias=False,
                          name="depthwise")(L.ZeroPadding2D(1)(h))
    h = L.ReLU(max_value=6.0)(_bn(L, "depthwise_bn")(h))
    h = L.Conv2D(8, 1, use_bias=False, name="project")(h)
    h = _bn(L, "project_bn")(h)
    return K.Model(x, L.Add()([x, h]))


def k_separable(K, use_bias=True):
    L = K.layers
    x = K.Input((5, 6, 6))
    y = L.SeparableConv2D(5, 3, depth_multiplier=2, use_bias=use_bias,
                          name="sep")(L.ZeroPadding2D(1)(x))
    return K.Model(x, y)


def k_dwconv1d(K):
    L = K.layers
    x = K.Input((9, 4))
    h = L.DepthwiseConv1D(3, depth_multiplier=2, activation="relu",
                          name="dw")(L.ZeroPadding1D(1)(x))
    return K.Model(x, L.Conv1D(3, 1, name="fc")(h))


def _k_norm(K, norm, hw=(4, 5)):
    L = K.layers
    x = K.Input(hw + (3,))
    h = L.Conv2D(8, 3, name="conv1")(L.ZeroPadding2D(1)(x))
    h = L.ReLU()(norm(L)(h))
    return K.Model(x, L.Conv2D(4, 1, name="conv2")(h))


def k_groupnorm(K):
    return _k_norm(K, lambda L: L.GroupNormalization(
        groups=4, axis=-1, epsilon=EPS, name="norm"))


def k_instancenorm(K):
    return _k_norm(K, lambda L: L.GroupNormalization(
        groups=8, axis=-1, epsilon=EPS, name="norm"))


def k_layernorm_chw(K):
    return _k_norm(K, lambda L: L.LayerNormalization(
        axis=[1, 2, 3], epsilon=EPS, name="norm"))


# PReLU shared_axes per input rank (MAPPING.md 2.13): per-channel shares
# every axis but the channels, a single slope shares them all.
PRELU_AXES = {2: (None, [1]), 3: ([1], [1, 2]), 4: ([1, 2], [1, 2, 3])}


def _k_prelu(K, rank):
    L = K.layers
    shape = {2: (3,), 3: (7, 3), 4: (4, 5, 3)}[rank]
    x = K.Input(shape)
    per_channel, single = PRELU_AXES[rank]

    def layer(units, name):
        if rank == 2:
            return L.Dense(units, name=name)
        pad = L.ZeroPadding1D if rank == 3 else L.ZeroPadding2D
        conv = L.Conv1D if rank == 3 else L.Conv2D
        return lambda t: conv(units, 3, name=name)(pad(1)(t))

    h = layer(6, "fc1")(x)
    h = L.PReLU(shared_axes=per_channel, name="act1")(h)
    h = layer(4, "fc2")(h)
    return K.Model(x, L.PReLU(shared_axes=single, name="act2")(h))


def k_transformer(K):
    L = K.layers
    x = K.Input((6, 16))
    a = L.MultiHeadAttention(num_heads=4, key_dim=4, name="self_attn")(x, x)
    h = L.LayerNormalization(epsilon=EPS, name="norm1")(L.Add()([x, a]))
    f = L.Dense(32, activation="relu", name="linear1")(h)
    f = L.Dense(16, name="linear2")(f)
    y = L.LayerNormalization(epsilon=EPS, name="norm2")(L.Add()([h, f]))
    return K.Model(x, y)


def k_cross_attention(K):
    L = K.layers
    q, k, v = K.Input((5, 16)), K.Input((7, 10)), K.Input((7, 12))
    y = L.MultiHeadAttention(num_heads=4, key_dim=4, value_dim=4,
                             name="attn")(q, v, key=k)
    return K.Model([q, k, v], y)


def k_attention_nobias(K):
    L = K.layers
    x = K.Input((6, 16))
    y = L.MultiHeadAttention(num_heads=4, key_dim=4, use_bias=False,
                             name="attn")(x, x)
    return K.Model(x, y)


def k_weightnorm_upsampler(K):
    L = K.layers
    x = K.Input((8, 3))
    h = L.Conv1D(6, 3, activation="relu", name="conv")(L.ZeroPadding1D(1)(x))
    h = L.Conv1DTranspose(4, 4, strides=2, padding="valid", name="up")(h)
    return K.Model(x, L.Dense(3, name="fc")(L.Cropping1D((1, 1))(h)))


def k_weightnorm(K):
    L = K.layers
    x = K.Input((9, 4))
    h = L.Conv1D(8, 3, activation="relu", name="conv1")(L.ZeroPadding1D(1)(x))
    return K.Model(x, L.Conv1D(6, 3, name="conv2")(h))


# ------------------------------------------ hand-written transforms (NumPy)

def _gru_gates(a, axis=0):
    """PyTorch r, z, n -> Keras z, r, h."""
    r, z, n = np.split(a, 3, axis=axis)
    return np.concatenate([z, r, n], axis=axis)


def rnn_weights(sd, p, k, kind, bidirectional=False):
    out = []
    for sfx in ("", "_reverse")[:2 if bidirectional else 1]:
        wi, wh = sd[f"{p}.weight_ih_l{k}{sfx}"], sd[f"{p}.weight_hh_l{k}{sfx}"]
        if kind == "GRU":
            out += [_gru_gates(wi).T, _gru_gates(wh).T]
        else:
            out += [wi.T, wh.T]
        if f"{p}.bias_ih_l{k}{sfx}" not in sd:
            continue                # bias=False
        bi, bh = sd[f"{p}.bias_ih_l{k}{sfx}"], sd[f"{p}.bias_hh_l{k}{sfx}"]
        if kind == "GRU":
            out.append(np.stack([_gru_gates(bi), _gru_gates(bh)]))
        else:
            out.append(bi + bh)
    return out


def convt_kernel(w, groups=1):
    """(I, O/g, k...) -> (k..., O, I), groups as a block-diagonal kernel."""
    cin, og = w.shape[:2]
    full = np.zeros((cin, og * groups) + w.shape[2:], w.dtype)
    ig = cin // groups
    for j in range(groups):
        full[j * ig:(j + 1) * ig, j * og:(j + 1) * og] = w[j * ig:(j + 1) * ig]
    nd = w.ndim
    return full.transpose(tuple(range(2, nd)) + (1, 0))


def bn_weights(sd, p):
    return [sd[f"{p}.weight"], sd[f"{p}.bias"],
            sd[f"{p}.running_mean"], sd[f"{p}.running_var"]]


def conv_weights(sd, p):
    ws = [conv_kernel(sd[f"{p}.weight"])]
    if f"{p}.bias" in sd:
        ws.append(sd[f"{p}.bias"])
    return ws


def mha_weights(sd, p, heads):
    wo = sd[f"{p}.out_proj.weight"]
    e = wo.shape[0]
    d = e // heads
    if f"{p}.in_proj_weight" in sd:
        ws = np.split(sd[f"{p}.in_proj_weight"], 3)
    else:
        ws = [sd[f"{p}.{c}_proj_weight"] for c in "qkv"]
    out = []
    if f"{p}.in_proj_bias" not in sd:          # bias=False
        for w in ws:
            out.append(w.T.reshape(-1, heads, d))
        return out + [wo.T.reshape(heads, d, e)]
    bs = np.split(sd[f"{p}.in_proj_bias"], 3)
    for w, b in zip(ws, bs):
        out += [w.T.reshape(-1, heads, d), b.reshape(heads, d)]
    return out + [wo.T.reshape(heads, d, e), sd[f"{p}.out_proj.bias"]]


def weight_norm(g, v):
    axes = tuple(range(1, v.ndim))
    return g * v / np.sqrt(np.sum(v.astype(np.float64) ** 2, axis=axes,
                                  keepdims=True)).astype(np.float32)


def prelu_alpha(a, rank):
    return a.reshape((1,) * (rank - 2) + a.shape)


def _h_rnn(names, p, kind, bi=False):
    return lambda sd: [(n, rnn_weights(sd, p, k, kind, bi))
                       for k, n in enumerate(names)]


def _h_up(groups=1):
    return lambda sd: [("conv", conv_weights(sd, "conv")),
                       ("up", [convt_kernel(sd["up.weight"], groups),
                               sd["up.bias"]])]


def _h_simplernn(sd):
    return [("rnn_tanh", rnn_weights(sd, "rnn", 0, "SimpleRNN")),
            ("rnn_relu_bi", rnn_weights(sd, "rnn_bi", 0, "SimpleRNN", True))]


def _h_resnext(sd):
    return [("conv1", conv_weights(sd, "conv1")), ("bn1", bn_weights(sd, "bn1")),
            ("conv2", conv_weights(sd, "conv2")), ("bn2", bn_weights(sd, "bn2")),
            ("conv3", conv_weights(sd, "conv3")), ("bn3", bn_weights(sd, "bn3"))]


def _h_mbv2(sd):
    return [("expand", conv_weights(sd, "conv.0.0")),
            ("expand_bn", bn_weights(sd, "conv.0.1")),
            ("depthwise", [depthwise_kernel(sd["conv.1.0.weight"], 1)]),
            ("depthwise_bn", bn_weights(sd, "conv.1.1")),
            ("project", conv_weights(sd, "conv.2")),
            ("project_bn", bn_weights(sd, "conv.3"))]


def _wn(sd, p):
    """The module's weight, folded from a weight-norm pair if need be."""
    if f"{p}.weight" in sd:
        return sd[f"{p}.weight"]
    if f"{p}.weight_g" in sd:
        return weight_norm(sd[f"{p}.weight_g"], sd[f"{p}.weight_v"])
    return weight_norm(sd[f"{p}.parametrizations.weight.original0"],
                       sd[f"{p}.parametrizations.weight.original1"])


def _h_separable(sd):
    """One bias after the pointwise step: b_pw + W_pw @ b_dw, from
    whichever of the two exist."""
    pw = _wn(sd, "pw")
    ws = [depthwise_kernel(_wn(sd, "dw"), 2), conv_kernel(pw)]
    if "dw.bias" in sd or "pw.bias" in sd:
        b = np.zeros(pw.shape[0], np.float32)
        if "pw.bias" in sd:
            b = b + sd["pw.bias"]
        if "dw.bias" in sd:
            b = b + pw[:, :, 0, 0] @ sd["dw.bias"]
        ws.append(b)
    return [("sep", ws)]


def _h_rnn_nobias(sd):
    return [("lstm", rnn_weights(sd, "lstm", 0, "LSTM")),
            ("gru", rnn_weights(sd, "gru", 0, "GRU"))]


def _h_weightnorm_upsampler(sd):
    return [("conv", [conv_kernel(_wn(sd, "conv")), sd["conv.bias"]]),
            ("up", [convt_kernel(_wn(sd, "up")), sd["up.bias"]]),
            ("fc", [_wn(sd, "fc").T, sd["fc.bias"]])]


def _h_dwconv1d(sd):
    w = sd["dw.weight"]
    c = w.shape[0] // 2
    return [("dw", [w.reshape(c, 2, 3).transpose(2, 0, 1), sd["dw.bias"]]),
            ("fc", conv_weights(sd, "fc"))]


def _h_norm(chw=False):
    def hand(sd):
        w, b = sd["norm.weight"], sd["norm.bias"]
        if chw:
            w, b = w.transpose(1, 2, 0), b.transpose(1, 2, 0)
        return [("conv1", conv_weights(sd, "conv1")), ("norm", [w, b]),
                ("conv2", conv_weights(sd, "conv2"))]
    return hand


def _h_prelu(rank):
    def hand(sd):
        fc = (lambda p: [sd[f"{p}.weight"].T, sd[f"{p}.bias"]]) if rank == 2 \
            else (lambda p: conv_weights(sd, p))
        return [("fc1", fc("fc1")),
                ("act1", [prelu_alpha(sd["act1.weight"], rank)]),
                ("fc2", fc("fc2")),
                ("act2", [prelu_alpha(sd["act2.weight"], rank)])]
    return hand


def _h_transformer(sd):
    return [("self_attn", mha_weights(sd, "self_attn", 4)),
            ("norm1", [sd["norm1.weight"], sd["norm1.bias"]]),
            ("linear1", [sd["linear1.weight"].T, sd["linear1.bias"]]),
            ("linear2", [sd["linear2.weight"].T, sd["linear2.bias"]]),
            ("norm2", [sd["norm2.weight"], sd["norm2.bias"]])]


def _h_cross_attention(sd):
    return [("attn", mha_weights(sd, "attn", 4))]


_h_attention_nobias = _h_cross_attention


def _h_weightnorm(sd):
    w1 = weight_norm(sd["conv1.weight_g"], sd["conv1.weight_v"])
    w2 = weight_norm(sd["conv2.parametrizations.weight.original0"],
                     sd["conv2.parametrizations.weight.original1"])
    return [("conv1", [conv_kernel(w1), sd["conv1.bias"]]),
            ("conv2", [conv_kernel(w2), sd["conv2.bias"]])]


# -------------------------------------------------------------- the pairs

def _nchw_to_nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _same(a):
    return a


def _rnn_spec(names, typ, p, **extra):
    return [dict({"name": n, "type": typ, "from": p, "layer": k}, **extra)
            for k, n in enumerate(names)]


def _up_spec(typ, **opts):
    return [{"name": "conv", "type": typ.replace("Transpose", ""),
             "from": "conv"},
            dict({"name": "up", "type": typ, "from": "up"}, **opts)]


def _norm_spec(norm):
    return [{"name": "conv1", "type": "Conv2D", "from": "conv1"},
            dict({"name": "norm", "from": "norm"}, **norm),
            {"name": "conv2", "type": "Conv2D", "from": "conv2"}]


def _prelu_spec(rank):
    fc = "Dense" if rank == 2 else f"Conv{rank - 2}D"
    return [{"name": "fc1", "type": fc, "from": "fc1"},
            {"name": "act1", "type": "PReLU", "from": "act1",
             "input_rank": rank},
            {"name": "fc2", "type": fc, "from": "fc2"},
            {"name": "act2", "type": "PReLU", "from": "act2",
             "input_rank": rank}]


def _prelu_advice(rank):
    return tuple(f"PReLU '{n}': build Keras PReLU(shared_axes={a})"
                 for n, a in zip(("act1", "act2"), PRELU_AXES[rank]))


@dataclass(frozen=True)
class Pair:
    name: str
    torch_cls: Callable[[], nn.Module]
    inputs: tuple               # PyTorch input shapes, batch included
    build_keras: Callable
    hand: Callable[[dict], list]
    layers: list
    seed: int
    channels_first: bool = True  # inputs/outputs NC... (else batch-first)
    advice: tuple = ()          # substrings of the report's warnings

    def torch_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        model = self.torch_cls()
        randomise(model, torch.Generator().manual_seed(self.seed + 1))
        return model.eval()

    def torch_inputs(self) -> list:
        rng = np.random.default_rng(self.seed + 2)
        return [rng.standard_normal(s).astype(np.float32)
                for s in self.inputs]

    def to_keras(self, a: np.ndarray) -> np.ndarray:
        return _nchw_to_nhwc(a) if self.channels_first else a

    def keras_inputs(self, xs: list):
        ks = [self.to_keras(x) for x in xs]
        return ks[0] if len(ks) == 1 else ks

    def spec(self) -> dict:
        return {"weightbridge_spec": 1, "target": {"format": "keras-h5"},
                "unmapped": "error", "layers": copy.deepcopy(self.layers)}


RNN_IN = (BATCH, 7, 5)
IMG = (BATCH, 3, 4, 5)

PAIRS = [
    Pair("lstm2", lstm2, (RNN_IN,), k_lstm2,
         _h_rnn(["lstm_l0", "lstm_l1"], "rnn", "LSTM"),
         _rnn_spec(["lstm_l0", "lstm_l1"], "LSTM", "rnn"), seed=31,
         channels_first=False),
    # layer 0 says bidirectional, layer 1 relies on the _reverse keys.
    Pair("bilstm2", bilstm2, (RNN_IN,), k_bilstm2,
         _h_rnn(["bilstm_l0", "bilstm_l1"], "rnn", "LSTM", bi=True),
         [{"name": "bilstm_l0", "type": "LSTM", "from": "rnn", "layer": 0,
           "bidirectional": True},
          {"name": "bilstm_l1", "type": "LSTM", "from": "rnn", "layer": 1}],
         seed=32, channels_first=False,
         advice=("LSTM 'bilstm_l1': written as Bidirectional",)),
    Pair("gru2", gru2, (RNN_IN,), k_gru2,
         _h_rnn(["gru_l0", "gru_l1"], "rnn", "GRU"),
         _rnn_spec(["gru_l0", "gru_l1"], "GRU", "rnn"), seed=33,
         channels_first=False, advice=("reset_after=True",)),
    Pair("bigru", bigru, (RNN_IN,), k_bigru,
         _h_rnn(["bigru"], "rnn", "GRU", bi=True),
         _rnn_spec(["bigru"], "GRU", "rnn", reset_after=True), seed=34,
         channels_first=False),
    Pair("simplernn", SimpleRNNs, (RNN_IN,), k_simplernn, _h_simplernn,
         [{"name": "rnn_tanh", "type": "SimpleRNN", "from": "rnn",
           "layer": 0},
          {"name": "rnn_relu_bi", "type": "SimpleRNN", "from": "rnn_bi",
           "layer": 0, "bidirectional": True}], seed=35,
         channels_first=False),
    Pair("rnn_nobias", NoBiasRNNs, (RNN_IN,), k_rnn_nobias, _h_rnn_nobias,
         [{"name": "lstm", "type": "LSTM", "from": "lstm", "layer": 0},
          {"name": "gru", "type": "GRU", "from": "gru", "layer": 0}],
         seed=53, channels_first=False),
    # No padding options: the converter only warns generically.
    Pair("convt2d_k4s2p1", convt_k4s2p1, ((BATCH, 3, 5, 6),), k_convt_k4s2p1,
         _h_up(), _up_spec("Conv2DTranspose"), seed=36,
         advice=("padding='valid' plus Cropping",)),
    # With padding/output_padding the report names the exact crop.
    Pair("convt2d_k3s2p1op1", convt_k3s2p1op1, ((BATCH, 3, 5, 6),),
         k_convt_k3s2p1op1, _h_up(),
         _up_spec("Conv2DTranspose", padding=1, output_padding=1), seed=37,
         advice=("Cropping2D with (1, 0) per spatial axis",)),
    Pair("convt1d", convt1d, ((BATCH, 3, 9),), k_convt1d, _h_up(),
         _up_spec("Conv1DTranspose"), seed=38),
    Pair("convt3d", Up3d, ((BATCH, 3, 3, 4, 3),), k_convt3d, _h_up(),
         _up_spec("Conv3DTranspose"), seed=54),
    Pair("convt2d_grouped", convt_grouped, ((BATCH, 3, 5, 6),),
         k_convt_grouped, _h_up(groups=2),
         _up_spec("Conv2DTranspose", groups=2), seed=39,
         advice=("block-diagonal kernel",)),
    Pair("resnext", ResNeXtBlock, ((BATCH, 16, 6, 6),), k_resnext, _h_resnext,
         [{"name": "conv1", "type": "Conv2D", "from": "conv1"},
          {"name": "bn1", "type": "BatchNormalization", "from": "bn1"},
          {"name": "conv2", "type": "Conv2D", "from": "conv2", "groups": 4},
          {"name": "bn2", "type": "BatchNormalization", "from": "bn2"},
          {"name": "conv3", "type": "Conv2D", "from": "conv3"},
          {"name": "bn3", "type": "BatchNormalization", "from": "bn3"}],
         seed=40),
    Pair("mbv2_block", InvertedResidual, ((BATCH, 8, 6, 6),), k_mbv2,
         _h_mbv2,
         [{"name": "expand", "type": "Conv2D", "from": "conv.0.0"},
          {"name": "expand_bn", "type": "BatchNormalization",
           "from": "conv.0.1"},
          {"name": "depthwise", "type": "DepthwiseConv2D", "from": "conv.1.0",
           "depth_multiplier": 1},
          {"name": "depthwise_bn", "type": "BatchNormalization",
           "from": "conv.1.1"},
          {"name": "project", "type": "Conv2D", "from": "conv.2"},
          {"name": "project_bn", "type": "BatchNormalization",
           "from": "conv.3"}], seed=41),
    Pair("separable", Separable, ((BATCH, 6, 5, 6),), k_separable,
         _h_separable,
         [{"name": "sep", "type": "SeparableConv2D", "from": "dw",
           "pointwise": "pw", "depth_multiplier": 2}], seed=42),
    Pair("separable_dw_bias_only", lambda: Separable(pw_bias=False),
         ((BATCH, 6, 5, 6),), k_separable, _h_separable,
         [{"name": "sep", "type": "SeparableConv2D", "from": "dw",
           "pointwise": "pw", "depth_multiplier": 2}], seed=58),
    Pair("separable_no_bias", lambda: Separable(False, False),
         ((BATCH, 6, 5, 6),), lambda K: k_separable(K, use_bias=False),
         _h_separable,
         [{"name": "sep", "type": "SeparableConv2D", "from": "dw",
           "pointwise": "pw", "depth_multiplier": 2}], seed=59),
    Pair("separable_weightnorm", SeparableWeightNorm, ((BATCH, 6, 5, 6),),
         k_separable, _h_separable,
         [{"name": "sep", "type": "SeparableConv2D", "from": "dw",
           "pointwise": "pw", "depth_multiplier": 2}], seed=55),
    Pair("dwconv1d", Depthwise1d, ((BATCH, 4, 9),), k_dwconv1d, _h_dwconv1d,
         [{"name": "dw", "type": "DepthwiseConv1D", "from": "dw",
           "depth_multiplier": 2},
          {"name": "fc", "type": "Conv1D", "from": "fc"}], seed=43),
    Pair("groupnorm", groupnorm, (IMG,), k_groupnorm, _h_norm(),
         _norm_spec({"type": "GroupNormalization", "groups": 4}), seed=44),
    Pair("instancenorm", instancenorm, (IMG,), k_instancenorm, _h_norm(),
         _norm_spec({"type": "GroupNormalization", "groups": 8}), seed=45),
    Pair("layernorm_chw", layernorm_chw, (IMG,), k_layernorm_chw,
         _h_norm(chw=True),
         _norm_spec({"type": "LayerNormalization", "channels_first": True}),
         seed=46),
    Pair("prelu_rank2", lambda: PReLUNet(2), ((BATCH, 3),),
         lambda K: _k_prelu(K, 2), _h_prelu(2), _prelu_spec(2), seed=47,
         channels_first=False, advice=_prelu_advice(2)),
    Pair("prelu_rank3", lambda: PReLUNet(3), ((BATCH, 3, 7),),
         lambda K: _k_prelu(K, 3), _h_prelu(3), _prelu_spec(3), seed=48,
         advice=_prelu_advice(3)),
    Pair("prelu_rank4", lambda: PReLUNet(4), ((BATCH, 3, 4, 5),),
         lambda K: _k_prelu(K, 4), _h_prelu(4), _prelu_spec(4), seed=49,
         advice=_prelu_advice(4)),
    Pair("transformer", transformer, ((BATCH, 6, 16),), k_transformer,
         _h_transformer,
         [{"name": "self_attn", "type": "MultiHeadAttention",
           "from": "self_attn", "num_heads": 4},
          {"name": "norm1", "type": "LayerNormalization", "from": "norm1"},
          {"name": "linear1", "type": "Dense", "from": "linear1"},
          {"name": "linear2", "type": "Dense", "from": "linear2"},
          {"name": "norm2", "type": "LayerNormalization", "from": "norm2"}],
         seed=50, channels_first=False,
         advice=("MultiHeadAttention(num_heads=4, key_dim=4, value_dim=4)",)),
    Pair("cross_attention", CrossAttention,
         ((BATCH, 5, 16), (BATCH, 7, 10), (BATCH, 7, 12)), k_cross_attention,
         _h_cross_attention,
         [{"name": "attn", "type": "MultiHeadAttention", "from": "attn",
           "num_heads": 4}], seed=51, channels_first=False),
    Pair("attention_nobias", SelfAttentionNoBias, ((BATCH, 6, 16),),
         k_attention_nobias, _h_attention_nobias,
         [{"name": "attn", "type": "MultiHeadAttention", "from": "attn",
           "num_heads": 4}], seed=56, channels_first=False,
         advice=("use_bias=False",)),
    Pair("weightnorm_upsampler", WeightNormUpsampler, ((BATCH, 3, 8),),
         k_weightnorm_upsampler, _h_weightnorm_upsampler,
         [{"name": "conv", "type": "Conv1D", "from": "conv"},
          {"name": "up", "type": "Conv1DTranspose", "from": "up"},
          {"name": "fc", "type": "Dense", "from": "fc"}], seed=57),
    Pair("weightnorm_conv1d", WeightNormConv1d, ((BATCH, 4, 9),),
         k_weightnorm, _h_weightnorm,
         [{"name": "conv1", "type": "Conv1D", "from": "conv1"},
          {"name": "conv2", "type": "Conv1D", "from": "conv2"}], seed=52),
]

PAIR_BY_NAME = {p.name: p for p in PAIRS}


def export_npz(model: nn.Module, path) -> None:
    """Export exactly as users do."""
    np.savez_compressed(
        path, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})


def torch_reference(pair: Pair, model: nn.Module, xs: list) -> np.ndarray:
    with torch.no_grad():
        y = model(*[torch.from_numpy(x) for x in xs])
    return pair.to_keras(y.numpy())
