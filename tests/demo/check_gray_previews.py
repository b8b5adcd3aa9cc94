"""Gray previews: runs salpipe with preview_mode = "gray" on two demo images and checks
that every preview exists with the promised size and is coloured by the colormap
(the 'hot' ramp: red well before blue, so a gray-mode tile is never plain gray).
Grad-CAM previews: with methods guided and gradcam (colour mode), the gradcam tile
is the output's /gradcam map on the colormap, half over the input: its heat, recovered
from the tile, follows the map.
    check_gray_previews.py SALPIPE REPO_DIR WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image


def run_demo(salpipe, repo, work, demo, images, name, body, output):
    """Runs salpipe on the demo model and `images` with the config's other tables
    `body`, output WORK/NAME.h5 with [output]'s other keys `output`."""
    cfg = os.path.join(work, name + ".toml")
    with open(cfg, "w") as f:
        f.write(f'[model]\npath = "{repo}/models/fashion_mnist_cnn.h5"\n'
                f'[images]\nfiles = {[os.path.join(demo, i) for i in images]}\n'.replace("'", '"') +
                body + f'[output]\npath = "{work}/{name}.h5"\n' + output)
    subprocess.run([salpipe, "--overwrite", "--quiet", cfg], check=True)


def main():
    salpipe, repo, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    demo = os.path.join(repo, "data", "demo")
    images = sorted(os.listdir(demo))[:2]
    run_demo(salpipe, repo, work, demo, images, "gray",
             '[[targets]]\nlayer = "fc2"\nunits = [1, 10]\n'
             '[[targets]]\nlayer = "conv1"\nunits = [1]\n'
             '[saliency]\nmethods = ["guided"]\n',
             f'previews = "{work}/prev"\npreview_mode = "gray"\n')
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
    fails += check_gradcam(salpipe, repo, work, demo, images)
    print(f"gray and Grad-CAM previews: {fails} failed")
    sys.exit(1 if fails else 0)


def check_gradcam(salpipe, repo, work, demo, images):
    import h5py
    run_demo(salpipe, repo, work, demo, images, "cam",
             '[[targets]]\nlayer = "fc2"\nunits = [1, 10]\n'
             '[saliency]\nmethods = ["guided", "gradcam"]\n'
             '[saliency.gradcam]\nlayer = "conv2_relu"\n',
             f'previews = "{work}/prev_cam"\n')
    with h5py.File(os.path.join(work, "cam.h5"), "r") as f:
        cams = f["gradcam"][()]
    fails = 0
    for i, img in enumerate(images):
        name = img[:-4]
        src = np.asarray(Image.open(os.path.join(demo, img)).convert("L")).astype(float)
        for t, unit in enumerate((1, 10)):
            p = os.path.join(work, "prev_cam", f"{name}_fc2-{unit}_gradcam.jpg")
            a = np.asarray(Image.open(p).convert("RGB")).astype(float)
            # tile = (heat + input) / 2, so heat = 2 tile - input; the colormap's three
            # channels sum to 3 x 255 t, linear in the map (JPEG blurs it: a
            # correlation, not equality).
            heat = 2 * a.sum(axis=2) - 3 * np.kron(src, np.ones((8, 8)))
            cam = np.kron(cams[i, t], np.ones((8, 8)))
            r = np.corrcoef(heat.ravel(), cam.ravel())[0, 1] if cam.std() > 0 else 1.0
            ok = a.shape == (224, 224, 3) and r > 0.9
            print(("ok   " if ok else "FAIL ") +
                  f"{name}_fc2-{unit}_gradcam.jpg {a.shape}: heat follows /gradcam, r = {r:.3f}")
            fails += not ok
        m = Image.open(os.path.join(work, "prev_cam", f"{name}_montage.jpg"))
        ok = m.size == (4 + 3 * 228, 4 + 2 * 228)
        print(("ok   " if ok else "FAIL ") + f"{name}_montage.jpg {m.size}: input, guided, "
              "gradcam")
        fails += not ok
    return fails


if __name__ == "__main__":
    main()
