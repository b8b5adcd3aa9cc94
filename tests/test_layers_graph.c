/*
 * Unit tests of the kernels the graph networks brought (issue 11), part of
 * test_layers (test_layers.c calls test_layers_graph()); compiled once per precision
 * like the rest:
 *   - avgpool2d (torch.nn.AvgPool2d): a few cases worked out by hand, exactly, then a
 *     sweep of ~4,000 shapes (kernel 1..3 x 1..3 with the Inception 1x3 / 3x1, stride
 *     1..3, padding 0..k/2, ceil_mode and count_include_pad on and off) against a
 *     brute-force float64 reference written per kernel tap (a different formulation
 *     from the kernel's clipped intervals), the backward against the reference's
 *     adjoint, and <dout, forward(x)> == <backward(dout), x> to rounding;
 *   - affine_forward: the two roundings, on a value where one fused multiply-add
 *     would differ, and random values against a product stored through volatile;
 *   - 1x1 convolutions (conv.c's path without im2col): against the general path
 *     (the same weights as a 1x3 kernel with zero side taps and padding (0,1)), bit
 *     for bit whatever the batch and with a parallel loop, and with groups;
 *   - convolutions with Inception-v3's asymmetric 1x7 / 7x1 kernels, padding (0,3)
 *     and (3,0), against direct loops and finite differences.
 * Costs well under a second per precision.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_check.h"

#if SAL_DOUBLE
static const double ROUND = 0x1p-52;
#else
static const double ROUND = 0x1p-23;
#endif

/* ---- avgpool2d ------------------------------------------------------------------- */

static sal_layer avgpool2d_layer(int C, int H, int W, int kh, int kw, int sh, int sw, int ph,
                                 int pw, int ceil_mode, int count_include_pad) {
    sal_layer L = maxpool_layer(C, H, W, kh, kw, sh, sw, ph, pw, ceil_mode);
    L.kind = SAL_LAYER_AVGPOOL2D;
    L.count_include_pad = count_include_pad;
    return L;
}

/* The divisor and members of output (oy, ox), tap by tap: tap y = oy*sh - ph + ky
 * counts with padding while it lies inside the padded input (y < H + ph; a ceil_mode
 * window may reach beyond), and is summed while it lies inside the input. */
static void avgpool2d_ref(double *out, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < L->in_c; c++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double s = 0;
                int padded = 0, inside = 0;
                for (int ky = 0; ky < L->kh; ky++)
                    for (int kx = 0; kx < L->kw; kx++) {
                        int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                        if (y >= H + L->ph || x >= W + L->pw) continue;
                        padded++;
                        if (y < 0 || x < 0 || y >= H || x >= W) continue;
                        inside++;
                        s += in[((size_t)c * H + y) * W + x];
                    }
                int count = L->count_include_pad ? padded : inside;
                out[((size_t)c * OH + oy) * OW + ox] = inside ? s / count : 0;
            }
}

/* The reference's adjoint: din(x) = sum over windows holding x of dout / count. */
static void avgpool2d_ref_backward(double *din, const real *dout, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    memset(din, 0, sizeof(double) * in_elems(L));
    for (int c = 0; c < L->in_c; c++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int padded = 0, inside = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int ky = 0; ky < L->kh; ky++)
                        for (int kx = 0; kx < L->kw; kx++) {
                            int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                            if (y >= H + L->ph || x >= W + L->pw) continue;
                            int in = y >= 0 && x >= 0 && y < H && x < W;
                            if (pass == 0) {
                                padded++, inside += in;
                                continue;
                            }
                            int count = L->count_include_pad ? padded : inside;
                            if (in)
                                din[((size_t)c * H + y) * W + x] +=
                                    (double)dout[((size_t)c * OH + oy) * OW + ox] / count;
                        }
            }
}

static int avgpool2d_exact(const char *what, const sal_layer *L, const real *x,
                           const double *want_out, const real *dout, const double *want_din) {
    real *out = alloc_nan(out_elems(L)), *din = alloc_nan(in_elems(L));
    R(avgpool2d_forward)(out, x, L);
    int fail = check_exact(what, "forward", out, want_out, out_elems(L));
    R(avgpool2d_backward)(din, dout, L);
    fail += check_exact(what, "backward", din, want_din, in_elems(L));
    free(out), free(din);
    return fail;
}

static int test_avgpool2d_exact(void) {
    int fail = 0;
    {
        /* 3x3 ramp 0..8, k2 s2 ceil_mode, no padding: 2x2 output, windows [0,2) and
         * [2,3) per axis (the second reaches beyond the input, and that part never
         * counts, count_include_pad or not): divisors 4 2 / 2 1.
         *   out = (0+1+3+4)/4 = 2, (2+5)/2 = 3.5 / (6+7)/2 = 6.5, 8
         * dout = 4 2 / 2 1 sends 1 to every member of its window: din = 1 everywhere. */
        real x[9];
        for (int i = 0; i < 9; i++) x[i] = (real)i;
        static const double out[4] = {2, 3.5, 6.5, 8};
        static const real dout[4] = {4, 2, 2, 1};
        static const double din[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        for (int cip = 0; cip <= 1; cip++) {
            sal_layer L = avgpool2d_layer(1, 3, 3, 2, 2, 2, 2, 0, 0, 1, cip);
            if (L.out_h != 2 || L.out_w != 2) printf("avgpool2d: ceil shape wrong\n"), fail++;
            fail += avgpool2d_exact(cip ? "avgpool2d hand k2 s2 ceil, count pad"
                                        : "avgpool2d hand k2 s2 ceil",
                                    &L, x, out, dout, din);
        }
    }
    /* 2x2 input [1 2; 3 4], k2 s1 p1: 3x3 output, every window 2x2 in the padded
     * input, holding 1 (corners), 2 (edges) or 4 (centre) input elements. */
    static const real x[4] = {1, 2, 3, 4};
    {
        /* count_include_pad: all divisors 4.
         *   sums 1 3 2 / 4 10 6 / 3 7 4 -> out = sums / 4
         * dout = 4 everywhere: each element is in 4 windows, gets 4 x 1. */
        static const double out[9] = {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1};
        static const real dout[9] = {4, 4, 4, 4, 4, 4, 4, 4, 4};
        static const double din[4] = {4, 4, 4, 4};
        sal_layer L = avgpool2d_layer(1, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1);
        fail += avgpool2d_exact("avgpool2d hand k2 s1 p1, count pad", &L, x, out, dout, din);
    }
    {
        /* Without the padding: divisors 1 2 1 / 2 4 2 / 1 2 1.
         *   out = 1 1.5 2 / 2 2.5 3 / 3 3.5 4
         * dout = the divisors: every window sends 1 to each member, din = 4 each. */
        static const double out[9] = {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4};
        static const real dout[9] = {1, 2, 1, 2, 4, 2, 1, 2, 1};
        static const double din[4] = {4, 4, 4, 4};
        sal_layer L = avgpool2d_layer(1, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0);
        fail += avgpool2d_exact("avgpool2d hand k2 s1 p1", &L, x, out, dout, din);
    }
    {
        /* Inception-v3's pool: k3 s1 p1 on 1x1, count_include_pad: one window of 9
         * taps, one of them the input; 9 -> 1, and its gradient 9 * 1/9 = 1. */
        static const real x1[1] = {9}, dout[1] = {9};
        static const double out[1] = {1}, din[1] = {1};
        sal_layer L = avgpool2d_layer(1, 1, 1, 3, 3, 1, 1, 1, 1, 0, 1);
        fail += avgpool2d_exact("avgpool2d hand k3 s1 p1 on 1x1", &L, x1, out, dout, din);
    }
    return fail;
}

/* One category of the sweep: its worst differences, relative to the data's scale. */
typedef struct {
    const char *name;
    int cases, fails;
    double fwd, bwd, adj;
} sweep_stats;

static int avgpool2d_case(const sal_layer *L, rng *r, sweep_stats *st) {
    size_t nin = in_elems(L), nout = out_elems(L);
    real *x = alloc_uniform(nin, r, -1, 1), *dout = alloc_uniform(nout, r, -1, 1);
    real *out = alloc_nan(nout), *din = alloc_nan(nin);
    double *ref = xmalloc(sizeof(double) * nout), *dref = xmalloc(sizeof(double) * nin);
    R(avgpool2d_forward)(out, x, L);
    R(avgpool2d_backward)(din, dout, L);
    avgpool2d_ref(ref, x, L);
    avgpool2d_ref_backward(dref, dout, L);
    /* Values are within [-1, 1] and means of them; a window of k elements rounds
     * about k times, the backward as many additions per element. */
    double kk = (double)L->kh * L->kw, tol = 4 * kk * ROUND;
    double fwd = max_diff(out, ref, nout), bwd = max_diff(din, dref, nin);
    /* <dout, forward(x)> against <backward(dout), x>, both summed in double; each
     * rounds nout (nin) terms of magnitude <= 1 by tol at most. */
    double lhs = 0, rhs = 0, mag = 0;
    for (size_t i = 0; i < nout; i++) lhs += (double)dout[i] * out[i], mag += fabs((double)dout[i]);
    for (size_t i = 0; i < nin; i++) rhs += (double)din[i] * x[i];
    double adj = fabs(lhs - rhs) / (mag > 1 ? mag : 1);
    int bad = !(fwd <= tol && bwd <= tol && adj <= 2 * tol);
    st->cases++;
    st->fails += bad;
    st->fwd = fmax(st->fwd, fwd), st->bwd = fmax(st->bwd, bwd), st->adj = fmax(st->adj, adj);
    if (bad)
        printf("[" PREC "] avgpool2d C%d %dx%d k%dx%d s%dx%d p%dx%d ceil %d cip %d: fwd %.3g "
               "bwd %.3g adjoint %.3g (tol %.3g) FAIL\n", L->in_c, L->in_h, L->in_w, L->kh,
               L->kw, L->sh, L->sw, L->ph, L->pw, L->ceil_mode, L->count_include_pad, fwd, bwd,
               adj, tol);
    free(x), free(dout), free(out), free(din), free(ref), free(dref);
    return bad;
}

static int test_avgpool2d_sweep(rng *r) {
    /* Kernels: squares and Inception's asymmetric ones. Inputs: from the kernel's
     * size up, odd and even, so ceil_mode adds a window or does not. */
    static const int kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {1, 3}, {3, 1}, {2, 3}};
    static const int sizes[] = {1, 2, 3, 4, 5, 7, 8};
    sweep_stats st[2][2] = {
        {{.name = "avgpool2d sweep"}, {.name = "avgpool2d sweep, count_include_pad"}},
        {{.name = "avgpool2d sweep ceil_mode"},
         {.name = "avgpool2d sweep ceil_mode, count_include_pad"}}};
    int fail = 0;
    for (size_t k = 0; k < LEN(kernels); k++)
        for (int sh = 1; sh <= 3; sh++)
            for (int sw = 1; sw <= 3; sw += 2)
                for (int ph = 0; ph <= kernels[k][0] / 2; ph++)
                    for (int pw = 0; pw <= kernels[k][1] / 2; pw++)
                        for (size_t hi = 0; hi < LEN(sizes); hi += 2)
                            for (size_t wi = 1; wi < LEN(sizes); wi += 2)
                                for (int ceil = 0; ceil <= 1; ceil++)
                                    for (int cip = 0; cip <= 1; cip++) {
                                        int H = sizes[hi], W = sizes[wi];
                                        if (H + 2 * ph < kernels[k][0] || W + 2 * pw < kernels[k][1])
                                            continue;
                                        sal_layer L = avgpool2d_layer(
                                            2, H, W, kernels[k][0], kernels[k][1], sh, sw, ph, pw,
                                            ceil, cip);
                                        fail += avgpool2d_case(&L, r, &st[ceil][cip]);
                                    }
    for (int c = 0; c < 2; c++)
        for (int p = 0; p < 2; p++)
            printf("[" PREC "] %-46s %d shapes, %d failed: max diff fwd %.3g bwd %.3g "
                   "adjoint %.3g %s\n", st[c][p].name, st[c][p].cases, st[c][p].fails,
                   st[c][p].fwd, st[c][p].bwd, st[c][p].adj, st[c][p].fails ? "FAIL" : "OK");
    return fail;
}

/* ---- affine (transform_input) ---------------------------------------------------- */

static int test_affine(rng *r) {
    int fail = 0;
    {
        /* x = s = 1 + e with e = 2^-13 (f32) or 2^-27 (f64): x*s = 1 + 2e + e^2
         * rounds to 1 + 2e (e^2 is below half an ulp of 1), so with shift -(1 + 2e)
         * two roundings give exactly 0, while one fused multiply-add would give e^2.
         * Second element: x = 2, s = 1.5, shift 0.25 -> 3.25. */
        const real e = (real)(SAL_DOUBLE ? 0x1p-27 : 0x1p-13);
        const real x[2] = {1 + e, 2}, scale[2] = {1 + e, 1.5}, shift[2] = {-(1 + 2 * e), 0.25};
        static const double want[2] = {0, 3.25};
        real out[2] = {(real)NAN, (real)NAN};
        sal_layer L = plain_layer(SAL_LAYER_AFFINE, 2, 1, 1, 2, 1, 1);
        R(affine_forward)(out, x, scale, shift, &L, 1);
        fail += check_exact("affine hand: two roundings, not an fma", "forward", out, want, 2);
    }
    {
        /* Random: n 3, (3, 5, 4), the product rounded through a volatile store. */
        const int n = 3;
        sal_layer L = plain_layer(SAL_LAYER_AFFINE, 3, 5, 4, 3, 5, 4);
        size_t N = n * in_elems(&L), P = 20;
        real *x = alloc_uniform(N, r, -3, 3), *out = alloc_nan(N);
        real *scale = alloc_uniform(3, r, 0.5, 2.5), *shift = alloc_uniform(3, r, -1, 1);
        double *want = xmalloc(sizeof(double) * N);
        for (size_t i = 0; i < N; i++) {
            size_t c = i / P % 3;
            volatile real product = x[i] * scale[c];
            want[i] = (real)(product + shift[c]);
        }
        R(affine_forward)(out, x, scale, shift, &L, n);
        fail += check_exact("affine n=3 (3,5,4) vs two roundings", "forward", out, want, N);
        free(x), free(out), free(scale), free(shift), free(want);
    }
    return fail;
}

/* ---- 1x1 convolutions without im2col --------------------------------------------- */

/* A serial stand-in for a thread pool that runs the items backwards, so that an
 * order dependence would show. */
static void reverse_for(void *pool, int n, sal_parallel_body body, void *arg) {
    (void)pool;
    for (int i = n - 1; i >= 0; i--) body(arg, i);
}

static double max_diff_real(const real *a, const real *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) return INFINITY;
        m = d > m ? d : m;
    }
    return m;
}

/* Runs conv forward and backward of n images on L; scratch sized for groups of g. */
static void conv_run(real *out, real *din, const real *x, const real *dout, int n,
                     const real *w, const real *b, const sal_layer *L, int g,
                     const sal_par *par) {
    size_t elems = conv_scratch_elems(L, g);
    real *col = alloc_nan(elems ? elems : 1);
    R(conv_forward)(out, x, n, w, b, L, col, g, par);
    R(conv_backward)(din, dout, n, w, L, col, g, par);
    free(col);
}

static int conv1x1_case(const char *what, int n, int C, int H, int W, int OC, int groups,
                        rng *r) {
    sal_layer L = conv_layer(C, H, W, OC, 1, 1, 1, 1, 0, 0, groups);
    /* The same map through the general path: 1x3 kernel, zero side taps, pad (0,1). */
    sal_layer G3 = conv_layer(C, H, W, OC, 1, 3, 1, 1, 0, 1, groups);
    const int Cg = C / groups;
    size_t nin = (size_t)n * in_elems(&L), nout = (size_t)n * out_elems(&L);
    real *x = alloc_uniform(nin, r, -1, 1), *dout = alloc_uniform(nout, r, -1, 1);
    real *w = alloc_uniform((size_t)OC * Cg, r, -1, 1), *b = alloc_uniform(OC, r, -1, 1);
    real *w3 = xmalloc(sizeof(real) * OC * Cg * 3);
    for (int i = 0; i < OC * Cg; i++) w3[3 * i] = 0, w3[3 * i + 1] = w[i], w3[3 * i + 2] = 0;
    real *o1 = alloc_nan(nout), *d1 = alloc_nan(nin), *o3 = alloc_nan(nout), *d3 = alloc_nan(nin);
    real *op = alloc_nan(nout), *dp = alloc_nan(nin), *oi = alloc_nan(nout), *di = alloc_nan(nin);
    int fail = 0;
    if (conv_scratch_elems(&L, 4) != 0 || !conv_is_1x1(&L) || conv_is_1x1(&G3)) {
        printf("[" PREC "] %-46s 1x1 path not chosen as it should FAIL\n", what);
        fail++;
    }
    conv_run(o1, d1, x, dout, n, w, b, &L, 2, NULL);
    conv_run(o3, d3, x, dout, n, w3, b, &G3, 2, NULL);
    /* Same terms, maybe summed in another order: rounding of a Cg-long dot product. */
    double tol = 4 * (Cg + 1) * ROUND;
    fail += report(what, "fwd=gen", max_diff_real(o1, o3, nout), tol);
    fail += report(what, "bwd=gen", max_diff_real(d1, d3, nin), tol);
    /* On a parallel loop (images or GEMM parts run in another order), and image by
     * image: bit for bit the same. */
    sal_par par = {reverse_for, NULL};
    conv_run(op, dp, x, dout, n, w, b, &L, 3, &par);
    for (int i = 0; i < n; i++)
        conv_run(oi + i * out_elems(&L), di + i * in_elems(&L), x + i * in_elems(&L),
                 dout + i * out_elems(&L), 1, w, b, &L, 1, NULL);
    fail += report(what, "parallel", max_diff_real(o1, op, nout) + max_diff_real(d1, dp, nin), 0);
    fail += report(what, "1 by 1", max_diff_real(o1, oi, nout) + max_diff_real(d1, di, nin), 0);
    free(x), free(dout), free(w), free(b), free(w3), free(o1), free(d1), free(o3), free(d3);
    free(op), free(dp), free(oi), free(di);
    return fail;
}

static int test_conv1x1(rng *r) {
    int fail = 0;
    fail += conv1x1_case("conv 1x1 n=3 (5,4,3) -> 3", 3, 5, 4, 3, 3, 1, r);
    fail += conv1x1_case("conv 1x1 groups 2 n=2 (4,3,5) -> 6", 2, 4, 3, 5, 6, 2, r);
    /* Planes above SAL_CONV1X1_IMAGE_PARALLEL_COLUMNS: the GEMM is cut into parts. */
    fail += conv1x1_case("conv 1x1 n=2 (6,24,40) -> 5, wide plane", 2, 6, 24, 40, 5, 1, r);
    fail += conv1x1_case("conv 1x1 n=5 (33,7,7) -> 17 (resnet 7x7)", 5, 33, 7, 7, 17, 1, r);
    return fail;
}

/* ---- asymmetric kernels 1x7 / 7x1 (Inception-v3) --------------------------------- */

/* Direct loops in double of conv (groups 1). */
static void conv_direct(double *out, double *out_abs, const real *in, const real *w,
                        const real *b, const sal_layer *L) {
    for (int oc = 0; oc < L->out_c; oc++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                double s = b[oc], a = fabs((double)b[oc]);
                for (int c = 0; c < L->in_c; c++)
                    for (int ky = 0; ky < L->kh; ky++)
                        for (int kx = 0; kx < L->kw; kx++) {
                            int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                            if (y < 0 || y >= L->in_h || x < 0 || x >= L->in_w) continue;
                            double t = (double)w[((oc * L->in_c + c) * L->kh + ky) * L->kw + kx] *
                                       (double)in[(c * L->in_h + y) * L->in_w + x];
                            s += t, a += fabs(t);
                        }
                size_t o = ((size_t)oc * L->out_h + oy) * L->out_w + ox;
                out[o] = s, out_abs[o] = a;
            }
}

typedef struct {
    const sal_layer *L;
    const real *w, *b;
    real *col;
} conv_ctx;

static void conv_fn(const void *ctx, real *out, const real *in) {
    const conv_ctx *c = ctx;
    R(conv_forward)(out, in, 1, c->w, c->b, c->L, c->col, 1, NULL);
}

static int test_conv_asymmetric(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, OC, kh, kw, ph, pw;
    } cases[] = {
        {"conv 1x7 p(0,3) (inception-v3)", 3, 9, 8, 4, 1, 7, 0, 3},
        {"conv 7x1 p(3,0) (inception-v3)", 3, 8, 9, 4, 7, 1, 3, 0},
        {"conv 1x7 p(0,3) on 17x17", 2, 17, 17, 3, 1, 7, 0, 3},
        {"conv 7x1 p(3,0) on 17x17", 2, 17, 17, 3, 7, 1, 3, 0},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = conv_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].OC, cases[k].kh,
                                 cases[k].kw, 1, 1, cases[k].ph, cases[k].pw, 1);
        if (L.out_h != L.in_h || L.out_w != L.in_w) {
            printf("[" PREC "] %-46s output %dx%d, expected the input's FAIL\n", cases[k].name,
                   L.out_h, L.out_w);
            fail++;
        }
        size_t nin = in_elems(&L), nout = out_elems(&L), nw = (size_t)L.out_c * L.in_c * L.kh * L.kw;
        real *x = alloc_uniform(nin, r, -1, 1), *w = alloc_uniform(nw, r, -1, 1);
        real *b = alloc_uniform(L.out_c, r, -1, 1), *dout = alloc_uniform(nout, r, -1, 1);
        real *col = alloc_nan(conv_scratch_elems(&L, 1)), *out = alloc_nan(nout), *din = alloc_nan(nin);
        double *ref = xmalloc(sizeof(double) * nout), *ref_abs = xmalloc(sizeof(double) * nout);
        R(conv_forward)(out, x, 1, w, b, &L, col, 1, NULL);
        conv_direct(ref, ref_abs, x, w, b, &L);
        fail += check_ref(cases[k].name, out, ref, ref_abs, nout);
        R(conv_backward)(din, dout, 1, w, &L, col, 1, NULL);
        conv_ctx ctx = {&L, w, b, col};
        layer_fn f = {conv_fn, &ctx, nin, nout};
        fail += check_fd(cases[k].name, &f, x, dout, din);
        free(x), free(w), free(b), free(dout), free(col), free(out), free(din), free(ref);
        free(ref_abs);
    }
    return fail;
}

int test_layers_graph(rng *r) {
    int fail = 0;
    fail += test_avgpool2d_exact();
    fail += test_avgpool2d_sweep(r);
    fail += test_affine(r);
    fail += test_conv1x1(r);
    fail += test_conv_asymmetric(r);
    return fail;
}
