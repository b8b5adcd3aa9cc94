#!/usr/bin/env python3
"""An independent Python implementation of salpipe's SmoothGrad noise (core/noise.c,
docs/saliency.md "Building blocks of the methods"), and its test against the C
generator: tests/leaf/noise_dump's output must equal this module's bit for bit on
many keys, and Philox4x32-10 must give Random123's known answers.

    noise_ref.py WORKDIR NOISE_DUMP...     (the CTest test noise_python, ~6 s)

Each NOISE_DUMP is noise_dump built for one of core/noise.c's paths (AVX-512, AVX2,
SSE2, portable C): all must give the same bits.

Written from the definition, not from the C: Philox in numpy uint64 arithmetic,
vectorised over counters; the floating point as numpy float64 array operations in
the documented order (IEEE +, -, *, /, sqrt and bit views: no library log, sin,
cos), so equal bits mean the C follows the definition. The approximations of log,
sin and cos are checked against math.log/sin/cos and mpmath (max ulp printed).
"""
import math
import os
import subprocess
import sys

import numpy as np

U64 = np.uint64
MASK = U64(0xFFFFFFFF)
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


# ---- the floating point, from docs/saliency.md "### Noise", as numpy float64 arrays:
# IEEE +, -, *, /, sqrt and bit views, each operation in the documented order.

F8 = np.float64
EXP_2P52 = U64(0x4330000000000000)  # the bits of 2^52
SQRT_HALF = U64(0x3FE6A09E667F3BCD)  # the bits of sqrt(0.5) rounded
MANT = U64((1 << 52) - 1)
LN2_HI = float.fromhex("0x1.62e42fefa3800p-1")  # ln 2 rounded to a multiple of 2^-43
LN2_LO = float.fromhex("0x1.ef35793c76730p-45")  # ln 2 - LN2_HI rounded
PI_2 = math.tau / 4  # pi/2 rounded
ROUND = 1.5 * 2.0 ** 52  # t + ROUND - ROUND: t rounded to an integer


def u53(v):
    """53-bit integers (uint64 array) as float64, exactly, through 2^52's mantissa."""
    hi = ((v >> U64(32)) | EXP_2P52).view(F8) - 2.0 ** 52
    lo = ((v & MASK) | EXP_2P52).view(F8) - 2.0 ** 52
    return hi * 2.0 ** 32 + lo


def log_u1(u):
    """log u for u in [2^-53, 1]: u = 2^k m, m in [sqrt(1/2), sqrt(2)), atanh series."""
    d = u.view(U64) - SQRT_HALF + U64(64 << 52)  # wraps like C's uint64_t
    k = ((d >> U64(52)) | EXP_2P52).view(F8) - (2.0 ** 52 + 64.0)
    m = (SQRT_HALF + (d & MANT)).view(F8)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    acc = np.full(u.shape, 2.0 / 21)
    for j in range(9, 0, -1):  # R = z (2/3 + z (2/5 + ... + z 2/21))
        acc = 2.0 / (2 * j + 1) + z * acc
    r = z * acc
    return k * LN2_HI + ((f - s * (f - r)) + k * LN2_LO)


def sin_kernel(x):
    """sin x, |x| <= pi/4: Taylor to x^17."""
    x2 = x * x
    acc = np.full(x.shape, 1.0 / math.factorial(17))
    for n in range(15, 1, -2):
        acc = (-1) ** ((n - 1) // 2) / math.factorial(n) + x2 * acc
    return x + (x * x2) * acc


def cos_kernel(x):
    """cos x, |x| <= pi/4: Taylor to x^16, 1 - x^2/2 with its rounding kept."""
    x2 = x * x
    acc = np.full(x.shape, 1.0 / math.factorial(16))
    for n in range(14, 3, -2):
        acc = (-1) ** (n // 2) / math.factorial(n) + x2 * acc
    h = 0.5 * x2
    w = 1.0 - h
    return w + (((1.0 - w) - h) + (x2 * x2) * acc)


def sincos_turn(u):
    """(cos 2 pi u, sin 2 pi u) for u in [0, 1): quarter turns, then the kernels."""
    t = 4.0 * u
    big = t + ROUND
    j = big - ROUND  # t rounded to the nearest integer, ties to even
    q = big.view(U64) & U64(3)
    x = (t - j) * PI_2
    sx, cx = sin_kernel(x), cos_kernel(x)
    swap = (q & U64(1)) == 1
    c = np.where(swap, sx, cx).view(U64) ^ (((q + U64(1)) & U64(2)) << U64(62))
    s = np.where(swap, cx, sx).view(U64) ^ ((q & U64(2)) << U64(62))
    return c.view(F8), s.view(F8)


def normals(seed, image, sample, first, count):
    """N(seed, image, sample, e) for e in [first, first + count), float64."""
    if count == 0:
        return np.zeros(0)
    e = np.arange(first, first + count, dtype=U64)
    p0 = first // 2
    pairs = np.arange(p0, (first + count - 1) // 2 + 1, dtype=U64)
    x = philox4x32_10(pairs & MASK, pairs >> U64(32),
                      np.full(pairs.shape, sample, U64), np.full(pairs.shape, image, U64),
                      seed & 0xFFFFFFFF, seed >> 32)
    a = ((x[1] << U64(32)) | x[0]) >> U64(11)
    b = ((x[3] << U64(32)) | x[2]) >> U64(11)
    u1 = u53(a) * 2.0 ** -53 + 2.0 ** -53  # (a + 1) 2^-53 in (0, 1], exact
    u2 = u53(b) * 2.0 ** -53  # in [0, 1)
    r = np.sqrt(-2.0 * log_u1(u1))
    c, s = sincos_turn(u2)
    z = np.empty((len(pairs), 2))
    z[:, 0], z[:, 1] = r * c, r * s
    return z.reshape(-1)[(e - U64(2 * p0)).astype(np.int64)]


def ulps(got, want):
    """|got - want| in units of the last place of want."""
    return np.abs(got - want) / np.spacing(np.abs(want))


def accuracy(rng):
    """The floating point against math.log, math.sin, math.cos (glibc, < 1 ulp) and
    the whole angle against mpmath; returns the max errors in ulps."""
    half = int(math.sqrt(0.5) * 2 ** 53)  # u1 near the split at sqrt(1/2) and 1/2^k
    edges = [0, 1, 2, 2 ** 51 - 1, 2 ** 52 - 1, 2 ** 52, 2 ** 53 - 2, 2 ** 53 - 1]
    edges += [half + d for d in range(-3, 4)] + [(half >> k) + d for k in range(1, 40, 7)
                                                 for d in range(-2, 3)]
    a = np.concatenate([rng.integers(0, 2 ** 53, 200000, dtype=np.uint64),
                        np.array(edges, dtype=np.uint64)])
    u1 = u53(a) * 2.0 ** -53 + 2.0 ** -53
    lg = log_u1(u1)
    ref = np.array([math.log(v) for v in u1.tolist()])
    nz = ref != 0
    assert (lg[~nz] == 0).all(), "log 1 != 0"
    err_log = float(ulps(lg[nz], ref[nz]).max())
    x = rng.uniform(-math.pi / 4, math.pi / 4, 200000)
    x = np.concatenate([x, [0.0, -0.0, 1e-300, math.pi / 4, -math.pi / 4]])
    sx, cx = sin_kernel(x), cos_kernel(x)
    xs = x.tolist()
    ref_s = np.array([math.sin(v) for v in xs])
    ref_c = np.array([math.cos(v) for v in xs])
    nz = ref_s != 0
    err_sin = float(ulps(sx[nz], ref_s[nz]).max())
    err_cos = float(ulps(cx, ref_c).max())
    # cos and sin of 2 pi u with u exact (the reduction is exact but for x's rounding)
    import mpmath
    mpmath.mp.prec = 120
    b = rng.integers(0, 2 ** 53, 20000, dtype=np.uint64)
    u2 = u53(b) * 2.0 ** -53
    c, s = sincos_turn(u2)
    tc = np.array([float(mpmath.cos(2 * mpmath.pi * mpmath.mpf(v))) for v in u2.tolist()])
    ts = np.array([float(mpmath.sin(2 * mpmath.pi * mpmath.mpf(v))) for v in u2.tolist()])
    err_turn = float(max(ulps(c, tc).max(), ulps(s, ts).max()))
    return err_log, err_sin, err_cos, err_turn


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
    work, dumps = sys.argv[1], sys.argv[2:]
    os.makedirs(work, exist_ok=True)
    known_answers()
    print("Python Philox4x32-10: Random123's 3 known answers")
    rng = np.random.default_rng(2026)
    # The C's log, sin, cos (equal to this module's bit for bit, below) are a few
    # ulp from the C library's; measured: log, sin, cos 1 ulp, cos/sin of 2 pi u 2 ulp.
    err = accuracy(rng)
    print("max error in ulp: log %.2f (vs math.log), sin %.2f, cos %.2f (vs math.sin, "
          "math.cos on [-pi/4, pi/4]), cos/sin 2 pi u %.2f (vs mpmath)" % err)
    assert max(err[:3]) <= 2.0 and err[3] <= 3.0, f"an approximation is too far off: {err}"
    # (seed, image, samples, count, first): small and huge keys, odd starts, the
    # counter's high word (pairs >= 2^32), a full 3x224x224 image's count.
    cases = [(0, 0, 3, 1000, 0), (1, 0, 2, 999, 1), (2**32, 1, 2, 501, 7),
             (2**64 - 1, 2**32 - 1, 2, 300, 0), (12345, 7, 5, 777, 2**33 - 5),
             (0xDEADBEEFCAFEF00D, 123456, 2, 256, 2**41 + 1), (42, 3, 2, 150528, 0),
             (7, 1, 1, 1, 0), (7, 1, 1, 1, 3), (7, 1, 1, 2, 3), (7, 1, 1, 513, 2**32 * 2 - 9),
             (9, 9, 1, 1000003, 11)]
    cases += [(int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)),
               int(rng.integers(0, 2**32)), 3, int(rng.integers(1, 100)),
               int(rng.integers(0, 2**50))) for _ in range(40)]
    for dump in dumps:
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
                    sys.exit(f"FAIL {os.path.basename(dump)}: seed {seed} image {image} "
                             f"sample {s} element {first + i}: C {c[s, i]!r} != Python "
                             f"{ref[i]!r} ({int((~same).sum())} of {count} differ)")
                total += count
        print(f"{os.path.basename(dump)} == Python reference bit for bit: {total} values, "
              f"{len(cases)} keys")
        # The hook refuses what it cannot do, with exit 1.
        bad = subprocess.run([dump, "1", "2"], capture_output=True)
        assert bad.returncode == 1 and b"usage" in bad.stderr, bad


if __name__ == "__main__":
    main()
