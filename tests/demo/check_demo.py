"""Checks what scripts/demo.sh wrote: the HDF5 file (every image done, maps finite and
not all zero, activations that classify the shipped images), the previews (every file,
with the sizes previews.c promises), and a salview figure of the output.
    check_demo.py REPO_DIR FIGURE.png
"""
import os
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image

failures = []
checks = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    checks.append(what)
    if not ok:
        failures.append(what)


def main():
    repo, figure = sys.argv[1], sys.argv[2]
    out = os.path.join(repo, "out", "demo")
    path = os.path.join(out, "saliency.h5")
    with h5py.File(path, "r") as f:
        s = f["saliency"][:]
        status = f["status"][:]
        images = [p.decode() for p in f["image"][:]]
        targets = [t.decode() for t in f["target"][:]]
        methods = [m.decode() for m in f["method"][:]]
        act = f["activation"][:]
    check(s.shape == (20, 10, 3, 1, 28, 28), f"/saliency shape {s.shape} == (20, 10, 3, 1, 28, 28)")
    check(bool((status == 1).all()), f"every image done: status {status.tolist()}")
    check(bool(np.isfinite(s).all()), "every map finite")
    zero = [(i, t, m) for i in range(s.shape[0]) for t in range(s.shape[1])
            for m in range(s.shape[2]) if not s[i, t, m].any()]
    check(not zero, f"no map all zero ({len(zero)} are)")
    check(targets == [f"fc2:{u}" for u in range(1, 11)], f"targets {targets}")
    check(methods == ["vanilla", "guided", "deconvnet"], f"methods {methods}")
    classes = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
               "sneaker", "bag", "ankle_boot"]
    truth = np.array([classes.index(os.path.basename(p).split("_", 1)[1][:-4]) for p in images])
    right = int((act.argmax(axis=1) == truth).sum())
    check(right >= 18, f"the demo model classifies {right} of 20 shipped images right (>= 18)")

    prev = os.path.join(out, "previews")
    files = set(os.listdir(prev))
    for img in images:
        name = os.path.basename(img)[:-4]
        montage = os.path.join(prev, f"{name}_montage.jpg")
        # 28x28 enlarged 8x to 224; 4 columns (input + 3 methods), 10 rows, 4 px gaps
        size = Image.open(montage).size if os.path.exists(montage) else None
        check(size == (4 + 4 * 228, 4 + 10 * 228), f"{name}_montage.jpg size {size}")
        missing = [f"{name}_{t.replace(':', '-')}_{m}.jpg" for t in targets for m in methods
                   if f"{name}_{t.replace(':', '-')}_{m}.jpg" not in files]
        check(not missing, f"{name}: 30 map previews present (missing {missing[:3]})")
    one = Image.open(os.path.join(prev, f"{os.path.basename(images[0])[:-4]}_fc2-1_guided.jpg"))
    check(one.size == (224, 224), f"a map preview is 224x224 (got {one.size})")

    subprocess.run([sys.executable, os.path.join(repo, "scripts", "salview.py"), path,
                    "--images", "0", "1", "2", "--targets", "fc2:1", "fc2:10",
                    "-o", figure], check=True)
    fig = Image.open(figure)
    check(fig.format == "PNG" and fig.size[0] > 200 and fig.size[1] > 200,
          f"salview wrote a PNG figure {fig.size}")
    print(f"demo: {len(checks) - len(failures)} checks passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
