/*
 * Unit tests of the layer kernels (core/layers.h). Like the kernels, this file is
 * compiled once per precision (SAL_DOUBLE=0 and 1); each build tests its own copy.
 * For every layer kind:
 *   - small cases worked out by hand in the comments, compared exactly: every value
 *     involved is a small integer or binary fraction, exact in float32 too;
 *   - random cases: forward against direct loops in double, backward against central
 *     finite differences of s(x) = <dout, layer(x)>, summed in double. ReLU and
 *     max-pool inputs are built far from their kinks (|x| >= 0.1, window values
 *     distinct by >= 0.125) so no step crosses one; the kinks get exact cases.
 * Kernel outputs start as NaN so an element the kernel forgets to write shows up.
 * Every case prints its max difference; the exit status is 1 if any case failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_check.h"

/* ---- convolution ----------------------------------------------------------------- */

typedef struct {
    const sal_layer *L;
    const real *w, *b;
    real *col;
} conv_ctx;

static void conv_fn(const void *ctx, real *out, const real *in) {
    const conv_ctx *c = ctx;
    R(conv_forward)(out, in, 1, c->w, c->b, c->L, c->col, 1, NULL);
}

/* Direct loops: weight (OC, C/groups, kh, kw). */
static void conv_ref(double *out, double *out_abs, const real *in, const real *w,
                     const real *b, const sal_layer *L) {
    const int Cg = L->in_c / L->groups, OCg = L->out_c / L->groups;
    for (int oc = 0; oc < L->out_c; oc++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                double s = b[oc], a = fabs((double)b[oc]);
                for (int c = 0; c < Cg; c++)
                    for (int ky = 0; ky < L->kh; ky++)
                        for (int kx = 0; kx < L->kw; kx++) {
                            int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                            if (y < 0 || y >= L->in_h || x < 0 || x >= L->in_w) continue;
                            int ic = oc / OCg * Cg + c;
                            double t = (double)w[((oc * Cg + c) * L->kh + ky) * L->kw + kx] *
                                       (double)in[(ic * L->in_h + y) * L->in_w + x];
                            s += t, a += fabs(t);
                        }
                size_t o = ((size_t)oc * L->out_h + oy) * L->out_w + ox;
                out[o] = s, out_abs[o] = a;
            }
}

/* Three images run in groups of 2 must give what they give one by one, up to
 * rounding: OpenBLAS may pick another kernel for another GEMM width, so bits can
 * differ (salpipe's bit-for-bit promise rests on fixed batches, not on this). */
static int check_conv_grouping(const char *what, const sal_layer *L, const real *w,
                               const real *b, rng *r) {
    const int n = 3;
    size_t nin = in_elems(L), nout = out_elems(L);
    real *x = alloc_uniform(n * nin, r, -1, 1), *dout = alloc_uniform(n * nout, r, -1, 1);
    real *s1 = alloc_nan(conv_scratch_elems(L, 1)), *s2 = alloc_nan(conv_scratch_elems(L, 2));
    real *o1 = alloc_nan(n * nout), *o2 = alloc_nan(n * nout);
    real *d1 = alloc_nan(n * nin), *d2 = alloc_nan(n * nin);
    for (int i = 0; i < n; i++) {
        R(conv_forward)(o1 + i * nout, x + i * nin, 1, w, b, L, s1, 1, NULL);
        R(conv_backward)(d1 + i * nin, dout + i * nout, 1, w, L, s1, 1, NULL);
    }
    R(conv_forward)(o2, x, n, w, b, L, s2, 2, NULL);
    R(conv_backward)(d2, dout, n, w, L, s2, 2, NULL);
    double worst = 0, scale = 0, tol = sizeof(real) == 4 ? 1e-5 : 1e-13;
    for (size_t i = 0; i < n * nout; i++) {
        worst = fmax(worst, fabs((double)o1[i] - o2[i]));
        scale = fmax(scale, fabs((double)o1[i]));
    }
    for (size_t i = 0; i < n * nin; i++) {
        worst = fmax(worst, fabs((double)d1[i] - d2[i]));
        scale = fmax(scale, fabs((double)d1[i]));
    }
    int same = worst <= tol * fmax(scale, 1);
    printf("[" PREC "] %-46s groups of 2 vs 1 by 1: max abs diff %-9.3g %s\n", what, worst,
           same ? "OK" : "FAIL");
    free(x), free(dout), free(s1), free(s2), free(o1), free(o2), free(d1), free(d2);
    return !same;
}

/* Runs one hand-computed conv case: forward, then backward for dout. */
static int conv_exact(const char *what, const sal_layer *L, const real *x, const real *w,
                      const real *b, const double *want_out, const real *dout,
                      const double *want_din) {
    real *col = alloc_nan(conv_scratch_elems(L, 1)), *out = alloc_nan(out_elems(L)),
         *din = alloc_nan(in_elems(L));
    R(conv_forward)(out, x, 1, w, b, L, col, 1, NULL);
    int fail = check_exact(what, "forward", out, want_out, out_elems(L));
    for (size_t i = 0; i < conv_scratch_elems(L, 1); i++) col[i] = (real)NAN;
    R(conv_backward)(din, dout, 1, w, L, col, 1, NULL);
    fail += check_exact(what, "backward", din, want_din, in_elems(L));
    free(col), free(out), free(din);
    return fail;
}

static int test_conv_exact(void) {
    int fail = 0;
    /* in (1,3,3) = [1 2 3; 4 5 6; 7 8 9], shared by the cases below. */
    static const real x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    {
        /* weight [1 2; 3 4], bias 0.5, stride 1, no padding -> 2x2:
         *   out00 = 1*1 + 2*2 + 3*4 + 4*5 + .5 = 37.5   out01 = 2+6+15+24 + .5 = 47.5
         *   out10 = 4+10+21+32 + .5 = 67.5              out11 = 5+12+24+36 + .5 = 77.5
         * dout [1 10; 100 1000]: din(y,x) = sum w(y-oy, x-ox) dout(oy, ox), e.g.
         *   din11 = w11*1 + w10*10 + w01*100 + w00*1000 = 4 + 30 + 200 + 1000 = 1234 */
        static const real w[4] = {1, 2, 3, 4}, b[1] = {0.5}, dout[4] = {1, 10, 100, 1000};
        static const double out[4] = {37.5, 47.5, 67.5, 77.5};
        static const double din[9] = {1, 12, 20, 103, 1234, 2040, 300, 3400, 4000};
        sal_layer L = conv_layer(1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1);
        fail += conv_exact("conv hand 3x3 * 2x2", &L, x, w, b, out, dout, din);
    }
    {
        /* Same weight, stride 2, padding 1: windows start at -1 and 1, so 2x2 output,
         * each input pixel in exactly one window:
         *   out00 = w11*x00 = 4 (+.5)           out01 = w10*x01 + w11*x02 = 6+12 = 18
         *   out10 = w01*x10 + w11*x20 = 8+28 = 36   out11 = 5+12+24+36 = 77
         * dout [1 10; 100 1000]: din(y,x) = w(ky,kx) dout(oy,ox), ky = y+1-2*oy:
         *   row 0: w11*1, w10*10, w11*10        = 4, 30, 40
         *   row 1: w01*100, w00*1000, w01*1000  = 200, 1000, 2000
         *   row 2: w11*100, w10*1000, w11*1000  = 400, 3000, 4000 */
        static const real w[4] = {1, 2, 3, 4}, b[1] = {0.5}, dout[4] = {1, 10, 100, 1000};
        static const double out[4] = {4.5, 18.5, 36.5, 77.5};
        static const double din[9] = {4, 30, 40, 200, 1000, 2000, 400, 3000, 4000};
        sal_layer L = conv_layer(1, 3, 3, 1, 2, 2, 2, 2, 1, 1, 1);
        fail += conv_exact("conv hand 2x2 stride 2 pad 1", &L, x, w, b, out, dout, din);
    }
    {
        /* Non-square 1x3 kernel [1 10 100], padding (0,1), bias 0 -> 3x3:
         *   out(y,x) = x(y,x-1) + 10 x(y,x) + 100 x(y,x+1), e.g. out00 = 0+10+200 = 210
         * dout = identity 3x3: din(y,x) = w(x - y + 1) when 0 <= x-y+1 <= 2, else 0. */
        static const real w[3] = {1, 10, 100}, b[1] = {0}, dout[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
        static const double out[9] = {210, 321, 32, 540, 654, 65, 870, 987, 98};
        static const double din[9] = {10, 100, 0, 1, 10, 100, 0, 1, 10};
        sal_layer L = conv_layer(1, 3, 3, 1, 1, 3, 1, 1, 0, 1, 1);
        fail += conv_exact("conv hand 1x3 kernel pad (0,1)", &L, x, w, b, out, dout, din);
    }
    {
        /* groups 2, 1x1 kernel, in (2,2,2), 4 outputs: oc 0,1 see channel 0 only,
         * oc 2,3 channel 1 only. weight (4,1,1,1) = [2 3 5 7], bias [0 1 0 -1].
         *   oc0 = 2*[1 2 3 4]        = 2 4 6 8
         *   oc1 = 3*[1 2 3 4] + 1    = 4 7 10 13
         *   oc2 = 5*[10 20 30 40]    = 50 100 150 200
         *   oc3 = 7*[10 20 30 40] - 1 = 69 139 209 279
         * dout oc0 = 1 1 1 1, oc1 = 1 0 0 0, oc2 = 0 1 0 0, oc3 = 0 0 0 1:
         *   din c0 = 2*[1 1 1 1] + 3*[1 0 0 0] = 5 2 2 2;  din c1 = 0 5 0 7 */
        static const real xg[8] = {1, 2, 3, 4, 10, 20, 30, 40};
        static const real w[4] = {2, 3, 5, 7}, b[4] = {0, 1, 0, -1};
        static const real dout[16] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
        static const double out[16] = {2,  4,   6,   8,   4,  7,   10,  13,
                                       50, 100, 150, 200, 69, 139, 209, 279};
        static const double din[8] = {5, 2, 2, 2, 0, 5, 0, 7};
        sal_layer L = conv_layer(2, 2, 2, 4, 1, 1, 1, 1, 0, 0, 2);
        fail += conv_exact("conv hand groups 2", &L, xg, w, b, out, dout, din);
    }
    return fail;
}

static int test_conv_random(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, OC, kh, kw, sh, sw, ph, pw, groups;
    } cases[] = {
        {"conv 3x3 s1 p1", 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1},
        {"conv 3x3 s2 p1", 2, 9, 8, 3, 3, 3, 2, 2, 1, 1, 1},
        {"conv 11x11 s4 p2 (alexnet conv1)", 3, 23, 19, 2, 11, 11, 4, 4, 2, 2, 1},
        {"conv 5x5 s4, (H-k) % s != 0", 2, 14, 11, 3, 5, 5, 4, 4, 0, 0, 1},
        {"conv groups 2, 3x3 s1 p1", 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 2},
        {"conv groups 2, 3x3 s2", 6, 7, 7, 4, 3, 3, 2, 2, 0, 0, 2},
        {"conv 3x2 kernel s(1,2) p(1,0)", 2, 7, 9, 3, 3, 2, 1, 2, 1, 0, 1},
        {"conv 1x4 kernel s(2,1) p(0,2)", 3, 6, 5, 2, 1, 4, 2, 1, 0, 2, 1},
        {"conv 1x1 (no im2col)", 5, 4, 3, 3, 1, 1, 1, 1, 0, 0, 1},
        {"conv 1x1 s2 (resnet downsample, im2col)", 4, 7, 6, 3, 1, 1, 2, 2, 0, 0, 1},
        /* Output planes of more than two backward blocks (2 x 1024 columns): the
         * backward runs in blocks of output rows (24+24+2, 22+22+2, 1+1+1). */
        {"conv 3x3 s1 p1, 50x42 plane (row blocks)", 1, 50, 42, 2, 3, 3, 1, 1, 1, 1, 1},
        {"conv 3x3 s2 p1, 92x92 plane (row blocks)", 1, 92, 92, 2, 3, 3, 2, 2, 1, 1, 1},
        {"conv 3x3 groups 2, 3x1200 plane (row each)", 2, 3, 1200, 2, 3, 3, 1, 1, 1, 1, 2},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = conv_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].OC, cases[k].kh,
                                 cases[k].kw, cases[k].sh, cases[k].sw, cases[k].ph,
                                 cases[k].pw, cases[k].groups);
        /* 1x1 stride 1 without padding needs none (conv.c's path without im2col). */
        size_t want_col = conv_is_1x1(&L) ? 0
                          : (size_t)((L.in_c + L.out_c) / L.groups * (L.kh * L.kw) -
                                     (L.out_c / L.groups) * (L.kh * L.kw - 1)) *
                                L.out_h * L.out_w;
        if (conv_scratch_elems(&L, 1) != want_col) {
            printf("[" PREC "] %-46s conv_scratch_elems %zu, expected %zu FAIL\n",
                   cases[k].name, conv_scratch_elems(&L, 1), want_col);
            fail++;
        }
        size_t nin = in_elems(&L), nout = out_elems(&L);
        size_t nw = (size_t)L.out_c * (L.in_c / L.groups) * L.kh * L.kw;
        real *x = alloc_uniform(nin, r, -1, 1), *w = alloc_uniform(nw, r, -1, 1);
        real *b = alloc_uniform((size_t)L.out_c, r, -1, 1);
        real *dout = alloc_uniform(nout, r, -1, 1);
        real *col = alloc_nan(want_col), *out = alloc_nan(nout), *din = alloc_nan(nin);
        double *ref = xmalloc(sizeof(double) * nout), *ref_abs = xmalloc(sizeof(double) * nout);

        R(conv_forward)(out, x, 1, w, b, &L, col, 1, NULL);
        conv_ref(ref, ref_abs, x, w, b, &L);
        fail += check_ref(cases[k].name, out, ref, ref_abs, nout);

        for (size_t i = 0; i < want_col; i++) col[i] = (real)NAN;
        R(conv_backward)(din, dout, 1, w, &L, col, 1, NULL);
        conv_ctx ctx = {&L, w, b, col};
        layer_fn f = {conv_fn, &ctx, nin, nout};
        fail += check_fd(cases[k].name, &f, x, dout, din);
        fail += check_conv_grouping(cases[k].name, &L, w, b, r);

        free(x), free(w), free(b), free(dout), free(col), free(out), free(din);
        free(ref), free(ref_abs);
    }
    return fail;
}

/* ---- batch norm (eval mode: in * scale[c] + shift[c]) ---------------------------- */

typedef struct {
    const sal_layer *L;
    const real *scale, *shift;
    int n;
} bn_ctx;

static void bn_fn(const void *ctx, real *out, const real *in) {
    const bn_ctx *c = ctx;
    R(batchnorm_forward)(out, in, c->scale, c->shift, c->L, c->n);
}

static int test_batchnorm(rng *r) {
    int fail = 0;
    {
        /* n 2, (C,H,W) = (2,1,2); scale [2 -0.5], shift [0.25 1].
         *   img0: c0 [1 -2] -> [2.25 -3.75]   c1 [3 4]  -> [-0.5 -1]
         *   img1: c0 [.5 8] -> [1.25 16.25]   c1 [-1 0] -> [1.5 1]
         * dout 1..8 -> din = dout * scale[c]: [2 4 | -1.5 -2 | 10 12 | -3.5 -4] */
        static const real x[8] = {1, -2, 3, 4, 0.5, 8, -1, 0};
        static const real scale[2] = {2, -0.5}, shift[2] = {0.25, 1};
        static const real dout[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        static const double want_out[8] = {2.25, -3.75, -0.5, -1, 1.25, 16.25, 1.5, 1};
        static const double want_din[8] = {2, 4, -1.5, -2, 10, 12, -3.5, -4};
        sal_layer L = plain_layer(SAL_LAYER_BATCHNORM, 2, 1, 2, 2, 1, 2);
        real out[8], din[8];
        for (int i = 0; i < 8; i++) out[i] = din[i] = (real)NAN;
        R(batchnorm_forward)(out, x, scale, shift, &L, 2);
        fail += check_exact("batchnorm hand n=2", "forward", out, want_out, 8);
        R(batchnorm_backward)(din, dout, scale, &L, 2);
        fail += check_exact("batchnorm hand n=2", "backward", din, want_din, 8);
    }
    {
        const int n = 3;
        sal_layer L = plain_layer(SAL_LAYER_BATCHNORM, 4, 5, 3, 4, 5, 3);
        size_t N = n * in_elems(&L), P = (size_t)L.in_h * L.in_w;
        real *x = alloc_uniform(N, r, -2, 2), *dout = alloc_uniform(N, r, -1, 1);
        real *scale = alloc_uniform(4, r, -2, 2), *shift = alloc_uniform(4, r, -1, 1);
        real *out = alloc_nan(N), *din = alloc_nan(N);
        double *ref = xmalloc(sizeof(double) * N), *ref_abs = xmalloc(sizeof(double) * N);
        for (size_t i = 0; i < N; i++) {
            size_t c = i / P % (size_t)L.in_c;
            double t = (double)x[i] * (double)scale[c];
            ref[i] = t + (double)shift[c];
            ref_abs[i] = fabs(t) + fabs((double)shift[c]);
        }
        R(batchnorm_forward)(out, x, scale, shift, &L, n);
        fail += check_ref("batchnorm n=3 (4,5,3)", out, ref, ref_abs, N);
        R(batchnorm_backward)(din, dout, scale, &L, n);
        bn_ctx ctx = {&L, scale, shift, n};
        layer_fn f = {bn_fn, &ctx, N, N};
        fail += check_fd("batchnorm n=3 (4,5,3)", &f, x, dout, din);
        free(x), free(dout), free(scale), free(shift), free(out), free(din);
        free(ref), free(ref_abs);
    }
    return fail;
}

/* ---- ReLU and the three backward rules ------------------------------------------- */

typedef struct {
    uint8_t *mask;
} relu_ctx;

#define RELU_N 300
static void relu_fn(const void *ctx, real *out, const real *in) {
    R(relu_forward)(out, ((const relu_ctx *)ctx)->mask, in, RELU_N);
}

static int check_mask(const char *what, const uint8_t *mask, const real *x, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += mask[i] != (x[i] > 0);
    printf("[" PREC "] %-46s %-9s %zu of %zu differ from (x > 0) %s\n", what, "mask", bad, n,
           bad ? "FAIL" : "OK");
    return bad != 0;
}

/* relu_backward into a separate buffer and in place (din aliasing dout). */
static int relu_rule_exact(const char *what, sal_method rule, const real *g,
                           const uint8_t *mask, const double *want, size_t n) {
    real *din = alloc_nan(n), *inplace = xmalloc(sizeof(real) * n);
    memcpy(inplace, g, sizeof(real) * n);
    R(relu_backward)(din, g, mask, n, rule);
    int fail = check_exact(what, "backward", din, want, n);
    R(relu_backward)(inplace, inplace, mask, n, rule);
    fail += check_exact(what, "in place", inplace, want, n);
    free(din), free(inplace);
    return fail;
}

static int test_relu(rng *r) {
    int fail = 0;
    {
        /* forward: max(x, 0) and mask (x > 0); -0.0 and 0 are not > 0. */
        static const real x[6] = {-2, 0, 1.5, -0.0, 3, -0.25};
        static const double want[6] = {0, 0, 1.5, 0, 3, 0};
        real out[6];
        uint8_t mask[6];
        for (int i = 0; i < 6; i++) out[i] = (real)NAN;
        R(relu_forward)(out, mask, x, 6);
        fail += check_exact("relu hand", "forward", out, want, 6);
        fail += check_mask("relu hand", mask, x, 6);
    }
    {
        /* Every rule at and around the kink: x in {-1, 0, 2} x g in {-3, 0, 5}.
         *   vanilla   g*(x>0):        only x = 2 passes g           -> 0 0 0 | 0 0 0 | -3 0 5
         *   guided    g*(x>0)*(g>0):  x = 2 and g = 5               -> 0 0 0 | 0 0 0 | 0 0 5
         *   deconvnet g*(g>0):        g = 5 passes whatever x is    -> 0 0 5 | 0 0 5 | 0 0 5
         * x == 0 gives a zero gradient for vanilla and guided. */
        static const real x[9] = {-1, -1, -1, 0, 0, 0, 2, 2, 2};
        static const real g[9] = {-3, 0, 5, -3, 0, 5, -3, 0, 5};
        static const double vanilla[9] = {0, 0, 0, 0, 0, 0, -3, 0, 5};
        static const double guided[9] = {0, 0, 0, 0, 0, 0, 0, 0, 5};
        static const double deconvnet[9] = {0, 0, 5, 0, 0, 5, 0, 0, 5};
        real out[9];
        uint8_t mask[9];
        R(relu_forward)(out, mask, x, 9);
        fail += relu_rule_exact("relu hand kink, vanilla", SAL_METHOD_VANILLA, g, mask,
                                vanilla, 9);
        fail += relu_rule_exact("relu hand kink, guided", SAL_METHOD_GUIDED, g, mask, guided,
                                9);
        fail += relu_rule_exact("relu hand kink, deconvnet", SAL_METHOD_DECONVNET, g, mask,
                                deconvnet, 9);
    }
    {
        /* Random x away from 0: forward exact, vanilla = the true gradient (FD), guided
         * and deconvnet against their formulas elementwise. */
        const size_t n = RELU_N;
        real *x = alloc_away_from_zero(n, r), *g = alloc_uniform(n, r, -1, 1);
        real *out = alloc_nan(n), *din = alloc_nan(n);
        uint8_t *mask = xmalloc(n);
        double *want = xmalloc(sizeof(double) * n);
        R(relu_forward)(out, mask, x, n);
        for (size_t i = 0; i < n; i++) want[i] = x[i] > 0 ? (double)x[i] : 0;
        fail += check_exact("relu random 300", "forward", out, want, n);
        fail += check_mask("relu random 300", mask, x, n);

        R(relu_backward)(din, g, mask, n, SAL_METHOD_VANILLA);
        uint8_t *fd_mask = xmalloc(n);
        relu_ctx ctx = {fd_mask};
        layer_fn f = {relu_fn, &ctx, n, n};
        fail += check_fd("relu random 300, vanilla", &f, x, g, din);

        for (size_t i = 0; i < n; i++) want[i] = (x[i] > 0 && g[i] > 0) ? (double)g[i] : 0;
        fail += relu_rule_exact("relu random 300, guided", SAL_METHOD_GUIDED, g, mask, want, n);
        for (size_t i = 0; i < n; i++) want[i] = g[i] > 0 ? (double)g[i] : 0;
        fail += relu_rule_exact("relu random 300, deconvnet", SAL_METHOD_DECONVNET, g, mask,
                                want, n);
        free(x), free(g), free(out), free(din), free(mask), free(fd_mask), free(want);
    }
    return fail;
}

/* ---- max pooling ----------------------------------------------------------------- */

typedef struct {
    const sal_layer *L;
    int32_t *argmax;
} maxpool_ctx;

static void maxpool_fn(const void *ctx, real *out, const real *in) {
    const maxpool_ctx *c = ctx;
    R(maxpool_forward)(out, c->argmax, in, c->L);
}

/* Direct loops with torch's rule: padding is -inf, a later element wins only when
 * strictly greater, so the first maximum in row-major order is recorded. */
static void maxpool_ref(double *out, int32_t *argmax, const real *in, const sal_layer *L) {
    for (int c = 0; c < L->in_c; c++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                double best = -INFINITY;
                int32_t at = -1;
                for (int ky = 0; ky < L->kh; ky++)
                    for (int kx = 0; kx < L->kw; kx++) {
                        int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                        if (y < 0 || y >= L->in_h || x < 0 || x >= L->in_w) continue;
                        double v = in[((size_t)c * L->in_h + y) * L->in_w + x];
                        if (v > best) best = v, at = y * L->in_w + x;
                    }
                size_t o = ((size_t)c * L->out_h + oy) * L->out_w + ox;
                out[o] = best, argmax[o] = at;
            }
}

static int maxpool_exact(const char *what, const sal_layer *L, const real *x,
                         const double *want_out, const int32_t *want_arg, const real *dout,
                         const double *want_din) {
    real *out = alloc_nan(out_elems(L)), *din = alloc_nan(in_elems(L));
    int32_t *arg = xmalloc(sizeof(int32_t) * out_elems(L));
    R(maxpool_forward)(out, arg, x, L);
    int fail = check_exact(what, "forward", out, want_out, out_elems(L));
    fail += check_index(what, arg, want_arg, out_elems(L));
    R(maxpool_backward)(din, dout, arg, L);
    fail += check_exact(what, "backward", din, want_din, in_elems(L));
    free(out), free(din), free(arg);
    return fail;
}

static int test_maxpool_exact(void) {
    int fail = 0;
    static const real dout4[4] = {1, 2, 3, 4};
    {
        /* k2 s2 on 4x4 with ties inside windows:
         *   1 5 | 2 0      window maxima, first in row-major order:
         *   5 3 | 7 7        5 at (0,1) = 1,  7 at (1,2) = 6
         *   ----+----        9 at (3,0) = 12, 4 at (2,2) = 10
         *   0 0 | 4 1
         *   9 2 | 1 4      dout 1 2 3 4 lands at 1, 6, 12, 10. */
        static const real x[16] = {1, 5, 2, 0, 5, 3, 7, 7, 0, 0, 4, 1, 9, 2, 1, 4};
        static const double out[4] = {5, 7, 9, 4};
        static const int32_t arg[4] = {1, 6, 12, 10};
        static const double din[16] = {0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 3, 0, 0, 0};
        sal_layer L = maxpool_layer(1, 4, 4, 2, 2, 2, 2, 0, 0, 0);
        fail += maxpool_exact("maxpool hand k2 s2 ties", &L, x, out, arg, dout4, din);
    }
    {
        /* k3 s2 on 5x5 (windows overlap on row 2 and column 2), all values equal:
         * every window picks its top-left, (0,0) (0,2) (2,0) (2,2). */
        real x[25];
        for (int i = 0; i < 25; i++) x[i] = 7;
        static const double out[4] = {7, 7, 7, 7};
        static const int32_t arg[4] = {0, 2, 10, 12};
        double din[25] = {0};
        din[0] = 1, din[2] = 2, din[10] = 3, din[12] = 4;
        sal_layer L = maxpool_layer(1, 5, 5, 3, 3, 2, 2, 0, 0, 0);
        fail += maxpool_exact("maxpool hand k3 s2 overlap, all tied", &L, x, out, arg,
                              dout4, din);
    }
    {
        /* Same windows, zeros but x(2,2) = 1, shared by all four: it collects
         * 1 + 2 + 3 + 4 = 10. */
        real x[25] = {0};
        x[12] = 1;
        static const double out[4] = {1, 1, 1, 1};
        static const int32_t arg[4] = {12, 12, 12, 12};
        double din[25] = {0};
        din[12] = 10;
        sal_layer L = maxpool_layer(1, 5, 5, 3, 3, 2, 2, 0, 0, 0);
        fail += maxpool_exact("maxpool hand k3 s2 overlap, shared max", &L, x, out, arg,
                              dout4, din);
    }
    {
        /* k3 s2 p1 on 4x4, all -1: padding counts as -inf, never 0, so the output is
         * -1 and the first real element of each clipped window wins: rows and columns
         * start at 0 and 1 -> indices 0, 1, 4, 5. */
        real x[16];
        for (int i = 0; i < 16; i++) x[i] = -1;
        static const double out[4] = {-1, -1, -1, -1};
        static const int32_t arg[4] = {0, 1, 4, 5};
        double din[16] = {0};
        din[0] = 1, din[1] = 2, din[4] = 3, din[5] = 4;
        sal_layer L = maxpool_layer(1, 4, 4, 3, 3, 2, 2, 1, 1, 0);
        fail += maxpool_exact("maxpool hand k3 s2 p1, negative, tied", &L, x, out, arg,
                              dout4, din);
    }
    {
        /* k2 s2 ceil_mode on the 5x5 ramp x(y,x) = 5y + x: 3x3 output (floor mode
         * gives 2x2), the last row and column of windows hold only index 4. The max is
         * the bottom-right of each clipped window, rows and columns 1, 3, 4:
         *   6 8 9 / 16 18 19 / 21 23 24, and as the ramp is its own index, argmax too.
         * dout 1..9 lands there. */
        real x[25];
        for (int i = 0; i < 25; i++) x[i] = (real)i;
        static const double out[9] = {6, 8, 9, 16, 18, 19, 21, 23, 24};
        static const int32_t arg[9] = {6, 8, 9, 16, 18, 19, 21, 23, 24};
        static const real dout[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        double din[25] = {0};
        for (int i = 0; i < 9; i++) din[arg[i]] = dout[i];
        sal_layer L = maxpool_layer(1, 5, 5, 2, 2, 2, 2, 0, 0, 1);
        if (L.out_h != 3 || L.out_w != 3) printf("pool_out: ceil-mode shape wrong\n"), fail++;
        fail += maxpool_exact("maxpool hand k2 s2 ceil_mode", &L, x, out, arg, dout, din);
    }
    {
        /* k2 s2 p1 ceil_mode on the 5x5 ramp: the 4th window would start at 5, in the
         * right padding, so torch drops it: 3x3, windows {0} {1,2} {3,4} per axis.
         *   out = 0 2 4 / 10 12 14 / 20 22 24 (= argmax) */
        real x[25];
        for (int i = 0; i < 25; i++) x[i] = (real)i;
        static const double out[9] = {0, 2, 4, 10, 12, 14, 20, 22, 24};
        static const int32_t arg[9] = {0, 2, 4, 10, 12, 14, 20, 22, 24};
        static const real dout[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        double din[25] = {0};
        for (int i = 0; i < 9; i++) din[arg[i]] = dout[i];
        sal_layer L = maxpool_layer(1, 5, 5, 2, 2, 2, 2, 1, 1, 1);
        if (L.out_h != 3 || L.out_w != 3) printf("pool_out: dropped window wrong\n"), fail++;
        fail += maxpool_exact("maxpool hand k2 s2 p1 ceil, dropped window", &L, x, out, arg,
                              dout, din);
    }
    return fail;
}

static int test_maxpool_random(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, kh, kw, sh, sw, ph, pw, ceil_mode;
    } cases[] = {
        {"maxpool 2x2 s2 (vgg)", 3, 8, 8, 2, 2, 2, 2, 0, 0, 0},
        {"maxpool 3x3 s2 overlapping (alexnet)", 2, 13, 13, 3, 3, 2, 2, 0, 0, 0},
        {"maxpool 3x3 s2 p1", 2, 7, 6, 3, 3, 2, 2, 1, 1, 0},
        {"maxpool 3x3 s1 p1", 1, 5, 6, 3, 3, 1, 1, 1, 1, 0},
        {"maxpool 2x2 s2 ceil_mode", 2, 7, 7, 2, 2, 2, 2, 0, 0, 1},
        {"maxpool 3x3 s2 ceil_mode", 2, 6, 8, 3, 3, 2, 2, 0, 0, 1},
        {"maxpool 2x2 s2 p1 ceil_mode", 1, 5, 5, 2, 2, 2, 2, 1, 1, 1},
        {"maxpool 2x3 s(1,2) p(0,1)", 2, 5, 7, 2, 3, 1, 2, 0, 1, 0},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = maxpool_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].kh,
                                    cases[k].kw, cases[k].sh, cases[k].sw, cases[k].ph,
                                    cases[k].pw, cases[k].ceil_mode);
        size_t nin = in_elems(&L), nout = out_elems(&L);
        real *x = alloc_distinct(nin, r), *dout = alloc_uniform(nout, r, -1, 1);
        real *out = alloc_nan(nout), *din = alloc_nan(nin);
        int32_t *arg = xmalloc(sizeof(int32_t) * nout), *ref_arg = xmalloc(sizeof(int32_t) * nout);
        double *ref = xmalloc(sizeof(double) * nout);

        R(maxpool_forward)(out, arg, x, &L);
        maxpool_ref(ref, ref_arg, x, &L);
        fail += report(cases[k].name, "forward", max_diff(out, ref, nout), 0);
        fail += check_index(cases[k].name, arg, ref_arg, nout);

        R(maxpool_backward)(din, dout, arg, &L);
        int32_t *fd_arg = xmalloc(sizeof(int32_t) * nout);
        maxpool_ctx ctx = {&L, fd_arg};
        layer_fn f = {maxpool_fn, &ctx, nin, nout};
        fail += check_fd(cases[k].name, &f, x, dout, din);

        free(x), free(dout), free(out), free(din), free(arg), free(ref_arg), free(ref);
        free(fd_arg);
    }
    return fail;
}

/* ---- adaptive average pooling ---------------------------------------------------- */

typedef struct {
    const sal_layer *L;
} avgpool_ctx;

static void avgpool_fn(const void *ctx, real *out, const real *in) {
    R(avgpool_forward)(out, in, ((const avgpool_ctx *)ctx)->L);
}

/* Direct loops over torch's windows [floor(i*H/OH), ceil((i+1)*H/OH)). */
static void avgpool_ref(double *out, double *out_abs, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < L->in_c; c++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = (int)floor((double)oy * H / OH), y1 = (int)ceil((double)(oy + 1) * H / OH);
                int x0 = (int)floor((double)ox * W / OW), x1 = (int)ceil((double)(ox + 1) * W / OW);
                double s = 0, a = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        double v = in[((size_t)c * H + y) * W + x];
                        s += v, a += fabs(v);
                    }
                size_t o = ((size_t)c * OH + oy) * OW + ox;
                out[o] = s / ((y1 - y0) * (x1 - x0));
                out_abs[o] = a / ((y1 - y0) * (x1 - x0));
            }
}

static int avgpool_exact(const char *what, const sal_layer *L, const real *x,
                         const double *want_out, const real *dout, const double *want_din) {
    real *out = alloc_nan(out_elems(L)), *din = alloc_nan(in_elems(L));
    R(avgpool_forward)(out, x, L);
    int fail = check_exact(what, "forward", out, want_out, out_elems(L));
    R(avgpool_backward)(din, dout, L);
    fail += check_exact(what, "backward", din, want_din, in_elems(L));
    free(out), free(din);
    return fail;
}

static int test_avgpool_exact(rng *r) {
    int fail = 0;
    {
        /* 5x5 -> 3x3: windows per axis [0,2) [1,4) [3,5), sizes 2 3 2, overlapping.
         * On the ramp x(y,x) = 5y + x a window's mean is 5*(row centre) + (column
         * centre), centres 0.5 2 3.5: out = 3 4.5 6 / 10.5 12 13.5 / 18 19.5 21.
         * dout(i,j) = h_i w_j v_ij with v = 1..9 sends exactly v_ij to each element of
         * window (i,j); element (y,x) lies in windows Ry x Rx, Ry: {0} {0,1} {1} {1,2}
         * {2}, so din(y,x) = sum of v over Ry x Rx:
         *   row 0 (v row 0):     1 3 2 5 3
         *   row 1 (rows 0+1):    5 12 7 16 9
         *   row 2 (row 1):       4 9 5 11 6
         *   row 3 (rows 1+2):    11 24 13 28 15
         *   row 4 (row 2):       7 15 8 17 9 */
        real x[25];
        for (int i = 0; i < 25; i++) x[i] = (real)i;
        static const double out[9] = {3, 4.5, 6, 10.5, 12, 13.5, 18, 19.5, 21};
        static const real dout[9] = {4, 12, 12, 24, 45, 36, 28, 48, 36};
        static const double din[25] = {1,  3,  2,  5,  3,  5,  12, 7,  16, 9,  4,  9, 5,
                                       11, 6,  11, 24, 13, 28, 15, 7,  15, 8,  17, 9};
        sal_layer L = plain_layer(SAL_LAYER_AVGPOOL, 1, 5, 5, 1, 3, 3);
        fail += avgpool_exact("avgpool hand 5x5 -> 3x3", &L, x, out, dout, din);
    }
    {
        /* 1x1 -> 2x2: every window is the one element; out = x, din = sum of dout. */
        static const real x[1] = {3}, dout[4] = {1, 2, 3, 4};
        static const double out[4] = {3, 3, 3, 3}, din[1] = {10};
        sal_layer L = plain_layer(SAL_LAYER_AVGPOOL, 1, 1, 1, 1, 2, 2);
        fail += avgpool_exact("avgpool hand 1x1 -> 2x2", &L, x, out, dout, din);
    }
    {
        /* 6x6 -> 6x6 (AlexNet's avgpool at 224): windows of one element, identity both
         * ways, exactly. */
        sal_layer L = plain_layer(SAL_LAYER_AVGPOOL, 3, 6, 6, 3, 6, 6);
        size_t n = in_elems(&L);
        real *x = alloc_uniform(n, r, -3, 3), *dout = alloc_uniform(n, r, -3, 3);
        double *wx = xmalloc(sizeof(double) * n), *wd = xmalloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) wx[i] = x[i], wd[i] = dout[i];
        fail += avgpool_exact("avgpool 6x6 -> 6x6 identity", &L, x, wx, dout, wd);
        free(x), free(dout), free(wx), free(wd);
    }
    return fail;
}

static int test_avgpool_random(rng *r) {
    static const struct {
        const char *name;
        int C, H, W, OH, OW;
    } cases[] = {
        {"avgpool 5x5 -> 3x3", 2, 5, 5, 3, 3},
        {"avgpool 13x13 -> 6x6", 2, 13, 13, 6, 6},
        {"avgpool 14x14 -> 7x7 (divisible)", 2, 14, 14, 7, 7},
        {"avgpool 7x5 -> 3x2", 3, 7, 5, 3, 2},
        {"avgpool 3x4 -> 6x6 (upsampling)", 2, 3, 4, 6, 6},
        {"avgpool 6x6 -> 6x6", 2, 6, 6, 6, 6},
    };
    int fail = 0;
    for (size_t k = 0; k < LEN(cases); k++) {
        sal_layer L = plain_layer(SAL_LAYER_AVGPOOL, cases[k].C, cases[k].H, cases[k].W,
                                  cases[k].C, cases[k].OH, cases[k].OW);
        size_t nin = in_elems(&L), nout = out_elems(&L);
        real *x = alloc_uniform(nin, r, -2, 2), *dout = alloc_uniform(nout, r, -1, 1);
        real *out = alloc_nan(nout), *din = alloc_nan(nin);
        double *ref = xmalloc(sizeof(double) * nout), *ref_abs = xmalloc(sizeof(double) * nout);
        R(avgpool_forward)(out, x, &L);
        avgpool_ref(ref, ref_abs, x, &L);
        fail += check_ref(cases[k].name, out, ref, ref_abs, nout);
        R(avgpool_backward)(din, dout, &L);
        avgpool_ctx ctx = {&L};
        layer_fn f = {avgpool_fn, &ctx, nin, nout};
        fail += check_fd(cases[k].name, &f, x, dout, din);
        free(x), free(dout), free(out), free(din), free(ref), free(ref_abs);
    }
    return fail;
}

/* ---- linear ---------------------------------------------------------------------- */

typedef struct {
    const sal_layer *L;
    const real *w, *b;
    int n;
} linear_ctx;

static void linear_fn(const void *ctx, real *out, const real *in) {
    const linear_ctx *c = ctx;
    R(linear_forward)(out, in, c->w, c->b, c->L, c->n, NULL);
}

static int test_linear(rng *r) {
    int fail = 0;
    {
        /* n 2, C 3, OC 2: weight [1 2 3; 4 5 6], bias [0.5 -1].
         *   x0 = [1 0 -1] -> [1-3+.5, 4-6-1]  = [-1.5 -3]
         *   x1 = [2 1 0]  -> [2+2+.5, 8+5-1]  = [4.5 12]
         * dout [1 10; -1 2] -> din0 = W0 + 10 W1 = [41 52 63], din1 = -W0 + 2 W1 = [7 8 9] */
        static const real x[6] = {1, 0, -1, 2, 1, 0};
        static const real w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {0.5, -1};
        static const real dout[4] = {1, 10, -1, 2};
        static const double want_out[4] = {-1.5, -3, 4.5, 12};
        static const double want_din[6] = {41, 52, 63, 7, 8, 9};
        sal_layer L = plain_layer(SAL_LAYER_LINEAR, 3, 1, 1, 2, 1, 1);
        real out[4], din[6];
        for (int i = 0; i < 4; i++) out[i] = (real)NAN;
        for (int i = 0; i < 6; i++) din[i] = (real)NAN;
        R(linear_forward)(out, x, w, b, &L, 2, NULL);
        fail += check_exact("linear hand n=2", "forward", out, want_out, 4);
        R(linear_backward)(din, dout, w, &L, 2, NULL);
        fail += check_exact("linear hand n=2", "backward", din, want_din, 6);
    }
    static const struct {
        const char *name;
        int n, C, OC;
    } cases[] = {
        {"linear n=3 17 -> 5", 3, 17, 5},
        {"linear n=4 64 -> 10", 4, 64, 10},
        {"linear n=2 5 -> 23", 2, 5, 23},
    };
    for (size_t k = 0; k < LEN(cases); k++) {
        const int n = cases[k].n, C = cases[k].C, OC = cases[k].OC;
        sal_layer L = plain_layer(SAL_LAYER_LINEAR, C, 1, 1, OC, 1, 1);
        size_t nin = (size_t)n * C, nout = (size_t)n * OC;
        real *x = alloc_uniform(nin, r, -1, 1), *w = alloc_uniform((size_t)OC * C, r, -1, 1);
        real *b = alloc_uniform((size_t)OC, r, -1, 1), *dout = alloc_uniform(nout, r, -1, 1);
        real *out = alloc_nan(nout), *din = alloc_nan(nin);
        double *ref = xmalloc(sizeof(double) * nout), *ref_abs = xmalloc(sizeof(double) * nout);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < OC; o++) {
                double s = b[o], a = fabs((double)b[o]);
                for (int c = 0; c < C; c++) {
                    double t = (double)w[o * C + c] * (double)x[i * C + c];
                    s += t, a += fabs(t);
                }
                ref[i * OC + o] = s, ref_abs[i * OC + o] = a;
            }
        R(linear_forward)(out, x, w, b, &L, n, NULL);
        fail += check_ref(cases[k].name, out, ref, ref_abs, nout);
        R(linear_backward)(din, dout, w, &L, n, NULL);
        linear_ctx ctx = {&L, w, b, n};
        layer_fn f = {linear_fn, &ctx, nin, nout};
        fail += check_fd(cases[k].name, &f, x, dout, din);
        free(x), free(w), free(b), free(dout), free(out), free(din), free(ref), free(ref_abs);
    }
    return fail;
}

int main(void) {
    rng r = {20240611u + SAL_DOUBLE};
    int fail = 0;
    fail += test_conv_exact();
    fail += test_conv_random(&r);
    fail += test_batchnorm(&r);
    fail += test_relu(&r);
    fail += test_maxpool_exact();
    fail += test_maxpool_random(&r);
    fail += test_avgpool_exact(&r);
    fail += test_avgpool_random(&r);
    fail += test_linear(&r);
    fail += test_layers_graph(&r);
    fail += test_layers_fast(&r);
    printf("[" PREC "] test_layers: %d check%s failed\n", fail, fail == 1 ? "" : "s");
    return fail ? 1 : 0;
}
