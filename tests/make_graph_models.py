#!/usr/bin/env python3
"""Writes small model files in format 2 (graphs) into OUTDIR, with h5py alone, for
tests/test_graph.c and tests/test_model.c's `graph` mode:

  graph_residual.h5   channel_affine at the input, conv + batch norm + ReLU, then a
                      residual block whose input feeds three consumers (its first
                      conv, a 1x1 shortcut conv and the add), a 3-input add, a ReLU
                      aliased like DNNBrain's ResNet blocks, adaptive pool, flatten,
                      linear. Input 3x8x8.
  graph_inception.h5  conv, ReLU, ceil_mode max-pool feeding four branches: 1x1;
                      1x1 then 1x3 and 3x1 (asymmetric, padded); avgpool2d 3x3
                      without counting the padding then 1x1; ceil_mode max-pool 3x3
                      s1 p1 then 1x1; concat (aliased `inception3a`), an avgpool2d
                      with ceil_mode and count_include_pad whose last window reaches
                      beyond the padding, adaptive pool, flatten, linear. Input 3x9x9.
  bad_graph_*.h5      one graph defect each (see BAD below), refused by the loader
                      with the messages docs/model-format.md (format 2) promises.

Weights are float64, drawn from a seeded generator, so the files are the same on
every run. Costs about a second (h5py and numpy only, no torch).

    /usr/bin/python3 tests/make_graph_models.py OUTDIR
"""
import os
import shutil
import sys

import h5py
import numpy as np

PREPROCESS = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class Graph:
    """Nodes in file order; each a (kind, name, attrs, datasets, inputs, alias)."""

    def __init__(self, name, chw, seed):
        self.name, self.chw = name, chw
        self.rng = np.random.default_rng(seed)
        self.nodes = []

    def add(self, kind, name, attrs=None, data=None, inputs=None, alias=""):
        self.nodes.append((kind, name, attrs or {}, data or {}, inputs, alias))
        return name

    def conv(self, name, cin, cout, k, pad=(0, 0), stride=(1, 1), inputs=None):
        fan = cin * k[0] * k[1]
        w = self.rng.uniform(-1, 1, (cout, cin, k[0], k[1])) / np.sqrt(fan)
        b = self.rng.uniform(-0.2, 0.2, cout)
        return self.add("conv2d", name, {"in_channels": cin, "out_channels": cout,
                                         "kernel_size": k, "stride": stride, "padding": pad,
                                         "groups": 1}, {"weight": w, "bias": b}, inputs)

    def write(self, path):
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "salpipe-model"
            f.attrs["format_version"] = np.int64(2)
            f.attrs["name"] = self.name
            f.attrs["input_channels"] = np.int64(self.chw[0])
            f.attrs["input_size"] = np.array(self.chw[1:], dtype=np.int64)
            f.attrs["mean"] = np.array(PREPROCESS["mean"], dtype=np.float64)
            f.attrs["std"] = np.array(PREPROCESS["std"], dtype=np.float64)
            f.attrs["resize"] = "stretch"
            f.attrs["resize_size"] = np.int64(self.chw[1])
            layers = f.create_group("layers")
            layers.attrs["count"] = np.int64(len(self.nodes))
            for i, (kind, name, attrs, data, inputs, alias) in enumerate(self.nodes):
                g = layers.create_group(f"{i:03d}")
                g.attrs["kind"] = kind
                g.attrs["name"] = name
                if alias:
                    g.attrs["alias"] = alias
                if inputs is not None:
                    g.attrs["inputs"] = list(inputs)
                for key, value in attrs.items():
                    if isinstance(value, float):
                        g.attrs[key] = np.float64(value)
                    else:
                        g.attrs[key] = np.asarray(value, dtype=np.int64)
                for key, value in data.items():
                    g.create_dataset(key, data=np.asarray(value, dtype=np.float64))


def residual():
    m = Graph("graph_residual", (3, 8, 8), 11)
    mean, std = PREPROCESS["mean"], PREPROCESS["std"]
    m.add("channel_affine", "transform_input", data={
        "scale": [s / 0.5 for s in std], "shift": [(a - 0.5) / 0.5 for a in mean]})
    m.conv("conv1", 3, 4, (3, 3), (1, 1))
    m.add("batchnorm2d", "bn1", {"eps": 1e-5}, {
        "weight": m.rng.uniform(0.5, 1.5, 4), "bias": m.rng.uniform(-0.3, 0.3, 4),
        "running_mean": m.rng.uniform(-0.2, 0.2, 4),
        "running_var": m.rng.uniform(0.5, 2, 4)})
    m.add("relu", "relu")
    # relu feeds layer1.0.conv1, layer1.0.downsample and layer1.0.add.
    m.conv("layer1.0.conv1", 4, 4, (3, 3), (1, 1), inputs=["relu"])
    m.add("relu", "layer1.0.relu")
    m.conv("layer1.0.conv2", 4, 4, (1, 1))
    m.conv("layer1.0.downsample", 4, 4, (1, 1), inputs=["relu"])
    m.add("add", "layer1.0.add", inputs=["layer1.0.conv2", "layer1.0.downsample", "relu"])
    m.add("relu", "layer1.0.relu_2", alias="layer1_bottleneck0")
    m.add("adaptive_avgpool2d", "avgpool", {"output_size": (2, 2)})
    m.add("flatten", "flatten")
    w = m.rng.uniform(-0.5, 0.5, (5, 16))
    m.add("linear", "fc", {"in_features": 16, "out_features": 5},
          {"weight": w, "bias": m.rng.uniform(-0.1, 0.1, 5)})
    return m


def inception():
    m = Graph("graph_inception", (3, 9, 9), 12)
    m.conv("conv1", 3, 6, (3, 3), (1, 1))
    m.add("relu", "conv1.relu")
    m.add("maxpool2d", "maxpool1", {"kernel_size": (3, 3), "stride": (2, 2),
                                    "padding": (0, 0), "ceil_mode": 1})  # 9x9 -> 4x4
    src = ["maxpool1"]
    m.conv("inception3a.branch1.conv", 6, 2, (1, 1), inputs=src)
    m.add("relu", "inception3a.branch1.relu")
    m.conv("inception3a.branch2.0.conv", 6, 3, (1, 1), inputs=src)
    m.add("relu", "inception3a.branch2.0.relu")
    m.conv("inception3a.branch2.1.conv", 3, 3, (1, 3), (0, 1))
    m.conv("inception3a.branch2.2.conv", 3, 2, (3, 1), (1, 0))
    m.add("relu", "inception3a.branch2.2.relu")
    m.add("avgpool2d", "inception3a.branch3.avgpool",
          {"kernel_size": (3, 3), "stride": (1, 1), "padding": (1, 1), "ceil_mode": 0,
           "count_include_pad": 0}, inputs=src)
    m.conv("inception3a.branch3.conv", 6, 2, (1, 1))
    m.add("maxpool2d", "inception3a.branch4.0", {"kernel_size": (3, 3), "stride": (1, 1),
                                                 "padding": (1, 1), "ceil_mode": 1},
          inputs=src)
    m.conv("inception3a.branch4.1.conv", 6, 1, (1, 1))
    m.add("concat", "inception3a.cat", {"dim": 1},
          inputs=["inception3a.branch1.relu", "inception3a.branch2.2.relu",
                  "inception3a.branch3.conv", "inception3a.branch4.1.conv"],
          alias="inception3a")  # 2 + 2 + 2 + 1 = 7 channels
    # 4x4, k3 s2 p1 ceil_mode: 3x3, the last window [3, 6) cut at 4 + 1 = 5.
    m.add("avgpool2d", "maxpool2", {"kernel_size": (3, 3), "stride": (2, 2),
                                    "padding": (1, 1), "ceil_mode": 1,
                                    "count_include_pad": 1})
    m.add("adaptive_avgpool2d", "avgpool", {"output_size": (1, 1)})
    m.add("flatten", "flatten")
    m.add("linear", "fc", {"in_features": 7, "out_features": 4},
          {"weight": m.rng.uniform(-0.5, 0.5, (4, 7)), "bias": m.rng.uniform(-0.1, 0.1, 4)})
    return m


def node(f, name):
    """The group of the node called `name`."""
    for key in f["layers"]:
        if f["layers"][key].attrs["name"] == name:
            return f["layers"][key]
    raise KeyError(name)


def set_inputs(name, inputs):
    def fn(f):
        node(f, name).attrs["inputs"] = list(inputs)
    return fn


def set_attr(name, key, value):
    def fn(f):
        node(f, name).attrs[key] = value
    return fn


# file -> (source model, edit). The message each must produce is in test_model.c.
BAD = {
    # layer1.0.conv1 reads layer1.0.relu, which reads layer1.0.conv1.
    "bad_graph_cycle.h5": ("residual", set_inputs("layer1.0.conv1", ["layer1.0.relu"])),
    "bad_graph_missing.h5": ("residual", set_inputs("layer1.0.add",
                                                    ["layer1.0.conv2", "layer9.0.conv2"])),
    # branch3.avgpool (a later node) reads maxpool1 only: no cycle, just misordered.
    "bad_graph_order.h5": ("inception", set_inputs("inception3a.branch1.conv",
                                                   ["inception3a.branch3.avgpool"])),
    # the network input is 3x8x8, layer1.0.conv2 4x8x8.
    "bad_graph_add_shape.h5": ("residual", set_inputs("layer1.0.add",
                                                      ["layer1.0.conv2", "input"])),
    "bad_graph_add_one.h5": ("residual", set_inputs("layer1.0.add", ["layer1.0.conv2"])),
    # conv1.relu is 6x9x9, the branches 4x4.
    "bad_graph_concat_hw.h5": ("inception", set_inputs(
        "inception3a.cat", ["inception3a.branch1.relu", "conv1.relu"])),
    "bad_graph_relu_two.h5": ("residual", set_inputs("layer1.0.relu_2",
                                                     ["layer1.0.add", "relu"])),
    "bad_graph_dup_alias.h5": ("inception", set_attr("maxpool2", "alias", "inception3a")),
    "bad_graph_alias_is_name.h5": ("inception", set_attr("maxpool2", "alias", "conv1")),
    "bad_graph_input_name.h5": ("residual", set_attr("conv1", "name", "input")),
    "bad_graph_input_alias.h5": ("residual", set_attr("avgpool", "alias", "input")),
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_graph_models.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    good = {"residual": os.path.join(out, "graph_residual.h5"),
            "inception": os.path.join(out, "graph_inception.h5")}
    residual().write(good["residual"])
    inception().write(good["inception"])
    for name, (src, fn) in BAD.items():
        dst = os.path.join(out, name)
        shutil.copyfile(good[src], dst)
        with h5py.File(dst, "r+") as f:
            fn(f)
    print(f"{out}: graph_residual.h5, graph_inception.h5 and {len(BAD)} bad graph files")


if __name__ == "__main__":
    main()
