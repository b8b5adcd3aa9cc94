"""Stimuli on a uniform gray background, as vision experiments use them.

    make_gray_stimuli.py PHOTO OUTDIR N

Writes OUTDIR/g0.png ... g{N-1}.png and OUTDIR/list.txt: square crops of 60-140 px of
PHOTO pasted at random places on a 256x256 RGB (128, 128, 128) background (seeded, so
the same arguments always give the same files). Resized to 224 the background stays
exactly uniform, so the networks' first layers see many identical patches: the case
in which max-pool windows hold exact ties (docs/reliability.md, "Max-pool ties").
Used with bench_f32_error.py.
"""
import os
import random
import sys

from PIL import Image


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    photo, outdir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    src = Image.open(photo).convert("RGB")
    w, h = src.size
    rng = random.Random(7)
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for i in range(n):
        s = rng.randint(60, 140)
        x0, y0 = rng.randint(0, w - s), rng.randint(0, h - s)
        bg = Image.new("RGB", (256, 256), (128, 128, 128))
        bg.paste(src.crop((x0, y0, x0 + s, y0 + s)), (rng.randint(0, 256 - s), rng.randint(0, 256 - s)))
        paths.append(os.path.abspath(os.path.join(outdir, f"g{i}.png")))
        bg.save(paths[-1])
    with open(os.path.join(outdir, "list.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")


if __name__ == "__main__":
    main()
