/*
 * Integrated Gradients' quadrature: the path points alpha in [0, 1] and their
 * weights, as Captum's captum/attr/_utils/approximation_methods.py defines them
 * (read at Captum v0.8.0; the definitions are unchanged since v0.4.1 except where
 * noted):
 *
 *  "gausslegendre": numpy.polynomial.legendre.leggauss(n) gives the n-point
 *      Gauss-Legendre nodes x and weights w on [-1, 1]; Captum maps them to [0, 1]:
 *      alpha = 0.5 (1 + x), weight = 0.5 w (so the weights sum to 1). Here the
 *      nodes come from Newton's method on the three-term Legendre recurrence in
 *      double (no numpy), ascending like leggauss's: within 2e-16 of 40-digit
 *      values, and of leggauss's within 1.1e-16 (nodes) and 1.3e-14 (weights,
 *      numpy's being the less accurate) for n <= 300 (tests/leaf/check_quadrature.py).
 *  "riemann_trapezoid": weights 1/n each with the first and last halved (they sum
 *      to (n - 1)/n, not 1: that is Captum's definition, kept), alphas n evenly
 *      spaced points from 0 to 1 inclusive (spacing 1/(n - 1)). Captum asserts
 *      n > 1. Captum < 0.4.1 took the alphas from numpy.linspace(0, 1, n) in double;
 *      since 0.4.1 from torch.linspace(0, 1, n), which is float32: we keep the
 *      double values, bit for bit numpy.linspace's (alpha_i = i * (1.0 / (n - 1)),
 *      the last exactly 1), which differ from torch's float32 ones by float32
 *      rounding only (< 6e-8; docs/saliency.md).
 */
#include <math.h>
#include <stdio.h>

#include "attrib.h"

const char *sal_rule_name(sal_rule rule) {
    switch (rule) {
    case SAL_RULE_GAUSSLEGENDRE: return "gausslegendre";
    case SAL_RULE_RIEMANN_TRAPEZOID: return "riemann_trapezoid";
    }
    return NULL;
}

/* P_n(x) and P_n'(x) by the recurrence (k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}. */
static void legendre(int n, double x, double *p, double *dp) {
    double p0 = 1.0, p1 = x;
    for (int k = 1; k < n; k++) {
        double p2 = ((2.0 * k + 1.0) * x * p1 - k * p0) / (k + 1.0);
        p0 = p1, p1 = p2;
    }
    /* n >= 1 here; p1 = P_n, p0 = P_{n-1}. */
    *p = p1;
    *dp = n * (x * p1 - p0) / ((x - 1.0) * (x + 1.0));
}

/* Gauss-Legendre on [-1, 1] mapped to [0, 1]: the k-th largest root of P_n, found
 * by Newton from Tricomi's estimate cos(pi (k + 3/4) / (n + 1/2)), gives the
 * nodes k and n-1-k at once, so the rule is exactly symmetric (an odd n's middle
 * node is exactly 1/2). */
static void gauss_legendre(int n, double *alphas, double *weights) {
    const double pi = 0x1.921fb54442d18p+1;
    for (int k = 0; k < (n + 1) / 2; k++) {
        double x = cos(pi * (k + 0.75) / (n + 0.5)), p, dp;
        if (2 * k + 1 == n) {
            x = 0.0; /* the middle root of an odd n */
        } else {
            /* Quadratic convergence: once a step is below 1e-15, one more leaves x
             * at rounding level. */
            for (int it = 0, last = 0; it < 100 && !last; it++) {
                legendre(n, x, &p, &dp);
                double dx = p / dp;
                x -= dx;
                last = fabs(dx) < 1e-15;
            }
        }
        legendre(n, x, &p, &dp);
        double w = 2.0 / ((1.0 - x) * (1.0 + x) * dp * dp);
        alphas[n - 1 - k] = 0.5 * (1.0 + x);
        alphas[k] = 0.5 * (1.0 - x);
        weights[k] = weights[n - 1 - k] = 0.5 * w;
    }
}

/* Captum's riemann_trapezoid with numpy.linspace's alphas (see the top). */
static void riemann_trapezoid(int n, double *alphas, double *weights) {
    const double step = 1.0 / (n - 1);
    for (int i = 0; i < n; i++) {
        alphas[i] = i * step;
        weights[i] = 1.0 / n;
    }
    alphas[n - 1] = 1.0;
    weights[0] /= 2;
    weights[n - 1] /= 2;
}

int sal_quadrature(sal_rule rule, int steps, double *alphas, double *weights, char *err,
                   size_t errlen) {
    const char *name = sal_rule_name(rule);
    if (!name) {
        snprintf(err, errlen, "integrated gradients: unknown quadrature rule %d", (int)rule);
        return -1;
    }
    int min = rule == SAL_RULE_RIEMANN_TRAPEZOID ? 2 : 1;
    if (steps < min || steps > SAL_QUADRATURE_MAX_STEPS) {
        snprintf(err, errlen,
                 "integrated gradients: rule %s needs %d to %d steps, got %d", name, min,
                 SAL_QUADRATURE_MAX_STEPS, steps);
        return -1;
    }
    if (rule == SAL_RULE_GAUSSLEGENDRE)
        gauss_legendre(steps, alphas, weights);
    else
        riemann_trapezoid(steps, alphas, weights);
    return 0;
}
