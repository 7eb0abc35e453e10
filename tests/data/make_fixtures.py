#!/usr/bin/env python3
"""Write the golden .npz inputs of the npy/npz unit tests (tests/data/npz/).

Run with the system python3 and numpy:  python3 tests/data/make_fixtures.py
The output is deterministic (fixed zip timestamps, fixed values), so running
it again must leave `git status` clean.

good_*.npz   archives the reader must accept.  For each one a side file
             good_*.expect lists every tensor as numpy sees it:
                 <key> <dtype> <ndim> <dims...> <nelem> <f32 bits as hex...>
             the values being np.asarray(v, dtype=np.float32) in C order, so
             the C tests compare bit for bit against numpy's own conversion.
bad_*.npz    archives the reader must refuse; the C tests list the expected
             error code and the member name the message must contain.

Archives the standard writers cannot produce (encrypted flag, zip64 records in
the central directory, a deflate stream longer than its size fields) are
written byte by byte by tests/rawzip.py.
"""

import io
import os
import struct
import sys
import zipfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rawzip  # noqa: E402  (tests/rawzip.py)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npz")


class _FixedClock:
    """Stands in for the time module inside zipfile: every member gets the
    same timestamp, so np.savez output is byte-for-byte reproducible."""

    @staticmethod
    def time():
        return 0.0

    @staticmethod
    def localtime(_=None):
        return (2020, 1, 1, 0, 0, 0, 2, 1, 0)


zipfile.time = _FixedClock


def path(name):
    return os.path.join(OUT, name)


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=True)
    return buf.getvalue()


def zinfo(name, method):
    zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    zi.compress_type = method
    zi.external_attr = 0o600 << 16
    return zi


def write_expect(name, arrays):
    """arrays: list of (key, ndarray) in archive order."""
    lines = []
    for key, a in arrays:
        a = np.asanyarray(a)
        with np.errstate(over="ignore"):  # -1e300 -> -inf is the point
            f = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
        bits = f.reshape(-1).view(np.uint32)
        dims = " ".join(str(d) for d in a.shape)
        parts = [key, a.dtype.name, str(a.ndim)]
        if dims:
            parts.append(dims)
        parts.append(str(a.size))
        parts.extend("%08x" % b for b in bits)
        lines.append(" ".join(parts))
    with open(path(name), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def savez(name, arrays, compressed):
    """The real numpy writer (np.savez / np.savez_compressed)."""
    fn = np.savez_compressed if compressed else np.savez
    fn(path(name), **dict(arrays))
    write_expect(name.replace(".npz", ".expect"), arrays)


def zip_members(name, members, method=zipfile.ZIP_DEFLATED, zip64=False):
    """members: list of (member name, bytes)."""
    with zipfile.ZipFile(path(name), "w") as zf:
        for mname, data in members:
            with zf.open(zinfo(mname, method), "w", force_zip64=zip64) as fh:
                fh.write(data)


def raw_zip(name, members, zip64=False):
    """Write the zip tests/rawzip.py builds field by field (see there for
    the member keys)."""
    with open(path(name), "wb") as fh:
        fh.write(rawzip.raw_zip(members, zip64=zip64))


class _Unseekable(io.RawIOBase):
    """A write-only stream without seek/tell, like a pipe: zipfile then
    writes data descriptors after each member and sizes only in the
    central directory."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, b):
        self.buf += b
        return len(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".npz", ".expect")):
            os.remove(os.path.join(OUT, f))

    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, np.inf, -np.inf, np.nan,
                    6.0e-8, 6.1e-5, 3.0e-5, 0.333],
                   dtype=np.float16)
    # Exact float16 bit patterns: every exponent and boundary case.
    f16_bits = np.array([0x0001, 0x03FF, 0x0400, 0x7BFF, 0x8001, 0x83FF,
                         0x3C00, 0x3C01, 0x7C00, 0xFC00, 0x7E00, 0x7C01,
                         0xFE01, 0x5640], dtype=np.uint16).view(np.float16)
    ints = np.arange(-6, 6)
    common = [
        ("fc.weight", (np.arange(12, dtype=np.float32) * 0.25 - 1.5)
         .reshape(3, 4)),
        ("fc.bias", np.array([0.5, -1e-38, 3.4e38, np.float32(1e-45)],
                             dtype=np.float32)),
        ("half", f16),
        ("half_bits", f16_bits),
        ("double", np.array([[1.0 / 3.0, -1e300, 1e-300],
                             [2.0 ** -149, np.pi, -0.0]])),
        ("i1", np.array([-128, -1, 0, 1, 127], dtype=np.int8)),
        ("i2", np.array([-32768, 0, 32767], dtype=np.int16)),
        ("i4", np.array([-2**31, -7, 2**31 - 1, 16777217],
                        dtype=np.int32)),
        ("i8", np.array([-2**63, 2**63 - 1, 2**53 + 1, -5],
                        dtype=np.int64)),
        ("u1", np.array([0, 1, 255], dtype=np.uint8)),
        ("u2", np.array([0, 65535], dtype=np.uint16)),
        ("u4", np.array([0, 2**32 - 1, 16777217], dtype=np.uint32)),
        ("u8", np.array([0, 2**64 - 1, 2**63, 2**24 + 1],
                        dtype=np.uint64)),
        ("mask", np.array([[True, False], [False, True]])),
        ("bn.num_batches_tracked", np.array(42, dtype=np.int64)),
        ("scalar_f", np.float32(-7.25)),
        ("empty", np.zeros((0, 3), dtype=np.float32)),
        ("conv.weight", (ints.astype(np.float32) / 8)
         .reshape(2, 1, 2, 3)),
    ]
    savez("good_savez.npz", common, compressed=False)
    savez("good_compressed.npz", common, compressed=True)

    # Big-endian dtypes of every size.
    big = [
        ("be_f4", np.array([1.5, -2.0, 1e-40], dtype=">f4")),
        ("be_f2", np.array([1.0, -0.5, 65504.0, 1e-7], dtype=">f2")),
        ("be_f8", np.array([[1.0, 2.0], [3.0, -1e-310]], dtype=">f8")),
        ("be_i2", np.array([-300, 300], dtype=">i2")),
        ("be_i4", np.array([-70000, 70000], dtype=">i4")),
        ("be_i8", np.array([-2**40, 2**40 + 3], dtype=">i8")),
        ("be_u2", np.array([1, 65535], dtype=">u2")),
        ("be_u4", np.array([1, 2**32 - 1], dtype=">u4")),
        ("be_u8", np.array([1, 2**64 - 1], dtype=">u8")),
    ]
    savez("good_bigendian.npz", big, compressed=True)

    # Fortran order: transposed views are F-contiguous, so numpy writes them
    # with fortran_order True and column-major data.
    a2 = np.arange(15, dtype=np.float32).reshape(3, 5)
    a3 = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    a4 = np.arange(120, dtype=np.int16).reshape(2, 3, 4, 5)
    b2 = np.arange(300, dtype=np.float32).reshape(20, 15) / 7
    fort = [
        ("t2", a2.T),
        ("t3", a3.transpose(2, 1, 0)),
        ("t4", np.asfortranarray(a4)),
        ("t2_big", np.asfortranarray(b2)),
        ("t2_be", np.asfortranarray(a2.astype(">f8"))),
        ("t2_half", np.asfortranarray(a2.astype(np.float16))),
        ("col", np.asfortranarray(np.arange(4, dtype=np.float32)
                                  .reshape(4, 1))),
    ]
    for key, a in fort:
        assert a.flags.f_contiguous and not a.flags.c_contiguous or \
            a.shape[1] == 1, key
    savez("good_fortran.npz", fort, compressed=False)

    # .npy format versions 1.0, 2.0 and 3.0 (3.0: UTF-8 header).
    v1 = np.arange(6, dtype=np.float32).reshape(2, 3)
    v2 = np.arange(4, dtype=np.int32) - 2
    v3 = np.array([0.125, 8.0], dtype=np.float16)
    vers = [("v1", v1, (1, 0)), ("v2", v2, (2, 0)), ("v3", v3, (3, 0))]
    zip_members("good_versions.npz",
                [(k + ".npy", npy_bytes(a, ver)) for k, a, ver in vers],
                method=zipfile.ZIP_STORED)
    write_expect("good_versions.expect", [(k, a) for k, a, _ in vers])

    # A key outside ASCII (zip UTF-8 name flag).
    uni = [("blöck.wéight", np.array([1.0, 2.0], dtype=np.float32))]
    savez("good_unicode.npz", uni, compressed=True)

    # zip64 everywhere: zip64 extras in local headers and central directory,
    # zip64 end-of-central-directory record and locator.
    z64 = [("a", np.arange(5, dtype=np.float32)),
           ("b", np.arange(3, dtype=np.int64) * -3)]
    raw_zip("good_zip64.npz",
            [{"name": k + ".npy", "data": npy_bytes(a), "method": m}
             for (k, a), m in zip(z64, (0, 8))], zip64=True)
    write_expect("good_zip64.expect", z64)

    # Written to a pipe: data descriptors, sizes only in the central
    # directory.  One deflated member, one stored.
    pipe = [("p.deflated", np.linspace(-1, 1, 9, dtype=np.float32)),
            ("p.stored", np.array([[7, 8], [9, 10]], dtype=np.uint8))]
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w") as zf:
        for (k, a), meth in zip(pipe, (zipfile.ZIP_DEFLATED,
                                       zipfile.ZIP_STORED)):
            with zf.open(zinfo(k + ".npy", meth), "w") as fh:
                fh.write(npy_bytes(a))
    with open(path("good_pipe.npz"), "wb") as fh:
        fh.write(bytes(sink.buf))
    write_expect("good_pipe.expect", pipe)

    # ---- bad inputs ------------------------------------------------------
    with open(path("good_compressed.npz"), "rb") as fh:
        whole = fh.read()
    with open(path("bad_truncated.npz"), "wb") as fh:
        fh.write(whole[: len(whole) // 2])
    with open(path("bad_notzip.npz"), "wb") as fh:
        fh.write(b"fc.weight,fc.bias\n0.5,0.25\n" * 4)
    open(path("bad_empty.npz"), "wb").close()

    w = npy_bytes(np.ones(4, dtype=np.float32))
    zip_members("bad_nonnpy.npz", [("w.npy", w), ("readme.txt", b"hi\n")])
    zip_members("bad_pickle.npz",
                [("w.npy", w),
                 ("meta.npy", npy_bytes(np.array([{"lr": 0.1}, None],
                                                 dtype=object)))])
    zip_members("bad_complex.npz",
                [("z.npy", npy_bytes(np.array([1 + 2j], dtype=np.complex64)))])

    def hand_npy(header, data):
        header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
        return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
                + header.encode("latin-1") + data)

    zip_members("bad_header.npz", [("w.npy", w), ("evil.npy", hand_npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
        "'x': __import__('os').system('true')}", b"\0" * 8))])
    zip_members("bad_overflow.npz", [("huge.npy", hand_npy(
        "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (8589934592, 8589934592), }", b"\0" * 16))])
    good32 = np.arange(32, dtype=np.float32)
    full = npy_bytes(good32)
    zip_members("bad_short.npz", [("short.npy", full[:-28])])
    zip_members("bad_long.npz", [("long.npy", full + b"\0\0\0\0")])

    with zipfile.ZipFile(path("bad_dup.npz"), "w") as zf:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr(zinfo("w.npy", zipfile.ZIP_STORED), w)
            zf.writestr(zinfo("w.npy", zipfile.ZIP_STORED), w)
    zip_members("bad_traversal.npz", [("../evil.npy", w)])
    raw_zip("bad_encrypted.npz",
            [{"name": "w.npy", "data": w, "method": 8, "flags": 0x1,
              "prefix": bytes(range(12))}])
    zip_members("bad_bzip2.npz", [("w.npy", w)], method=zipfile.ZIP_BZIP2)

    # Zip bombs.  bad_bomb: an honest 4 MiB member of zeros, deflated to a
    # few KB (ratio about 1000); refused by a low ratio or tensor cap.
    zeros = npy_bytes(np.zeros(4 << 20, dtype=np.uint8))
    zip_members("bad_bomb.npz", [("zeros.npy", zeros)])
    # bad_bomb_lying: the .npy header and every zip size field say 16 data
    # bytes, but the deflate stream expands to 4 MiB.  Only reading can
    # catch it, and the reader must stop soon after byte 16.
    hdr16 = npy_bytes(np.zeros(16, dtype=np.uint8))
    lie = hdr16 + bytes(4 << 20)
    raw_zip("bad_bomb_lying.npz",
            [{"name": "zeros.npy", "data": lie, "size": len(hdr16)}])

    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total,
                                                OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
