/*
 * The attribution driver (sal_attrib, issue 12) on the small graph networks of
 * tests/make_graph_models.py:
 *
 *   test_attrib DIR
 *
 * What follows from the methods' definitions alone, in float64 (the comparison with
 * PyTorch's autograd is tests/reference/methods_reference.py's):
 *   - gradient_x_input is the vanilla map times the input, bit for bit;
 *   - SmoothGrad with noise 0: mean = the base map, mean_square = its square,
 *     variance = 0; with noise, the maps of an image do not depend on the batch it
 *     comes in or its place there, nor on the copies per engine run (bit for bit),
 *     only on its job index;
 *   - Integrated Gradients' completeness gap, recomputed here from the maps, the
 *     activations and a separate forward of the baseline, equals the reported one,
 *     and shrinks as the steps grow (8, 64, 512) for both rules and both baselines;
 *   - guided_gradcam = guided map x the Grad-CAM map (upsampled), Grad-CAM >= 0 and
 *     not all zero;
 *   - float32 agrees with float64 to 1e-4 of the largest value for every method;
 *   - bad parameters are refused with a message.
 * Exit status 1 on any failure. Costs about a second.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"
#define TEST_NAME "test_attrib"
#include "test_util.h"

static int failures;

static uint64_t rng_state = 0xa77c1bu;
static double uniform(double lo, double hi) { return uniform_from(&rng_state, lo, hi); }

static void report(const char *what, double diff, double tol) {
    int ok = diff <= tol;
    printf("  %-62s %-10.3g (tol %.3g) %s\n", what, diff, tol, ok ? "OK" : "FAIL");
    if (!ok) failures++;
}

static double max_abs(const double *v, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

static double max_diff(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

typedef struct {
    sal_model *m;
    sal_target t[2];
    int T;
    size_t E, plane;
} net;

static int open_net(const char *dir, const char *file, const char *t0, int u0, const char *t1,
                    int u1, net *n) {
    char path[4096], err[SAL_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (sal_model_open(path, &n->m, err, sizeof err) ||
        sal_model_load_params(n->m, SAL_F64, NULL, err, sizeof err) ||
        sal_model_load_params(n->m, SAL_F32, NULL, err, sizeof err)) {
        printf("  %s FAIL\n", err);
        failures++;
        return -1;
    }
    n->t[0] = (sal_target){sal_model_find_layer(n->m, t0), u0};
    n->t[1] = (sal_target){sal_model_find_layer(n->m, t1), u1};
    n->T = 2;
    const sal_preprocess *pp = sal_model_preprocess(n->m);
    n->plane = (size_t)pp->height * pp->width;
    n->E = (size_t)pp->channels * n->plane;
    return 0;
}

/* One run of the methods on n images (float64); NULL outputs are skipped. */
static int run(const net *nt, int batch, const sal_method *meth, int M,
               const sal_method_params *par, const double *x, int n, int64_t image0,
               double *maps, double *act, double *cams, double *gap) {
    char err[SAL_ERR_LEN];
    int64_t ids[8];
    for (int k = 0; k < n && k < 8; k++) ids[k] = image0 + k;
    sal_attrib *a = NULL;
    int rc = sal_attrib_init(&a, nt->m, SAL_F64, batch, nt->t, nt->T, meth, M, par, err,
                             sizeof err) ||
             sal_attrib_run(a, x, n, ids, maps, act, cams, gap, err, sizeof err);
    if (rc) {
        printf("  run: %s FAIL\n", err);
        failures++;
    }
    sal_attrib_free(a);
    return rc;
}

static void test_rules_and_smoothgrad(const net *nt) {
    const int N = 3;
    const size_t E = nt->E, T = nt->T;
    double *x = xcalloc(N * E, sizeof *x);
    for (size_t i = 0; i < N * E; i++) x[i] = uniform(-2, 2);
    sal_method_params p;
    sal_method_params_default(&p);
    p.sg_samples = 7;
    p.sg_noise = 0;
    const sal_method meth[4] = {SAL_METHOD_VANILLA, SAL_METHOD_GRADIENT_X_INPUT,
                                SAL_METHOD_SMOOTHGRAD, SAL_METHOD_GUIDED};
    double *maps = xcalloc(N * T * 4 * E, sizeof *maps);
    if (run(nt, 4, meth, 4, &p, x, N, 0, maps, NULL, NULL, NULL)) goto done;
    double gxi = 0, sg_mean = 0, scale = 0;
    for (int k = 0; k < N; k++)
        for (size_t t = 0; t < T; t++) {
            const double *v = maps + ((k * T + t) * 4 + 0) * E, *g = v + E, *s = v + 2 * E;
            for (size_t e = 0; e < E; e++) {
                gxi = fmax(gxi, fabs(g[e] - v[e] * x[k * E + e]));
                sg_mean = fmax(sg_mean, fabs(s[e] - v[e]));
                scale = fmax(scale, fabs(v[e]));
            }
        }
    report("gradient_x_input = vanilla x input (bit for bit)", gxi, 0);
    report("smoothgrad, noise 0, mean = vanilla", sg_mean, 1e-13 * scale);
    /* mean_square and variance of noise-free copies */
    const sal_method sg = SAL_METHOD_SMOOTHGRAD, va = SAL_METHOD_VANILLA;
    double *one = xcalloc(N * T * E, sizeof *one), *van = xcalloc(N * T * E, sizeof *van);
    run(nt, 4, &va, 1, &p, x, N, 0, van, NULL, NULL, NULL);
    p.sg_statistic = SAL_SG_MEAN_SQUARE;
    run(nt, 4, &sg, 1, &p, x, N, 0, one, NULL, NULL, NULL);
    double d = 0;
    for (size_t i = 0; i < N * T * E; i++) d = fmax(d, fabs(one[i] - van[i] * van[i]));
    report("smoothgrad, noise 0, mean_square = vanilla^2", d, 1e-13 * scale * scale);
    p.sg_statistic = SAL_SG_VARIANCE;
    run(nt, 4, &sg, 1, &p, x, N, 0, one, NULL, NULL, NULL);
    report("smoothgrad, noise 0, variance = 0", max_abs(one, N * T * E), 1e-26 * scale * scale);
    /* With noise: image k's maps depend on its job index only. */
    p.sg_statistic = SAL_SG_MEAN;
    p.sg_noise = 0.2;
    p.sg_samples = 5;
    run(nt, N, &sg, 1, &p, x, N, 10, one, NULL, NULL, NULL);
    double split = 0, moved = 0;
    for (int k = 0; k < N; k++) {
        double *alone = xcalloc(T * E, sizeof *alone);
        run(nt, 3, &sg, 1, &p, x + k * E, 1, 10 + k, alone, NULL, NULL, NULL);
        split = fmax(split, max_diff(alone, one + k * T * E, T * E));
        run(nt, 3, &sg, 1, &p, x + k * E, 1, 20 + k, alone, NULL, NULL, NULL);
        moved = fmax(moved, max_diff(alone, one + k * T * E, T * E));
        free(alone);
    }
    report("smoothgrad: one image alone = in a batch (bit for bit)", split, 0);
    /* Copies per engine run (automatic: all 5 here): 1, 2 (runs of 2, 2, 1) and 3. */
    double cols = 0;
    for (int c = 1; c <= 3; c++) {
        sal_method_params q = p;
        q.sg_columns = c;
        double *other = xcalloc(N * T * E, sizeof *other);
        run(nt, N, &sg, 1, &q, x, N, 10, other, NULL, NULL, NULL);
        cols = fmax(cols, max_diff(other, one, N * T * E));
        free(other);
    }
    report("smoothgrad: 1, 2, 3 copies per run = all 5 (bit for bit)", cols, 0);
    printf("  smoothgrad: another job index gives other noise: max change %.3g %s\n", moved,
           moved > 0 ? "OK" : "FAIL");
    if (!(moved > 0)) failures++;
    free(one), free(van);
done:
    free(x), free(maps);
}

/* F(baseline) by a plain engine forward, for the gap recomputed here. */
static void forward_scalars(const net *nt, const double *x, double *f) {
    char err[SAL_ERR_LEN];
    sal_engine *e = NULL;
    const sal_method va = SAL_METHOD_VANILLA;
    if (sal_engine_init(&e, nt->m, SAL_F64, 1, nt->t, nt->T, &va, 1, err, sizeof err) ||
        sal_engine_forward(e, x, 1, f, NULL, NULL, err, sizeof err)) {
        printf("  forward: %s FAIL\n", err);
        failures++;
    }
    sal_engine_free(e);
}

static void test_integrated(const net *nt) {
    const size_t E = nt->E, T = nt->T;
    const sal_preprocess *pp = sal_model_preprocess(nt->m);
    double *x = xcalloc(E, sizeof *x), *maps = xcalloc(T * E, sizeof *maps);
    double act[2], gap[2], fb[2], *b = xcalloc(E, sizeof *b);
    for (size_t i = 0; i < E; i++) x[i] = uniform(-2, 2);
    const sal_method ig = SAL_METHOD_INTEGRATED_GRADIENTS;
    for (int base = 0; base < 2; base++)
        for (int rule = 0; rule < 2; rule++) {
            sal_method_params p;
            sal_method_params_default(&p);
            p.ig_rule = rule ? SAL_IG_RIEMANN_TRAPEZOID : SAL_IG_GAUSS_LEGENDRE;
            p.ig_baseline = base ? SAL_IG_BASELINE_BLACK : SAL_IG_BASELINE_ZERO;
            for (int c = 0; c < pp->channels; c++)
                for (size_t q = 0; q < nt->plane; q++)
                    b[c * nt->plane + q] = base ? (0.0 - pp->mean[c]) / pp->std[c] : 0;
            forward_scalars(nt, b, fb);
            double prev = INFINITY, worst_report = 0;
            int shrinks = 1;
            char line[160];
            for (int steps = 8; steps <= 512; steps *= 8) {
                p.ig_steps = steps;
                if (run(nt, 4, &ig, 1, &p, x, 1, 0, maps, act, NULL, gap)) return;
                double g = 0;
                for (size_t t = 0; t < T; t++) {
                    double sum = 0;
                    for (size_t e = 0; e < E; e++) sum += maps[t * E + e];
                    double mine = sum - (act[t] - fb[t]);
                    worst_report = fmax(worst_report, fabs(mine - gap[t]));
                    g = fmax(g, fabs(gap[t]) / fmax(fabs(act[t] - fb[t]), 1e-300));
                }
                printf("  IG %-17s %s baseline, %3d steps: |gap| / |F(x) - F(b)| = %.3g\n",
                       rule ? "riemann_trapezoid" : "gausslegendre", base ? "black" : "zero",
                       steps, g);
                /* Below ~1e-4 the path's kinks (ReLU and max-pool switches) set
                 * the quadrature's error, not the number of steps: graph_inception's
                 * Gauss-Legendre gap is 1.7e-5 at 64 steps and 2.6e-5 at 512. */
                if (!(g < prev) && prev > 1e-4) shrinks = 0;
                prev = g;
            }
            snprintf(line, sizeof line, "IG %s, %s: reported gap = recomputed gap",
                     rule ? "riemann" : "gausslegendre", base ? "black" : "zero");
            report(line, worst_report, 1e-12 * fmax(fabs(act[0]), 1));
            printf("  IG %s, %s: the gap shrinks with the steps %s\n",
                   rule ? "riemann" : "gausslegendre", base ? "black" : "zero",
                   shrinks ? "OK" : "FAIL");
            if (!shrinks) failures++;
            if (prev > 0.05) {
                printf("  IG: at 512 steps the gap is still %.3g of F(x) - F(b) FAIL\n", prev);
                failures++;
            }
        }
    free(x), free(maps), free(b);
}

static void test_gradcam(const net *nt, const char *layer) {
    const int N = 2;
    const size_t E = nt->E, T = nt->T, P = nt->plane;
    double *x = xcalloc(N * E, sizeof *x), *maps = xcalloc(N * T * 2 * E, sizeof *maps);
    double *cams = xcalloc(N * T * P, sizeof *cams);
    for (size_t i = 0; i < N * E; i++) x[i] = uniform(-2, 2);
    sal_method_params p;
    sal_method_params_default(&p);
    p.cam_layer = sal_model_find_layer(nt->m, layer);
    const sal_method meth[3] = {SAL_METHOD_GUIDED, SAL_METHOD_GRADCAM, SAL_METHOD_GUIDED_GRADCAM};
    if (run(nt, 2, meth, 3, &p, x, N, 0, maps, NULL, cams, NULL)) goto done;
    double d = 0, neg = 0;
    for (int k = 0; k < N; k++)
        for (size_t t = 0; t < T; t++) {
            const double *g = maps + ((k * T + t) * 2) * E, *gg = g + E;
            const double *c = cams + (k * T + t) * P;
            for (size_t e = 0; e < E; e++) d = fmax(d, fabs(gg[e] - g[e] * c[e % P]));
            for (size_t q = 0; q < P; q++) neg = fmax(neg, -c[q]);
        }
    report("guided_gradcam = guided x gradcam", d, 0);
    report("gradcam >= 0", neg, 0);
    double top = max_abs(cams, N * T * P);
    printf("  gradcam at %s: largest value %.3g %s\n", layer, top, top > 0 ? "OK" : "FAIL");
    if (!(top > 0)) failures++;
done:
    free(x), free(maps), free(cams);
}

/* float32 against float64 for every method but IG (its gap is float64 anyway). */
static void test_float32(const net *nt, const char *layer) {
    char err[SAL_ERR_LEN];
    const int N = 2;
    const size_t E = nt->E, T = nt->T, P = nt->plane;
    sal_method_params p;
    sal_method_params_default(&p);
    p.sg_samples = 4;
    p.ig_steps = 6;
    p.cam_layer = sal_model_find_layer(nt->m, layer);
    const sal_method meth[7] = {SAL_METHOD_VANILLA, SAL_METHOD_DECONVNET,
                                SAL_METHOD_GRADIENT_X_INPUT, SAL_METHOD_SMOOTHGRAD,
                                SAL_METHOD_INTEGRATED_GRADIENTS, SAL_METHOD_GRADCAM,
                                SAL_METHOD_GUIDED_GRADCAM};
    const int NM = 6;
    double *x = xcalloc(N * E, sizeof *x), *m64 = xcalloc(N * T * NM * E, sizeof *m64);
    float *x32 = xcalloc(N * E, sizeof *x32), *m32 = xcalloc(N * T * NM * E, sizeof *m32);
    double *c64 = xcalloc(N * T * P, sizeof *c64);
    float *c32 = xcalloc(N * T * P, sizeof *c32);
    for (size_t i = 0; i < N * E; i++) x32[i] = (float)(x[i] = uniform(-2, 2));
    sal_attrib *a = NULL, *b = NULL;
    const int64_t ids[2] = {0, 1};
    if (sal_attrib_init(&a, nt->m, SAL_F64, N, nt->t, nt->T, meth, 7, &p, err, sizeof err) ||
        sal_attrib_init(&b, nt->m, SAL_F32, N, nt->t, nt->T, meth, 7, &p, err, sizeof err) ||
        sal_attrib_run(a, x, N, ids, m64, NULL, c64, NULL, err, sizeof err) ||
        sal_attrib_run(b, x32, N, ids, m32, NULL, c32, NULL, err, sizeof err)) {
        printf("  float32: %s FAIL\n", err);
        failures++;
    } else if (sal_attrib_num_maps(a) != NM) {
        printf("  %d maps per target, expected %d FAIL\n", sal_attrib_num_maps(a), NM);
        failures++;
    } else {
        static const char *names[6] = {"vanilla", "deconvnet", "gradient_x_input",
                                       "smoothgrad", "integrated_gradients",
                                       "guided_gradcam"};
        for (int s = 0; s < NM; s++) {
            double d = 0, sc = 0;
            for (int k = 0; k < N; k++)
                for (size_t t = 0; t < T; t++)
                    for (size_t e = 0; e < E; e++) {
                        size_t i = ((k * T + t) * NM + s) * E + e;
                        d = fmax(d, fabs(m32[i] - m64[i]));
                        sc = fmax(sc, fabs(m64[i]));
                    }
            char what[96];
            snprintf(what, sizeof what, "float32 vs float64: %s", names[s]);
            report(what, d, 1e-4 * sc);
        }
        double d = 0, sc = 0;
        for (size_t i = 0; i < N * T * P; i++) {
            d = fmax(d, fabs(c32[i] - c64[i]));
            sc = fmax(sc, fabs(c64[i]));
        }
        report("float32 vs float64: gradcam", d, 1e-4 * sc);
    }
    sal_attrib_free(a), sal_attrib_free(b);
    free(x), free(m64), free(x32), free(m32), free(c64), free(c32);
}

static void refused(const net *nt, sal_method meth, sal_method_params p, const char *expect) {
    char err[SAL_ERR_LEN] = "";
    sal_attrib *a = NULL;
    int rc = sal_attrib_init(&a, nt->m, SAL_F64, 2, nt->t, nt->T, &meth, 1, &p, err, sizeof err);
    int ok = rc != 0 && !a && strstr(err, expect);
    printf("  %s refused: \"%s\" %s\n", sal_method_name(meth), err, ok ? "OK" : "FAIL");
    if (!ok) failures++;
    sal_attrib_free(a);
}

static void test_refusals(const net *nt) {
    sal_method_params p;
    sal_method_params_default(&p);
    sal_method_params q = p;
    q.sg_samples = 0;
    refused(nt, SAL_METHOD_SMOOTHGRAD, q, "samples 0");
    q = p, q.sg_noise = -1;
    refused(nt, SAL_METHOD_SMOOTHGRAD, q, "noise");
    q = p, q.sg_base = SAL_METHOD_SMOOTHGRAD;
    refused(nt, SAL_METHOD_SMOOTHGRAD, q, "base");
    q = p, q.sg_columns = -1;
    refused(nt, SAL_METHOD_SMOOTHGRAD, q, "columns");
    q = p, q.ig_steps = 1, q.ig_rule = SAL_IG_RIEMANN_TRAPEZOID;
    refused(nt, SAL_METHOD_INTEGRATED_GRADIENTS, q, "riemann_trapezoid");
    q = p;
    refused(nt, SAL_METHOD_GRADCAM, q, "no layer");
    q.cam_layer = sal_model_find_layer(nt->m, "fc");
    refused(nt, SAL_METHOD_GRADCAM, q, "no spatial map");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_attrib DIR (from tests/make_graph_models.py)\n");
        return 2;
    }
    net res = {0}, inc = {0};
    if (!open_net(argv[1], "graph_residual.h5", "layer1_bottleneck0", 2, "fc", 4, &res)) {
        printf("graph_residual.h5\n");
        test_rules_and_smoothgrad(&res);
        test_integrated(&res);
        test_gradcam(&res, "relu");
        test_refusals(&res);
    }
    if (!open_net(argv[1], "graph_inception.h5", "inception3a", 3, "fc", 1, &inc)) {
        printf("graph_inception.h5\n");
        /* Its input's one consumer is a convolution: SmoothGrad's mean and IG fold it. */
        test_rules_and_smoothgrad(&inc);
        test_integrated(&inc);
        test_gradcam(&inc, "maxpool1");
        test_float32(&inc, "maxpool1");
    }
    sal_model_free(res.m);
    sal_model_free(inc.m);
    printf("test_attrib: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
