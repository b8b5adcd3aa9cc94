#!/usr/bin/python3
"""scripts/salview.py on files from the tools_data fixture (make_data.py).

    test_salview.py {rgb|gray|select|synthetic|gradcam} --data DIR --work DIR

rgb        small.h5 (2 images x 2 targets x 2 methods, made by salpipe): a PNG of the
           expected pixel size; every map tile looks like its own map (normalized
           here independently: |map| then min-max) more than like any other map of
           the file; the stimulus tiles are the image files, found from the config
           path; salview is run from an unrelated directory
gray       the same in gray mode: tiles coloured (hot), brightness following
           max over channels of |map|
select     --images/--targets/--methods by name, file name, stem, layer and index,
           order kept; unknown names and indices out of range are exit 2
synthetic  a 1-channel file with a failed and a not-done image, an all-zero map and a
           missing stimulus: gray tiles, black tile, "failed"/"not done" tiles, blank
           stimulus; without -o and without a display the figure goes to a file
gradcam    small.h5 with a /gradcam added (issue 12): a "gradcam" row per target after
           /saliency's methods, gray tiles that each look like their own Grad-CAM map,
           --methods gradcam alone; a file of Grad-CAM alone (no /saliency) shown too
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toolcheck as tc  # noqa: E402

sys.path.insert(0, tc.SCRIPTS)
import salview  # noqa: E402  (for the layout only: where each tile is in the PNG)

SALVIEW = os.path.join(tc.SCRIPTS, "salview.py")
INSET = 4   # pixels left out at each tile border (axes frame, resampling edge)
COARSE = 32  # tiles and maps are compared at this resolution
MATCH = 0.9  # a tile's lowest correlation with its own map (other maps of the same
             # image come close at this resolution, as they share their layout; the
             # own map must still be the best)


def salview_cmd(*args):
    return [sys.executable, SALVIEW] + [str(a) for a in args]


def expected_size(row_labels, nrows, ncols):
    L = salview.layout(nrows, ncols, row_labels, 1.8, 100)
    return L, (round(L["width"] * 100), round(L["height"] * 100))


def tile_box(L, r, c):
    """(x0, y0, x1, y1) pixels of tile (r, c), inset, in PNG coordinates (y down)."""
    d = L["dpi"]
    x0 = (L["left"] + c * (L["tile"] + L["gap"])) * d
    y0 = (L["top"] + r * (L["tile"] + L["gap"])) * d
    side = L["tile"] * d
    return (int(round(x0)) + INSET, int(round(y0)) + INSET,
            int(round(x0 + side)) - INSET, int(round(y0 + side)) - INSET)


def crop(px, box):
    x0, y0, x1, y1 = box
    return px[y0:y1, x0:x1].astype(np.float64)


def as_tile(arr01, L):
    """A 0..1 image (H, W) or (H, W, 3) as it should appear in a tile: resized to
    the tile's side, less the INSET border, as float 0..255."""
    side = int(round(L["tile"] * L["dpi"]))
    a = np.clip(arr01 * 255 + 0.5, 0, 255).astype(np.uint8)
    im = Image.fromarray(a).resize((side, side), Image.BILINEAR)
    return np.asarray(im, dtype=np.float64)[INSET:side - INSET, INSET:side - INSET]


def coarse(a, n=COARSE):
    """Mean over colour, then box-averaged to n x n: matplotlib's resampling of a
    224-px map into a smaller tile and ours differ pixel by pixel, not in blocks."""
    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a.mean(axis=2)
    im = Image.fromarray(a.astype(np.float32), "F").resize((n, n), Image.BOX)
    return np.asarray(im, np.float64)


def corr(a, b):
    """Correlation of two images compared at COARSE x COARSE."""
    a, b = coarse(a).ravel(), coarse(b).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def norm_rgb(m):
    """DNNBrain's ip.to_pil(np.abs(map), True) as floats, written out here."""
    a = np.abs(m.astype(np.float64))
    a = (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else a * 0
    return np.transpose(a, (1, 2, 0)) if a.shape[0] == 3 else a[0]


def norm_gray(m):
    a = np.abs(m.astype(np.float64)).max(axis=0)
    return (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else a * 0


def check_png(path, size, what):
    tc.require(os.path.isfile(path), f"{what}: {os.path.basename(path)} written")
    px, mode, fmt = tc.png_pixels(path)
    tc.check(fmt == "PNG" and mode in ("RGB", "RGBA"), f"{what}: a PNG in RGB(A)",
             f"{fmt} {mode}")
    tc.check(os.path.getsize(path) > 20000, f"{what}: not a trivial file",
             f"{os.path.getsize(path)} bytes")
    h, w = px.shape[:2]
    tc.check(abs(w - size[0]) <= 2 and abs(h - size[1]) <= 2,
             f"{what}: {size[0]}x{size[1]} px as laid out", f"{w}x{h}")
    return px


def maps_match(px, L, d, cells, what, gray=False):
    """For each (row, col, i, t, m): the tile correlates best with map (i, t, m) among
    all maps of the file, and by more than MATCH."""
    allmaps = [(i, t, m) for i in range(len(d["image"])) for t in range(len(d["target"]))
               for m in range(len(d["method"]))]
    worst, margin, wrong = 1.0, 1.0, []
    for r, c, i, t, m in cells:
        tile = crop(px, tile_box(L, r, c))
        if gray:
            tile = tile.sum(axis=2)     # hot: brightness grows with the value
        tile = tile if tile.ndim == 2 else tile.mean(axis=2)
        scores = {}
        for key in allmaps:
            mp = d["saliency"][key]
            exp = as_tile(norm_gray(mp) if gray else norm_rgb(mp), L)
            scores[key] = corr(tile, exp)
        best = max(scores, key=scores.get)
        worst = min(worst, scores[(i, t, m)])
        others = [v for k, v in scores.items() if k != (i, t, m)]
        margin = min(margin, scores[(i, t, m)] - max(others)) if others else margin
        if best != (i, t, m):
            wrong.append(f"tile ({r},{c}) looks most like map {best}, not {(i, t, m)}")
    tc.check(not wrong, f"{what}: each tile shows its own map", "; ".join(wrong) or
             f"{len(cells)} tiles; own map ahead of the next by {margin:.3f} or more")
    tc.check(worst > MATCH, f"{what}: tiles correlate with their maps > {MATCH}",
             f"lowest {worst:.3f}")


def stimuli_match(px, L, files, what, channels=3):
    for c, f in enumerate(files):
        tile = crop(px, tile_box(L, 0, c))
        with Image.open(f) as im:
            im = im.convert("RGB" if channels == 3 else "L").resize((224, 224),
                                                                     Image.BILINEAR)
            exp = as_tile(np.asarray(im, np.float64) / 255, L)
        if channels == 1:
            tile = tile.mean(axis=2)
        cc = corr(tile, exp)
        tc.check(cc > 0.9, f"{what}: stimulus tile {c} is {os.path.basename(f)}",
                 f"correlation {cc:.3f}")


def small(args):
    path = os.path.join(args.data, "out", "small", "small.h5")
    return path, tc.read_output(path)


def test_rgb(args):
    path, d = small(args)
    out = os.path.join(args.work, "rgb.png")
    r = tc.run(salview_cmd(path, "-o", out), cwd=args.work)
    tc.require(r.rc == 0, "salview exits 0", f"exit {r.rc}")
    tc.check("stimuli found 2/2" in r.out, "both stimuli found from the config path")
    labels = ["stimulus"] + [f"{t} {m}" for t in d["target"] for m in d["method"]]
    L, size = expected_size(labels, 5, 2)
    tc.check(5 * 180 <= size[1] <= 5 * 180 + 200 and 2 * 180 <= size[0] <= 2 * 180 + 300,
             "the layout is 5 rows of 180-px tiles by 2 columns, plus margins", str(size))
    px = check_png(out, size, "rgb")
    cells = [(1 + t * 2 + m, i, i, t, m) for i in range(2) for t in range(2) for m in range(2)]
    maps_match(px, L, d, cells, "rgb")
    tiles = [crop(px, tile_box(L, r, c)) for r, c, *_ in cells]
    tc.check(all(np.abs(t[..., 0] - t[..., 2]).mean() > 1 for t in tiles),
             "rgb: map tiles are in colour (3 channels kept)")
    imgs = [os.path.join(args.data, "img", n) for n in ("img_00.jpg", "img_01.png")]
    stimuli_match(px, L, imgs, "rgb")


def test_gray(args):
    path, d = small(args)
    out = os.path.join(args.work, "gray.png")
    r = tc.run(salview_cmd(path, "--mode", "gray", "-o", out), cwd=args.work)
    tc.require(r.rc == 0, "salview --mode gray exits 0", f"exit {r.rc}")
    labels = ["stimulus"] + [f"{t} {m}" for t in d["target"] for m in d["method"]]
    L, size = expected_size(labels, 5, 2)
    px = check_png(out, size, "gray")
    cells = [(1 + t * 2 + m, i, i, t, m) for i in range(2) for t in range(2) for m in range(2)]
    maps_match(px, L, d, cells, "gray", gray=True)
    t = crop(px, tile_box(L, 1, 0))
    bright = t.sum(axis=2) > 200
    tc.check(bright.any() and (t[bright][:, 0] >= t[bright][:, 2]).mean() > 0.95,
             "gray: tiles coloured with 'hot' (red >= blue where bright)")


def test_select(args):
    path, d = small(args)
    cases = [
        ("by stem, layer and method name", ["--images", "img_01", "--targets", "conv5",
                                            "--methods", "guided"], [(1, 1, 1)]),
        ("by file name and target name", ["--images", "img_00.jpg", "--targets",
                                          "fc3:540", "--methods", "vanilla"], [(0, 0, 0)]),
        ("by whole name and indices", ["--images", "../img/img_01.png", "--targets", "0",
                                       "--methods", "1"], [(1, 0, 1)]),
        ("indices, order kept", ["--images", "1", "0", "--targets", "-1",
                                 "--methods", "vanilla"], [(1, 1, 0), (0, 1, 0)]),
    ]
    for k, (what, opts, want) in enumerate(cases):
        out = os.path.join(args.work, f"select{k}.png")
        r = tc.run(salview_cmd(path, "-o", out, *opts), cwd=args.work)
        if not tc.check(r.rc == 0, f"{what}: exit 0", f"exit {r.rc}"):
            continue
        label = [f"{d['target'][want[0][1]]} {d['method'][want[0][2]]}"]
        L, size = expected_size(["stimulus"] + label, 2, len(want))
        px = check_png(out, size, what)
        maps_match(px, L, d, [(1, c, i, t, m) for c, (i, t, m) in enumerate(want)], what)
    for what, opts, msg in (
            ("unknown image", ["--images", "nosuch"], "no image named 'nosuch'"),
            ("image index out of range", ["--images", "2"], "out of range"),
            ("unknown target", ["--targets", "fc3:1"], "no target named 'fc3:1'"),
            ("unknown method", ["--methods", "deconvnet"], "no method named 'deconvnet'")):
        r = tc.run(salview_cmd(path, "-o", os.path.join(args.work, "bad.png"), *opts))
        tc.check(r.rc == 2 and msg in r.err, f"{what}: exit 2 saying \"{msg}\"",
                 f"exit {r.rc}")
    notours = os.path.join(args.work, "other.h5")
    import h5py
    with h5py.File(notours, "w") as f:
        f["x"] = np.arange(3)
    r = tc.run(salview_cmd(notours, "-o", os.path.join(args.work, "bad.png")))
    tc.check(r.rc == 2 and "not a salpipe output" in r.err,
             "an HDF5 file that is not salpipe's: exit 2 saying so", f"exit {r.rc}")


def test_synthetic(args):
    path = os.path.join(args.data, "synthetic", "gray1.h5")
    d = tc.read_output(path)
    out = os.path.join(args.work, "syn.png")
    r = tc.run(salview_cmd(path, "-o", out), cwd=args.work)
    tc.require(r.rc == 0, "salview on a 1-channel file exits 0", f"exit {r.rc}")
    tc.check("stimuli found 2/3" in r.out,
             "stimuli: one absolute path, one relative to config_path, one missing")
    labels = ["stimulus", "fc2:1 vanilla", "fc2:2 vanilla"]
    L, size = expected_size(labels, 3, 3)
    px = check_png(out, size, "synthetic")
    t = crop(px, tile_box(L, 1, 0))
    tc.check(np.abs(t[..., 0] - t[..., 2]).max() < 2, "a 1-channel map is shown in gray")
    exp = as_tile(norm_rgb(d["saliency"][0, 0, 0]), L)
    tc.check(corr(t.mean(axis=2), exp) > 0.8, "the 1-channel tile shows its map",
             f"correlation {corr(t.mean(axis=2), exp):.3f}")
    z = crop(px, tile_box(L, 2, 0))
    tc.check(z.max() < 3, "an all-zero map is a black tile (not NaN, not white)",
             f"max {z.max():.0f}")
    for c, what in ((1, "failed"), (2, "not done")):
        for row in (1, 2):
            t = crop(px, tile_box(L, row, c))
            fill = np.median(t)
            tc.check(abs(fill - 217) < 4 and t.min() < 100,
                     f"image {c} ({what}), row {row}: a gray tile with text",
                     f"median {fill:.0f}, darkest {t.min():.0f}")
    s = crop(px, tile_box(L, 0, 1))
    tc.check(np.median(s) > 250 and s.min() < 100,
             "the missing stimulus: a blank tile with its name")
    stimuli_match(px, L, [os.path.join(args.data, "synthetic", n) for n in ("g0.png",)],
                  "synthetic", channels=1)
    g = os.path.join(args.work, "syn_gray.png")
    r = tc.run(salview_cmd(path, "--mode", "gray", "-o", g), cwd=args.work)
    tc.check(r.rc == 0 and os.path.isfile(g), "gray mode on the 1-channel file: exit 0")

    # No -o and no display: the figure is written next to where salview runs.
    auto = os.path.join(args.work, "gray1_salview.png")
    env = tc.child_env(drop=("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND"))
    r = tc.run(salview_cmd(path), env=env, cwd=args.work)
    tc.check(r.rc == 0 and os.path.isfile(auto) and "no display" in r.err,
             "without -o and without a display: gray1_salview.png written, with a note")


def add_gradcam(src, dst, alone=False):
    """A copy of src with /gradcam (N, T, H, W): a different slanted ramp per (i, t);
    alone: without /saliency and with an empty /method (a job of Grad-CAM alone)."""
    import h5py
    import shutil
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        n, t, _, _, h, w = f["saliency"].shape
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        cams = np.zeros((n, t, h, w), np.float32)
        for i in range(n):
            for k in range(t):
                a = np.pi * (i * t + k) / (n * t)
                cams[i, k] = np.maximum(np.cos(a) * yy + np.sin(a) * xx - 0.3, 0)
        f["gradcam"] = cams
        if alone:
            del f["saliency"], f["method"]
            f.create_dataset("method", (0,), dtype=h5py.string_dtype())
    return cams


def test_gradcam(args):
    src, d = small(args)
    path = os.path.join(args.work, "cams.h5")
    cams = add_gradcam(src, path)
    out = os.path.join(args.work, "cams.png")
    r = tc.run(salview_cmd(path, "-o", out), cwd=args.work)
    tc.require(r.rc == 0, "salview on a file with /gradcam exits 0", f"exit {r.rc} {r.err}")
    M = len(d["method"]) + 1
    labels = ["stimulus"] + [f"{t} {m}" for t in d["target"] for m in d["method"] + ["gradcam"]]
    L, size = expected_size(labels, 1 + 2 * M, 2)
    px = check_png(out, size, "gradcam")
    wrong, worst = [], 1.0
    for i in range(2):
        for t in range(2):
            tile = crop(px, tile_box(L, 1 + t * M + M - 1, i))
            if np.abs(tile[..., 0] - tile[..., 2]).max() >= 2:
                wrong.append(f"tile ({t}, {i}) is not gray")
            scores = {(j, k): corr(tile.mean(axis=2), as_tile(norm_rgb(cams[j, k][None]), L))
                      for j in range(2) for k in range(2)}
            worst = min(worst, scores[(i, t)])
            if max(scores, key=scores.get) != (i, t):
                wrong.append(f"tile ({t}, {i}) looks like another Grad-CAM map")
    tc.check(not wrong and worst > MATCH, "gradcam rows: gray tiles, each its own map",
             "; ".join(wrong) or f"lowest correlation {worst:.3f}")
    sel = os.path.join(args.work, "cams_only.png")
    r = tc.run(salview_cmd(path, "-o", sel, "--methods", "gradcam"), cwd=args.work)
    tc.check(r.rc == 0 and "2 targets x 1 methods" in r.out, "--methods gradcam alone",
             f"exit {r.rc} {r.out}")
    alone = os.path.join(args.work, "alone.h5")
    add_gradcam(src, alone, alone=True)
    r = tc.run(salview_cmd(alone, "-o", os.path.join(args.work, "alone.png")), cwd=args.work)
    tc.check(r.rc == 0 and "2 targets x 1 methods" in r.out,
             "a file of Grad-CAM alone (no /saliency)", f"exit {r.rc} {r.err}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("rgb", "gray", "select", "synthetic", "gradcam"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    tc.fresh_dir(args.work)
    print(f"== salview {args.mode}")
    tc.run_main(lambda: globals()["test_" + args.mode](args))


if __name__ == "__main__":
    main()
