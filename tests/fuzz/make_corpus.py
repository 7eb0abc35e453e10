#!/usr/bin/env python3
"""Write the seed corpora of the fuzz drivers and the fixed archive the spec
driver plans against.

Run from the repository root with python3 and numpy, after building the CLI
(`make`): python3 tests/fuzz/make_corpus.py.  The output is deterministic, so
running it again leaves `git status` clean.  It writes only files named
seed-*; regression inputs (crash-*, and anything else added by hand) are
never touched.

  tests/fuzz/data/plan.npz      tensors for every preset (small shapes)
  tests/fuzz/corpus/npy/        .npy headers numpy writes, and edge cases
  tests/fuzz/corpus/npz/        the archives of tests/data/npz plus hostile ones
  tests/fuzz/corpus/spec/       the JSON of docs/spec.md, the CLI's template
                                of plan.npz, one spec per preset
  tests/fuzz/corpus/multipart/  "Content-Type\\n" + body, as clients send
  tests/fuzz/corpus/route/      selector byte + path / header value
"""

import io
import json
import os
import re
import struct
import subprocess
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rawzip  # noqa: E402  (tests/rawzip.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
CORPUS = os.path.join(FUZZ, "corpus")


class _FixedClock:
    """zipfile's clock, frozen so archives are byte-for-byte reproducible."""

    @staticmethod
    def time():
        return 0.0

    @staticmethod
    def localtime(_=None):
        return (2020, 1, 1, 0, 0, 0, 2, 1, 0)


zipfile.time = _FixedClock


def clean(driver):
    d = os.path.join(CORPUS, driver)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    return d


def put(driver, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(CORPUS, driver, "seed-" + name), "wb") as fh:
        fh.write(data)


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=True)
    return buf.getvalue()


def hand_npy(header, data=b"", version=(1, 0)):
    """A .npy with a header written by hand (padded as numpy pads)."""
    pre = 10 if version == (1, 0) else 12
    header = header + " " * ((63 - (pre + len(header)) % 64) % 64) + "\n"
    h = header.encode("latin-1")
    if version == (1, 0):
        lenf = struct.pack("<H", len(h))
    else:
        lenf = struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes(version) + lenf + h + data


def zip_bytes(members, method=zipfile.ZIP_DEFLATED, force_zip64=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = method
            zi.external_attr = 0o600 << 16
            with zf.open(zi, "w", force_zip64=force_zip64) as fh:
                fh.write(data)
    return buf.getvalue()


class _Pipe(io.RawIOBase):
    """Unseekable sink: zipfile then writes data descriptors."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, b):
        self.buf += b
        return len(b)


def zip_streamed(members):
    sink = _Pipe()
    with zipfile.ZipFile(sink, "w") as zf:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(zi, "w") as fh:
                fh.write(data)
    return bytes(sink.buf)


def raw_zip(members):
    """tests/rawzip.py's zip, members stored unless they say otherwise."""
    return rawzip.raw_zip(members, method=0)


# ---- the fixed archive of the spec driver ---------------------------------

def plan_tensors():
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    t = {}
    t["features.0.weight"] = z(8, 3, 3, 3)
    t["features.0.bias"] = z(8)
    for p in ("weight", "bias", "running_mean", "running_var"):
        t["features.1." + p] = z(8)
    t["features.1.num_batches_tracked"] = np.array(0, np.int64)
    t["dw.weight"] = z(8, 1, 3, 3)
    t["dw.bias"] = z(8)
    t["pw.weight"] = z(16, 8, 1, 1)
    t["pw.bias"] = z(16)
    t["classifier.weight"] = z(10, 16 * 2 * 2)
    t["classifier.bias"] = z(10)
    t["c1.weight"] = z(4, 2, 3)
    t["c1.bias"] = z(4)
    t["c3.weight"] = z(2, 2, 1, 1, 1)
    t["dc1.weight"] = z(4, 2, 3)
    t["dc2.weight"] = z(8, 4, 2, 2)
    t["dc2.bias"] = z(4)
    t["dw1.weight"] = z(6, 1, 3)
    t["emb.weight"] = z(20, 4)
    t["ln.weight"] = z(4)
    t["ln.bias"] = z(4)
    t["ln3.weight"] = z(3, 2, 2)
    t["ln3.bias"] = z(3, 2, 2)
    t["gn.weight"] = z(8)
    t["gn.bias"] = z(8)
    t["prelu.weight"] = z(8)
    for rnn, g in (("lstm", 4), ("gru", 3), ("rnn", 1)):
        for sfx in ("", "_reverse"):
            t[f"{rnn}.weight_ih_l0{sfx}"] = z(g * 4, 4)
            t[f"{rnn}.weight_hh_l0{sfx}"] = z(g * 4, 4)
            t[f"{rnn}.bias_ih_l0{sfx}"] = z(g * 4)
            t[f"{rnn}.bias_hh_l0{sfx}"] = z(g * 4)
    t["attn.in_proj_weight"] = z(12, 4)
    t["attn.in_proj_bias"] = z(12)
    t["attn.out_proj.weight"] = z(4, 4)
    t["attn.out_proj.bias"] = z(4)
    t["wn.weight_g"] = z(8, 1, 1, 1)
    t["wn.weight_v"] = z(8, 3, 3, 3)
    t["wn.bias"] = z(8)
    for i in range(2):
        for c in ("conv1", "conv2"):
            t[f"module.layer1.{i}.{c}.weight"] = z(4, 4, 3, 3)
        t[f"module.layer1.{i}.bn1.weight"] = z(4)
        t[f"module.layer1.{i}.bn1.bias"] = z(4)
        t[f"module.layer1.{i}.bn1.running_mean"] = z(4)
        t[f"module.layer1.{i}.bn1.running_var"] = z(4)
    t["head.weight"] = z(3, 4)
    t["head.b1"] = z(3)
    t["head.b2"] = z(3)
    t["i64.weight"] = np.zeros((2, 2), np.int64)
    t["f16.weight"] = np.zeros((2, 2), np.float16)
    return t


PRESET_SPECS = [
    {"name": "conv", "type": "Conv2D", "from": "features.0"},
    {"name": "bn", "type": "BatchNormalization", "from": "features.1"},
    {"name": "dw", "type": "DepthwiseConv2D", "from": "dw"},
    {"name": "sep", "type": "SeparableConv2D", "from": "dw", "pointwise": "pw"},
    {"name": "fc", "type": "Dense", "from": "classifier", "flatten": {"chw": [16, 2, 2]}},
    {"name": "c1", "type": "Conv1D", "from": "c1"},
    {"name": "c3", "type": "Conv3D", "from": "c3"},
    {"name": "dc1", "type": "Conv1DTranspose", "from": "dc1"},
    {"name": "dc2", "type": "Conv2DTranspose", "from": "dc2", "groups": 2},
    {"name": "dw1", "type": "DepthwiseConv1D", "from": "dw1", "depth_multiplier": 2},
    {"name": "emb", "type": "Embedding", "from": "emb"},
    {"name": "ln", "type": "LayerNormalization", "from": "ln"},
    {"name": "ln3", "type": "LayerNormalization", "from": "ln3", "channels_first": True},
    {"name": "gn", "type": "GroupNormalization", "from": "gn", "groups": 4},
    {"name": "prelu", "type": "PReLU", "from": "prelu", "input_rank": 4},
    {"name": "lstm", "type": "LSTM", "from": "lstm", "bidirectional": True},
    {"name": "gru", "type": "GRU", "from": "gru", "bidirectional": True, "reset_after": True},
    {"name": "rnn", "type": "SimpleRNN", "from": "rnn", "bidirectional": True},
    {"name": "attn", "type": "MultiHeadAttention", "from": "attn", "num_heads": 2},
    {"name": "wn", "type": "Conv2D", "from": "wn"},
]


def spec_of(layers, **top):
    d = {"weightbridge_spec": 1, "unmapped": "ignore", "layers": layers}
    d.update(top)
    return json.dumps(d, indent=1)


def write_plan_archive():
    os.makedirs(os.path.join(FUZZ, "data"), exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in plan_tensors().items():
            zi = zipfile.ZipInfo(k + ".npy", date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            zf.writestr(zi, npy_bytes(v))
    path = os.path.join(FUZZ, "data", "plan.npz")
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path


# ---- seeds ------------------------------------------------------------------

def npy_seeds():
    clean("npy")
    arrays = {
        "f4_2d": np.zeros((3, 4), np.float32),
        "f8_scalar": np.array(1.5),
        "f2_1d": np.zeros(5, np.float16),
        "i8_be": np.zeros((2, 3), ">i8"),
        "u1": np.arange(7, dtype=np.uint8),
        "b1": np.array([True, False, True]),
        "i2": np.arange(6, dtype=np.int16).reshape(2, 3),
        "u4": np.arange(4, dtype=np.uint32),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
        "fortran_be": np.asfortranarray(np.arange(6, dtype=">f8").reshape(3, 2)),
        "4d": np.zeros((2, 1, 2, 1), np.float32),
        "complex": np.zeros(2, np.complex64),
        "str": np.array(["ab", "c"]),
        "object": np.array([None, 1], dtype=object),
        "struct": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]),
    }
    for name, a in arrays.items():
        put("npy", name + ".npy", npy_bytes(a))
    put("npy", "v2.npy", npy_bytes(np.zeros((2, 2), np.float32), version=(2, 0)))
    put("npy", "v3.npy", npy_bytes(np.zeros(3, np.float32), version=(3, 0)))
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }"
    for tag, shape in (("int_not_tuple", "3"), ("leading_zero", "03,"),
                       ("negative", "-1,"), ("long_L", "2L, 3L"),
                       ("overflow", "4294967296, 4294967296, 16"),
                       ("max_dim", "9223372036854775807,"),
                       ("too_big_dim", "9223372036854775808,"),
                       ("zero_dims", "0, 0, 0"), ("trailing", "1, 2,"),
                       ("spaces", " 1 ,  2 ")):
        put("npy", "shape_%s.npy" % tag, hand_npy(hdr % shape, b"\0" * 8))
    put("npy", "dims33.npy", hand_npy(hdr % ", ".join(["1"] * 33), b"\0" * 4))
    put("npy", "dims32.npy", hand_npy(hdr % ", ".join(["1"] * 32), b"\0" * 4))
    put("npy", "key_order.npy", hand_npy(
        "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", b"\0" * 8))
    put("npy", "dup_key.npy", hand_npy(
        "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}", b"\0" * 8))
    put("npy", "missing_key.npy", hand_npy("{'descr': '<f4', 'shape': (1,)}", b"\0" * 4))
    put("npy", "extra_key.npy", hand_npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", b"\0" * 4))
    put("npy", "dq.npy", hand_npy('{"descr": "<f4", "fortran_order": True, "shape": (1,)}', b"\0" * 4))
    put("npy", "escape.npy", hand_npy("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}"))
    put("npy", "truex.npy", hand_npy("{'descr': '<f4', 'fortran_order': Truex, 'shape': (1,)}"))
    for d in ("|b1", "=f4", "|u1", ">f2", "<u8", "|i1", "<f16", "<M8[s]", "<V4", "f4"):
        put("npy", "descr_%s.npy" % re.sub(r"[^a-z0-9]", "_", d), hand_npy(
            "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }" % d, b"\0" * 16))
    put("npy", "v1_hlen_max.npy", b"\x93NUMPY\x01\x00\xff\xff" + b" " * 64)
    put("npy", "v2_hlen_huge.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{")
    put("npy", "v9.npy", b"\x93NUMPY\x09\x00\x10\x00{}")
    put("npy", "preamble_only.npy", b"\x93NUMPY\x01\x00")
    put("npy", "cut_header.npy", npy_bytes(np.zeros(2, np.float32))[:40])
    put("npy", "no_newline.npy", b"\x93NUMPY\x01\x00\x3a\x00"
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }x" + b"\0" * 4)
    put("npy", "nul_in_header.npy", hand_npy("{'descr': '<f4'\0, 'fortran_order': False, 'shape': (1,)}"))


def npz_seeds(plan_path):
    clean("npz")
    src = os.path.join(ROOT, "tests", "data", "npz")
    for f in sorted(os.listdir(src)):
        if f.endswith(".npz"):
            with open(os.path.join(src, f), "rb") as fh:
                data = fh.read()
            if 0 < len(data) <= 65536:
                put("npz", f, data)
    with open(plan_path, "rb") as fh:
        put("npz", "plan.npz", fh.read())
    w = npy_bytes(np.arange(4, dtype=np.float32))
    v = npy_bytes(np.arange(6, dtype=np.float64).reshape(2, 3))
    put("npz", "streamed.npz", zip_streamed([("a.npy", w), ("b.npy", v)]))
    put("npz", "zip64_stored.npz", zip_bytes([("a.npy", w)], zipfile.ZIP_STORED, True))
    put("npz", "empty_archive.npz", zip_bytes([]))
    put("npz", "stored_two.npz", raw_zip([{"name": "a.npy", "data": w},
                                          {"name": "b.npy", "data": v, "method": 8}]))
    put("npz", "cd_name_differs.npz", raw_zip([{"name": "a.npy", "data": w, "cd_name": "b.npy"}]))
    put("npz", "overlap.npz", raw_zip([{"name": "a.npy", "data": w},
                                       {"name": "b.npy", "data": w, "offset": 0}]))
    put("npz", "name_slash.npz", raw_zip([{"name": "/abs.npy", "data": w}]))
    put("npz", "name_nul.npz", raw_zip([{"name": b"a\0b.npy", "data": w}]))
    put("npz", "name_latin1.npz", raw_zip([{"name": b"caf\xe9.npy", "data": w}]))
    put("npz", "name_overlong.npz", raw_zip([{"name": b"\xc0\xae\xc0\xae/x.npy", "data": w}]))
    put("npz", "name_inner_slash.npz", raw_zip([{"name": "blocks/0.weight.npy", "data": w}]))
    put("npz", "method_lzma.npz", raw_zip([{"name": "a.npy", "data": w, "method": 14}]))
    put("npz", "aes.npz", raw_zip([{"name": "a.npy", "data": w, "method": 99, "flags": 1}]))
    put("npz", "size_lies.npz", raw_zip([{"name": "a.npy", "data": w, "method": 8, "size": 3}]))
    put("npz", "many_members.npz", zip_bytes(
        [("t%d.npy" % i, npy_bytes(np.zeros(1, np.uint8))) for i in range(200)],
        zipfile.ZIP_STORED))
    put("npz", "long_member.npz", zip_bytes([("long.npy", w + b"\0" * 8)]))
    put("npz", "short_member.npz", zip_bytes([("short.npy", w[:-4])]))


def spec_seeds(plan_path):
    clean("spec")
    with open(os.path.join(ROOT, "docs", "spec.md")) as fh:
        md = fh.read()
    for i, block in enumerate(re.findall(r"```json\n(.*?)```", md, re.S)):
        put("spec", "docs_%d.json" % i, block)
    cli = os.path.join(os.environ.get("WB_BUILD", os.path.join(ROOT, "build")), "weightbridge")
    if os.path.exists(cli):
        t = subprocess.run([cli, "template", plan_path], capture_output=True,
                           check=True, timeout=60).stdout
        put("spec", "template_plan.json", t)
    for i, layer in enumerate(PRESET_SPECS):
        put("spec", "preset_%02d_%s.json" % (i, layer["type"]), spec_of([layer]))
    put("spec", "all_presets.json", spec_of(PRESET_SPECS[:5] + PRESET_SPECS[5:],
                                            target={"format": "keras3"}))
    put("spec", "match_strip.json", spec_of([
        {"match": "^layer1\\.([0-9]+)\\.(conv[0-9])$", "name": "l1_$1_$2", "type": "Conv2D"},
        {"match": "^layer1\\.([0-9]+)\\.bn1$", "name": "bn_$1", "type": "auto"}],
        source={"strip_prefixes": ["module."], "ignore": ["*num_batches*", "f16.*"]}))
    put("spec", "custom.json", spec_of([
        {"name": "head", "type": "Custom", "keras3_path": "layers/my_head", "weights": [
            {"name": "kernel", "from": "head.weight", "transform": {"transpose": [1, 0]}},
            {"name": "bias", "from": ["head.b1", "head.b2"], "combine": "sum", "expect": [3]},
            {"name": "st", "from": ["head.b1", "head.b2"], "combine": "stack",
             "transform": [{"reshape": [-1]}, {"split": {"axis": 0, "parts": 2, "index": 1}}]},
            {"name": "ro", "from": "lstm.weight_ih_l0",
             "transform": {"reorder": {"axis": 0, "blocks": [1, 0, 3, 2]}}},
            {"name": "wn", "from": ["wn.weight_g", "wn.weight_v"], "combine": "weight_norm"}]}]))
    put("spec", "unmapped_error.json", json.dumps(
        {"weightbridge_spec": 1, "unmapped": "error", "target": {"keras_version": "2.15.0",
         "backend": "tensorflow"}, "layers": [{"name": "fc", "type": "Dense", "from": "classifier"}]}))
    put("spec", "regex_heavy.json", spec_of([
        {"match": "^(a*)*b$", "name": "x", "type": "Dense"},
        {"match": "([a-z]+\\.)*([0-9]+)\\.\\2", "name": "y$2", "type": "auto"}]))
    put("spec", "nested.json", '{"weightbridge_spec": 1, "layers": [' + "[" * 64 + "]" * 64 + "]}")
    put("spec", "not_object.json", "[1, 2, 3]")
    put("spec", "dup_keys.json", '{"weightbridge_spec": 1, "weightbridge_spec": 1, "layers": []}')


def multipart_body(boundary, parts, crlf=b"\r\n", preamble=b"", epilogue=b""):
    out = [preamble]
    for name, filename, data in parts:
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out.append(b"--" + boundary + crlf + b"Content-Disposition: " + disp.encode()
                   + crlf + b"Content-Type: application/octet-stream" + crlf + crlf
                   + data + crlf)
    out.append(b"--" + boundary + b"--" + crlf + epilogue)
    return b"".join(out)


def multipart_seeds():
    clean("multipart")
    spec = json.dumps({"weightbridge_spec": 1, "layers": [
        {"name": "fc", "type": "Dense", "from": "fc"}]}).encode()
    w = zip_bytes([("fc.weight.npy", npy_bytes(np.zeros((2, 2), np.float32)))])
    b = b"------------------------d74496d66958873e"
    ct = b"multipart/form-data; boundary=" + b + b"\n"
    put("multipart", "curl.txt", ct + multipart_body(b, [("weights", "model.npz", w),
                                                        ("spec", None, spec)]))
    put("multipart", "format.txt", ct + multipart_body(b, [("weights", "m.npz", w),
                                                          ("spec", None, spec),
                                                          ("format", None, b"keras3")]))
    put("multipart", "quoted_boundary.txt", b'multipart/form-data; boundary="a b:c"\n'
        + multipart_body(b"a b:c", [("spec", None, spec)]))
    put("multipart", "pre_epilogue.txt", ct + multipart_body(
        b, [("weights", "x.npz", w)], preamble=b"ignored preamble\r\n", epilogue=b"tail"))
    put("multipart", "crlf_in_data.txt", ct + multipart_body(
        b, [("weights", "x.npz", b"\r\n--" + b[:-3] + b"\r\n\r\r\n-")]))
    put("multipart", "lf_only.txt", ct + multipart_body(b, [("spec", None, spec)], crlf=b"\n"))
    put("multipart", "no_close.txt", ct + multipart_body(b, [("spec", None, spec)])[:-8])
    put("multipart", "stop_part.txt", ct + multipart_body(b, [("stop", None, b"x"),
                                                             ("spec", None, spec)]))
    put("multipart", "escaped_name.txt", ct + b"--" + b + b'\r\nContent-Disposition: form-data; '
        b'name="we\\"ights"; filename="a\\\\b.npz"\r\n\r\ndata\r\n--' + b + b"--\r\n")
    put("multipart", "no_disposition.txt", ct + b"--" + b + b"\r\nX-A: b\r\n\r\nd\r\n--" + b + b"--")
    put("multipart", "long_header.txt", ct + b"--" + b + b"\r\nX: " + b"h" * 9000 + b"\r\n\r\n")
    put("multipart", "fixed_ctype.txt", multipart_body(b"XyZzy", [("weights", "a.npz", w)]))
    put("multipart", "bad_ctype.txt", b"multipart/form-data\n--x\r\n")
    put("multipart", "boundary_71.txt", b"multipart/form-data; boundary=" + b"b" * 71 + b"\n--")


def route_seeds():
    clean("route")
    jid = "0123456789abcdef0123456789abcdef"
    paths = ["/v1/jobs", "/v1/jobs/" + jid, "/v1/jobs/%s/result" % jid,
             "/v1/jobs/%s/report" % jid, "/v1/inspect", "/v1/template", "/v1/limits",
             "/v1/openapi.json", "/livez", "/readyz", "/metrics", "/v1/jobs/../../etc/passwd",
             "/v1/jobs//result", "/v1//jobs", "/v1/jobs/" + "a" * 200, "/", "",
             "/v1/jobs/%2e%2e/result", "/v1/jobs/x/y/z/w"]
    for i, p in enumerate(paths):
        put("route", "path_%02d" % i, bytes([0, i % 7]) + p.encode())
    put("route", "custom_method", b"\x00\x07BREW /v1/jobs")
    for i, h in enumerate(["bytes=0-1023", "bytes=-10", "bytes=5-", "bytes=1-0",
                           "bytes=0-1,5-9", "bytes=18446744073709551615-",
                           "bytes=-18446744073709551616", "items=0-1", "bytes= 3-4"]):
        put("route", "range_%d" % i, b"\x01" + b"\x00\x00\x00\x00\x00\x00\x04\x00" + h.encode())
    for i, h in enumerate(['"0123abcd"', 'W/"0123abcd"', "*", '"x", "0123abcd"', '"0123abcde"']):
        put("route", "etag_%d" % i, b"\x02" + h.encode())
    for i, h in enumerate(["model.npz", "../../etc/passwd", "C:\\x\\y.npz", ".hidden", "",
                           "caf\xe9 \"q\".npz", "a" * 300]):
        put("route", "stem_%d" % i, b"\x03" + h.encode("utf-8"))
    spec = json.dumps({"weightbridge_spec": 1, "layers": []}).encode()
    import base64
    put("route", "b64_spec", b"\x04" + base64.urlsafe_b64encode(spec).rstrip(b"="))
    put("route", "json_spec", b"\x04" + spec)
    put("route", "deep_spec", b"\x04" + b"{\"a\":" + b"[" * 70 + b"]" * 70 + b"}")
    put("route", "string_brackets", b"\x04" + b'{"a": "[[[[\\"[[["}')
    put("route", "id_ok", b"\x05" + jid.encode())
    put("route", "id_upper", b"\x05" + jid.upper().encode())


def main():
    plan_path = write_plan_archive()
    npy_seeds()
    npz_seeds(plan_path)
    spec_seeds(plan_path)
    multipart_seeds()
    route_seeds()
    n = sum(len(os.listdir(os.path.join(CORPUS, d))) for d in os.listdir(CORPUS))
    print("corpus: %d files under %s" % (n, CORPUS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
