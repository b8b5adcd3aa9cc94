/*
 * Unit tests of the kernels' fast paths (conv.c's im2col/col2im, maxpool.c's lanes),
 * part of test_layers (test_layers.c calls test_layers_fast()); compiled once per
 * precision like the rest:
 *   - convolutions whose every product and sum is exact (nonzero integers in
 *     [-8, 8], sums far below 2^24), so the forward and the backward must equal
 *     direct double loops exactly, whatever order the GEMM sums in: any element of
 *     im2col or col2im taken from or sent to a wrong place shows. Shapes cover the
 *     stride-1 "same" path (one shifted copy per (c, ky, kx); AlexNet conv2-5 and
 *     VGG-like, odd sizes, padding wider than the plane, OH != H), the row-phase
 *     path (strides 2, 3, 4 incl. conv1's 11x11 s4, sh != sw), the element loops
 *     (rows too wide for the phase buffer), groups, and batches whose GEMM parts
 *     (gemm.c) start mid-row and mid-image; the same batch on a parallel loop that
 *     runs its iterations in reverse order (the GEMM parts, and im2col / col2im as
 *     tasks of image x channel chunk) must give the same bits;
 *   - max pooling against a reference loop with PyTorch's rule written out (a later
 *     element wins when strictly greater or NaN), on inputs full of ties (values
 *     from {0, 1, 2}, like ReLU outputs), NaNs (two in a window: the last wins),
 *     -inf (all-(-inf) windows keep their first element), rows wider than one block
 *     of lanes, and padded / ceil_mode edges; values and argmax compared exactly.
 * Costs about a second per precision.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_check.h"

/* ---- exact convolutions ------------------------------------------------------------ */

/* Nonzero integers in [-8, 8]: products and sums of a few thousand stay exact. */
static real *alloc_small_ints(size_t n, rng *r) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) {
        int v = (int)(rng_next(r) % 16) - 8;
        x[i] = (real)(v >= 0 ? v + 1 : v);
    }
    return x;
}

/* Direct loops in double, n images: out (n,OC,OH,OW) and din (n,C,H,W). */
static void conv_direct(double *out, double *din, const real *x, const real *w,
                        const real *b, const real *dout, int n, const sal_layer *L) {
    const int Cg = L->in_c / L->groups, OCg = L->out_c / L->groups;
    const size_t nin = in_elems(L), nout = out_elems(L);
    for (size_t i = 0; i < n * nin; i++) din[i] = 0;
    for (int i = 0; i < n; i++)
        for (int oc = 0; oc < L->out_c; oc++)
            for (int oy = 0; oy < L->out_h; oy++)
                for (int ox = 0; ox < L->out_w; ox++) {
                    size_t o = i * nout + ((size_t)oc * L->out_h + oy) * L->out_w + ox;
                    double s = b[oc];
                    for (int c = 0; c < Cg; c++)
                        for (int ky = 0; ky < L->kh; ky++)
                            for (int kx = 0; kx < L->kw; kx++) {
                                int y = oy * L->sh - L->ph + ky, xx = ox * L->sw - L->pw + kx;
                                if (y < 0 || y >= L->in_h || xx < 0 || xx >= L->in_w) continue;
                                int ic = oc / OCg * Cg + c;
                                size_t at = i * nin + ((size_t)ic * L->in_h + y) * L->in_w + xx;
                                double wt = w[((oc * Cg + c) * L->kh + ky) * L->kw + kx];
                                s += wt * x[at];
                                din[at] += wt * dout[o];
                            }
                    out[o] = s;
                }
}

/* Runs the parts of a product last to first, on the calling thread: a schedule
 * unlike the serial one, as a thread pool's may be. */
static void reverse_for(void *pool, int n, sal_parallel_body body, void *arg) {
    (void)pool;
    for (int i = n - 1; i >= 0; i--) body(arg, i);
}

static int exact_conv_case(const char *name, const sal_layer *L, int n, int g, rng *r) {
    const size_t nin = in_elems(L), nout = out_elems(L);
    const size_t nw = (size_t)L->out_c * (L->in_c / L->groups) * L->kh * L->kw;
    real *x = alloc_small_ints(n * nin, r), *w = alloc_small_ints(nw, r);
    real *b = alloc_small_ints((size_t)L->out_c, r), *dout = alloc_small_ints(n * nout, r);
    real *scratch = alloc_nan(conv_scratch_elems(L, g));
    real *out = alloc_nan(n * nout), *din = alloc_nan(n * nin);
    real *out2 = alloc_nan(n * nout), *din2 = alloc_nan(n * nin);
    double *want_out = xmalloc(sizeof(double) * n * nout), *want_din = xmalloc(sizeof(double) * n * nin);
    conv_direct(want_out, want_din, x, w, b, dout, n, L);

    R(conv_forward)(out, x, n, w, b, L, scratch, g, NULL);
    int fail = check_exact(name, "forward", out, want_out, n * nout);
    for (size_t i = 0; i < conv_scratch_elems(L, g); i++) scratch[i] = (real)NAN;
    R(conv_backward)(din, dout, n, w, L, scratch, g, NULL);
    fail += check_exact(name, "backward", din, want_din, n * nin);

    /* The same on a loop that runs the GEMM parts and the copy tasks in reverse
     * order: the same bits. */
    sal_par par = {reverse_for, NULL};
    for (size_t i = 0; i < conv_scratch_elems(L, g); i++) scratch[i] = (real)NAN;
    R(conv_forward)(out2, x, n, w, b, L, scratch, g, &par);
    R(conv_backward)(din2, dout, n, w, L, scratch, g, &par);
    int same = !memcmp(out, out2, sizeof(real) * n * nout) &&
               !memcmp(din, din2, sizeof(real) * n * nin);
    printf("[" PREC "] %-46s %-9s %s\n", name, "par reversed: same bits", same ? "OK" : "FAIL");
    fail += !same;
    free(x), free(w), free(b), free(dout), free(scratch), free(out), free(din), free(out2);
    free(din2), free(want_out), free(want_din);
    return fail;
}

static int test_conv_paths(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, OC, kh, kw, sh, sw, ph, pw, groups, n, g;
    } cases[] = {
        /* stride 1, OW == W: one shifted copy per (c, ky, kx) */
        {"same 3x3 p1 13x13 (alexnet conv3-5)", 3, 13, 13, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
        {"same 5x5 p2 27x27 (alexnet conv2)", 2, 27, 27, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1},
        {"same 3x3 p1 7x5, odd", 3, 7, 5, 2, 3, 3, 1, 1, 1, 1, 1, 2, 2},
        {"same 5x5 p2 on 4x1: pw > W, empty rows", 2, 4, 1, 2, 5, 5, 1, 1, 2, 2, 1, 1, 1},
        {"same 5x5 p2 on 2x2", 1, 2, 2, 3, 5, 5, 1, 1, 2, 2, 1, 2, 1},
        {"same 5x3 p(0,1): OH < H", 2, 9, 6, 2, 5, 3, 1, 1, 0, 1, 1, 1, 1},
        {"same 3x7 p(3,3): OH > H", 1, 4, 8, 2, 3, 7, 1, 1, 3, 3, 1, 1, 1},
        {"same 3x3 p1 groups 2", 4, 6, 7, 4, 3, 3, 1, 1, 1, 1, 2, 1, 1},
        /* Batches of 13x13 planes: GEMM parts of ~256 columns start mid-image. */
        {"same 3x3 p1 13x13, 13 images in one GEMM", 2, 13, 13, 3, 3, 3, 1, 1, 1, 1, 1, 13, 13},
        {"same 3x3 p1 9x11, 9 images, groups of 7", 2, 9, 11, 2, 3, 3, 1, 1, 1, 1, 1, 9, 7},
        /* row phases */
        {"phases 11x11 s4 p2 (alexnet conv1)", 3, 39, 35, 2, 11, 11, 4, 4, 2, 2, 1, 1, 1},
        {"phases 11x11 s4 p2, 2 images in one GEMM", 3, 63, 63, 2, 11, 11, 4, 4, 2, 2, 1, 2, 2},
        {"phases 7x7 s2 p3 (resnet conv1)", 2, 21, 18, 2, 7, 7, 2, 2, 3, 3, 1, 3, 3},
        {"phases 3x3 s2 p1, 40x40 in parts", 1, 40, 40, 2, 3, 3, 2, 2, 1, 1, 1, 2, 2},
        {"phases 3x3 s3 p1", 2, 10, 11, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1},
        {"phases 3x2 s(1,2) p(1,0)", 2, 7, 9, 3, 3, 2, 1, 2, 1, 0, 1, 1, 1},
        {"phases 2x4 s(2,1) p(0,2)", 2, 6, 5, 2, 2, 4, 2, 1, 0, 2, 1, 1, 1},
        {"phases 3x3 s1 p0 (valid, OW < W)", 2, 8, 9, 2, 3, 3, 1, 1, 0, 0, 1, 3, 3},
        {"phases 5x5 s2 p4: pw > kx/2", 1, 5, 6, 2, 5, 5, 2, 2, 4, 4, 1, 1, 1},
        {"phases 3x3 s2 groups 2", 4, 9, 9, 4, 3, 3, 2, 2, 1, 1, 2, 2, 2},
        /* rows wider than conv.c's phase buffer: the element loops */
        {"rows 3x3 s2 p1 on 3x4200", 1, 3, 4200, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = conv_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].OC, cases[k].kh,
                                 cases[k].kw, cases[k].sh, cases[k].sw, cases[k].ph,
                                 cases[k].pw, cases[k].groups);
        fail += exact_conv_case(cases[k].name, &L, cases[k].n, cases[k].g, r);
    }
    return fail;
}

/* ---- max pooling: ties, NaN, -inf ------------------------------------------------- */

/* PyTorch's loop: padding is skipped, the first element of the clipped window is
 * the initial argmax with value -inf, and a later element wins when strictly
 * greater or NaN (so the last NaN of a window wins). */
static void maxpool_torch(real *out, int32_t *argmax, const real *in, const sal_layer *L) {
    for (int c = 0; c < L->in_c; c++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                int y0 = oy * L->sh - L->ph, x0 = ox * L->sw - L->pw;
                int y1 = y0 + L->kh < L->in_h ? y0 + L->kh : L->in_h;
                int x1 = x0 + L->kw < L->in_w ? x0 + L->kw : L->in_w;
                y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0;
                real best = -INFINITY;
                int32_t at = y0 * L->in_w + x0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        real v = in[((size_t)c * L->in_h + y) * L->in_w + x];
                        if (v > best || isnan(v)) best = v, at = y * L->in_w + x;
                    }
                size_t o = ((size_t)c * L->out_h + oy) * L->out_w + ox;
                out[o] = best, argmax[o] = at;
            }
}

/* Values from {0, 1, 2} (ties everywhere), with some NaN and -inf sprinkled in. */
static real *alloc_tied(size_t n, rng *r, int nan_per_mille, int ninf_per_mille) {
    real *x = xmalloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++) {
        int u = (int)(rng_next(r) % 1000);
        x[i] = u < nan_per_mille                   ? (real)NAN
               : u < nan_per_mille + ninf_per_mille ? (real)-INFINITY
                                                   : (real)(rng_next(r) % 3);
    }
    return x;
}

static int maxpool_case(const char *name, const sal_layer *L, const real *x) {
    const size_t nout = out_elems(L);
    real *out = alloc_nan(nout), *want = alloc_nan(nout);
    int32_t *arg = xmalloc(sizeof(int32_t) * nout), *want_arg = xmalloc(sizeof(int32_t) * nout);
    R(maxpool_forward)(out, arg, x, L);
    maxpool_torch(want, want_arg, x, L);
    size_t bad = 0, nans = 0;
    for (size_t i = 0; i < nout; i++) {
        bad += memcmp(&out[i], &want[i], sizeof(real)) != 0; /* NaN == NaN bitwise */
        nans += isnan(want[i]);
    }
    printf("[" PREC "] %-46s %-9s %zu of %zu differ (%zu NaN) %s\n", name, "values", bad,
           nout, nans, bad ? "FAIL" : "OK");
    int fail = bad != 0;
    fail += check_index(name, arg, want_arg, nout);
    free(out), free(want), free(arg), free(want_arg);
    return fail;
}

static int test_maxpool_paths(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, kh, kw, sh, sw, ph, pw, ceil_mode, nan, ninf;
    } cases[] = {
        {"pool 3x3 s2 55x55 ties (alexnet pool1)", 2, 55, 55, 3, 3, 2, 2, 0, 0, 0, 0, 0},
        {"pool 3x3 s2 27x27 ties + NaN", 3, 27, 27, 3, 3, 2, 2, 0, 0, 0, 30, 0},
        {"pool 3x3 s2 13x13 NaN and -inf", 3, 13, 13, 3, 3, 2, 2, 0, 0, 0, 60, 100},
        {"pool 3x3 s2 all -inf", 1, 9, 9, 3, 3, 2, 2, 0, 0, 0, 0, 1000},
        {"pool 3x3 s2 all NaN", 1, 9, 9, 3, 3, 2, 2, 0, 0, 0, 1000, 0},
        {"pool 2x2 s2 ties + NaN, 300 wide (lane blocks)", 2, 6, 300, 2, 2, 2, 2, 0, 0, 0, 20, 10},
        {"pool 3x3 s1 p1 ties + NaN (edges)", 2, 9, 70, 3, 3, 1, 1, 1, 1, 0, 20, 10},
        {"pool 3x3 s2 p1 ceil ties + NaN", 2, 12, 13, 3, 3, 2, 2, 1, 1, 1, 20, 10},
        {"pool 2x2 s2 ceil odd", 2, 7, 9, 2, 2, 2, 2, 0, 0, 1, 20, 10},
        {"pool 3x4 s(2,3) p(1,2) ties + NaN", 2, 11, 29, 3, 4, 2, 3, 1, 2, 0, 20, 10},
        {"pool 3x3 s2 p1 on 2x2: no interior", 1, 2, 2, 3, 3, 2, 2, 1, 1, 0, 100, 100},
        {"pool 1x5 s(1,4) ties", 1, 3, 41, 1, 5, 1, 4, 0, 0, 0, 20, 0},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = maxpool_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].kh,
                                    cases[k].kw, cases[k].sh, cases[k].sw, cases[k].ph,
                                    cases[k].pw, cases[k].ceil_mode);
        real *x = alloc_tied(in_elems(&L), r, cases[k].nan, cases[k].ninf);
        fail += maxpool_case(cases[k].name, &L, x);
        free(x);
    }
    return fail;
}

int test_layers_fast(rng *r) {
    int fail = test_conv_paths(r);
    fail += test_maxpool_paths(r);
    return fail;
}
