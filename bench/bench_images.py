"""Photographic test images for scripts/bench.sh, made deterministically from one photo.

    bench_images.py PHOTO OUTDIR N

Writes OUTDIR/img000.jpg ... : random crops (30-100% of the side, any aspect within
1:2..2:1), horizontal flips and rescales (96..640 px on the long side) of PHOTO, saved
as JPEG quality 90. The same PHOTO and N always give the same files (seeded RNG, no
clock), so every benchmark run decodes and resizes the same bytes.
"""
import os
import random
import sys

from PIL import Image


def make(photo, outdir, n):
    rng = random.Random(20240601)
    src = Image.open(photo).convert("RGB")
    w, h = src.size
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for i in range(n):
        cw = int(w * rng.uniform(0.3, 1.0))
        ch = int(min(h, max(h * 0.3, cw * rng.uniform(0.5, 2.0))))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = src.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        side = rng.randint(96, 640)
        s = side / max(cw, ch)
        im = im.resize((max(16, round(cw * s)), max(16, round(ch * s))), Image.Resampling.BICUBIC)
        p = os.path.join(outdir, f"img{i:03d}.jpg")
        im.save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    for p in make(sys.argv[1], sys.argv[2], int(sys.argv[3])):
        print(p)
