#!/usr/bin/env python3
"""End to end: salpipe on seeded AlexNet against PyTorch, and across rank counts.

    test_e2e.py float32 --salpipe ... --mpiexec ... --model ... --data ... --work ...
    test_e2e.py float64 ...

Images: the shared photo (absolute path) and three crops of it (PNG, small JPEG,
grayscale PNG; relative paths, resolved against the config's directory). Targets
fc3 units [540, 23] and conv5 unit 3; methods vanilla, guided, deconvnet. The
reference is DIR/e2e/ref.h5 (make_data.py: PIL + torchvision + SPEC §1 ReLU rules).

float32: run alone, under `mpiexec -n 1`, `-n 2` and `-n 3 --oversubscribe`; each map's
relative L2 distance to torch float64 is at most 5 x torch float32's own distance
+ 1e-5 for at least half of the 36 maps and at most 5% for all (a near-tie decided
the other way in float32 moves a deep map by a few percent, and which ones do
depends on the BLAS kernels), activations within 5 x torch32's error; /saliency and /activation are bit-identical in all
four files; with `convolution = "direct"` (-n 2) the same bounds, and the default's
maps within 1e-4 relative L2 of it but not identical (Winograd ran). Then with `batch = 3` (two batches, of 3 and 1 images) under `-n 1` with
`threads = 1` and under `-n 2` with `threads = 2` (images decoded and maps compressed
by two threads): the same bounds, and bit-identical to each other (the thread
count does not change the maps; see also test_threads.py).
float64 (`precision = "float64"`, compression 0, `-n 2`): every map's
max |salpipe - torch64| / max |torch64| <= 1e-9, activations to 1e-9 relative.
"""
import os

import h5py
import numpy as np

from common import (Fatal, check, check_same_outputs, fresh_dir, main_guard, parser,
                    read_output, require, salpipe, write_config)

TARGETS = [("fc3", [540, 23]), ("conv5", [3])]
TARGET_LABELS = ["fc3:540", "fc3:23", "conv5:3"]
METHODS = ["vanilla", "guided", "deconvnet"]


def setup(args, name, precision, compression, batch=1, threads=1, convolution=None):
    """The config in the work dir, listing images relative to it; returns (cfg, out,
    listed image strings)."""
    e2e = os.path.join(args.data, "e2e")
    with h5py.File(os.path.join(e2e, "ref.h5"), "r") as f:
        photo = f.attrs["images"][0]
    rel = [os.path.relpath(os.path.join(e2e, n), args.work)
           for n in ("crop_a.png", "crop_b.jpg", "crop_c_gray.png")]
    listed = [photo] + rel
    out = os.path.join(args.work, f"{name}.h5")
    cfg = write_config(os.path.join(args.work, f"{name}.toml"), args.model,
                       {"files": listed}, TARGETS, f"{name}.h5", METHODS,
                       run={"batch": batch, "threads": threads, "precision": precision,
                            **({"convolution": convolution} if convolution else {})},
                       output_extra={"compression": compression})
    return cfg, out, listed


def load_ref(args):
    with h5py.File(os.path.join(args.data, "e2e", "ref.h5"), "r") as f:
        return {k: f[k][()] for k in ("maps_f64", "maps_f32", "act_f64", "act_f32")}


def check_labels(d, listed, dtype):
    check(d["image"] == listed, "/image lists the images as written in the config",
          f"{d['image']}")
    check(d["target"] == TARGET_LABELS, "/target labels", f"{d['target']}")
    check(d["method"] == METHODS, "/method in config order", f"{d['method']}")
    check(d["saliency"].shape == (4, 3, 3, 3, 224, 224) and d["saliency"].dtype == dtype,
          f"/saliency is {np.dtype(dtype).name} (4, 3, 3, 3, 224, 224)",
          f"{d['saliency'].dtype}{d['saliency'].shape}")
    check(d["activation"].shape == (4, 3) and d["activation"].dtype == dtype,
          f"/activation is {np.dtype(dtype).name} (4, 3)",
          f"{d['activation'].dtype}{d['activation'].shape}")
    check(np.all(d["status"] == 1), "/status all 1", f"{d['status']}")


def compare_float32(d, ref, what):
    """Per map: rel L2 distance to torch64 <= 5 x torch32's own + 1e-5."""
    s = d["saliency"].astype(np.float64).reshape(4, 3, 3, -1)
    r64 = ref["maps_f64"].reshape(4, 3, 3, -1)
    r32 = ref["maps_f32"].astype(np.float64).reshape(4, 3, 3, -1)
    norm = np.linalg.norm(r64, axis=-1)
    d_sal = np.linalg.norm(s - r64, axis=-1) / norm
    d_t32 = np.linalg.norm(r32 - r64, axis=-1) / norm
    bound = 5 * d_t32 + 1e-5
    worst = np.unravel_index(np.argmax(d_sal / bound), d_sal.shape)
    check(np.all(norm > 0), f"{what}: every torch64 map is non-zero")
    # A ReLU input or max-pool pair within float32 rounding of a tie may be decided
    # the other way than in float64, and which pairs do depends on how the BLAS
    # kernels round (docs/reliability.md, "Kernel sets": the mirrored crop's deep maps
    # move by ~2-3% under some kernel sets, none under others). So: most maps within
    # the tight bound, and every map within 5% (a wrong image, target or method order
    # is ~100% off; a systematic slip, e.g. in preprocessing, moves most maps, so at
    # least half must meet the tight bound: 27 of 36 do with OpenBLAS's SkylakeX
    # kernels here, all 36 with Prescott's). The exact check is the float64 one, and
    # test_reference's float32 oracle copies float64's decisions to tell flips apart.
    tight = d_sal <= bound
    check(tight.sum() >= 18,
          f"{what}: at least half of the 36 maps with rel L2 to torch64 <= 5 x torch32's "
          "+ 1e-5",
          f"{int(tight.sum())} maps; max salpipe {d_sal.max():.3g}, torch32 "
          f"{d_t32.max():.3g}, worst map (image, target, method) "
          f"{tuple(int(i) for i in worst)}: {d_sal[worst]:.3g} vs bound {bound[worst]:.3g}")
    check(np.all(d_sal <= 0.05), f"{what}: every map within 5% rel L2 of torch64 "
          "(near-tie flips allowed)", f"max {d_sal.max():.3g}")
    for m, name in enumerate(METHODS):
        print(f"    {name:9s} rel L2 to torch64: salpipe max {d_sal[:, :, m].max():.3g}, "
              f"torch32 max {d_t32[:, :, m].max():.3g}")
    a, a64, a32 = d["activation"].astype(np.float64), ref["act_f64"], ref["act_f32"]
    err, err32 = np.abs(a - a64), np.abs(a32.astype(np.float64) - a64)
    abound = 5 * err32 + 1e-5 * np.abs(a64)
    check(np.all(err <= abound),
          f"{what}: /activation within 5 x torch32's error + 1e-5 relative of torch64",
          f"max |diff| {err.max():.3g}, torch32 {err32.max():.3g}, max ratio "
          f"{(err / abound).max():.3g}")
    # the stored map is the signed gradient, not a preview
    check(d["saliency"][:, :, 0].min() < 0 < d["saliency"][:, :, 0].max(),
          f"{what}: vanilla maps are signed")


def run_float32(args):
    ref = load_ref(args)
    outs = {}
    runs = [(None, 1, 1, None), (1, 1, 1, None), (2, 1, 1, None), (3, 1, 1, None),
            (1, 3, 1, None), (2, 3, 2, None), (2, 1, 1, "direct"), (2, 1, 1, "fastest"),
            (3, 1, 1, "fastest")]
    for ranks, batch, threads, conv in runs:
        name = "alone" if ranks is None else f"n{ranks}"
        what = "no mpirun" if ranks is None else f"mpiexec -n {ranks}"
        if batch > 1:
            name += f"_b{batch}_t{threads}"
            what += f", batch {batch}, threads {threads}"
        if conv:
            name += f"_{conv}"
            what += f", convolution = {conv}"
        print(f"\n== float32, {what}")
        cfg, out, listed = setup(args, name, "float32", 4, batch, threads, conv)
        r = salpipe(args, [cfg], ranks)
        if not check(r.rc == 0, f"{what}: exit 0", f"exit {r.rc}"):
            continue
        require(os.path.exists(out), f"{what}: output file written", out)
        d = read_output(out)
        check_labels(d, listed, np.float32)
        check(not np.isnan(d["saliency"]).any(), f"{what}: no NaN in /saliency")
        compare_float32(d, ref, what)
        outs[name] = d
    print("\n== float32 runs identical across rank counts")
    if "alone" not in outs:
        raise Fatal("the run without mpirun failed; nothing to compare with")
    for name in ("n1", "n2", "n3"):
        check(name in outs, f"{name} run finished")
        if name in outs:
            check_same_outputs(outs["alone"], outs[name], f"alone vs {name}")
    if check("n1_b3_t1" in outs and "n2_b3_t2" in outs, "both batch-3 runs finished"):
        check_same_outputs(outs["n1_b3_t1"], outs["n2_b3_t2"],
                           "batch 3: -n 1 threads 1 vs -n 2 threads 2")
    # convolution = "direct" passed the same bounds above; the default ("fast":
    # Winograd backward of conv3-5) must differ from it by rounding only: measured
    # 8.2e-7 at most (relative L2, SkylakeX kernels; both paths see the same forward
    # decisions), and a wrong transform is off by order 1. This run costs ~10 s.
    if check("n2" in outs and "n2_direct" in outs, "the direct run finished"):
        a = outs["n2"]["saliency"].astype(np.float64).reshape(4, 3, 3, -1)
        b = outs["n2_direct"]["saliency"].astype(np.float64).reshape(4, 3, 3, -1)
        rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)
        check(0 < rel.max() <= 1e-4, "fast vs direct: maps differ, by rounding only "
              "(0 < rel L2 <= 1e-4)", f"max rel L2 {rel.max():.3g}")
    # convolution = "fastest" (Winograd forward too) passed the same bounds against
    # PyTorch above, and is bit-identical for any number of ranks like the default.
    if check("n2_fastest" in outs and "n3_fastest" in outs, "the fastest runs finished"):
        check_same_outputs(outs["n2_fastest"], outs["n3_fastest"], "fastest: -n 2 vs -n 3")
        a = outs["n2_fastest"]["saliency"].astype(np.float64).reshape(4, 3, 3, -1)
        b = outs["n2_direct"]["saliency"].astype(np.float64).reshape(4, 3, 3, -1)
        rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)
        print(f"   fastest vs direct: max rel L2 {rel.max():.3g}")
        check(rel.max() > 0, "fastest vs direct: the Winograd forward ran (maps differ)")


def run_float64(args):
    ref = load_ref(args)
    print("\n== float64, mpiexec -n 2, compression 0")
    cfg, out, listed = setup(args, "f64", "float64", 0)
    r = salpipe(args, [cfg], 2)
    require(r.rc == 0, "float64: exit 0", f"exit {r.rc}")
    d = read_output(out)
    check_labels(d, listed, np.float64)
    s = d["saliency"].reshape(4, 3, 3, -1)
    r64 = ref["maps_f64"].reshape(4, 3, 3, -1)
    rel = np.abs(s - r64).max(axis=-1) / np.abs(r64).max(axis=-1)
    check(np.all(rel <= 1e-9), "float64: 36 maps, max|diff| / max|torch64| <= 1e-9",
          f"worst {rel.max():.3g}")
    for m, name in enumerate(METHODS):
        print(f"    {name:9s} max|diff|/max|ref|: {rel[:, :, m].max():.3g}")
    a, a64 = d["activation"], ref["act_f64"]
    arel = np.abs(a - a64) / np.maximum(np.abs(a64), 1e-30)
    check(np.all(arel <= 1e-9), "float64: /activation within 1e-9 relative of torch64",
          f"worst {arel.max():.3g}")
    with h5py.File(out, "r") as f:
        ds = f["saliency"]
        check(ds.compression is None and not ds.shuffle,
              "compression = 0: no deflate, no shuffle", f"{ds.compression}, {ds.shuffle}")


def main():
    ap = parser(__doc__)
    ap.add_argument("mode", choices=("float32", "float64"))
    args = ap.parse_args()
    fresh_dir(args.work)
    if args.mode == "float32":
        run_float32(args)
    else:
        run_float64(args)


if __name__ == "__main__":
    main_guard(main)
