#!/usr/bin/env python3
"""core/quadrature.c against the definitions it implements (CTest quadrature_python,
~3 s): Captum's captum/attr/_utils/approximation_methods.py, written out here:

    gausslegendre(n):     alphas  = 0.5 * (1 + numpy.polynomial.legendre.leggauss(n)[0])
                          weights = 0.5 * leggauss(n)[1]
    riemann_trapezoid(n): weights = [1/n] * n with the first and last halved
                          alphas  = numpy.linspace(0, 1, n)   (Captum < 0.4.1)
                                    torch.linspace(0, 1, n)   (Captum >= 0.4.1, float32)

    check_quadrature.py TEST_QUADRATURE

Gauss-Legendre: the C's nodes are Newton's on the Legendre recurrence, numpy's come
from a companion matrix's eigenvalues and one Newton step, so they agree to ~1e-15,
not bit for bit: numpy's own weights are off by up to 1.3e-14 (n = 257), the C's by
< 1e-16, both measured against 40-digit mpmath; the bounds are 3e-14 against numpy
and 4e-16 (an ulp near 1 is 1.1e-16) against mpmath for some n. riemann_trapezoid: weights and numpy.linspace alphas bit for
bit; torch.linspace's float32 alphas within float32 rounding (reported).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def mp_check(gl):
    """The C's Gauss-Legendre against 40 digits: each node refined by Newton on
    mpmath's Legendre polynomials, its weight 2 / ((1 - x^2) P_n'(x)^2)."""
    import mpmath
    mpmath.mp.dps = 40
    worst = 0.0
    for n in list(range(1, 21)) + [50, 128, 256, 257]:
        for a, w in gl[n][: (n + 1) // 2]:
            x = 2 * mpmath.mpf(a) - 1
            for _ in range(3 if n > 1 else 0):
                p, q = mpmath.legendre(n, x), mpmath.legendre(n - 1, x)
                x -= p / (n * (x * p - q) / (x * x - 1))
            p, q = mpmath.legendre(n, x), mpmath.legendre(n - 1, x)
            dp = n * (x * p - q) / (x * x - 1) if n > 1 else mpmath.mpf(1)
            e = max(abs(float((1 + x) / 2) - a), abs(float(1 / ((1 - x * x) * dp * dp)) - w))
            worst = max(worst, e)
            if e > 4e-16:
                sys.exit(f"FAIL gausslegendre n={n}: node {a!r} weight {w!r} off the "
                         f"40-digit values by {e:.3g} (bound 4e-16)")
    print(f"gausslegendre n=1..20, 50, 128, 256, 257 vs 40-digit mpmath: within {worst:.2g}")


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "quad.txt")
        subprocess.run([exe, "--dump", path], check=True)
        rules = {0: {}, 1: {}}
        with open(path) as f:
            for line in f:
                rule, n, i, a, w = line.split()
                rules[int(rule)].setdefault(int(n), []).append(
                    (float.fromhex(a), float.fromhex(w)))
    gl, tr = rules[0], rules[1]
    assert sorted(gl) == list(range(1, 301)), "gausslegendre: steps 1..300 expected"
    assert sorted(tr) == list(range(2, 301)), "riemann_trapezoid: steps 2..300 expected"

    worst_a = worst_w = 0.0
    for n, vals in gl.items():
        a, w = np.array(vals).T
        x, v = np.polynomial.legendre.leggauss(n)
        ea = np.abs(a - 0.5 * (1 + x)).max()
        ew = np.abs(w - 0.5 * v).max()
        worst_a, worst_w = max(worst_a, ea), max(worst_w, ew)
        if ea > 3e-14 or ew > 3e-14:
            sys.exit(f"FAIL gausslegendre n={n}: alphas off numpy by {ea:.3g}, "
                     f"weights by {ew:.3g} (bound 3e-14)")
    print(f"gausslegendre n=1..300 vs numpy leggauss: alphas within {worst_a:.2g}, "
          f"weights within {worst_w:.2g} (bound 3e-14)")
    mp_check(gl)

    import torch
    worst_t, nearest = 0.0, 0
    for n, vals in tr.items():
        a, w = np.array(vals).T
        deltas = [1 / n] * n
        deltas[0] /= 2
        deltas[-1] /= 2
        if not np.array_equal(w, np.array(deltas)):
            sys.exit(f"FAIL riemann_trapezoid n={n}: weights differ from Captum's")
        if not np.array_equal(a, np.linspace(0, 1, n)):
            sys.exit(f"FAIL riemann_trapezoid n={n}: alphas differ from numpy.linspace "
                     f"by {np.abs(a - np.linspace(0, 1, n)).max():.3g}")
        t = np.array(torch.linspace(0, 1, n).tolist())
        worst_t = max(worst_t, np.abs(a - t).max())
        nearest += np.array_equal(a.astype(np.float32), t)
    if worst_t > 2.0 ** -23:
        sys.exit(f"FAIL riemann_trapezoid: alphas off torch.linspace by {worst_t:.3g}")
    print(f"riemann_trapezoid n=2..300: weights and numpy.linspace alphas bit for bit; "
          f"torch.linspace (float32, Captum >= 0.4.1) within {worst_t:.2g}, the nearest "
          f"float32 of ours for {nearest} of {len(tr)} n")


if __name__ == "__main__":
    main()
