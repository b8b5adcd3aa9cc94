#!/usr/bin/env python3
"""An independent Python implementation of salpipe's SmoothGrad noise (core/noise.c,
docs/saliency.md "Building blocks of the methods"), and its test against the C
generator: tests/leaf/noise_dump's output must equal this module's bit for bit on
many keys, and Philox4x32-10 must give Random123's known answers.

    noise_ref.py NOISE_DUMP WORKDIR        (the CTest test noise_python, ~5 s)

Written from the definition, not from the C: Philox in numpy uint64 arithmetic,
vectorised over counters; the floating point in Python's math module (sqrt, log,
cos, sin of the C library, as the C calls them), one element at a time.
"""
import math
import os
import subprocess
import sys

import numpy as np

MASK = np.uint64(0xFFFFFFFF)
M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
W = (0x9E3779B9, 0xBB67AE85)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter arrays (c0..c3) under the key (k0, k1), all as
    uint32 values in uint64 arrays; returns four arrays."""
    x = [np.asarray(c, dtype=np.uint64) & MASK for c in (c0, c1, c2, c3)]
    for r in range(10):
        key0 = np.uint64((k0 + r * W[0]) & 0xFFFFFFFF)
        key1 = np.uint64((k1 + r * W[1]) & 0xFFFFFFFF)
        p0 = M[0] * x[0]  # < 2^64: exact in uint64
        p1 = M[1] * x[2]
        x = [(p1 >> np.uint64(32)) ^ x[1] ^ key0, p1 & MASK,
             (p0 >> np.uint64(32)) ^ x[3] ^ key1, p0 & MASK]
    return x


def normals(seed, image, sample, first, count):
    """N(seed, image, sample, e) for e in [first, first + count), float64."""
    if count == 0:
        return np.zeros(0)
    e = np.arange(first, first + count, dtype=np.uint64)
    pairs = np.unique(e >> np.uint64(1))
    x = philox4x32_10(pairs & MASK, pairs >> np.uint64(32),
                      np.full(pairs.shape, sample, np.uint64),
                      np.full(pairs.shape, image, np.uint64),
                      seed & 0xFFFFFFFF, seed >> 32)
    a = ((x[1] << np.uint64(32)) | x[0]) >> np.uint64(11)
    b = ((x[3] << np.uint64(32)) | x[2]) >> np.uint64(11)
    z = {}
    for p, ai, bi in zip(pairs.tolist(), a.tolist(), b.tolist()):
        u1 = (ai + 1) * 2.0 ** -53  # in (0, 1]
        u2 = bi * 2.0 ** -53  # in [0, 1)
        r = math.sqrt(-2.0 * math.log(u1))
        theta = math.tau * u2
        z[2 * p] = r * math.cos(theta)
        z[2 * p + 1] = r * math.sin(theta)
    return np.array([z[i] for i in e.tolist()], dtype=np.float64)


def known_answers():
    kat = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
           ((0xffffffff,) * 4, (0xffffffff,) * 2,
            (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in kat:
        got = tuple(int(v) for v in philox4x32_10(*[np.uint64(c) for c in ctr], *key))
        assert got == want, f"Python philox {ctr} {key}: {got} != {want}"


def main():
    dump, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    known_answers()
    print("Python Philox4x32-10: Random123's 3 known answers")
    # (seed, image, samples, count, first): small and huge keys, odd starts, the
    # counter's high word (pairs >= 2^32), a full 3x224x224 image's count.
    cases = [(0, 0, 3, 1000, 0), (1, 0, 2, 999, 1), (2**32, 1, 2, 501, 7),
             (2**64 - 1, 2**32 - 1, 2, 300, 0), (12345, 7, 5, 777, 2**33 - 5),
             (0xDEADBEEFCAFEF00D, 123456, 2, 256, 2**41 + 1), (42, 3, 1, 150528, 0)]
    rng = np.random.default_rng(2026)
    cases += [(int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)),
               int(rng.integers(0, 2**32)), 3, int(rng.integers(1, 100)),
               int(rng.integers(0, 2**50))) for _ in range(40)]
    total = 0
    for seed, image, samples, count, first in cases:
        path = os.path.join(work, "noise.npy")
        subprocess.run([dump, str(seed), str(image), str(samples), str(count), path,
                        str(first)], check=True)
        c = np.load(path)
        assert c.shape == (samples, count) and c.dtype == np.float64, c.shape
        for s in range(samples):
            ref = normals(seed, image, s, first, count)
            same = c[s].view(np.uint64) == ref.view(np.uint64)
            if not same.all():
                i = int(np.argmin(same))
                sys.exit(f"FAIL seed {seed} image {image} sample {s} element {first + i}: "
                         f"C {c[s, i]!r} != Python {ref[i]!r} "
                         f"({int((~same).sum())} of {count} differ)")
            total += count
    print(f"noise_dump == Python reference bit for bit: {total} values, "
          f"{len(cases)} keys")
    # The hook refuses what it cannot do, with exit 1.
    bad = subprocess.run([dump, "1", "2"], capture_output=True)
    assert bad.returncode == 1 and b"usage" in bad.stderr, bad


if __name__ == "__main__":
    main()
