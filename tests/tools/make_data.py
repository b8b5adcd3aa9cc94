#!/usr/bin/python3
"""Data of the user-tool tests (fixture tools_data).

    make_data.py --photo PHOTO.JPEG --salpipe SALPIPE --model MODEL.h5 --out DIR

DIR/img/            img_00.jpg .. img_23.png: 24 crops (300x260) of PHOTO, JPEG and PNG
                    alternately, every third one mirrored
DIR/configs/small.toml, DIR/out/small/small.h5
                    salpipe (alone) on img_00.jpg and img_01.png, targets fc3:540 and
                    conv5:3, methods vanilla and guided; laid out as the demo is: the
                    images are "../img/...", the output "../out/small/small.h5", and
                    salpipe is run from DIR, so the file's config_path is
                    "configs/small.toml", relative to a directory the file does not
                    record (salview must work it out)
DIR/synthetic/gray1.h5
                    written here with h5py in salpipe's layout: a 1-channel 28x28 model,
                    3 images (done / failed / not done), 2 targets, 1 method; image 0's
                    second map is all zeros; image 1's file does not exist
DIR/synthetic/g0.png, g2.png   the 28x28 gray stimuli of images 0 and 2
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402


def make_images(photo, out):
    os.makedirs(out, exist_ok=True)
    p = Image.open(photo).convert("RGB")
    names = []
    for i in range(24):
        x, y = (i * 23) % 70, (i * 17) % 110
        name = f"img_{i:02d}." + ("png" if i % 2 else "jpg")
        img = p.crop((x, y, x + 300, y + 260))
        if i % 3 == 2:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img.save(os.path.join(out, name), quality=90)
        names.append(name)
    return names


def make_small(args, out):
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    os.makedirs(os.path.join(out, "out", "small"), exist_ok=True)
    tc.write_config(os.path.join(out, "configs", "small.toml"), args.model,
                    ["../img/img_00.jpg", "../img/img_01.png"],
                    [("fc3", [540]), ("conv5", [3])], ["vanilla", "guided"],
                    "../out/small/small.h5")
    r = tc.run([args.salpipe, "--overwrite", "--quiet", "configs/small.toml"], cwd=out)
    if r.rc != 0:
        sys.exit(f"salpipe failed with exit {r.rc}")
    # Issue 12's datasets: /gradcam and /integrated_gradients_gap besides /saliency,
    # and a Grad-CAM-only file without /saliency (about 3 s together).
    extra = ('[saliency.gradcam]\nlayer = "conv4_relu"\n'
             '[saliency.integrated_gradients]\nsteps = 2\n')
    for name, methods in (("methods", ["guided", "gradcam", "integrated_gradients"]),
                          ("camonly", ["gradcam"])):
        tc.write_config(os.path.join(out, "configs", name + ".toml"), args.model,
                        ["../img/img_00.jpg", "../img/img_01.png"],
                        [("fc3", [540]), ("conv5", [3])], methods,
                        f"../out/small/{name}.h5", extra="\n" + extra)
        r = tc.run([args.salpipe, "--overwrite", "--quiet", f"configs/{name}.toml"], cwd=out)
        if r.rc != 0:
            sys.exit(f"salpipe failed on {name}.toml with exit {r.rc}: {r.err}")


def make_synthetic(out):
    """A file in salpipe's layout, written with h5py, for cases salpipe's AlexNet
    cannot produce: one channel, failed and not-done images, an all-zero map."""
    import h5py
    d = os.path.join(out, "synthetic")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:28, 0:28]
    g0 = (128 + 100 * np.sin(xx / 4.0) * np.cos(yy / 5.0)).astype(np.uint8)
    Image.fromarray(g0, "L").save(os.path.join(d, "g0.png"))
    Image.fromarray(255 - g0, "L").save(os.path.join(d, "g2.png"))
    images = [os.path.join(d, "g0.png"), "missing/nothere.png", "g2.png"]
    sal = np.full((3, 2, 1, 1, 28, 28), np.nan, np.float32)
    sal[0, 0, 0, 0] = rng.standard_normal((28, 28)) * np.exp(-((xx - 8) ** 2) / 30.0)
    sal[0, 1, 0, 0] = 0.0
    act = np.full((3, 2), np.nan, np.float32)
    act[0] = [1.5, -0.25]
    str_t = h5py.string_dtype("utf-8")
    cfg = os.path.join(d, "gray1.toml")
    with h5py.File(os.path.join(d, "gray1.h5"), "w") as f:
        f.create_dataset("saliency", data=sal, chunks=(1, 1, 1, 1, 28, 28))
        f.create_dataset("activation", data=act)
        f.create_dataset("image", data=images, dtype=str_t)
        f.create_dataset("target", data=["fc2:1", "fc2:2"], dtype=str_t)
        f.create_dataset("target_layer", data=["fc2", "fc2"], dtype=str_t)
        f.create_dataset("target_unit", data=np.array([1, 2], np.int32))
        f.create_dataset("method", data=["vanilla"], dtype=str_t)
        f.create_dataset("status", data=np.array([1, -1, 0], np.int8))
        f.create_dataset("error", data=["", "missing/nothere.png: cannot open", ""],
                         dtype=str_t)
        f.attrs["config_path"] = cfg
        f.attrs["config"] = '[output]\npath = "gray1.h5"\n'
        f.attrs["model_name"] = "synthetic"
        f.attrs["resize"] = "stretch"
        f.attrs["input_channels"] = np.int32(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--photo", required=True)
    ap.add_argument("--salpipe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for k in ("photo", "salpipe", "model", "out"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    tc.fresh_dir(args.out)
    make_images(args.photo, os.path.join(args.out, "img"))
    make_synthetic(args.out)
    make_small(args, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
