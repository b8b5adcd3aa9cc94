/*
 * The attribution methods' runs, compiled once per precision (real.h); the engines
 * and buffers are set up by attribution_api.c (state: attribution_internal.h).
 *
 * Sums over SmoothGrad's copies and over Integrated Gradients' path points, Grad-CAM's
 * channel weights and sums run in double in a fixed order (sample by sample, channel
 * by channel), whatever the precision; each result is rounded to the precision once.
 * The inputs the engines see are made in the precision, as a PyTorch user's tensors
 * would be: a noisy copy is x + sigma z with sigma = noise (max(x) - min(x)) and z
 * rounded to the precision, a path point b + alpha (x - b) with alpha rounded;
 * every operation rounds (no fused multiply-add: this file is built with
 * -ffp-contract=off).
 */
#include <string.h>

#include "attrib.h"
#include "attribution_internal.h"
#include "layers.h"
#include "model_internal.h"
#include "real.h"

/* The Grad-CAM node's value of the whole batch, taken as the forward passes it. */
static void capture(void *ctx, int layer, const void *out, int n) {
    sal_attrib *a = ctx;
    if (layer == a->par.cam_layer)
        memcpy(a->cam_value, out, sizeof(real) * (size_t)n * a->cam_elems);
}

/* Grad-CAM of image k, target t at the node: ReLU(sum_c alpha_c A_c), alpha_c the
 * spatial mean of the gradient, upsampled to the input's H x W into up. */
static void gradcam_map(sal_attrib *a, int k, int t, real *up) {
    const sal_preprocess *pp = sal_model_preprocess(a->m);
    const sal_layer *L = &a->m->layers[a->par.cam_layer];
    const size_t P = a->cam_plane;
    const real *g = (const real *)a->cam_grad + ((size_t)k * a->ntargets + t) * a->cam_elems;
    const real *A = (const real *)a->cam_value + (size_t)k * a->cam_elems;
    double *small = a->cam_sum;
    for (size_t p = 0; p < P; p++) small[p] = 0;
    for (int c = 0; c < a->cam_c; c++) {
        double alpha = 0;
        for (size_t p = 0; p < P; p++) alpha += g[c * P + p];
        alpha /= (double)P;
        for (size_t p = 0; p < P; p++) small[p] += alpha * A[c * P + p];
    }
    real *cam = a->cam_low;
    for (size_t p = 0; p < P; p++) cam[p] = (real)(small[p] > 0 ? small[p] : 0);
    R(sal_upsample_bilinear)(up, cam, 1, L->out_h, L->out_w, pp->height, pp->width);
}

/* The fold (attribution_internal.h): dst (in_elems) = the fold convolution's input
 * gradient for the output gradient sum * scale (fold_elems doubles), rounded to the
 * precision first, as the engine's own gradients are. */
static void unfold(const sal_attrib *a, const double *sum, double scale, real *dst) {
    const sal_layer *L = &a->m->layers[a->fold];
    const real *w = (const real *)a->m->params[SAL_PREC] + L->weight_off;
    real *f = a->fold_sum;
    for (size_t e = 0; e < a->fold_elems; e++) f[e] = (real)(sum[e] * scale);
    const sal_par par = {a->pfor, a->pfor ? a->pool : NULL};
    R(conv_backward)(dst, f, 1, w, L, a->fold_col, 1, &par);
}

/* SmoothGrad's noisy copies s0, s0 + 1, ... of one image as batch columns. */
typedef struct {
    const sal_attrib *a;
    const real *x;
    real *cols;
    real sigma;
    uint32_t img;
    int s0;
} sg_copies;

/* Column j: x + sigma z, z drawn in blocks (the noise of an element does not depend
 * on the block, the column or the thread that draws it). A parallel-loop body, so
 * the caller's threads share the generator's cost (~9 % of a single-threaded
 * AlexNet SmoothGrad: log, sin and cos per pair). */
static void sg_copy(void *arg, int j) {
    enum { BLOCK = 512 };
    const sg_copies *c = arg;
    const size_t E = c->a->in_elems;
    const real *x = c->x;
    real *col = c->cols + (size_t)j * E;
    double z[BLOCK];
    for (size_t e0 = 0; e0 < E; e0 += BLOCK) {
        const size_t n = E - e0 < BLOCK ? E - e0 : BLOCK;
        sal_noise_normal(c->a->par.sg_seed, c->img, (uint32_t)(c->s0 + j), e0, n, z);
        for (size_t e = 0; e < n; e++) col[e0 + e] = x[e0 + e] + c->sigma * (real)z[e];
    }
}

/* SmoothGrad of image k (job index img): the statistic over the samples of the base
 * method's maps at the noisy copies, into out[t] (stride T*nmaps*E per image). The
 * mean is a plain sum divided once (folded when a->sg_fold: the engine's maps are then
 * the fold node's gradients); the other statistics use Welford's running mean and
 * sum of squared deviations, sample by sample. */
static int smoothgrad(sal_attrib *a, const real *x, uint32_t img, real *out, size_t stride,
                      char *err, size_t errlen) {
    const size_t E = a->in_elems, G = a->sg_fold ? a->fold_elems : E;
    const int T = a->ntargets, S = a->par.sg_samples;
    const int mean_only = a->par.sg_statistic == SAL_SG_MEAN;
    real lo = x[0], hi = x[0];
    for (size_t e = 1; e < E; e++) {
        if (x[e] < lo) lo = x[e];
        if (x[e] > hi) hi = x[e];
    }
    /* As a PyTorch user writes it in the precision: noise * (max - min), then
     * x + sigma * z with z rounded to the precision first. */
    const real span = hi - lo, sigma = (real)a->par.sg_noise * span;
    double *mean = a->acc, *m2 = a->acc2;
    memset(mean, 0, sizeof(double) * T * G);
    if (!mean_only) memset(m2, 0, sizeof(double) * T * G);
    real *cols = a->cols;
    const real *g = a->col_maps;
    for (int s0 = 0; s0 < S; s0 += a->sg_cols) {
        const int cnt = S - s0 < a->sg_cols ? S - s0 : a->sg_cols;
        sg_copies copies = {a, x, cols, sigma, img, s0};
        if (a->pfor) a->pfor(a->pool, cnt, sg_copy, &copies);
        else
            for (int j = 0; j < cnt; j++) sg_copy(&copies, j);
        if (sal_engine_run(a->sg, cols, cnt, a->col_maps, NULL, NULL, NULL, err, errlen))
            return -1;
        for (int j = 0; j < cnt; j++) {
            const double count = s0 + j + 1;
            for (int t = 0; t < T; t++) {
                const real *gj = g + ((size_t)j * T + t) * G;
                double *mu = mean + (size_t)t * G, *q = m2 + (size_t)t * G;
                if (mean_only)
                    for (size_t e = 0; e < G; e++) mu[e] += gj[e];
                else
                    for (size_t e = 0; e < G; e++) {
                        double v = gj[e], d = v - mu[e];
                        mu[e] += d / count;
                        q[e] += d * (v - mu[e]);
                    }
            }
        }
    }
    for (int t = 0; t < T; t++) {
        const double *mu = mean + (size_t)t * G, *q = m2 + (size_t)t * G;
        real *o = out + (size_t)t * stride;
        if (a->sg_fold) {
            unfold(a, mu, 1.0 / S, o);
            continue;
        }
        for (size_t e = 0; e < E; e++) {
            if (mean_only) {
                o[e] = (real)(mu[e] / S);
                continue;
            }
            double var = q[e] / S;
            double v = a->par.sg_statistic == SAL_SG_MEAN_SQUARE ? var + mu[e] * mu[e] : var;
            o[e] = (real)v;
        }
    }
    return 0;
}

/* The baseline in normalized space: zeros, or an all-black image's (0 - mean) / std. */
static void baseline(const sal_attrib *a, real *b) {
    const sal_preprocess *pp = sal_model_preprocess(a->m);
    const size_t plane = (size_t)pp->height * pp->width;
    for (int c = 0; c < pp->channels; c++) {
        real v = a->par.ig_baseline == SAL_IG_BASELINE_BLACK
                     ? (real)((0.0 - pp->mean[c]) / pp->std[c]) : 0;
        for (size_t p = 0; p < plane; p++) b[c * plane + p] = v;
    }
}

/* Integrated Gradients of image k: (x - b) times the weighted sum of the gradients at
 * the path points, into out[t]; gap[t] the completeness gap given F(x) in fx[t]. */
static int integrated(sal_attrib *a, const real *x, const real *fx, real *out, size_t stride,
                      double *gap, char *err, size_t errlen) {
    const size_t E = a->in_elems, G = a->ig_fold ? a->fold_elems : E;
    const int T = a->ntargets, S = a->par.ig_steps;
    real *b = (real *)a->noise; /* E doubles hold E reals */
    baseline(a, b);
    if (!a->baseline_known) {
        real *fb = a->col_maps; /* free until the path points' runs */
        if (sal_engine_forward(a->ig, b, 1, fb, NULL, NULL, err, errlen)) return -1;
        for (int t = 0; t < T; t++) a->baseline_f[t] = fb[t];
        a->baseline_known = 1;
    }
    double *acc = a->acc;
    memset(acc, 0, sizeof(double) * T * G);
    real *cols = a->cols;
    const real *g = a->col_maps;
    for (int s0 = 0; s0 < S; s0 += a->ig_cols) {
        const int cnt = S - s0 < a->ig_cols ? S - s0 : a->ig_cols;
        for (int j = 0; j < cnt; j++) {
            const real alpha = (real)a->alphas[s0 + j];
            real *c = cols + (size_t)j * E;
            for (size_t e = 0; e < E; e++) c[e] = b[e] + alpha * (x[e] - b[e]);
        }
        if (sal_engine_run(a->ig, cols, cnt, a->col_maps, NULL, NULL, NULL, err, errlen))
            return -1;
        for (int j = 0; j < cnt; j++) {
            const double w = a->weights[s0 + j];
            for (int t = 0; t < T; t++) {
                const real *gj = g + ((size_t)j * T + t) * G;
                double *s = acc + (size_t)t * G;
                for (size_t e = 0; e < G; e++) s[e] += w * gj[e];
            }
        }
    }
    for (int t = 0; t < T; t++) {
        const double *s = acc + (size_t)t * G;
        real *o = out + (size_t)t * stride;
        double sum = 0;
        if (a->ig_fold) { /* the weighted sum at the input, rounded: in o, then scaled */
            unfold(a, s, 1.0, o);
            for (size_t e = 0; e < E; e++) {
                o[e] = (real)((double)(x[e] - b[e]) * o[e]);
                sum += o[e];
            }
        } else
            for (size_t e = 0; e < E; e++) {
                o[e] = (real)((double)(x[e] - b[e]) * s[e]);
                sum += o[e];
            }
        if (gap) gap[t] = sum - ((double)fx[t] - a->baseline_f[t]);
    }
    return 0;
}

int R(sal_attrib_run)(sal_attrib *a, const void *input, int n, const int64_t *image, void *maps,
                      void *activations, void *cams, double *ig_gap, char *err,
                      size_t errlen) {
    const size_t E = a->in_elems;
    const int T = a->ntargets, NM = a->nmaps;
    const sal_preprocess *pp = sal_model_preprocess(a->m);
    const size_t plane = (size_t)pp->height * pp->width;
    const real *x = input;
    real *mp = maps, *act = activations ? activations : a->acts;
    /* map of image k, target t, method slot s */
#define MAP(k, t, s) (mp + (((size_t)(k) * T + (t)) * NM + (s)) * E)
    int have_act = 0;
    if (a->rules) {
        const int NR = a->nrules;
        const real *rm = a->rule_maps;
        if (sal_engine_run(a->rules, x, n, a->rule_maps, act, NULL, NULL, err, errlen))
            return -1;
        have_act = 1;
        static const sal_method rule_method[3] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED,
                                                  SAL_METHOD_DECONVNET};
        for (int k = 0; k < n; k++)
            for (int t = 0; t < T; t++) {
                const real *r0 = rm + ((size_t)k * T + t) * NR * E;
                for (int r = 0; r < 3; r++) {
                    int s = a->map_slot[rule_method[r]];
                    if (s >= 0) memcpy(MAP(k, t, s), r0 + a->rule_slot[r] * E, sizeof(real) * E);
                }
                int s = a->map_slot[SAL_METHOD_GRADIENT_X_INPUT];
                if (s >= 0) {
                    const real *v = r0 + a->rule_slot[0] * E, *xk = x + (size_t)k * E;
                    real *o = MAP(k, t, s);
                    for (size_t e = 0; e < E; e++) o[e] = v[e] * xk[e];
                }
            }
    }
    if (a->cam) {
        if (sal_engine_run(a->cam, x, n, a->cam_grad, have_act ? NULL : act, capture, a, err,
                           errlen))
            return -1;
        have_act = 1;
        real *up = a->cam_up;
        for (int k = 0; k < n; k++)
            for (int t = 0; t < T; t++) {
                real *u = up + ((size_t)k * T + t) * plane;
                gradcam_map(a, k, t, u);
                if (cams && a->want[SAL_METHOD_GRADCAM])
                    memcpy((real *)cams + ((size_t)k * T + t) * plane, u, sizeof(real) * plane);
                int s = a->map_slot[SAL_METHOD_GUIDED_GRADCAM];
                if (s >= 0) {
                    const real *gd = (const real *)a->rule_maps +
                                     (((size_t)k * T + t) * a->nrules + a->rule_slot[1]) * E;
                    real *o = MAP(k, t, s);
                    for (int c = 0; c < pp->channels; c++)
                        for (size_t p = 0; p < plane; p++)
                            o[c * plane + p] = gd[c * plane + p] * u[p];
                }
            }
    }
    if (!have_act) { /* only smoothgrad / integrated_gradients: a forward for F(x) */
        sal_engine *e = a->ig ? a->ig : a->sg;
        const int most = a->ig ? a->ig_cols : a->sg_cols;
        for (int k0 = 0; k0 < n; k0 += most) {
            const int cnt = n - k0 < most ? n - k0 : most;
            if (sal_engine_forward(e, x + (size_t)k0 * E, cnt, act + (size_t)k0 * T, NULL, NULL,
                                   err, errlen))
                return -1;
        }
    }
    for (int k = 0; k < n; k++) {
        const real *xk = x + (size_t)k * E;
        int s = a->map_slot[SAL_METHOD_SMOOTHGRAD];
        if (s >= 0 && smoothgrad(a, xk, (uint32_t)image[k], MAP(k, 0, s), (size_t)NM * E,
                                 err, errlen))
            return -1;
        s = a->map_slot[SAL_METHOD_INTEGRATED_GRADIENTS];
        if (s >= 0 && integrated(a, xk, act + (size_t)k * T, MAP(k, 0, s), (size_t)NM * E,
                                 ig_gap ? ig_gap + (size_t)k * T : NULL, err, errlen))
            return -1;
    }
#undef MAP
    return 0;
}
