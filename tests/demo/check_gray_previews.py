"""Gray previews: runs salpipe with preview_mode = "gray" on two demo images and checks
that every preview exists with the promised size and is coloured by the colormap
(the 'hot' ramp: red well before blue, so a gray-mode tile is never plain gray).
    check_gray_previews.py SALPIPE REPO_DIR WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def main():
    salpipe, repo, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    demo = os.path.join(repo, "data", "demo")
    images = sorted(os.listdir(demo))[:2]
    cfg = os.path.join(work, "gray.toml")
    with open(cfg, "w") as f:
        f.write(f'[model]\npath = "{repo}/models/fashion_mnist_cnn.h5"\n'
                f'[images]\nfiles = {[os.path.join(demo, i) for i in images]}\n'.replace("'", '"') +
                '[[targets]]\nlayer = "fc2"\nunits = [1, 10]\n'
                '[[targets]]\nlayer = "conv1"\nunits = [1]\n'
                '[saliency]\nmethods = ["guided"]\n'
                f'[output]\npath = "{work}/gray.h5"\npreviews = "{work}/prev"\n'
                'preview_mode = "gray"\n')
    subprocess.run([salpipe, "--overwrite", "--quiet", cfg], check=True)
    fails = 0
    for img in images:
        name = img[:-4]
        for tile in ("fc2-1_guided", "fc2-10_guided", "conv1-1_guided"):
            p = os.path.join(work, "prev", f"{name}_{tile}.jpg")
            a = np.asarray(Image.open(p).convert("RGB")).astype(int)
            colored = np.abs(a[..., 0] - a[..., 2]).max() > 40  # 'hot': red before blue
            ok = a.shape == (224, 224, 3) and colored
            print(("ok   " if ok else "FAIL ") + f"{name}_{tile}.jpg {a.shape}, coloured {colored}")
            fails += not ok
        m = Image.open(os.path.join(work, "prev", f"{name}_montage.jpg"))
        ok = m.size == (4 + 2 * 228, 4 + 3 * 228)
        print(("ok   " if ok else "FAIL ") + f"{name}_montage.jpg {m.size}")
        fails += not ok
    print(f"gray previews: {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
