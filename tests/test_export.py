#!/usr/bin/env python3
"""Checks scripts/export_torchvision.py against PyTorch.

    /usr/bin/python3 tests/test_export.py MODELDIR      chain networks (format 1)
    /usr/bin/python3 tests/test_export.py --graph TMPDIR [SALPIPE]
                                                        graph networks (format 2)

MODELDIR holds alexnet_seed0.h5 and vgg11_bn_seed0.h5, exported with --seed 0 (the
CTest fixtures). Each file must hold exactly the parameters of torch.manual_seed(0) +
torchvision.models.ARCH(), in module order, under DNNBrain names, with the format-1
attributes. Also checks export_sequential on odd modules (conv without bias, batch
norm without affine, unsupported modules) and --weights loading.

--graph: resnet18, resnet50, googlenet and inception_v3 (transform_input on), each
traced (the GraphModule's float64 output must equal the model's bit for bit) and
written; the file, evaluated node by node in float64 by evaluate_file() below (an
interpreter of docs/model-format.md independent of the exporter), must give the
model's output; node names, inputs and DNNBrain aliases are spot-checked; with
SALPIPE, `salpipe --layers` must load each file and list its nodes. Also a
custom network through export_model, refusals (unsupported operation, dilation,
in-place hazard, --transform-input on a network without it), and state dicts with
2,622 classes and auxiliary-classifier keys. resnet34/101/152 are not run: they
differ from resnet18/50 only in block counts.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import export_torchvision as ex  # noqa: E402

SALPIPE = None  # --graph TMPDIR SALPIPE: also run `salpipe --layers` on the files
EXPORTER = os.path.join(os.path.dirname(os.path.abspath(ex.__file__)), "export_torchvision.py")

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


ALEXNET_NAMES = ("conv1 conv1_relu conv1_maxpool conv2 conv2_relu conv2_maxpool conv3 "
                 "conv3_relu conv4 conv4_relu conv5 conv5_relu conv5_maxpool avgpool "
                 "flatten dropout1 fc1 fc1_relu dropout2 fc2 fc2_relu fc3").split()


def check_file(path, arch):
    model = ex.build_torchvision(arch, seed=0)
    mods = ex._flat_modules(ex.torchvision_layers(model))
    with h5py.File(path, "r") as f:
        check(f.attrs["format"] == "salpipe-model", "format")
        check(int(f.attrs["format_version"]) == 1, "format_version")
        check(f.attrs["name"] == arch, "name")
        check(list(f.attrs["input_size"]) == [224, 224], "input_size")
        check(f.attrs["mean"].dtype == np.float64 and
              list(f.attrs["mean"]) == [0.485, 0.456, 0.406], "mean float64 decimals")
        check(list(f.attrs["std"]) == [0.229, 0.224, 0.225], "std")
        check(f.attrs["resize"] == "stretch" and int(f.attrs["resize_size"]) == 256, "resize")
        layers = f["layers"]
        check(int(layers.attrs["count"]) == len(mods), "count")
        names = [layers[f"{i:03d}"].attrs["name"] for i in range(len(mods))]
        if arch == "alexnet":
            check(names == ALEXNET_NAMES, f"alexnet names {names}")
        maxdiff, nparams = 0.0, 0
        for i, m in enumerate(mods):
            g = layers[f"{i:03d}"]
            kind = g.attrs["kind"]
            if isinstance(m, nn.Conv2d):
                check(kind == "conv2d", f"{i}: kind {kind}")
                check(list(g.attrs["kernel_size"]) == list(m.kernel_size) and
                      list(g.attrs["stride"]) == list(m.stride) and
                      list(g.attrs["padding"]) == list(m.padding) and
                      int(g.attrs["groups"]) == m.groups, f"{i}: conv attributes")
            if isinstance(m, nn.MaxPool2d):
                check(kind == "maxpool2d" and g.attrs["name"].endswith("_maxpool"),
                      f"{i}: maxpool")
            if isinstance(m, nn.BatchNorm2d):
                check(float(g.attrs["eps"]) == m.eps, f"{i}: eps")
            tensors = dict(m.named_parameters())
            tensors.update({k: v for k, v in m.named_buffers() if k.startswith("running")})
            check(sorted(tensors) == sorted(g.keys()), f"{i}: datasets {sorted(g.keys())}")
            for key, t in tensors.items():
                a = t.detach().numpy()
                d = g[key]
                check(d.dtype == np.float32 and d.shape == a.shape, f"{i}/{key}: {d.dtype} {d.shape}")
                if d.shape == a.shape:
                    diff = np.abs(d[()] - a).max()
                    maxdiff = max(maxdiff, float(diff))
                    check(np.array_equal(d[()], a), f"{i}/{key} differs by {diff}")
                nparams += a.size if key in ("weight", "bias") else 0
        want = sum(p.numel() for p in model.parameters())
        check(nparams == want, f"{nparams} parameters, torch has {want}")
        print(f"{path}: {len(mods)} layers, {nparams} parameters, max difference {maxdiff}")


def check_sequential():
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "odd.h5")
    torch.manual_seed(3)
    net = [nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2, affine=False),
           nn.Identity(), nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)), nn.ReLU(),
           nn.Flatten(), nn.Linear(2, 2)]
    pre = dict(ex.IMAGENET_PREPROCESS, input_channels=1, mean=(0.5,), std=(0.25,),
               input_size=(4, 4))
    names = ex.export_sequential(net, path, "odd", pre)
    check(names == ["conv1", "conv1_bn", "conv1_relu", "conv1_maxpool", "conv1_relu_2",
                    "flatten", "fc1"], f"odd names {names}")
    with h5py.File(path, "r") as f:
        check(np.all(f["layers/000/bias"][()] == 0), "conv without bias writes zeros")
        check(np.all(f["layers/001/weight"][()] == 1) and np.all(f["layers/001/bias"][()] == 0),
              "batch norm without affine writes ones and zeros")
    for bad, word in ((nn.Sigmoid(), "Sigmoid"), (nn.Conv2d(1, 1, 3, dilation=2), "dilation"),
                      (nn.Flatten(0), "Flatten"), (nn.AdaptiveAvgPool2d((None, 2)), "None")):
        try:
            ex.export_sequential([bad], os.path.join(tmp, "bad.h5"), "bad", pre)
            check(False, f"{bad} was exported")
        except ex.ExportError as e:
            check(word in str(e) and "layer 0" in str(e), f"message for {bad}: {e}")
    check(not os.path.exists(os.path.join(tmp, "bad.h5")), "no partial file left")

    # --weights: a state dict replaces the seeded weights.
    sd = ex.build_torchvision("alexnet", seed=5).state_dict()
    wpath = os.path.join(tmp, "a.pth")
    torch.save(sd, wpath)
    model = ex.build_torchvision("alexnet", weights=wpath, seed=0)
    check(all(torch.equal(sd[k], v) for k, v in model.state_dict().items()),
          "--weights loads the state dict")
    torch.save({"conv.weight": torch.zeros(1)}, wpath)
    try:
        ex.build_torchvision("alexnet", weights=wpath)
        check(False, "a foreign state dict was accepted")
    except ex.ExportError as e:
        check("does not fit" in str(e), f"foreign state dict message: {e}")
    os.remove(wpath)
    os.remove(path)
    os.rmdir(tmp)


# ---------------------------------------------------------------------------------
# Graph networks (format 2)

def read_nodes(path):
    """The file's nodes as dicts (kind, name, alias, inputs, attrs, data), inputs
    filled in with the default (the previous node) where the file omits them."""
    out = []
    with h5py.File(path, "r") as f:
        layers = f["layers"]
        for i in range(int(layers.attrs["count"])):
            g = layers[f"{i:03d}"]
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
            ins = [x.decode() if isinstance(x, bytes) else str(x)
                   for x in a.pop("inputs")] if "inputs" in a else \
                [out[-1]["name"] if out else "input"]
            out.append({"kind": a.pop("kind"), "name": a.pop("name"),
                        "alias": a.pop("alias", ""), "inputs": ins, "attrs": a,
                        "data": {k: torch.from_numpy(g[k][()]).double() for k in g.keys()}})
    return out


def evaluate_file(nodes, x):
    """Runs a node list (read_nodes) on x (N, C, H, W) in float64 with torch's
    functional ops, following docs/model-format.md; returns every node's value."""
    import torch.nn.functional as F
    val = {"input": x}
    for nd in nodes:
        k, a, d = nd["kind"], nd["attrs"], nd["data"]
        ins = [val[i] for i in nd["inputs"]]
        t = ins[0]
        pair = (lambda key: tuple(int(v) for v in a[key]))
        if k == "conv2d":
            y = F.conv2d(t, d["weight"], d["bias"], pair("stride"), pair("padding"), 1,
                         int(a["groups"]))
        elif k == "batchnorm2d":
            y = F.batch_norm(t, d["running_mean"], d["running_var"], d["weight"], d["bias"],
                             False, 0.0, float(a["eps"]))
        elif k == "relu":
            y = torch.relu(t)
        elif k == "maxpool2d":
            y = F.max_pool2d(t, pair("kernel_size"), pair("stride"), pair("padding"),
                             ceil_mode=bool(a["ceil_mode"]))
        elif k == "avgpool2d":
            y = F.avg_pool2d(t, pair("kernel_size"), pair("stride"), pair("padding"),
                             bool(a["ceil_mode"]), bool(a["count_include_pad"]))
        elif k == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(t, pair("output_size"))
        elif k == "flatten":
            y = torch.flatten(t, 1)
        elif k == "dropout":
            y = t
        elif k == "linear":
            y = F.linear(torch.flatten(t, 1), d["weight"], d["bias"])
        elif k == "add":
            y = ins[0]
            for u in ins[1:]:
                y = y + u
        elif k == "concat":
            y = torch.cat(ins, 1)
        elif k == "channel_affine":
            y = torch.cat([t[:, c:c + 1] * d["scale"][c].item() + d["shift"][c].item()
                           for c in range(t.shape[1])], 1)
        else:
            raise AssertionError(f"unknown kind {k}")
        val[nd["name"]] = y
    return val


# DNNBrain's layer names (dnnbrain/dnn/models.py layer2loc), written out here
# independently of the exporter's table.
DNNBRAIN = {
    "googlenet": "conv1 maxpool1 conv2 conv3 maxpool2 inception3a inception3b maxpool3 "
                 "inception4a inception4b inception4c inception4d inception4e maxpool4 "
                 "inception5a inception5b fc",
    "resnet18": "conv bn relu maxpool " + " ".join(
        f"layer{i}_basicblock{k}" for i in range(1, 5) for k in range(2)) + " avgpool fc",
    "resnet50": "conv bn relu maxpool " + " ".join(
        f"layer{i}_bottleneck{k}" for i, n in zip(range(1, 5), (3, 4, 6, 3))
        for k in range(n)) + " avgpool fc",
    "inception_v3": "conv1 conv2 conv3 maxpool1 conv4 conv5 maxpool2 " +
                    " ".join(f"inception{i}" for i in range(1, 12)) + " avgpool fc",
}

# (name, alias, kind, inputs or None) that must be in the file.
SPOT = {
    "resnet18": [("conv1", "conv", "conv2d", ["input"]), ("relu", "", "relu", None),
                 ("layer1.0.relu_2", "layer1_basicblock0", "relu", ["layer1.0.add"]),
                 ("layer2.0.add", "", "add", ["layer2.0.bn2", "layer2.0.downsample.1"]),
                 ("flatten", "", "flatten", ["avgpool"])],
    "resnet50": [("layer3.5.relu_3", "layer3_bottleneck5", "relu", ["layer3.5.add"]),
                 ("layer3.5.relu", "", "relu", ["layer3.5.bn1"]),
                 ("layer3.5.add", "", "add", ["layer3.5.bn3", "layer3.4.relu_3"]),
                 ("bn1", "bn", "batchnorm2d", ["conv1"])],
    "googlenet": [("transform_input", "", "channel_affine", ["input"]),
                  ("conv1.conv", "", "conv2d", ["transform_input"]),
                  ("inception4c.cat", "inception4c", "concat",
                   [f"inception4c.branch{b}" for b in ("1.relu", "2.1.relu", "3.1.relu",
                                                        "4.1.relu")]),
                  ("inception3a.branch4.0", "", "maxpool2d", ["maxpool2"]),
                  ("maxpool1", "", "maxpool2d", ["conv1.relu"]),
                  ("fc", "", "linear", ["dropout"])],
    "inception_v3": [("transform_input", "", "channel_affine", ["input"]),
                     ("Mixed_7c.cat_3", "inception11", "concat",
                      ["Mixed_7c.branch1x1.relu", "Mixed_7c.cat", "Mixed_7c.cat_2",
                       "Mixed_7c.branch_pool.relu"]),
                     ("Mixed_5b.avgpool", "", "avgpool2d", ["maxpool2"]),
                     ("Mixed_6a.maxpool", "", "maxpool2d", ["Mixed_5d.cat"]),
                     ("Conv2d_1a_3x3.relu", "conv1", "relu", ["Conv2d_1a_3x3.bn"])],
}


def check_nodes(arch, nodes):
    byname = {n["name"]: n for n in nodes}
    check(len(byname) == len(nodes), f"{arch}: node names repeat")
    for name, alias, kind, ins in SPOT[arch]:
        n = byname.get(name)
        check(n is not None and n["alias"] == alias and n["kind"] == kind and
              (ins is None or n["inputs"] == ins),
              f"{arch}: node {name}: {n and (n['alias'], n['kind'], n['inputs'])}")
    found = {n["alias"] or n["name"] for n in nodes} | {n["name"] for n in nodes}
    missing = [a for a in DNNBRAIN[arch].split() if a not in found]
    check(not missing, f"{arch}: DNNBrain names without a node: {missing}")
    seen = {"input"}
    for n in nodes:
        check(all(i in seen for i in n["inputs"]), f"{arch}: {n['name']} reads a later node")
        seen.add(n["name"])


def check_loads(label, path, nodes):
    """With SALPIPE: salpipe's loader accepts the file and lists every node."""
    if not SALPIPE:
        return
    r = subprocess.run([SALPIPE, "--layers", path], capture_output=True, text=True)
    words = set(r.stdout.split())
    missing = [n["name"] for n in nodes if n["name"] not in words]
    check(r.returncode == 0 and not missing,
          f"{label}: salpipe --layers exit {r.returncode} {r.stderr.strip()}, "
          f"missing {missing[:3]}")


def check_graph_arch(arch, tmp, size):
    """trace_network and export_model (or the CLI for googlenet/inception_v3) for one
    architecture, then the three float64 comparisons."""
    ti = arch in ("googlenet", "inception_v3")
    path = os.path.join(tmp, f"{arch}.h5")
    if ti:
        # The CLI: --transform-input on; googlenet also gets a state dict with 2,622
        # classes and auxiliary-classifier keys (both must load).
        cmd = [sys.executable, EXPORTER, arch, "-o", path, "--seed", "0",
               "--transform-input", "on"]
        if arch == "googlenet":
            torch.manual_seed(7)
            sd = torchvision.models.googlenet(aux_logits=True, init_weights=False,
                                              num_classes=2622).state_dict()
            check(any(k.startswith("aux1.") for k in sd), "aux keys in the test state dict")
            torch.save(sd, os.path.join(tmp, "g.pth"))
            cmd += ["--weights", os.path.join(tmp, "g.pth")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        check(r.returncode == 0, f"{arch} CLI: exit {r.returncode}: {r.stderr}")
        model = ex.build_torchvision(arch, seed=0, transform_input=True,
                                     weights=os.path.join(tmp, "g.pth") if arch ==
                                     "googlenet" else None)
    else:
        model = ex.build_torchvision(arch, seed=0)
        ex.export_model(model, path, arch, ex.IMAGENET_PREPROCESS)
    with h5py.File(path, "r") as f:
        check(int(f.attrs["format_version"]) == 2, f"{arch}: format_version 2")
        want = [299, 299] if arch == "inception_v3" else [224, 224]
        check(list(f.attrs["input_size"]) == want, f"{arch}: input_size {f.attrs['input_size']}")
        check(f.attrs["resize"] == "stretch", f"{arch}: resize stretch")
        check(all("inputs" in f["layers"][g].attrs for g in f["layers"]),
              f"{arch}: a format-2 file writes inputs on every node")
    nodes = read_nodes(path)
    check_nodes(arch, nodes)
    check_loads(arch, path, nodes)
    if arch == "googlenet":
        fc = [n for n in nodes if n["name"] == "fc"][0]
        check(int(fc["attrs"]["out_features"]) == 2622, "googlenet: 2,622 classes")
        check(not any(n["name"].startswith("aux") for n in nodes), "googlenet: no aux nodes")
        ti_node = nodes[0]
        check(ti_node["data"]["scale"].tolist() == [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5] and
              ti_node["data"]["shift"].tolist() == [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5,
                                                   (0.406 - 0.5) / 0.5],
              "transform_input scale and shift are torchvision's constants")

    gm, tnodes = ex.trace_network(model)
    check([n["name"] for n in tnodes] == [n["name"] for n in nodes] and
          [n["alias"] for n in tnodes] == [n["alias"] for n in nodes],
          f"{arch}: trace_network's nodes are the file's")
    model.double()
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        want = model(x)
        xt = evaluate_file(nodes[:1], x)["transform_input"] if ti else x
        got_gm = gm(xt)
        vals = evaluate_file(nodes, x)
    got_file = vals[nodes[-1]["name"]]
    d_gm = (got_gm - want).abs().max().item()
    d_file = (got_file - want).abs().max().item()
    check(d_gm <= 1e-12 and d_file <= 1e-12,
          f"{arch}: float64 output differs: GraphModule {d_gm}, file {d_file}")
    # Every node with an fx node holds that fx node's value.
    env = {}
    with torch.no_grad():
        interp = torch.fx.Interpreter(gm)
        orig = interp.run_node

        def record(n):  # a copy: later in-place ReLUs change the value itself
            out = orig(n)
            env[n] = out.clone() if isinstance(out, torch.Tensor) else out
            return out
        interp.run_node = record
        interp.run(xt)
    worst = max((vals[n["name"]] - env[n["fx_node"]]).abs().max().item()
                for n in tnodes if n["fx_node"] is not None)
    check(worst <= 1e-12, f"{arch}: a node's value differs from its fx node's by {worst}")
    print(f"{arch}: {len(nodes)} nodes, {sum(1 for n in nodes if n['alias'])} aliases, "
          f"float64 output difference GraphModule {d_gm}, file {d_file}")


class Branchy(nn.Module):
    """A torchvision-style network from every supported function."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.a = nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
        self.b = nn.Conv2d(4, 2, (3, 1), padding=(1, 0))
        self.act = nn.ReLU()
        self.skip = nn.Identity()
        self.pool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(10 * 2 * 2, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.act(self.a(x))
        y = self.act(y + self.skip(x))                # act called twice: act, act_2
        z = torch.cat([y, F.relu(self.b(x)), x], 1)    # 4 + 2 + 4 channels
        z = F.max_pool2d(z, 2, ceil_mode=True)
        z = self.pool(z)
        z = F.avg_pool2d(z, 3, 1, 1, count_include_pad=False)
        z = F.adaptive_avg_pool2d(z, (2, 2))
        z = F.dropout(torch.flatten(z, 1), 0.5, self.training)
        return self.fc(z)


class Inner(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)


class Holder(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.block = inner

    def forward(self, x):
        return self.block(self.conv(x))


class Hazard(nn.Module):
    """F.relu(y, inplace=True) changes y, which the add reads afterwards."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        z = F.relu(y, inplace=True)
        return z + y


class ViewHazard(nn.Module):
    """torch.flatten returns a view of the conv's output, which the in-place ReLU
    then changes before fc reads the view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(2 * 224 * 224, 2)

    def forward(self, x):
        y = self.conv(x)
        flat = torch.flatten(y, 1)
        z = F.relu(y, inplace=True)
        return self.fc(flat) + self.fc(torch.flatten(z, 1))


class Pair(nn.Module):
    def forward(self, x):
        return x, x


def check_custom(tmp):
    """export_model on a network of this file's own; refusals with no file left."""
    pre = dict(ex.IMAGENET_PREPROCESS, input_size=(11, 11))
    path = os.path.join(tmp, "branchy.h5")
    torch.manual_seed(2)
    net = Branchy()
    for m in net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    names = ex.export_model(net, path, "branchy", pre)
    want = ("stem.0 stem.1 stem.2 a act add act_2 b relu cat maxpool pool avgpool "
            "adaptive_avgpool flatten dropout fc").split()
    check(names == want, f"custom names {names}")
    nodes = read_nodes(path)
    check_loads("custom network", path, nodes)
    by = {n["name"]: n for n in nodes}
    check(by["add"]["inputs"] == ["act", "stem.2"], f"Identity is skipped: {by['add']['inputs']}")
    check(by["cat"]["inputs"] == ["act_2", "relu", "stem.2"], f"cat inputs {by['cat']['inputs']}")
    p = by["pool"]["attrs"]
    check(list(p["kernel_size"]) == [3, 3] and list(p["stride"]) == [2, 2] and
          list(p["padding"]) == [1, 1] and int(p["ceil_mode"]) == 1 and
          int(p["count_include_pad"]) == 0, f"AvgPool2d attributes {p}")
    p = by["avgpool"]["attrs"]
    check(list(p["stride"]) == [1, 1] and int(p["count_include_pad"]) == 0 and
          int(p["ceil_mode"]) == 0, f"avg_pool2d attributes {p}")
    check(int(by["maxpool"]["attrs"]["ceil_mode"]) == 1 and
          list(by["maxpool"]["attrs"]["stride"]) == [2, 2], "max_pool2d stride = kernel")
    net.double()
    x = torch.rand(2, 3, 11, 11, dtype=torch.float64) - 0.5
    with torch.no_grad():
        d = (evaluate_file(nodes, x)["fc"] - net(x)).abs().max().item()
    check(d <= 1e-12, f"custom network: file output differs by {d}")

    bad = os.path.join(tmp, "bad.h5")
    for model, words in ((Holder(Inner()), ("torch.sigmoid", "module 'block' (Inner)",
                                            "fx node 'sigmoid'")),
                         (Holder(nn.Sigmoid()), ("Sigmoid", "module 'block'")),
                         (Holder(nn.Conv2d(2, 2, 3, dilation=2)),
                          ("dilation", "module 'block' (Conv2d)")),
                         (Hazard(), ("in place", "fx node 'add'")),
                         (ViewHazard(), ("in place", "fx node 'fc' reads 'flatten'")),
                         (Pair(), ("returns tuple",))):
        try:
            ex.export_model(model, bad, "bad", ex.IMAGENET_PREPROCESS)
            check(False, f"{type(model).__name__} was exported")
        except ex.ExportError as e:
            check(all(w in str(e) for w in words), f"message for {words[0]}: {e}")
        check(not os.path.exists(bad), f"{words[0]}: a file was left behind")
        check(not any(f.startswith("bad.h5") for f in os.listdir(tmp)),
              f"{words[0]}: a temporary file was left behind")


def check_cli_and_weights(tmp):
    out = os.path.join(tmp, "no.h5")
    r = subprocess.run([sys.executable, EXPORTER, "alexnet", "-o", out,
                        "--transform-input", "on"], capture_output=True, text=True)
    check(r.returncode == 2 and "transform_input" in r.stderr and not os.path.exists(out),
          f"alexnet --transform-input on: exit {r.returncode}, {r.stderr.strip()}")
    # VGG-Face's case: the AlexNet/VGG layout (classifier.6) with 2,622 classes.
    torch.manual_seed(4)
    sd = torchvision.models.alexnet(num_classes=2622).state_dict()
    wpath = os.path.join(tmp, "a2622.pth")
    torch.save(sd, wpath)
    model = ex.build_torchvision("alexnet", weights=wpath)
    check(model.classifier[6].out_features == 2622 and
          all(torch.equal(sd[k], v) for k, v in model.state_dict().items()),
          "a 2,622-class alexnet state dict loads")
    _, nodes = ex.trace_network(model)
    check(nodes[-1]["name"] == "fc3" and nodes[-1]["attrs"]["out_features"] == 2622,
          f"2,622 classes traced: {nodes[-1]['name']} {nodes[-1]['attrs']}")
    # Inception-v3 with an AuxLogits head in the state dict.
    torch.manual_seed(5)
    sd = torchvision.models.inception_v3(aux_logits=True, init_weights=False).state_dict()
    torch.save(sd, wpath)
    model = ex.build_torchvision("inception_v3", weights=wpath)
    check(model.AuxLogits is None and torch.equal(model.fc.weight, sd["fc.weight"]),
          "inception_v3 state dict with AuxLogits keys loads (aux dropped)")
    os.remove(wpath)


def graph_main(tmp):
    os.makedirs(tmp, exist_ok=True)
    check_custom(tmp)
    check_cli_and_weights(tmp)
    for arch, size in (("resnet18", 64), ("resnet50", 64), ("googlenet", 96),
                       ("inception_v3", 139)):
        check_graph_arch(arch, tmp, size)
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))


def main():
    global SALPIPE
    if sys.argv[1] == "--graph":
        SALPIPE = sys.argv[3] if len(sys.argv) > 3 else None
        graph_main(sys.argv[2])
        print(f"{failures} failures")
        return 1 if failures else 0
    d = sys.argv[1]
    check_file(os.path.join(d, "alexnet_seed0.h5"), "alexnet")
    check_file(os.path.join(d, "vgg11_bn_seed0.h5"), "vgg11_bn")
    check_sequential()
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
