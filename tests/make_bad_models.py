#!/usr/bin/env python3
"""Writes the model files tests/test_model.c opens, into OUTDIR:

  good.h5          a tiny network exported by scripts/export_torchvision.py's
                   export_sequential (conv, bn, relu, ceil-mode max-pool, adaptive
                   pool, flatten, dropout, two linear layers; 3x7x7 input)
  good_matlab.h5   the same network written the way MATLAB writes HDF5: fixed-length
                   strings (NUL- and space-padded), numbers as double, scalars as
                   1-element arrays, float64 datasets
  expected.txt     values the loader must reproduce exactly: conv1 weights, fc2 bias
                   and the batch norm scale/shift torch itself uses in eval mode, in
                   float32 and float64 (hex floats, one array per line)
  bad_*.h5, not_hdf5.h5, truncated.h5   one defect each (see BAD below)

    /usr/bin/python3 tests/make_bad_models.py OUTDIR
"""
import copy
import os
import shutil
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from export_torchvision import IMAGENET_PREPROCESS, export_sequential  # noqa: E402

PREPROCESS = dict(IMAGENET_PREPROCESS, input_size=(7, 7), resize="crop", resize_size=8)


def tiny_network():
    torch.manual_seed(7)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
        nn.Dropout(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    bn = net[1]
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.01, 3.0)
    return net.eval()


def torch_bn_fold(bn, dtype):
    """The per-channel scale and shift torch's eval batch norm applies, read back from
    torch itself: an input of 0 gives the shift exactly, and 1 through a copy with zero
    bias and mean gives the scale exactly."""
    bn = copy.deepcopy(bn).to(dtype)
    c = bn.num_features
    with torch.no_grad():
        shift = bn(torch.zeros(1, c, 1, 1, dtype=dtype)).flatten()
        b0 = nn.BatchNorm2d(c, eps=bn.eps).to(dtype).eval()
        b0.weight.copy_(bn.weight)
        b0.bias.zero_()
        b0.running_mean.zero_()
        b0.running_var.copy_(bn.running_var)
        scale = b0(torch.ones(1, c, 1, 1, dtype=dtype)).flatten()
    return scale.double().tolist(), shift.double().tolist()


def write_expected(net, path):
    rows = {"conv1_weight": net[0].weight.detach().double().flatten().tolist(),
            "fc2_bias": net[9].bias.detach().double().tolist()}
    rows["bn_scale_f32"], rows["bn_shift_f32"] = torch_bn_fold(net[1], torch.float32)
    rows["bn_scale_f64"], rows["bn_shift_f64"] = torch_bn_fold(net[1], torch.float64)
    with open(path, "w") as f:
        for key, vals in rows.items():
            f.write(f"{key} {len(vals)} {' '.join(float(v).hex() for v in vals)}\n")


def fixed_str(obj, name, text, pad):
    """A fixed-length string attribute, as MATLAB's h5writeatt writes char arrays."""
    if name in obj.attrs:
        del obj.attrs[name]
    data = text.encode()
    size = len(data) + (3 if pad == "space" else 1)
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_SPACEPAD if pad == "space" else h5py.h5t.STR_NULLTERM)
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(data.ljust(size, b" " if pad == "space" else b"\0"),
                       dtype=f"S{size}"), mtype=tid)


def matlabify(path):
    """Rewrites every attribute and dataset of `path` the way MATLAB would."""
    n = [0]

    def fix(obj):
        for key in list(obj.attrs):
            v = obj.attrs[key]
            if isinstance(v, str):
                n[0] += 1
                fixed_str(obj, key, v, "space" if n[0] % 2 else "null")
            else:
                del obj.attrs[key]
                obj.attrs[key] = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if isinstance(obj, h5py.Group):
            for key in list(obj):
                child = obj[key]
                if isinstance(child, h5py.Dataset):
                    data = child[()].astype(np.float64)
                    del obj[key]
                    obj.create_dataset(key, data=data)
                else:
                    fix(child)

    with h5py.File(path, "r+") as f:
        fix(f)


def edit(src, dst, fn):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)


def replace(group, name, data):
    del group[name]
    group.create_dataset(name, data=data)


def set_attr(path, name, value):
    def fn(f):
        obj = f[os.path.dirname(path) or "/"]
        obj.attrs[name] = value
    return fn


def poke(ds_path, index, value, dtype=None):
    def fn(f):
        g, name = f[os.path.dirname(ds_path)], os.path.basename(ds_path)
        data = g[name][()].astype(dtype or g[name].dtype)
        data.flat[index] = value
        replace(g, name, data)
    return fn


def chain_features(f):
    g = f["layers/007"]
    g.attrs["in_features"] = np.int64(15)
    replace(g, "weight", g["weight"][()][:, :15])


def chain_channels(f):
    g = f["layers/000"]
    g.attrs["in_channels"] = np.int64(2)
    replace(g, "weight", g["weight"][()][:, :2])


def absurd_params(f):
    g = f["layers/000"]
    g.attrs["out_channels"] = np.int64(1 << 20)
    g.attrs["kernel_size"] = np.array([1024, 1024], dtype=np.int64)
    g.attrs["padding"] = np.array([512, 512], dtype=np.int64)
    g.attrs["stride"] = np.array([1024, 1024], dtype=np.int64)


# file -> edit. Layers of good.h5: 000 conv1, 001 conv1_bn, 002 conv1_relu,
# 003 conv1_maxpool, 004 avgpool, 005 flatten, 006 dropout1, 007 fc1, 008 fc1_relu, 009 fc2
BAD = {
    "bad_format.h5": set_attr("/format", "format", "keras-model"),
    "bad_no_format.h5": lambda f: f.attrs.__delitem__("format"),
    "bad_version.h5": set_attr("/format_version", "format_version", np.int64(3)),
    "bad_root_attr.h5": lambda f: f.attrs.__delitem__("input_size"),
    "bad_missing_dataset.h5": lambda f: f["layers/000"].__delitem__("bias"),
    "bad_missing_attr.h5": lambda f: f["layers/003"].attrs.__delitem__("kernel_size"),
    "bad_shape.h5": lambda f: replace(f["layers/000"], "weight",
                                      f["layers/000/weight"][()][:, :, :, :2]),
    "bad_dtype.h5": lambda f: replace(f["layers/007"], "weight",
                                      f["layers/007/weight"][()].astype(np.int32)),
    "bad_kind.h5": lambda f: f["layers/008"].attrs.__setitem__("kind", "softmax"),
    "bad_nan.h5": poke("/layers/007/weight", 17, np.nan),
    "bad_inf.h5": poke("/layers/000/bias", 2, -np.inf),
    "bad_f32_range.h5": poke("/layers/009/weight", 4, 1e300, np.float64),
    "bad_running_var.h5": poke("/layers/001/running_var", 1, -0.5),
    "bad_dup_name.h5": lambda f: f["layers/008"].attrs.__setitem__("name", "conv1_relu"),
    "bad_name_chars.h5": lambda f: f["layers/008"].attrs.__setitem__("name", "fc1:relu"),
    "bad_absurd_dim.h5": lambda f: f["layers/000"].attrs.__setitem__(
        "out_channels", np.int64(1 << 30)),
    "bad_absurd_input.h5": set_attr("/input_size", "input_size",
                                    np.array([1 << 20, 1 << 20], dtype=np.int64)),
    "bad_absurd_act.h5": lambda f: f["layers/004"].attrs.__setitem__(
        "output_size", np.array([1 << 20, 1 << 20], dtype=np.int64)),
    "bad_absurd_params.h5": absurd_params,
    "bad_count.h5": lambda f: f["layers"].attrs.__setitem__("count", np.int64(11)),
    "bad_chain_features.h5": chain_features,
    "bad_chain_channels.h5": chain_channels,
    "bad_dilation.h5": lambda f: f["layers/003"].attrs.__setitem__(
        "dilation", np.array([2, 2], dtype=np.int64)),
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_bad_models.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    net = tiny_network()
    good = os.path.join(out, "good.h5")
    export_sequential(list(net), good, "tiny", PREPROCESS)
    write_expected(net, os.path.join(out, "expected.txt"))

    shutil.copyfile(good, os.path.join(out, "good_matlab.h5"))
    matlabify(os.path.join(out, "good_matlab.h5"))
    for name, fn in BAD.items():
        edit(good, os.path.join(out, name), fn)

    with open(os.path.join(out, "not_hdf5.h5"), "w") as f:
        f.write("this is a text file, not HDF5\n" * 20)
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(out, "truncated.h5"), "wb") as f:
        f.write(data[: len(data) // 2])
    missing = os.path.join(out, "missing.h5")
    if os.path.exists(missing):
        os.remove(missing)
    print(f"{out}: good.h5, good_matlab.h5 and {len(BAD) + 2} bad model files")


if __name__ == "__main__":
    main()
