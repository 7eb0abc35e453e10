#!/usr/bin/env python3
"""Check that two legacy Keras HDF5 weight files hold the same weights.

    compare.py A.h5 B.h5

Compares the root's layer_names (whole or chunked), backend and keras_version,
each layer's weight_names, and every listed dataset: dtype, shape and values
(bit for bit).  Prints one line and exits 0 when they match; otherwise lists
the first differences and exits 1.  The benchmark runs it on the outputs of
weightbridge and peer.py to show that both do the same job.
"""
import sys

import h5py
import numpy as np


def names(group, name):
    """Keras's load_attributes_from_hdf5_group, decoded to str."""
    if name in group.attrs:
        raw = list(group.attrs[name])
    else:
        raw, i = [], 0
        while "%s%d" % (name, i) in group.attrs:
            raw.extend(group.attrs["%s%d" % (name, i)])
            i += 1
    return [x.decode("utf8") if isinstance(x, bytes) else str(x) for x in raw]


def text(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def compare(pa, pb):
    diffs = []
    nweights = nbytes = 0
    with h5py.File(pa, "r") as a, h5py.File(pb, "r") as b:
        for attr in ("backend", "keras_version"):
            if text(a.attrs.get(attr)) != text(b.attrs.get(attr)):
                diffs.append("root attribute %s: %r != %r" % (
                    attr, a.attrs.get(attr), b.attrs.get(attr)))
        la, lb = names(a, "layer_names"), names(b, "layer_names")
        if la != lb:
            diffs.append("layer_names differ (%d vs %d layers; first difference at %s)" % (
                len(la), len(lb),
                next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))))
        for layer in la:
            if layer not in b:
                diffs.append("layer %s: missing in %s" % (layer, pb))
                continue
            wa, wb = names(a[layer], "weight_names"), names(b[layer], "weight_names")
            if wa != wb:
                diffs.append("layer %s: weight_names %s != %s" % (layer, wa, wb))
                continue
            for w in wa:
                da, db = a[layer][w], b[layer][w]
                if da.dtype != db.dtype or da.shape != db.shape:
                    diffs.append("%s/%s: %s%s != %s%s" % (
                        layer, w, da.dtype, da.shape, db.dtype, db.shape))
                    continue
                if not np.array_equal(da[()], db[()]):
                    diffs.append("%s/%s: values differ" % (layer, w))
                nweights += 1
                nbytes += da.size * da.dtype.itemsize
            if len(diffs) > 20:
                break
    return diffs, len(la), nweights, nbytes


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py A.h5 B.h5")
    diffs, nl, nw, nb = compare(sys.argv[1], sys.argv[2])
    if diffs:
        for d in diffs[:20]:
            print("compare: " + d, file=sys.stderr)
        sys.exit(1)
    print("compare: identical: %d layers, %d weights, %.1f MB" % (nl, nw, nb / 1e6))


if __name__ == "__main__":
    main()
