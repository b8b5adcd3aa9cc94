/*
 * Helpers of the layer kernel tests; see layer_check.h. The tolerances are the
 * precision's: exact cases are exact in both, the rest scale with its rounding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_check.h"

#if SAL_DOUBLE
static const double REF_TOL = 1e-13; /* forward vs loops, times the sum of |terms|   */
static const double FD_TOL = 1e-6;   /* backward vs FD, times max(1, max |gradient|) */
static const double FD_STEP = 1e-3;
#else
static const double REF_TOL = 1e-5;
/* A float32 forward rounds each output by ~6e-8 relative, which a central difference
 * divides by the step: hence the large step and the loose tolerance. */
static const double FD_TOL = 2e-4;
static const double FD_STEP = 0.05;
#endif
#define KINK_MARGIN 0.1 /* > FD_STEP: no finite-difference step crosses a kink */

/* ---- random data ----------------------------------------------------------------- */

uint64_t rng_next(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double rng_uniform(rng *r, double lo, double hi) {
    return lo + (hi - lo) * (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_layers: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

real *alloc_nan(size_t n) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) x[i] = (real)NAN;
    return x;
}

real *alloc_uniform(size_t n, rng *r, double lo, double hi) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) x[i] = (real)rng_uniform(r, lo, hi);
    return x;
}

/* Values in [-2, 2] at least KINK_MARGIN away from 0, the ReLU kink. */
real *alloc_away_from_zero(size_t n, rng *r) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) {
        double v;
        do v = rng_uniform(r, -2, 2);
        while (fabs(v) < KINK_MARGIN);
        x[i] = (real)v;
    }
    return x;
}

/* Distinct multiples of 1/8 in random order (exact in float32 for n < 2^20): no two
 * max-pool candidates tie, and a step below 1/16 never changes a window's maximum. */
real *alloc_distinct(size_t n, rng *r) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) x[i] = (real)(((double)i - (double)n / 2) * 0.125);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i);
        real t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
    return x;
}

/* Max |got - want|; infinite when any element is NaN. */
double max_diff(const real *got, const double *want, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d != d) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

double max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* Prints one result line; returns 1 when diff exceeds tol (or is NaN). */
int report(const char *what, const char *check, double diff, double tol) {
    int ok = diff <= tol;
    printf("[" PREC "] %-46s %-9s max abs diff %-9.3g (tol %.3g) %s\n", what, check, diff,
           tol, ok ? "OK" : "FAIL");
    return !ok;
}

int check_exact(const char *what, const char *check, const real *got,
                       const double *want, size_t n) {
    return report(what, check, max_diff(got, want, n), 0);
}

/* Forward against the double loops; ref_abs[i] = sum of |terms| of element i. */
int check_ref(const char *what, const real *got, const double *ref,
                     const double *ref_abs, size_t n) {
    return report(what, "forward", max_diff(got, ref, n), REF_TOL * max_abs(ref_abs, n));
}

int check_index(const char *what, const int32_t *got, const int32_t *want,
                       size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != want[i];
    printf("[" PREC "] %-46s %-9s %zu of %zu differ %s\n", what, "argmax", bad, n,
           bad ? "FAIL" : "OK");
    return bad != 0;
}

/* s(x) = <dout, f(x)>, summed in double. out: nout scratch. */
static double probe(const layer_fn *f, const real *x, const real *dout, real *out) {
    f->fn(f->ctx, out, x);
    double s = 0;
    for (size_t i = 0; i < f->nout; i++) s += (double)dout[i] * (double)out[i];
    return s;
}

/* Central differences of s at every element of x (restored on return) against din,
 * the kernel's backward for dout. The step is measured after rounding x +- h to real,
 * so only the forward's own rounding remains. */
int check_fd(const char *what, const layer_fn *f, real *x, const real *dout,
                    const real *din) {
    real *out = alloc_nan(f->nout);
    double *fd = xmalloc(sizeof(double) * f->nin);
    for (size_t i = 0; i < f->nin; i++) {
        const real xi = x[i];
        const real xp = (real)((double)xi + FD_STEP), xm = (real)((double)xi - FD_STEP);
        x[i] = xp;
        double sp = probe(f, x, dout, out);
        x[i] = xm;
        double sm = probe(f, x, dout, out);
        x[i] = xi;
        fd[i] = (sp - sm) / ((double)xp - (double)xm);
    }
    double scale = max_abs(fd, f->nin);
    int fail = report(what, "bwd fd", max_diff(din, fd, f->nin),
                      FD_TOL * (scale > 1 ? scale : 1));
    free(fd);
    free(out);
    return fail;
}

/* ---- layer descriptions (PyTorch's output-size formulas) -------------------------- */

sal_layer conv_layer(int C, int H, int W, int OC, int kh, int kw, int sh, int sw,
                            int ph, int pw, int groups) {
    sal_layer L;
    memset(&L, 0, sizeof L);
    L.kind = SAL_LAYER_CONV;
    L.in_c = C, L.in_h = H, L.in_w = W;
    L.out_c = OC;
    L.out_h = (H + 2 * ph - kh) / sh + 1; /* floor((H + 2p - k) / s) + 1 */
    L.out_w = (W + 2 * pw - kw) / sw + 1;
    L.kh = kh, L.kw = kw, L.sh = sh, L.sw = sw, L.ph = ph, L.pw = pw;
    L.groups = groups;
    return L;
}

/* torch's pooling_output_shape with dilation 1: in ceil mode the last window must
 * start inside the input or the left padding, else it is dropped. */
int pool_out(int in, int k, int s, int p, int ceil_mode) {
    int out = (in + 2 * p - k + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

sal_layer maxpool_layer(int C, int H, int W, int kh, int kw, int sh, int sw, int ph,
                               int pw, int ceil_mode) {
    sal_layer L;
    memset(&L, 0, sizeof L);
    L.kind = SAL_LAYER_MAXPOOL;
    L.in_c = C, L.in_h = H, L.in_w = W;
    L.out_c = C;
    L.out_h = pool_out(H, kh, sh, ph, ceil_mode);
    L.out_w = pool_out(W, kw, sw, pw, ceil_mode);
    L.kh = kh, L.kw = kw, L.sh = sh, L.sw = sw, L.ph = ph, L.pw = pw;
    L.ceil_mode = ceil_mode;
    return L;
}

sal_layer plain_layer(sal_layer_kind kind, int C, int H, int W, int OC, int OH,
                             int OW) {
    sal_layer L;
    memset(&L, 0, sizeof L);
    L.kind = kind;
    L.in_c = C, L.in_h = H, L.in_w = W;
    L.out_c = OC, L.out_h = OH, L.out_w = OW;
    return L;
}

size_t in_elems(const sal_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }
size_t out_elems(const sal_layer *L) {
    return (size_t)L->out_c * L->out_h * L->out_w;
}
