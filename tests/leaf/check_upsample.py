#!/usr/bin/env python3
"""core/upsample.c against torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, size=(OH, OW)) itself (CTest upsample_torch, ~3 s).

    check_upsample.py TEST_UPSAMPLE WORKDIR

For each of 40 size pairs (up and down, square and not, 1x1 and 1xW, equal sizes,
24 random ones), two random maps (normal values; one ReLU'd like Grad-CAM's) in
float64 and float32 go through the C (test_upsample --run) and through torch as
one-channel maps, shape (2, 1, H, W). Both precisions must be bit-identical.

That holds for torch's AVX2/AVX-512 kernels, whose rounding (fused multiply-adds,
float32 sums in double) core/upsample.c reproduces; on a CPU where torch runs its
plain (DEFAULT) kernels the fused steps round twice, so there the bound is 2 ulp
of the map's largest magnitude, and the script says so.
"""
import os
import struct
import subprocess
import sys

import numpy as np
import torch

CASES = [(7, 7, 224, 224), (14, 14, 224, 224), (13, 13, 227, 227), (1, 1, 224, 224),
         (6, 6, 299, 299), (14, 10, 224, 160), (6, 9, 227, 100), (1, 7, 31, 224),
         (224, 224, 7, 7), (227, 227, 13, 13), (50, 40, 31, 17), (9, 9, 9, 9),
         (2, 3, 5, 7), (5, 5, 4, 6), (3, 17, 3, 5), (17, 3, 40, 3)]


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    config = torch.__config__.show()
    exact = "CPU capability usage: AVX2" in config or "CPU capability usage: AVX512" in config
    rng = np.random.default_rng(12)
    cases = CASES + [tuple(int(v) for v in rng.integers(1, 60, 4)) for _ in range(24)]
    inputs = []
    with open(os.path.join(work, "cases.bin"), "wb") as f:
        for H, W, OH, OW in cases:
            x = rng.standard_normal((2, H, W))
            x[1] = np.maximum(x[1], 0)
            for dt, bits in ((np.float64, 64), (np.float32, 32)):
                xi = x.astype(dt)
                inputs.append((bits, xi, OH, OW))
                f.write(struct.pack("<6i", bits, 2, H, W, OH, OW))
                f.write(xi.tobytes())
    subprocess.run([exe, "--run", os.path.join(work, "cases.bin"),
                    os.path.join(work, "out.bin")], check=True)
    raw = open(os.path.join(work, "out.bin"), "rb").read()
    at, total, worst = 0, {32: 0, 64: 0}, 0.0
    for bits, xi, OH, OW in inputs:
        dt = np.float64 if bits == 64 else np.float32
        size = 2 * OH * OW * np.dtype(dt).itemsize
        c = np.frombuffer(raw[at:at + size], dtype=dt).reshape(2, OH, OW)
        at += size
        t = torch.nn.functional.interpolate(torch.from_numpy(xi)[:, None], size=(OH, OW),
                                            mode="bilinear",
                                            align_corners=False)[:, 0].numpy()
        case = f"{xi.shape[1]}x{xi.shape[2]} -> {OH}x{OW} float{bits}"
        total[bits] += c.size
        ulps = float(np.abs(c.astype(np.float64) - t).max()
                     / np.spacing(dt(np.abs(xi).max())))
        worst = max(worst, ulps)
        if exact and not np.array_equal(c, t):
            sys.exit(f"FAIL {case}: {int((c != t).sum())} of {c.size} elements differ "
                     f"from torch, by up to {ulps:.2f} ulp of the map's maximum")
        if not exact and ulps > 2:
            sys.exit(f"FAIL {case}: off torch by {ulps:.2f} ulp of the map's maximum "
                     f"(bound 2 for torch's DEFAULT kernels)")
    assert at == len(raw), "test_upsample wrote more than expected"
    how = ("bit-identical" if exact else
           f"within {worst:.2f} ulp (torch runs its DEFAULT kernels here, not AVX2)")
    print(f"{len(cases)} size pairs x 2 maps: float64 ({total[64]} elements) and float32 "
          f"({total[32]}) {how} to torch {torch.__version__}")


if __name__ == "__main__":
    main()
