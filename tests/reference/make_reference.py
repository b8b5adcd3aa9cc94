#!/usr/bin/env python3
"""PyTorch reference for tests/test_reference.c: layer outputs, target activations and
saliency maps of a seeded torchvision network, in float64 and in float32.

    make_reference.py ARCH OUT.h5 --image PHOTO [--seed 0] [--num-inputs 4]
                      [--layer-inputs K]

The network is `torch.manual_seed(SEED); torchvision.models.ARCH()`, the rule
scripts/export_torchvision.py follows, so salpipe loads the same weights. Layers are
walked in DNNBrain's naming (conv1, conv1_relu, conv1_maxpool, ..., avgpool, flatten,
dropout1, fc1, ...). Every ReLU is replaced by an autograd function applying the
method's backward rule (SPEC §1); max-pool keeps PyTorch's own backward.

Inputs, in this order (the first --num-inputs are used):
  0 photo      the photo, DNNBrain preprocessing: RGB, Resize((224, 224))
  1 noise      uniform 8-bit noise
  2 cropflip   a crop of the photo, resized to 224x224, mirrored left-right
  3 pink       1/f noise quantized to 8 bits (natural-image-like spectrum)
Each input exists as the same 8-bit pixels normalized twice: float32 as torchvision's
ToTensor + Normalize, float64 as (pixels / 255 - mean) / std with decimal constants.

Output (HDF5): /input_f64, /input_f32 (N,3,224,224); /layers/<name> float64 (K,...)
for the first K inputs (--layer-inputs, default all: VGG's layer outputs take
~130 MB per image), with attribute f32_rel_err (max |torch f32 - torch f64| /
max |torch f64|); /maps_f64, /maps_f32 (N,T,M,3,224,224); /act_f64, /act_f32 (N,T);
/act_scale (N,T), the mean |output| over the target channel (over the whole layer
for a linear unit, whose own value can cancel far below its terms), the scale
activation errors are measured against; root attributes arch, seed, layer_names,
target_layers, target_units (1-based), methods, inputs.
"""
import argparse
import time

import h5py
import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 224
TARGETS = [("fc3", 540), ("fc1", 1), ("fc2_relu", 7), ("conv5", 3),
           ("conv3_relu", 10), ("conv2_maxpool", 5), ("conv1", 1)]
METHODS = ["vanilla", "guided", "deconvnet"]
INPUT_NAMES = ["photo", "noise", "cropflip", "pink"]


class RuleReLU(torch.autograd.Function):
    """ReLU whose backward is the current saliency method's rule (SPEC §1)."""
    method = "vanilla"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if RuleReLU.method == "vanilla":
            return g * (x > 0)
        if RuleReLU.method == "guided":
            return g * (x > 0) * (g > 0)
        if RuleReLU.method == "deconvnet":
            return g * (g > 0)
        raise ValueError(RuleReLU.method)


class RuleReLUModule(torch.nn.Module):
    def forward(self, x):
        return RuleReLU.apply(x)


def dnnbrain_layers(model):
    """[(name, module)] in forward order, named as DNNBrain does."""
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


def make_pixels(photo_path, n):
    """The first n test images as uint8 arrays (224, 224, 3)."""
    resize = transforms.Resize((SIZE, SIZE))
    photo = Image.open(photo_path).convert("RGB")
    rng = np.random.default_rng(12345)
    out = []
    for name in INPUT_NAMES[:n]:
        if name == "photo":
            img = resize(photo)
        elif name == "noise":
            img = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        elif name == "cropflip":
            w, h = photo.size
            box = (w // 8, h // 5, w - w // 10, h - h // 12)
            img = resize(photo.crop(box)).transpose(Image.FLIP_LEFT_RIGHT)
        elif name == "pink":
            fy = np.fft.fftfreq(SIZE)[:, None]
            fx = np.fft.fftfreq(SIZE)[None, :]
            f = np.sqrt(fx * fx + fy * fy)
            f[0, 0] = 1.0
            chans = []
            for _ in range(3):
                phase = rng.uniform(0, 2 * np.pi, (SIZE, SIZE))
                chans.append(np.real(np.fft.ifft2(np.exp(1j * phase) / f)))
            a = np.stack(chans, axis=-1)
            a = (a - a.min()) / (a.max() - a.min()) * 255.0
            img = Image.fromarray(np.round(a).astype(np.uint8))
        out.append(np.asarray(img, dtype=np.uint8))
    return out


def normalize(pixels):
    """(float64 input, float32 input), each (N, 3, 224, 224)."""
    to_f32 = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    x32 = torch.stack([to_f32(Image.fromarray(p)) for p in pixels])
    mean = np.array(MEAN, dtype=np.float64)[None, :, None, None]
    std = np.array(STD, dtype=np.float64)[None, :, None, None]
    p = np.stack(pixels).transpose(0, 3, 1, 2).astype(np.float64)
    x64 = torch.from_numpy((p / 255.0 - mean) / std)
    return x64, x32


def run(layers, x):
    """Forward through the named layers; per-layer outputs, activations, maps."""
    x = x.clone().requires_grad_(True)
    outs = {}
    h = x
    for name, mod in layers:
        h = mod(h)
        outs[name] = h
    nimg = x.shape[0]
    acts = np.zeros((nimg, len(TARGETS)))
    scales = np.zeros((nimg, len(TARGETS)))
    maps = np.zeros((nimg, len(TARGETS), len(METHODS)) + tuple(x.shape[1:]))
    for t, (lname, unit) in enumerate(TARGETS):
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
    return {k: v.detach().numpy() for k, v in outs.items()}, acts, scales, maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arch")
    ap.add_argument("out")
    ap.add_argument("--image", required=True, help="the photo (shared/data/*.JPEG)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-inputs", type=int, default=len(INPUT_NAMES))
    ap.add_argument("--layer-inputs", type=int, default=None,
                    help="store layer outputs of the first K inputs only")
    args = ap.parse_args()
    if not 1 <= args.num_inputs <= len(INPUT_NAMES):
        ap.error(f"--num-inputs must be 1..{len(INPUT_NAMES)}")
    nlay = args.num_inputs if args.layer_inputs is None else args.layer_inputs
    if not 1 <= nlay <= args.num_inputs:
        ap.error("--layer-inputs must be 1..--num-inputs")

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = dnnbrain_layers(model)
    names = [n for n, _ in layers]
    for lname, _ in TARGETS:
        if lname not in names:
            raise SystemExit(f"{args.arch}: no layer {lname}; layers are {names}")

    pixels = make_pixels(args.image, args.num_inputs)
    x64, x32 = normalize(pixels)
    out32, act32, _, maps32 = run(layers, x32)
    t1 = time.perf_counter()
    model.double()
    out64, act64, scale64, maps64 = run(layers, x64)
    t2 = time.perf_counter()

    with h5py.File(args.out, "w") as f:
        f["input_f64"] = x64.numpy()
        f["input_f32"] = x32.numpy()
        g = f.create_group("layers")
        for name in names:
            o64, o32 = out64[name][:nlay], out32[name][:nlay]
            d = g.create_dataset(name, data=o64)
            ref = np.abs(o64).max()
            diff = np.abs(o32.astype(np.float64) - o64).max()
            d.attrs["f32_rel_err"] = diff / ref if ref > 0 else diff
        f["maps_f64"] = maps64
        f["maps_f32"] = maps32.astype(np.float32)
        f["act_f64"] = act64
        f["act_f32"] = act32.astype(np.float32)
        f["act_scale"] = scale64
        f.attrs["arch"] = args.arch
        f.attrs["seed"] = args.seed
        f.attrs["layer_names"] = names
        f.attrs["target_layers"] = [n for n, _ in TARGETS]
        f.attrs["target_units"] = np.array([u for _, u in TARGETS], dtype=np.int32)
        f.attrs["methods"] = METHODS
        f.attrs["inputs"] = INPUT_NAMES[:args.num_inputs]
    t3 = time.perf_counter()
    print(f"{args.arch}: {args.num_inputs} inputs ({nlay} with layer outputs), "
          f"{len(TARGETS)} targets x "
          f"{len(METHODS)} methods; float32 {t1 - t0:.1f} s, float64 {t2 - t1:.1f} s, "
          f"write {t3 - t2:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
