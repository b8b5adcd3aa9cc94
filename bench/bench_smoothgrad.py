"""PyTorch side of scripts/bench.sh's W4: SmoothGrad of the guided map, two ways.

    bench_smoothgrad.py batched ARCH IMAGES UNIT --reps R [--threads T] [--samples S]
                        [--noise SIGMA] [--dump MAP.npy]
    bench_smoothgrad.py loop    ARCH IMAGES UNIT ...the same options
    bench_smoothgrad.py check   ARCH IMAGE UNIT NOISE.npy OUTPUT.h5 [--noise SIGMA]

ARCH, IMAGES and UNIT as in bench_torch.py (one 1-based unit of the last layer). For
every image: x = the preprocessed image (DNNBrain's transform), sigma = SIGMA x
(max(x) - min(x)), S noisy copies x + sigma z with z ~ N(0, 1) from torch's generator,
and the map is the mean over the copies of the guided map of the unit at each copy:
one SmoothGrad map per image, as salpipe's `smoothgrad` with base "guided",
statistic "mean". The network is bench_torch.py's batched one: parameters frozen,
every ReLU module replaced by one autograd Function with the guided rule.

batched: the S copies of an image are one batch: one forward and one
  autograd.grad of the unit's sum over the batch, then the mean over the batch.
loop: one copy at a time (batch 1, one forward and one autograd.grad each), summed
  and divided by S, as Captum's NoiseTunnel does with nt_samples_batch_size=1 or
  DNNBrain's SmoothGrad loop; this is that loop at its cheapest (frozen parameters,
  no hooks re-registered per call), so it flatters the loop, not salpipe.
check: not timed. salpipe's map of one image (OUTPUT.h5's /saliency[0, 0, 0]) against
  the same SmoothGrad in PyTorch float32 computed with salpipe's own noise (NOISE.npy
  from tests/leaf/noise_dump: (S, C*H*W) float64); prints one JSON record.

Timing as bench_torch.py: decoding and preprocessing count, `import torch`, building
the network and writing the maps do not; one untimed warm-up image runs first.
batched/loop print one JSON object: the time of each repetition, the maps per
repetition (one per image) and the median maps/s.
"""
import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from bench_torch import RuleReLU, TRANSFORM, build, load, prepare_batched


def guided_grad(model, xs, unit):
    """Guided maps (n, C, H, W) of the unit (1-based) at the inputs xs (n, C, H, W)."""
    xs = xs.requires_grad_(True)
    RuleReLU.guided = True
    out = model(xs)
    (g,) = torch.autograd.grad(out[:, unit - 1].sum(), xs)
    RuleReLU.guided = None
    return g


def sigma_of(x, noise):
    return noise * (x.max() - x.min())


def smoothgrad_batched(model, x, unit, samples, noise, gen, z=None):
    """SmoothGrad (C, H, W) of one image x (C, H, W): the copies as one batch."""
    if z is None:
        z = torch.randn((samples, *x.shape), generator=gen, dtype=x.dtype)
    g = guided_grad(model, x.unsqueeze(0) + sigma_of(x, noise) * z, unit)
    return g.mean(0)


def smoothgrad_loop(model, x, unit, samples, noise, gen):
    """The same, one copy per forward and backward pass."""
    sigma, acc = sigma_of(x, noise), torch.zeros_like(x)
    for _ in range(samples):
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        acc += guided_grad(model, (x + sigma * z).unsqueeze(0), unit)[0]
    return acc / samples


def run(mode, model, paths, unit, samples, noise, keep_first=False):
    fn = smoothgrad_batched if mode == "batched" else smoothgrad_loop
    gen = torch.Generator().manual_seed(0)
    first = None
    for p in paths:
        m = fn(model, TRANSFORM(load(p)), unit, samples, noise, gen)
        if keep_first and first is None:
            first = m.numpy().copy()
    return len(paths), first


def check(a, model):
    """salpipe's map of image 0 against PyTorch's with salpipe's noise."""
    import h5py
    z = torch.from_numpy(np.load(a.noise_file)).to(torch.float32)
    x = TRANSFORM(load(a.images))
    z = z.view(z.shape[0], *x.shape)
    ref = smoothgrad_batched(model, x, a.unit, z.shape[0], a.noise, None, z).numpy()
    with h5py.File(a.output, "r") as f:
        ours = f["saliency"][0, 0, 0]
        status = f["status"][:]
    rec = {"kind": "check", "wl": "W4", "status_all_done": bool((status == 1).all()),
           "shape": list(ours.shape), "nan_maps": int(np.isnan(ours).any()),
           "samples": int(z.shape[0]),
           "max_rel_diff_vs_torch": float(np.abs(ours - ref).max() / np.abs(ref).max())}
    print(json.dumps(rec))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("batched", "loop", "check"))
    ap.add_argument("arch")
    ap.add_argument("images", help="list file (batched, loop) or one image (check)")
    ap.add_argument("unit", type=int)
    ap.add_argument("noise_file", nargs="?", help="check: noise_dump's NOISE.npy")
    ap.add_argument("output", nargs="?", help="check: salpipe's OUTPUT.h5")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--dump", help="save the first image's map (C, H, W) as .npy")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    model = prepare_batched(build(a.arch))
    if a.mode == "check":
        if not (a.noise_file and a.output):
            ap.error("check needs NOISE.npy and OUTPUT.h5")
        check(a, model)
        return
    with open(a.images) as f:
        paths = [line.strip() for line in f if line.strip()]
    run(a.mode, model, paths[:1], a.unit, a.samples, a.noise)  # warm-up
    times, maps = [], 0
    for _ in range(a.reps):
        t0 = time.perf_counter()
        maps = run(a.mode, model, paths, a.unit, a.samples, a.noise)[0]
        times.append(time.perf_counter() - t0)
    if a.dump:
        np.save(a.dump, run(a.mode, model, paths[:1], a.unit, a.samples, a.noise, True)[1])
    med = statistics.median(times)
    json.dump({"mode": "sg_" + a.mode, "arch": a.arch, "samples": a.samples, "noise": a.noise,
               "batch": a.samples if a.mode == "batched" else 1, "threads": a.threads,
               "torch": torch.__version__, "images": len(paths), "maps": maps, "times": times,
               "median_s": med, "maps_per_s": maps / med}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
