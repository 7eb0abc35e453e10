#!/usr/bin/env python3
"""The Python way: convert a state_dict .npz into a legacy Keras HDF5 weight file.

    peer.py IN.npz OUT.h5

What a competent user writes instead of using weightbridge, and the baseline
of the benchmark: np.load the archive, group the keys by module (the key minus
its last '.param'), and per module, in archive order,

  * 4-D weight (Conv2D)           kernel = transpose(2, 3, 1, 0), bias as is
  * 2-D weight (Linear -> Dense)  kernel = weight.T, bias as is
  * running_mean present (BatchNorm)
                                  gamma, beta, moving_mean, moving_variance
                                  from weight, bias, running_mean, running_var
  * num_batches_tracked           dropped

(transposed copies made C-contiguous with np.ascontiguousarray, everything
float32), then write the layout Keras's save_weights writes with h5py: root
attributes layer_names, backend and keras_version, one group per layer with a
weight_names attribute, datasets <layer>/<layer>/<weight>:0.  Name lists over
Keras's 64512-byte attribute limit are split into name0, name1, ... exactly as
Keras's save_attributes_to_hdf5_group does.  Layers are named after their
module prefix, as the benchmark specs name them, so both outputs can be
compared dataset by dataset (compare.py).

Only numpy and h5py; no fsync, no read-back (Keras's save_weights does
neither).
"""
import sys

import h5py
import numpy as np

HDF5_OBJECT_HEADER_LIMIT = 64512


def save_attributes_to_hdf5_group(group, name, data):
    """Keras's helper: a list attribute, chunked past the header limit."""
    data_npy = np.asarray(data)
    num_chunks = 1
    chunked = np.array_split(data_npy, num_chunks)
    while any(x.nbytes > HDF5_OBJECT_HEADER_LIMIT for x in chunked):
        num_chunks += 1
        chunked = np.array_split(data_npy, num_chunks)
    if num_chunks > 1:
        for i, chunk in enumerate(chunked):
            group.attrs["%s%d" % (name, i)] = chunk
    else:
        group.attrs[name] = data


def module_weights(sd, params):
    """[(keras weight name, float32 C-contiguous array)] of one module."""
    if "running_mean" in params:
        pairs = [("gamma", "weight"), ("beta", "bias"),
                 ("moving_mean", "running_mean"), ("moving_variance", "running_var")]
        return [(kn, sd[params[pn]].astype(np.float32, copy=False))
                for kn, pn in pairs if pn in params]
    w = sd[params["weight"]]
    if w.ndim == 4:
        kernel = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    elif w.ndim == 2:
        kernel = np.ascontiguousarray(w.T)
    else:
        raise SystemExit("peer: %s: cannot map a %d-D weight" % (params["weight"], w.ndim))
    del w
    out = [("kernel", kernel.astype(np.float32, copy=False))]
    if "bias" in params:
        out.append(("bias", sd[params["bias"]].astype(np.float32, copy=False)))
    return out


def write_layer(f, sd, layer, params):
    g = f.create_group(layer)
    names = []
    for kn, arr in module_weights(sd, params):
        path = "%s/%s:0" % (layer, kn)
        g.create_dataset(path, data=arr)
        names.append(path.encode("utf8"))
    save_attributes_to_hdf5_group(g, "weight_names", names)


def convert(src, dst):
    sd = np.load(src)
    modules = {}
    for key in sd.files:
        prefix, _, param = key.rpartition(".")
        if param == "num_batches_tracked":
            continue
        modules.setdefault(prefix, {})[param] = key
    with h5py.File(dst, "w") as f:
        for layer, params in modules.items():
            write_layer(f, sd, layer, params)
        save_attributes_to_hdf5_group(f, "layer_names", [m.encode("utf8") for m in modules])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
    sd.close()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: peer.py IN.npz OUT.h5")
    convert(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
