/*
 * Helpers of the layer kernel tests (test_layers.c): random data, layer descriptions
 * with PyTorch's output sizes, and checks that print one line per case. Compiled
 * with the test, once per precision (real.h); the tolerances depend on it.
 * Allocation failure ends the test program (exit 2): it is a test, not the core.
 */
#ifndef SAL_LAYER_CHECK_H
#define SAL_LAYER_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"

#if SAL_DOUBLE
#define PREC "f64"
#else
#define PREC "f32"
#endif

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- random data ----------------------------------------------------------------- */

typedef struct {
    uint64_t s; /* splitmix64 state: any seed works */
} rng;

uint64_t rng_next(rng *r);
double rng_uniform(rng *r, double lo, double hi); /* in [lo, hi) */

/* The arrays below are malloc'ed, exactly n long (so ASan sees overruns); caller
 * frees. */
void *xmalloc(size_t bytes);
real *alloc_nan(size_t n); /* all NaN: an element a kernel forgets to write stays NaN */
real *alloc_uniform(size_t n, rng *r, double lo, double hi);
/* In [-2, 2], never closer than the kink margin to 0, where ReLU bends. */
real *alloc_away_from_zero(size_t n, rng *r);
/* Distinct multiples of 1/8 in random order, so max-pool windows never tie and no
 * finite-difference step changes a window's maximum. */
real *alloc_distinct(size_t n, rng *r);

/* ---- checks: each prints "[f64] what check max abs diff D (tol T) OK|FAIL" and
 * returns 1 on failure, 0 on success. NaN always fails. --------------------------- */

double max_diff(const real *got, const double *want, size_t n); /* inf if any NaN */
double max_abs(const double *x, size_t n);
int report(const char *what, const char *check, double diff, double tol);
/* got == want exactly. */
int check_exact(const char *what, const char *check, const real *got, const double *want,
                size_t n);
/* Forward against direct loops in double; ref_abs[i] is the sum of |terms| of
 * element i, which scales the precision's rounding tolerance. */
int check_ref(const char *what, const real *got, const double *ref, const double *ref_abs,
              size_t n);
/* Integer arrays equal (max-pool argmax). */
int check_index(const char *what, const int32_t *got, const int32_t *want, size_t n);

/* One layer's forward with its parameters bound: out (nout) = fn(ctx, in (nin)). */
typedef struct {
    void (*fn)(const void *ctx, real *out, const real *in);
    const void *ctx;
    size_t nin, nout;
} layer_fn;

/* din, the kernel's backward for dout, against central differences of
 * s(x) = <dout, f(x)> (summed in double) at every element of x. x is perturbed in
 * place and restored. Tolerance: ~1e-6 (f64) of max(1, max |gradient|). */
int check_fd(const char *what, const layer_fn *f, real *x, const real *dout,
             const real *din);

/* ---- layer descriptions: output shapes by PyTorch's formulas ---------------------- */

/* out = floor((H + 2p - k) / s) + 1 per axis; weight (OC, C/groups, kh, kw). */
sal_layer conv_layer(int C, int H, int W, int OC, int kh, int kw, int sh, int sw, int ph,
                     int pw, int groups);
/* torch's pooling_output_shape (dilation 1), ceil_mode included. */
int pool_out(int in, int k, int s, int p, int ceil_mode);
sal_layer maxpool_layer(int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                        int ceil_mode);
/* Any other kind: just the shapes. */
sal_layer plain_layer(sal_layer_kind kind, int C, int H, int W, int OC, int OH, int OW);
size_t in_elems(const sal_layer *L);
size_t out_elems(const sal_layer *L);

/* The tests of the graph networks' kernels (test_layers_graph.c): avgpool2d, affine,
 * 1x1 and asymmetric convolutions. Returns the number of failed checks. */
int test_layers_graph(rng *r);
/* The tests of the kernels' fast paths (test_layers_fast.c): im2col/col2im paths and
 * max-pool lanes, exactly. Returns the number of failed checks. */
int test_layers_fast(rng *r);

#endif
