#!/usr/bin/env python3
"""Reference for issue 12's attribution methods: plain PyTorch autograd, every method
computed from its definition (SPEC §1, docs/reliability.md "Methods reference"), in
float64 and float32, batched over images. Tests compare salpipe against it.

    methods_reference.py MODEL.h5 OUT.h5 (--image PHOTO [--num-inputs N] | --inputs IN.h5)
        --target NAME:UNIT [--target ...]            UNIT is 0-based here (see below)
        [--methods all | m1,m2,...] [--precision f64,f32]
        [--samples 50] [--noise 0.15] [--base vanilla] [--statistic mean]
        [--noise-file NOISE.h5 | --noise-seed 0]
        [--steps 50] [--rule gausslegendre] [--baseline zero] [--gradcam-layer NAME]
        [--builder auto|torchvision|file] [--threads 2]

The network. `load_net` builds the torch network of a salpipe model file:
  - torchvision: a file scripts/export_torchvision.py wrote from a seed or a state
    dict (root attribute `source`) is rebuilt as tests/reference/make_reference.py
    does: build_torchvision, then for AlexNet/VGG DNNBrain's chain of modules
    (make_reference.dnnbrain_layers), for graph networks the exporter's fx trace run
    by graph_reference.GraphNet. Every node's name, alias, kind and weights are then
    checked against the file (exactly), so the torch network is the file's.
  - file: any salpipe model file, interpreted node by node from its own attributes
    and datasets with torch.nn.functional (`FileNet`).
  Every ReLU call is graph_reference.RuleReLU, whose backward applies the method's
  rule (SPEC §1); max-pool keeps PyTorch's backward.

Targets are (node name or alias, 0-based unit): unit u is channel u (1-based unit
u + 1 of a salpipe config). The scalar F is the mean over the spatial map of that
channel of the node's output, for a flat output the unit's value (SPEC §1). Images
are independent (eval mode), so the gradient of the batch sum holds every image's map.

Methods (x the normalized input, one image (C, H, W); maps have x's shape):
  vanilla, guided, deconvnet   dF/dx with the method's ReLU rule
  gradient_x_input             vanilla * x
  smoothgrad                   statistic over s of base(x + sigma * z_s), sigma =
                               noise * (max(x) - min(x)) of that image; z_s (C,H,W)
                               standard normals from --noise-file or torch.randn;
                               mean, mean_square = mean of squares, variance =
                               population variance (divisor = samples), two-pass
  integrated_gradients         (x - x0) * sum_k w_k dF/dx(x0 + a_k (x - x0)) with
                               Captum's nodes a_k and weights w_k (`ig_nodes`);
                               completeness gap = sum(attr) - (F(x) - F(x0))
  gradcam                      A = output of --gradcam-layer, alpha_k = mean_yx dF/dA_k
                               (plain gradient), ReLU(sum_k alpha_k A_k) upsampled by
                               F.interpolate(bilinear, align_corners=False), raw
  guided_gradcam               guided map * upsampled Grad-CAM map, per channel

Output (HDF5), for each precision P in f64, f32 computed:
  /input_P (N,C,H,W)            the normalized inputs
  /maps_P (N,T,M,C,H,W)         maps of the methods in attribute `methods` (all but
                                gradcam), in that order; float32 for f32
  /gradcam_P (N,T,H,W)          upsampled Grad-CAM (if gradcam or guided_gradcam)
  /gradcam_lowres_P (N,T,h,w)   the map before upsampling
  /act_P (N,T)                  F(x)
  /ig_gap_P, /ig_f_baseline_P (N,T)  completeness gap (float64 sum of the P
                                attributions) and F(x0)   (integrated_gradients)
  /smoothgrad_sigma_P (N)       sigma per image        (smoothgrad)
  /noise (N,S,C,H,W) float64    the standard normals z (smoothgrad)
  /ig_alphas, /ig_weights       the rule's nodes and weights, float64
Root attributes: model, model_name, builder, target_names, target_units_0based,
methods, precisions, smoothgrad_samples, smoothgrad_noise, smoothgrad_base,
smoothgrad_statistic, smoothgrad_noise_source, ig_steps, ig_rule, ig_baseline,
gradcam_layer.
"""
import argparse
import os
import re
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from graph_reference import GraphNet, RuleReLU

ALL_METHODS = ["vanilla", "guided", "deconvnet", "gradient_x_input", "smoothgrad",
               "integrated_gradients", "gradcam", "guided_gradcam"]
RULES = ("vanilla", "guided", "deconvnet")
STATISTICS = ("mean", "mean_square", "variance")
IG_RULES = ("gausslegendre", "riemann_trapezoid")
BASELINES = ("zero", "black")
DTYPES = {"f64": torch.float64, "f32": torch.float32}


class MethodError(ValueError):
    """A bad target, layer or parameter."""


def _exporter():
    """scripts/export_torchvision.py of this source tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    scripts = os.path.join(os.path.dirname(os.path.dirname(here)), "scripts")
    if scripts not in sys.path:
        sys.path.append(scripts)
    import export_torchvision
    return export_torchvision


# ---- the network of a model file -------------------------------------------------

def read_model(path):
    """(root attributes, [node dict: name, alias, kind, inputs, attrs, data]) of a
    salpipe model file; inputs filled in for format 1's chain."""
    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)
    with h5py.File(path, "r") as f:
        root = {k: f.attrs[k] for k in f.attrs}
        grp = f["layers"]
        nodes = []
        for i in range(int(grp.attrs["count"])):
            g = grp[f"{i:03d}"]
            attrs = {k: g.attrs[k] for k in g.attrs
                     if k not in ("kind", "name", "alias", "inputs")}
            ins = [text(v) for v in g.attrs["inputs"]] if "inputs" in g.attrs else \
                [nodes[-1]["name"] if nodes else "input"]
            nodes.append({"name": text(g.attrs["name"]),
                          "alias": text(g.attrs["alias"]) if "alias" in g.attrs else "",
                          "kind": text(g.attrs["kind"]), "inputs": ins, "attrs": attrs,
                          "data": {k: g[k][()] for k in g}})
    for k in ("name", "resize", "source", "transform_input"):
        if k in root:
            root[k] = text(root[k])
    return root, nodes


class Net:
    """A torch network with salpipe's node names: forward(x) gives {node name:
    value} (autograd graph kept); resolve() maps a name or alias to the node name."""

    def __init__(self, names, aliases, forward, builder, mean, std):
        self.names, self.aliases = names, aliases
        self._forward = forward
        self.builder, self.mean, self.std = builder, mean, std

    def forward(self, x):
        return self._forward(x)

    def resolve(self, name):
        if name in self.names:
            return name
        if name in self.aliases:
            return self.aliases[name]
        raise MethodError(f"no node is named or aliased '{name}'")


def _pair(v):
    v = np.atleast_1d(v).astype(int).tolist()
    return tuple(v) if len(v) == 2 else (v[0], v[0])


def _node_op(nd, dtype):
    """The function computing node `nd` from its input values, weights in dtype."""
    a, k = nd["attrs"], nd["kind"]
    d = {n: torch.from_numpy(np.asarray(v, dtype=np.float64)).to(dtype)
         for n, v in nd["data"].items()}
    if k == "conv2d":
        return lambda x: F.conv2d(x, d["weight"], d["bias"], _pair(a["stride"]),
                                  _pair(a["padding"]), 1, int(a["groups"]))
    if k == "batchnorm2d":
        return lambda x: F.batch_norm(x, d["running_mean"], d["running_var"], d["weight"],
                                      d["bias"], False, 0.0, float(a["eps"]))
    if k == "relu":
        return lambda x: RuleReLU.apply(x, nd["name"])
    if k == "maxpool2d":
        return lambda x: F.max_pool2d(x, _pair(a["kernel_size"]), _pair(a["stride"]),
                                      _pair(a["padding"]), 1, bool(a["ceil_mode"]))
    if k == "avgpool2d":
        return lambda x: F.avg_pool2d(x, _pair(a["kernel_size"]), _pair(a["stride"]),
                                      _pair(a["padding"]), bool(a["ceil_mode"]),
                                      bool(a["count_include_pad"]))
    if k == "adaptive_avgpool2d":
        return lambda x: F.adaptive_avg_pool2d(x, _pair(a["output_size"]))
    if k == "flatten":
        return lambda x: torch.flatten(x, 1)
    if k == "dropout":
        return lambda x: x
    if k == "linear":
        return lambda x: F.linear(torch.flatten(x, 1), d["weight"], d["bias"])
    if k == "add":
        def add(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out
        return add
    if k == "concat":
        return lambda *xs: torch.cat(xs, 1)
    if k == "channel_affine":
        s, t = d["scale"][None, :, None, None], d["shift"][None, :, None, None]
        return lambda x: x * s + t
    raise MethodError(f"node {nd['name']}: unknown kind '{k}'")


def file_net(path, dtype):
    """FileNet: the file's nodes interpreted one by one (any salpipe model file)."""
    root, nodes = read_model(path)
    ops = [(nd["name"], nd["inputs"], _node_op(nd, dtype)) for nd in nodes]

    def forward(x):
        values = {"input": x}
        for name, ins, op in ops:
            values[name] = op(*[values[i] for i in ins])
        del values["input"]
        return values
    return Net([nd["name"] for nd in nodes],
               {nd["alias"]: nd["name"] for nd in nodes if nd["alias"]}, forward, "file",
               np.asarray(root["mean"], np.float64), np.asarray(root["std"], np.float64))


_SEED_SOURCE = re.compile(r"^torch\.manual_seed\((\d+)\); "
                          r"torchvision\.models\.(\w+)\(\)$")


def torchvision_source(root):
    """(arch, seed, weights path or None, transform_input) when the file says
    export_torchvision.py wrote it, else None."""
    src = root.get("source", "")
    ti = root.get("transform_input", "off") == "on"
    m = _SEED_SOURCE.match(src)
    if m and m.group(2) == root.get("name"):
        return m.group(2), int(m.group(1)), None, ti
    if src.startswith("weights ") and os.path.exists(src[len("weights "):]):
        return root.get("name"), 0, src[len("weights "):], ti
    return None


def torchvision_net(path, dtype):
    """The network rebuilt as make_reference.py does, checked node by node against
    the file (names, aliases, kinds, weights bit for bit)."""
    root, fnodes = read_model(path)
    spec = torchvision_source(root)
    if spec is None:
        raise MethodError(f"{path}: not written by export_torchvision.py from a seed "
                          "or an existing state dict; use --builder file")
    arch, seed, weights, ti = spec
    ex = _exporter()
    model = ex.build_torchvision(arch, weights=weights, seed=seed, transform_input=ti)
    for p in model.parameters():
        p.requires_grad_(False)
    gm, tnodes = ex.trace_network(model)
    if [(n["name"], n["alias"], n["kind"]) for n in tnodes] != \
            [(n["name"], n["alias"], n["kind"]) for n in fnodes]:
        raise MethodError(f"{path}: its nodes differ from {arch}'s trace")
    for t, f in zip(tnodes, fnodes):
        for key, v in t["data"].items():
            if not np.array_equal(np.asarray(v, np.float64), np.asarray(f["data"][key],
                                                                        np.float64)):
                raise MethodError(f"{path}: node {f['name']} dataset {key} differs from "
                                  f"the rebuilt {arch} (seed {seed})")
    model.to(dtype)
    gm.to(dtype)
    if arch in ex.CHAIN_ARCHS:
        from make_reference import dnnbrain_layers
        layers = dnnbrain_layers(model)
        if [n for n, _ in layers] != [n["name"] for n in fnodes]:
            raise MethodError(f"{path}: DNNBrain's chain names differ from the file's")

        def forward(x):
            values, h = {}, x
            for name, mod in layers:
                h = mod(h)
                values[name] = h
            return values
    else:
        net = GraphNet(model, gm.eval(), tnodes)

        def forward(x):
            return net.forward(x)[0]
    return Net([n["name"] for n in fnodes],
               {n["alias"]: n["name"] for n in fnodes if n["alias"]}, forward,
               "torchvision", np.asarray(root["mean"], np.float64),
               np.asarray(root["std"], np.float64))


def load_net(path, dtype, builder="auto"):
    """The torch network of model file `path` in dtype; builder auto: torchvision
    when the file records how it was built, else file."""
    if builder == "auto":
        builder = "torchvision" if torchvision_source(read_model(path)[0]) else "file"
    return (torchvision_net if builder == "torchvision" else file_net)(path, dtype)


# ---- targets and gradients ------------------------------------------------------

def target_scalar(values, node, unit):
    """F per image (N,): mean of channel `unit` (0-based) of a (N,C,H,W) value, the
    unit's value of a flat (N,F) one."""
    v = values[node]
    if not 0 <= unit < v.shape[1]:
        raise MethodError(f"node {node} has {v.shape[1]} units; unit {unit} (0-based) "
                          "is out of range")
    y = v[:, unit]
    return y.mean(dim=(1, 2)) if y.dim() == 3 else y


def gradients(net, x, targets, rule="vanilla"):
    """(F (N,T), dF/dx (N,T,C,H,W)) with ReLU rule `rule`, in x's dtype."""
    if rule not in RULES:
        raise MethodError(f"unknown rule '{rule}'")
    x = x.detach().clone().requires_grad_(True)
    values = net.forward(x)
    n = x.shape[0]
    f = torch.zeros((n, len(targets)), dtype=torch.float64)
    g = torch.zeros((n, len(targets)) + tuple(x.shape[1:]), dtype=x.dtype)
    RuleReLU.method = rule
    try:
        for t, (name, unit) in enumerate(targets):
            s = target_scalar(values, net.resolve(name), unit)
            f[:, t] = s.detach().double()
            (g[:, t],) = torch.autograd.grad(s.sum(), x, retain_graph=True)
    finally:
        RuleReLU.method = "vanilla"
    return f, g


def saliency(net, x, targets, rule):
    """vanilla / guided / deconvnet maps (N,T,C,H,W)."""
    return gradients(net, x, targets, rule)[1]


def gradient_x_input(net, x, targets):
    """vanilla map * x (N,T,C,H,W)."""
    return saliency(net, x, targets, "vanilla") * x[:, None]


# ---- SmoothGrad -----------------------------------------------------------------

def torch_noise(n_images, samples, shape, seed):
    """Standard normals (n_images, samples, C, H, W), float64, from torch.randn with
    its own generator seeded `seed` (the independent estimate's noise)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n_images, samples) + tuple(shape), generator=gen,
                       dtype=torch.float64)


def smoothgrad_sigma(x, noise):
    """sigma per image (N,): noise * (max - min) of the normalized image, in x's dtype."""
    flat = x.reshape(x.shape[0], -1)
    return noise * (flat.max(dim=1).values - flat.min(dim=1).values)


def smoothgrad(net, x, targets, z, noise=0.15, base="vanilla", statistic="mean"):
    """SmoothGrad (N,T,C,H,W). z: standard normals, a sequence of N arrays of shape
    (samples, C, H, W) (or one (N, samples, C, H, W) array); sample s of image i is
    x_i + sigma_i * z[i][s], computed in x's dtype (z rounded to it first)."""
    if noise < 0:
        raise MethodError("smoothgrad noise must be >= 0")
    if statistic not in STATISTICS:
        raise MethodError(f"unknown statistic '{statistic}'")
    z = torch.stack([torch.as_tensor(np.asarray(zi), dtype=torch.float64) for zi in z])
    if z.shape[0] != x.shape[0] or z.shape[2:] != x.shape[1:] or z.shape[1] < 1:
        raise MethodError(f"noise of shape {tuple(z.shape)} does not fit inputs "
                          f"{tuple(x.shape)}: expected (N, samples >= 1, C, H, W)")
    sigma = smoothgrad_sigma(x, noise)
    maps = []
    for s in range(z.shape[1]):
        xs = x + sigma[:, None, None, None] * z[:, s].to(x.dtype)
        maps.append(saliency(net, xs, targets, base))
    maps = torch.stack(maps)  # (samples, N, T, C, H, W)
    mean = maps.sum(dim=0) / maps.shape[0]
    if statistic == "mean":
        return mean
    if statistic == "mean_square":
        return (maps * maps).sum(dim=0) / maps.shape[0]
    dev = maps - mean
    return (dev * dev).sum(dim=0) / maps.shape[0]


# ---- Integrated Gradients -------------------------------------------------------

def ig_nodes(rule, steps):
    """(alphas, weights), float64 arrays of length steps, as Captum's
    captum/attr/_utils/approximation_methods.py defines them:
      gausslegendre      numpy's leggauss(steps) nodes t_k and weights v_k mapped
                         from [-1, 1] to [0, 1]: a_k = (1 + t_k) / 2, w_k = v_k / 2
      riemann_trapezoid  a_k = k / (steps - 1) (linspace(0, 1, steps)), w_k = 1 /
                         steps, halved at both ends, so the weights sum to
                         1 - 1/steps (Captum's, not the textbook trapezoid); steps >= 2
    Captum since 0.4 takes the trapezoid nodes from torch.linspace in float32; here
    they are float64 (np.linspace, as Captum before 0.4)."""
    if steps < 1:
        raise MethodError("integrated_gradients steps must be >= 1")
    if rule == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1.0 + t), 0.5 * v
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise MethodError("riemann_trapezoid needs steps >= 2 (Captum asserts it)")
        w = np.full(steps, 1.0 / steps)
        w[0] /= 2
        w[-1] /= 2
        return np.linspace(0.0, 1.0, steps), w
    raise MethodError(f"unknown integration rule '{rule}'")


def ig_baseline(net, x, baseline):
    """The baseline x0 (N,C,H,W) in x's dtype: zero, or black = (0 - mean[c]) / std[c]
    computed as torch's Normalize does in that dtype."""
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline != "black":
        raise MethodError(f"unknown baseline '{baseline}'")
    mean = torch.as_tensor(net.mean, dtype=x.dtype)[None, :, None, None]
    std = torch.as_tensor(net.std, dtype=x.dtype)[None, :, None, None]
    return ((torch.zeros_like(x) - mean) / std).expand_as(x).clone()


def integrated_gradients(net, x, targets, steps=50, rule="gausslegendre",
                         baseline="zero"):
    """(attributions (N,T,C,H,W), gap (N,T) float64, F(x) (N,T), F(x0) (N,T)).
    gap = sum of the attributions (in float64) - (F(x) - F(x0))."""
    alphas, weights = ig_nodes(rule, steps)
    x0 = ig_baseline(net, x, baseline)
    diff = x - x0
    total = torch.zeros((x.shape[0], len(targets)) + tuple(x.shape[1:]), dtype=x.dtype)
    for a, w in zip(alphas, weights):
        total += float(w) * saliency(net, x0 + float(a) * diff, targets, "vanilla")
    attr = diff[:, None] * total
    with torch.no_grad():
        values = net.forward(x)
        fx = torch.stack([target_scalar(values, net.resolve(n), u).double()
                          for n, u in targets], dim=1)
        values = net.forward(x0)
        f0 = torch.stack([target_scalar(values, net.resolve(n), u).double()
                          for n, u in targets], dim=1)
    gap = attr.double().sum(dim=(2, 3, 4)) - (fx - f0)
    return attr, gap, fx, f0


# ---- Grad-CAM -------------------------------------------------------------------

def gradcam(net, x, targets, layer):
    """(upsampled map (N,T,H,W), map before upsampling (N,T,h,w)) at node `layer`:
    alpha_k = spatial mean of dF/dA_k (plain gradient, vanilla ReLU rule),
    ReLU(sum_k alpha_k A_k), F.interpolate bilinear, align_corners=False, raw. A
    target that does not read `layer` gets zeros (dF/dA = 0)."""
    x = x.detach().clone().requires_grad_(True)
    values = net.forward(x)
    node = net.resolve(layer)
    a = values[node]
    if a.dim() != 4 or a.shape[2] * a.shape[3] <= 1:
        raise MethodError(f"Grad-CAM layer '{layer}' has no spatial output (shape "
                          f"{tuple(a.shape[1:])})")
    n, size = x.shape[0], tuple(x.shape[2:])
    low = torch.zeros((n, len(targets)) + tuple(a.shape[2:]), dtype=x.dtype)
    RuleReLU.method = "vanilla"
    for t, (name, unit) in enumerate(targets):
        s = target_scalar(values, net.resolve(name), unit)
        (da,) = torch.autograd.grad(s.sum(), a, retain_graph=True, allow_unused=True)
        if da is None:
            continue
        alpha = da.mean(dim=(2, 3))
        low[:, t] = torch.relu((alpha[:, :, None, None] * a.detach()).sum(dim=1))
    up = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
    return up, low


def guided_gradcam(net, x, targets, layer):
    """guided map * upsampled Grad-CAM, per input channel (N,T,C,H,W)."""
    cam = gradcam(net, x, targets, layer)[0]
    return saliency(net, x, targets, "guided") * cam[:, :, None]


# ---- everything for one precision -----------------------------------------------

def run_methods(net, x, targets, methods, p):
    """All requested methods on inputs x (in net's dtype). p: dict of parameters
    (samples, noise, base, statistic, z, steps, rule, baseline, gradcam_layer).
    Returns {dataset suffix: array}: maps (N,T,M,C,H,W) for the methods other than
    gradcam, act, and the extras of the chosen methods."""
    out = {}
    maps = []
    act, van = gradients(net, x, targets, "vanilla")
    out["act"] = act.numpy()
    cam = None
    if "gradcam" in methods or "guided_gradcam" in methods:
        cam, low = gradcam(net, x, targets, p["gradcam_layer"])
        out["gradcam"], out["gradcam_lowres"] = cam.numpy(), low.numpy()
    rule_maps = {"vanilla": van}
    for m in ("guided", "deconvnet"):
        if m in methods or (m == "guided" and "guided_gradcam" in methods):
            rule_maps[m] = saliency(net, x, targets, m)
    for m in methods:
        if m in RULES:
            maps.append(rule_maps[m])
        elif m == "gradient_x_input":
            maps.append(van * x[:, None])
        elif m == "smoothgrad":
            maps.append(smoothgrad(net, x, targets, p["z"], p["noise"], p["base"],
                                   p["statistic"]))
            out["smoothgrad_sigma"] = smoothgrad_sigma(x, p["noise"]).numpy()
        elif m == "integrated_gradients":
            attr, gap, _, f0 = integrated_gradients(net, x, targets, p["steps"],
                                                    p["rule"], p["baseline"])
            maps.append(attr)
            out["ig_gap"], out["ig_f_baseline"] = gap.numpy(), f0.numpy()
        elif m == "guided_gradcam":
            maps.append(rule_maps["guided"] * cam[:, :, None])
    if maps:
        out["maps"] = torch.stack(maps, dim=2).numpy()
    return out


def parse_target(text):
    name, sep, unit = text.rpartition(":")
    if not sep or not name or not unit.isdigit():
        raise argparse.ArgumentTypeError(f"target '{text}': expected NAME:UNIT (0-based)")
    return name, int(unit)


def load_inputs(args, root):
    """{precision: normalized input tensor (N,C,H,W)}."""
    if args.inputs:
        with h5py.File(args.inputs, "r") as f:
            return {p: torch.from_numpy(f[f"input_{p}"][()]).to(DTYPES[p])
                    for p in ("f64", "f32")}
    from PIL import Image
    from torchvision import transforms
    from make_reference import make_pixels
    size = [int(v) for v in np.atleast_1d(root["input_size"])]
    if size[0] != size[1] or int(root["input_channels"]) != 3:
        raise MethodError("--image needs a square RGB model; give --inputs")
    pixels = make_pixels(args.image, args.num_inputs, size[0])
    mean, std = np.asarray(root["mean"], np.float64), np.asarray(root["std"], np.float64)
    to32 = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize(tuple(mean), tuple(std))])
    x32 = torch.stack([to32(Image.fromarray(p)) for p in pixels])
    p = np.stack(pixels).transpose(0, 3, 1, 2).astype(np.float64)
    x64 = (p / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    # contiguous, as ToTensor's are: a channels-last view would make torch pick other
    # kernels, whose max-pool breaks exact ties (a constant baseline image) otherwise
    return {"f64": torch.from_numpy(np.ascontiguousarray(x64)), "f32": x32}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="photo; the inputs of make_reference.py")
    src.add_argument("--inputs", help="HDF5 with /input_f64 and /input_f32 (N,C,H,W)")
    ap.add_argument("--num-inputs", type=int, default=1)
    ap.add_argument("--target", type=parse_target, action="append", required=True,
                    metavar="NAME:UNIT", help="node name or alias : 0-based unit")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--precision", default="f64,f32")
    ap.add_argument("--builder", choices=("auto", "torchvision", "file"), default="auto")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--base", choices=RULES, default="vanilla")
    ap.add_argument("--statistic", choices=STATISTICS, default="mean")
    ap.add_argument("--noise-file", help="HDF5 with /noise (N, samples, C, H, W)")
    ap.add_argument("--noise-seed", type=int, default=0, help="torch.randn's seed")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rule", choices=IG_RULES, default="gausslegendre")
    ap.add_argument("--baseline", choices=BASELINES, default="zero")
    ap.add_argument("--gradcam-layer")
    ap.add_argument("--threads", type=int, default=2, help="torch's threads (default 2)")
    args = ap.parse_args(argv)
    methods = ALL_METHODS if args.methods == "all" else args.methods.split(",")
    precisions = args.precision.split(",")
    try:
        for m in methods:
            if m not in ALL_METHODS:
                raise MethodError(f"unknown method '{m}'")
        for p in precisions:
            if p not in DTYPES:
                raise MethodError(f"unknown precision '{p}' (f64, f32)")
        if {"gradcam", "guided_gradcam"} & set(methods) and not args.gradcam_layer:
            raise MethodError("gradcam and guided_gradcam need --gradcam-layer")
        if args.samples < 1:
            raise MethodError("--samples must be >= 1")
        torch.set_num_threads(args.threads)
        root, _ = read_model(args.model)
        xs = load_inputs(args, root)
        n, shape = xs["f64"].shape[0], tuple(xs["f64"].shape[1:])
        params = dict(noise=args.noise, base=args.base, statistic=args.statistic,
                      steps=args.steps, rule=args.rule, baseline=args.baseline,
                      gradcam_layer=args.gradcam_layer)
        z = None
        if "smoothgrad" not in methods:
            noise_source = ""
        elif args.noise_file:
            with h5py.File(args.noise_file, "r") as f:
                z = torch.from_numpy(np.asarray(f["noise"][()], np.float64))
            noise_source = f"file {os.path.abspath(args.noise_file)}"
        else:
            z = torch_noise(n, args.samples, shape, args.noise_seed)
            noise_source = ("torch.randn, torch.Generator().manual_seed("
                            f"{args.noise_seed})")
        params["z"] = z
        results, builder = {}, None
        for p in precisions:
            net = load_net(args.model, DTYPES[p], args.builder)
            builder = net.builder
            results[p] = run_methods(net, xs[p], args.target, methods, params)
    except MethodError as e:
        print(f"methods_reference.py: error: {e}", file=sys.stderr)
        return 2
    saved = [m for m in methods if m != "gradcam"]
    with h5py.File(args.out, "w") as f:
        for p in precisions:
            f[f"input_{p}"] = xs[p].numpy()
            for key, v in results[p].items():
                f[f"{key}_{p}"] = v
        if "smoothgrad" in methods:
            f["noise"] = z.numpy()
        if "integrated_gradients" in methods:
            alphas, weights = ig_nodes(args.rule, args.steps)
            f["ig_alphas"], f["ig_weights"] = alphas, weights
        a = f.attrs
        a["model"] = os.path.abspath(args.model)
        a["model_name"] = root.get("name", "")
        a["builder"] = builder
        a["target_names"] = [t for t, _ in args.target]
        a["target_units_0based"] = np.array([u for _, u in args.target], dtype=np.int64)
        a["methods"] = saved
        a["precisions"] = precisions
        a["smoothgrad_samples"] = np.int64(z.shape[1] if z is not None else 0)
        a["smoothgrad_noise"] = args.noise
        a["smoothgrad_base"] = args.base
        a["smoothgrad_statistic"] = args.statistic
        a["smoothgrad_noise_source"] = noise_source
        a["ig_steps"] = np.int64(args.steps)
        a["ig_rule"] = args.rule
        a["ig_baseline"] = args.baseline
        a["gradcam_layer"] = args.gradcam_layer or ""
    print(f"{args.model} ({builder}): {n} inputs, {len(args.target)} targets, methods "
          f"{', '.join(methods)}, precisions {', '.join(precisions)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
