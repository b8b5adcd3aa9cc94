#!/usr/bin/env python3
"""PyTorch reference for tests/test_reference.c: layer (node) outputs, target
activations and saliency maps of a seeded torchvision network, in float64 and float32.

    make_reference.py ARCH OUT.h5 --image PHOTO [--seed 0] [--num-inputs 4]
                      [--layer-inputs K] [--transform-input on|off]

The network is the one scripts/export_torchvision.py exports without --weights
(torch.manual_seed(SEED); torchvision.models.ARCH(...)), so salpipe loads the same
weights. Every ReLU call is replaced by an autograd function applying the method's
backward rule (SPEC §1); max-pool keeps PyTorch's own backward.

Chain networks (AlexNet, VGG) are walked in DNNBrain's naming (conv1, conv1_relu,
conv1_maxpool, ..., avgpool, flatten, dropout1, fc1, ...). Graph networks (ResNet,
GoogLeNet, Inception-v3) are traced by the exporter's own `trace_network` and run by
an fx interpreter (tests/reference/graph_reference.py): one value per salpipe node,
under the node's salpipe name; the names DNNBrain gives are checked against forward
hooks on the untraced model, and DNNBrain's own hook-based vanilla and guided maps
are computed for some targets on the first input (tests/reference/dnnbrain_saliency.py).

Inputs, in this order (the first --num-inputs are used), at the network's input size
(224x224; Inception-v3 299x299, DNNBrain's Resize((299, 299))):
  0 photo      the photo, DNNBrain preprocessing: RGB, Resize((S, S))
  1 noise      uniform 8-bit noise
  2 cropflip   a crop of the photo, resized to SxS, mirrored left-right
  3 pink       1/f noise quantized to 8 bits (natural-image-like spectrum)
Each input exists as the same 8-bit pixels normalized twice: float32 as torchvision's
ToTensor + Normalize, float64 as (pixels / 255 - mean) / std with decimal constants.

Output (HDF5): /input_f64, /input_f32 (N,3,S,S); /layers/<name> float64 (K,...)
for the first K inputs (--layer-inputs, default all: VGG's layer outputs take
~130 MB per image, ResNet-152's ~600 MB), with attribute f32_rel_err (max |torch f32
- torch f64| / max |torch f64|); /maps_f64, /maps_f32 (N,T,M,3,S,S); /act_f64,
/act_f32 (N,T); /act_scale (N,T), the mean |output| over the target channel (over the
whole layer for a linear unit, whose own value can cancel far below its terms), the
scale activation errors are measured against; root attributes arch, seed,
layer_names, target_layers, target_units (1-based), methods, inputs.
Graph networks also: root attributes dnnbrain_names and dnnbrain_nodes (each
DNNBrain layer name and the node carrying it, as checked against hooks), and group
/dnnbrain: maps (D,2,3,S,S) DNNBrain's maps of the first input, explained (D,2,3,S,S)
the reference's map DNNBrain's must equal (the mixed-rule map where DNNBrain mixes
rules), attributes targets (D indices into target_layers), methods (vanilla,
guided), expect (D*2: the salpipe method whose map equals DNNBrain's, or "" where
they differ by design) and why (D*2 reasons).
"""
import argparse
import os
import sys
import time

import h5py
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from graph_reference import (METHODS, GraphNet, RuleReLU, check_dnnbrain_names,
                             dnnbrain_modules, graph_maps)
from dnnbrain_saliency import DNNBRAIN_METHODS, dnnbrain_maps, explain, hooked_relus

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_NAMES = ["photo", "noise", "cropflip", "pink"]
CHAIN_TARGETS = [("fc3", 540), ("fc1", 1), ("fc2_relu", 7), ("conv5", 3),
                 ("conv3_relu", 10), ("conv2_maxpool", 5), ("conv1", 1)]
# Graph networks: (node name or DNNBrain alias, 1-based unit), at several depths:
# inside a residual block or an inception branch, pooled features, fc, DNNBrain names.
GRAPH_TARGETS = {
    "resnet18": [("fc", 540), ("avgpool", 300), ("layer3_basicblock1", 5),
                 ("layer2.0.relu", 3), ("layer2.0.add", 9), ("layer1.1.bn2", 2),
                 ("maxpool", 2)],
    "resnet50": [("fc", 540), ("avgpool", 1000), ("layer3_bottleneck5", 7),
                 ("layer3.2.relu_2", 4), ("layer2.0.downsample.1", 11),
                 ("layer1.1.add", 5)],
    # ResNet-152: two deep targets and two shallow ones (CI time).
    "resnet152": [("fc", 23), ("layer4.0.relu_2", 9), ("layer3_bottleneck5", 7),
                  ("layer1.2.conv3", 3)],
    "googlenet": [("fc", 540), ("avgpool", 900), ("inception4c", 300),
                  ("inception4c.branch3.1.relu", 5), ("inception3b.branch4.0", 17),
                  ("maxpool3", 100), ("conv2", 10)],
    "inception_v3": [("fc", 540), ("avgpool", 1000), ("inception5", 100),
                     ("Mixed_6e.branch7x7dbl_3.relu", 7), ("Mixed_5d.avgpool", 3),
                     ("Mixed_7a.maxpool", 5), ("conv3", 4)],
}
# Targets (DNNBrain layer names among GRAPH_TARGETS) of DNNBrain's own algorithm.
DNNBRAIN_TARGETS = {
    "resnet18": ["fc", "layer3_basicblock1"],
    "resnet50": ["fc", "layer3_bottleneck5"],
    "resnet152": ["fc", "layer3_bottleneck5"],
    "googlenet": ["fc", "inception4c"],
    "inception_v3": ["fc", "inception5"],
}


class RuleReLUModule(torch.nn.Module):
    def forward(self, x):
        return RuleReLU.apply(x)


def dnnbrain_layers(model):
    """[(name, module)] of a torchvision AlexNet/VGG in forward order, named as
    DNNBrain does."""
    layers = []
    nconv = nfc = ndrop = 0
    base = None
    for mod in model.features:
        if isinstance(mod, torch.nn.Conv2d):
            nconv += 1
            base = f"conv{nconv}"
            layers.append((base, mod))
        elif isinstance(mod, torch.nn.BatchNorm2d):
            layers.append((base + "_bn", mod))
        elif isinstance(mod, torch.nn.ReLU):
            layers.append((base + "_relu", RuleReLUModule()))
        elif isinstance(mod, torch.nn.MaxPool2d):
            layers.append((base + "_maxpool", mod))
        else:
            raise TypeError(f"unexpected module in features: {mod}")
    layers.append(("avgpool", model.avgpool))
    layers.append(("flatten", torch.nn.Flatten()))
    for mod in model.classifier:
        if isinstance(mod, torch.nn.Linear):
            nfc += 1
            base = f"fc{nfc}"
            layers.append((base, mod))
        elif isinstance(mod, torch.nn.ReLU):
            layers.append((base + "_relu", RuleReLUModule()))
        elif isinstance(mod, torch.nn.Dropout):
            ndrop += 1
            layers.append((f"dropout{ndrop}", mod))
        else:
            raise TypeError(f"unexpected module in classifier: {mod}")
    return layers


def make_pixels(photo_path, n, size):
    """The first n test images as uint8 arrays (size, size, 3)."""
    resize = transforms.Resize((size, size))
    photo = Image.open(photo_path).convert("RGB")
    rng = np.random.default_rng(12345)
    out = []
    for name in INPUT_NAMES[:n]:
        if name == "photo":
            img = resize(photo)
        elif name == "noise":
            img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        elif name == "cropflip":
            w, h = photo.size
            box = (w // 8, h // 5, w - w // 10, h - h // 12)
            img = resize(photo.crop(box)).transpose(Image.FLIP_LEFT_RIGHT)
        elif name == "pink":
            fy = np.fft.fftfreq(size)[:, None]
            fx = np.fft.fftfreq(size)[None, :]
            f = np.sqrt(fx * fx + fy * fy)
            f[0, 0] = 1.0
            chans = []
            for _ in range(3):
                phase = rng.uniform(0, 2 * np.pi, (size, size))
                chans.append(np.real(np.fft.ifft2(np.exp(1j * phase) / f)))
            a = np.stack(chans, axis=-1)
            a = (a - a.min()) / (a.max() - a.min()) * 255.0
            img = Image.fromarray(np.round(a).astype(np.uint8))
        out.append(np.asarray(img, dtype=np.uint8))
    return out


def normalize(pixels):
    """(float64 input, float32 input), each (N, 3, S, S)."""
    to_f32 = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    x32 = torch.stack([to_f32(Image.fromarray(p)) for p in pixels])
    mean = np.array(MEAN, dtype=np.float64)[None, :, None, None]
    std = np.array(STD, dtype=np.float64)[None, :, None, None]
    p = np.stack(pixels).transpose(0, 3, 1, 2).astype(np.float64)
    x64 = torch.from_numpy((p / 255.0 - mean) / std)
    return x64, x32


def run_chain(layers, x, targets):
    """Forward through the named layers; per-layer outputs, activations, maps."""
    x = x.clone().requires_grad_(True)
    outs = {}
    h = x
    for name, mod in layers:
        h = mod(h)
        outs[name] = h
    nimg = x.shape[0]
    acts = np.zeros((nimg, len(targets)))
    scales = np.zeros((nimg, len(targets)))
    maps = np.zeros((nimg, len(targets), len(METHODS)) + tuple(x.shape[1:]))
    for t, (lname, unit) in enumerate(targets):
        y = outs[lname][:, unit - 1]
        per_image = y.mean(dim=(1, 2)) if y.dim() == 3 else y
        acts[:, t] = per_image.detach().numpy()
        ya = y.detach().abs()
        # A linear unit's value can cancel to far below its terms, so its scale is
        # the mean |output| of the whole layer, the size rounding errors have there.
        whole = outs[lname].detach().abs()
        scales[:, t] = (ya.mean(dim=(1, 2)) if y.dim() == 3 else whole.mean(dim=1)).numpy()
        # Images are independent (eval mode), so the gradient of the batch sum holds
        # each image's own map.
        scalar = per_image.sum()
        for m, method in enumerate(METHODS):
            RuleReLU.method = method
            (g,) = torch.autograd.grad(scalar, x, retain_graph=True)
            maps[:, t, m] = g.numpy()
    RuleReLU.method = "vanilla"
    return outs, acts, scales, maps


def exporter():
    """scripts/export_torchvision.py of this source tree (PYTHONPATH first)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.append(os.path.join(os.path.dirname(os.path.dirname(here)), "scripts"))
    import export_torchvision
    return export_torchvision


def chain_reference(args, x64, x32, nlay):
    """AlexNet / VGG: (names, targets, per-phase results)."""
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = dnnbrain_layers(model)
    names = [n for n, _ in layers]
    for lname, _ in CHAIN_TARGETS:
        if lname not in names:
            raise SystemExit(f"{args.arch}: no layer {lname}; layers are {names}")
    out32, act32, _, maps32 = run_chain(layers, x32, CHAIN_TARGETS)
    out32 = {k: v[:nlay].detach().numpy() for k, v in out32.items()}
    model.double()
    out64, act64, scale64, maps64 = run_chain(layers, x64, CHAIN_TARGETS)
    out64 = {k: v[:nlay].detach().numpy() for k, v in out64.items()}
    return dict(names=names, targets=CHAIN_TARGETS, out32=out32, act32=act32,
                maps32=maps32, out64=out64, act64=act64, scale64=scale64, maps64=maps64)


def graph_reference(args, x64, x32, nlay):
    """ResNet / GoogLeNet / Inception-v3 through the exporter's tracer, plus the
    DNNBrain name check and DNNBrain's own maps."""
    ex = exporter()
    kw = {}
    if args.transform_input == "on":
        kw["transform_input"] = True
    model = ex.build_torchvision(args.arch, seed=args.seed, **kw)
    for p in model.parameters():
        p.requires_grad_(False)
    gm, nodes = ex.trace_network(model)
    net = GraphNet(model, gm.eval(), nodes)
    targets = GRAPH_TARGETS[args.arch]
    for lname, _ in targets:
        if lname not in net.by_name:
            raise SystemExit(f"{args.arch}: no node named or aliased {lname}")
    names = net.names

    # What DNNBrain's maps should be (salpipe's map of some method, or the map with
    # DNNBrain's mix of rules, computed in the float64 pass below).
    tnames = [n for n, _ in targets]
    mods = dict(dnnbrain_modules(model))
    plan, mixed = [], []
    for layer in DNNBRAIN_TARGETS[args.arch]:
        t = tnames.index(layer)
        for method in DNNBRAIN_METHODS:
            hooked = hooked_relus(model, mods[layer]) if method == "guided" else []
            expect, why, rules = explain(net, layer, method, hooked)
            if rules is not None:
                mixed.append((t, rules))
            plan.append((layer, t, method, expect, why, len(mixed) - 1 if rules else -1))

    c0 = time.process_time()
    vals, act32, _, maps32, _ = graph_maps(net, x32, targets)
    out32 = {k: v[:nlay].detach().numpy() for k, v in vals.items()}
    del vals
    c1 = time.process_time()
    model.double()
    gm.double()
    vals, act64, scale64, maps64, mixed64 = graph_maps(net, x64, targets, mixed)
    c2 = time.process_time()
    pairs = check_dnnbrain_names(net, x64[:1], {k: v[:1] for k, v in vals.items()})
    out64 = {k: v[:nlay].detach().numpy() for k, v in vals.items()}
    del vals
    c3 = time.process_time()
    requests = [(layer, targets[tnames.index(layer)][1])
                for layer in DNNBRAIN_TARGETS[args.arch]]
    dmaps = dnnbrain_maps(model, requests, x64[:1])
    c4 = time.process_time()
    print(f"  CPU time: float32 maps {c1 - c0:.1f} s, float64 maps {c2 - c1:.1f} s, "
          f"DNNBrain names checked by hooks ({len(pairs)}) {c3 - c2:.1f} s, DNNBrain's "
          f"algorithm {c4 - c3:.1f} s")

    dn = {"targets": [t for t in dict.fromkeys(p[1] for p in plan)], "maps": [],
          "explained": [], "expect": [], "why": []}
    for k, (layer, t, method, expect, why, mi) in enumerate(plan):
        g = dmaps[k // len(DNNBRAIN_METHODS)][k % len(DNNBRAIN_METHODS)]
        ref = (torch.from_numpy(maps64[0, t, METHODS.index(expect)]) if expect
               else mixed64[mi])
        err = ((g - ref).abs().max() / ref.abs().max()).item()
        print(f"  DNNBrain {method:8s} {layer}:{targets[t][1]}: "
              f"{'= salpipe ' + expect if expect else 'mixed rules'} "
              f"(max|d|/max|ref| {err:.2e}) - {why}")
        dn["maps"].append(g.numpy())
        dn["explained"].append(ref.numpy())
        dn["expect"].append(expect)
        dn["why"].append(why)
    return dict(names=names, targets=targets, out32=out32, act32=act32, maps32=maps32,
                out64=out64, act64=act64, scale64=scale64, maps64=maps64, pairs=pairs,
                dnnbrain=dn)


def write(args, path, x64, x32, nlay, res):
    with h5py.File(path, "w") as f:
        f["input_f64"] = x64.numpy()
        f["input_f32"] = x32.numpy()
        g = f.create_group("layers")
        for name in res["names"]:
            o64, o32 = res["out64"][name], res["out32"][name]
            d = g.create_dataset(name, data=o64)
            ref = np.abs(o64).max()
            diff = np.abs(o32.astype(np.float64) - o64).max()
            d.attrs["f32_rel_err"] = diff / ref if ref > 0 else diff
        f["maps_f64"] = res["maps64"]
        f["maps_f32"] = res["maps32"].astype(np.float32)
        f["act_f64"] = res["act64"]
        f["act_f32"] = res["act32"].astype(np.float32)
        f["act_scale"] = res["scale64"]
        f.attrs["arch"] = args.arch
        f.attrs["seed"] = args.seed
        f.attrs["layer_names"] = res["names"]
        f.attrs["target_layers"] = [n for n, _ in res["targets"]]
        f.attrs["target_units"] = np.array([u for _, u in res["targets"]], dtype=np.int32)
        f.attrs["methods"] = METHODS
        f.attrs["inputs"] = INPUT_NAMES[:args.num_inputs]
        if "pairs" in res:
            f.attrs["dnnbrain_names"] = [a for a, _ in res["pairs"]]
            f.attrs["dnnbrain_nodes"] = [b for _, b in res["pairs"]]
        if "dnnbrain" in res:
            dn = res["dnnbrain"]
            g = f.create_group("dnnbrain")
            shape = (len(dn["targets"]), len(DNNBRAIN_METHODS)) + x64.shape[1:]
            g["maps"] = np.stack(dn["maps"]).reshape(shape)
            g["explained"] = np.stack(dn["explained"]).reshape(shape)
            g.attrs["targets"] = np.array(dn["targets"], dtype=np.int32)
            g.attrs["methods"] = DNNBRAIN_METHODS
            g.attrs["expect"] = dn["expect"]
            g.attrs["why"] = dn["why"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arch")
    ap.add_argument("out")
    ap.add_argument("--image", required=True, help="the photo (shared/data/*.JPEG)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-inputs", type=int, default=len(INPUT_NAMES))
    ap.add_argument("--layer-inputs", type=int, default=None,
                    help="store layer outputs of the first K inputs only")
    ap.add_argument("--transform-input", choices=("on", "off"), default="off",
                    help="GoogLeNet / Inception-v3: build with transform_input "
                         "(as the exporter's flag)")
    args = ap.parse_args()
    if not 1 <= args.num_inputs <= len(INPUT_NAMES):
        ap.error(f"--num-inputs must be 1..{len(INPUT_NAMES)}")
    nlay = args.num_inputs if args.layer_inputs is None else args.layer_inputs
    if not 1 <= nlay <= args.num_inputs:
        ap.error("--layer-inputs must be 1..--num-inputs")
    graph = args.arch in GRAPH_TARGETS

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    size = 299 if args.arch == "inception_v3" else 224
    pixels = make_pixels(args.image, args.num_inputs, size)
    x64, x32 = normalize(pixels)
    res = (graph_reference if graph else chain_reference)(args, x64, x32, nlay)
    t1 = time.perf_counter()
    write(args, args.out, x64, x32, nlay, res)
    t2 = time.perf_counter()
    print(f"{args.arch}: {args.num_inputs} inputs ({nlay} with layer outputs), "
          f"{len(res['names'])} layers, {len(res['targets'])} targets x "
          f"{len(METHODS)} methods; PyTorch {t1 - t0:.1f} s, write {t2 - t1:.1f} s, "
          f"CPU time {time.process_time():.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
