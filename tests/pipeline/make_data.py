#!/usr/bin/env python3
"""Test images and the PyTorch reference for the pipeline tests (fixture pipeline_data).

    make_data.py --photo PHOTO.JPEG --out DIR

DIR/e2e/      crop_a.png (RGB), crop_b.jpg (small, upsampled by Resize), crop_c_gray.png
              (mode L: Pillow's convert('RGB') replicates it), all crops of PHOTO
DIR/e2e/ref.h5  PyTorch maps and activations for [PHOTO, crop_a, crop_b, crop_c_gray]
              x TARGETS x METHODS below, float64 and float32 (see reference())
DIR/many/     img_00 .. img_11: twelve crops of PHOTO, JPEG and PNG, for kill/resume
DIR/bad/      good_a.png, good_b.jpg, truncated.jpg (half a JPEG), garbage.png (random
              bytes), empty.jpg (0 bytes), spare.png (a good image a test copies over a
              missing one); missing.jpg is deliberately absent

The reference follows SPEC §1 without salpipe: PIL decode + convert('RGB'),
torchvision Resize((224, 224)), then ToTensor + Normalize (float32) or
(pixels / 255 - mean) / std in float64; `torch.manual_seed(0); alexnet()` (the rule of
scripts/export_torchvision.py --seed 0); every ReLU's backward replaced by the
method's rule (tests/reference/make_reference.py's RuleReLU); the target scalar is the
mean over the channel's map (a linear unit's value); maps are d scalar / d input.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

TARGETS = [("fc3", 540), ("fc3", 23), ("conv5", 3)]
METHODS = ["vanilla", "guided", "deconvnet"]
SIZE = 224


def crop(photo, box, size=None, flip=False):
    img = photo.crop(box)
    if size:
        img = img.resize(size, Image.BICUBIC)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def make_images(photo_path, out):
    photo = Image.open(photo_path).convert("RGB")
    e2e = os.path.join(out, "e2e")
    many = os.path.join(out, "many")
    bad = os.path.join(out, "bad")
    for d in (e2e, many, bad):
        os.makedirs(d, exist_ok=True)

    crop(photo, (30, 40, 330, 300)).save(os.path.join(e2e, "crop_a.png"))
    crop(photo, (100, 20, 300, 170), flip=True).save(os.path.join(e2e, "crop_b.jpg"),
                                                      quality=90)
    crop(photo, (0, 75, 260, 375)).convert("L").save(os.path.join(e2e, "crop_c_gray.png"))

    rng = np.random.default_rng(4)
    for i in range(12):
        w, h = photo.size
        cw, ch = int(rng.integers(w // 3, w)), int(rng.integers(h // 3, h))
        x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        img = crop(photo, (x0, y0, x0 + cw, y0 + ch), flip=bool(i % 3 == 1))
        if i % 2:
            img.save(os.path.join(many, f"img_{i:02d}.png"))
        else:
            img.save(os.path.join(many, f"img_{i:02d}.jpg"), quality=85 + i)

    crop(photo, (50, 50, 350, 350)).save(os.path.join(bad, "good_a.png"))
    crop(photo, (0, 0, 240, 200)).save(os.path.join(bad, "good_b.jpg"), quality=92)
    crop(photo, (120, 100, 375, 375), flip=True).save(os.path.join(bad, "spare.png"))
    full = os.path.join(bad, "full.jpg")
    crop(photo, (10, 10, 370, 370)).save(full, quality=95)
    with open(full, "rb") as f:
        data = f.read()
    os.remove(full)
    with open(os.path.join(bad, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 3])
    with open(os.path.join(bad, "garbage.png"), "wb") as f:
        f.write(np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    open(os.path.join(bad, "empty.jpg"), "wb").close()
    missing = os.path.join(bad, "missing.jpg")
    if os.path.exists(missing):
        os.remove(missing)
    return [photo_path] + [os.path.join(e2e, n)
                           for n in ("crop_a.png", "crop_b.jpg", "crop_c_gray.png")]


def reference(paths, out_path):
    """PyTorch float32 and float64 maps of `paths` for TARGETS x METHODS."""
    import h5py
    import torch
    import torchvision
    from torchvision import transforms
    import make_reference as mr

    torch.set_num_threads(2)
    resize = transforms.Resize((SIZE, SIZE))
    pixels = [np.asarray(resize(Image.open(p).convert("RGB")), dtype=np.uint8)
              for p in paths]
    x64, x32 = mr.normalize(pixels)

    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = mr.dnnbrain_layers(model)

    def run(x):
        x = x.clone().requires_grad_(True)
        outs, h = {}, x
        for name, mod in layers:
            h = mod(h)
            outs[name] = h
        n = x.shape[0]
        acts = np.zeros((n, len(TARGETS)))
        maps = np.zeros((n, len(TARGETS), len(METHODS)) + tuple(x.shape[1:]))
        for t, (lname, unit) in enumerate(TARGETS):
            y = outs[lname][:, unit - 1]
            per_image = y.mean(dim=(1, 2)) if y.dim() == 3 else y
            acts[:, t] = per_image.detach().numpy()
            for m, method in enumerate(METHODS):
                mr.RuleReLU.method = method
                (g,) = torch.autograd.grad(per_image.sum(), x, retain_graph=True)
                maps[:, t, m] = g.numpy()
        return acts, maps

    t0 = time.perf_counter()
    act32, maps32 = run(x32)
    model.double()
    act64, maps64 = run(x64)
    with h5py.File(out_path, "w") as f:
        f["maps_f64"] = maps64
        f["maps_f32"] = maps32.astype(np.float32)
        f["act_f64"] = act64
        f["act_f32"] = act32.astype(np.float32)
        f.attrs["images"] = paths
        f.attrs["targets"] = [f"{l}:{u}" for l, u in TARGETS]
        f.attrs["methods"] = METHODS
    print(f"reference: {len(paths)} images x {len(TARGETS)} targets x {len(METHODS)} "
          f"methods, float32 + float64, {time.perf_counter() - t0:.1f} s -> {out_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    paths = make_images(os.path.abspath(args.photo), args.out)
    reference(paths, os.path.join(args.out, "e2e", "ref.h5"))


if __name__ == "__main__":
    main()
