"""How far float32 maps are from float64, salpipe's and PyTorch's, over many images.

    bench_f32_error.py ARCH MODEL.h5 IMAGES SALPIPE WORKDIR [--units 540,23]
                       [--ranks 2] [--modes fast,direct,fastest]

ARCH is a torchvision constructor (torch.manual_seed(0) + ARCH(): the weights of
MODEL.h5, written by `export_torchvision.py ARCH --seed 0`); IMAGES a text file with
one image path per line. For every image, target unit (of the last layer) and method
(vanilla, guided) this computes four kinds of maps:

  salpipe float32 in each convolution mode of --modes, and salpipe float64 (direct);
  PyTorch float32 and float64 (frozen weights, batches of 4, one autograd.grad per
  seed: bench_torch.py's `retain` strategy)

and prints, per configuration, the relative L2 distance ||a - b|| / ||b|| of each
float32 map to its own implementation's float64 map: median, 90th percentile,
maximum, and how many maps are above 1e-3 and 1e-2. The two float64 sets are
compared too (they must agree to ~1e-15, or the comparison means nothing). The last
line is a JSON object with every number, for docs/performance.md.

A map's float32 error is small (~1e-6) unless a ReLU or max-pool decision of the
forward pass lies within rounding of a tie and goes the other way than in float64;
then the map changes where that unit's gradient flowed. Whether that happens depends
on the image and the implementation's rounding, so one image says little: this looks
at the distribution.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch  # noqa: E402  (same directory)


def salpipe_maps(salpipe, ranks, model, images, units, workdir, mode, precision):
    tag = f"{precision}-{mode}"
    out = os.path.join(workdir, f"f32err-{tag}.h5")
    cfg = os.path.join(workdir, f"f32err-{tag}.toml")
    with open(cfg, "w") as f:
        f.write(f'[model]\npath = "{model}"\n[images]\nlist = "{images}"\n'
                f'[[targets]]\nlayer = "{last_name(model)}"\n'
                f'units = [{", ".join(map(str, units))}]\n'
                f'[saliency]\nmethods = ["vanilla", "guided"]\n'
                f'[output]\npath = "{out}"\ncompression = 0\n'
                f'[run]\nbatch = 4\nthreads = 1\nconvolution = "{mode}"\n'
                f'precision = "{precision}"\n')
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    t = time.time()
    r = subprocess.run(["mpirun", "-n", str(ranks), "--oversubscribe", "--bind-to", "none",
                        salpipe, "--overwrite", cfg], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_f32_error.py: salpipe {cfg} failed ({r.returncode}):\n{r.stderr}")
    print(f"  salpipe {tag}: {time.time() - t:.1f} s", file=sys.stderr)
    with h5py.File(out, "r") as f:
        return np.asarray(f["saliency"][...], dtype=np.float64)  # (N, T, M, C, H, W)


def last_name(model):
    """The target layer: the last one (ResNet's `fc`, AlexNet's and VGG's `fc3`)."""
    return "fc" if "resnet" in os.path.basename(model).lower() else "fc3"


def torch_maps(arch, paths, units, dtype):
    t = time.time()
    model = bench_torch.prepare_batched(bench_torch.build(arch).to(dtype))
    maps = []
    for b in range(0, len(paths), 4):
        x = torch.stack([bench_torch.tensor(bench_torch.load(p), dtype)
                         for p in paths[b:b + 4]])
        maps.append(bench_torch.batched_maps(model, x, units, "retain").double().numpy())
    print(f"  PyTorch {dtype}: {time.time() - t:.1f} s", file=sys.stderr)
    return np.concatenate(maps)  # (N, T, M, C, H, W)


def rel_l2(a, b):
    """Per map (axes N, T, M) relative L2 distance of a to b."""
    d = np.sqrt(((a - b) ** 2).sum(axis=(3, 4, 5)))
    n = np.sqrt((b ** 2).sum(axis=(3, 4, 5)))
    return (d / np.maximum(n, 1e-300)).reshape(-1)


def summary(e):
    return {"median": float(np.median(e)), "p90": float(np.percentile(e, 90)),
            "max": float(e.max()), "above_1e-3": int((e > 1e-3).sum()),
            "above_1e-2": int((e > 1e-2).sum()), "maps": int(e.size)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arch")
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("salpipe")
    ap.add_argument("workdir")
    ap.add_argument("--units", default="540,23")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--modes", default="fast,direct,fastest")
    a = ap.parse_args()
    a.model, a.images, a.workdir = map(os.path.abspath, (a.model, a.images, a.workdir))
    a.salpipe = os.path.abspath(a.salpipe)
    units = [int(u) for u in a.units.split(",")]
    with open(a.images) as f:
        paths = [ln.strip() for ln in f if ln.strip()]
    os.makedirs(a.workdir, exist_ok=True)
    torch.set_num_threads(2)

    ref_s = salpipe_maps(a.salpipe, a.ranks, a.model, a.images, units, a.workdir,
                         "direct", "float64")
    ref_t = torch_maps(a.arch, paths, units, torch.float64)
    both = rel_l2(ref_s, ref_t)
    rows = {"PyTorch float32": summary(rel_l2(torch_maps(a.arch, paths, units,
                                                         torch.float32), ref_t))}
    for mode in a.modes.split(","):
        rows[f"salpipe float32 {mode}"] = summary(rel_l2(
            salpipe_maps(a.salpipe, a.ranks, a.model, a.images, units, a.workdir, mode,
                         "float32"), ref_s))
    print(f"{a.arch}, {len(paths)} images x {len(units)} units x 2 methods = "
          f"{both.size} maps; each float32 map against its implementation's float64 map "
          f"(relative L2); the float64 sets differ by at most {both.max():.1e}")
    print(f"{'configuration':28s} {'median':>9s} {'p90':>9s} {'max':>9s} "
          f"{'>1e-3':>6s} {'>1e-2':>6s}")
    for k, s in rows.items():
        print(f"{k:28s} {s['median']:9.1e} {s['p90']:9.1e} {s['max']:9.1e} "
              f"{s['above_1e-3']:6d} {s['above_1e-2']:6d}")
    print(json.dumps({"arch": a.arch, "images": len(paths), "units": units,
                      "float64_agreement": float(both.max()), "rows": rows}))


if __name__ == "__main__":
    main()
