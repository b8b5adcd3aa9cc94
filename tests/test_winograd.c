/*
 * Tests of the Winograd input gradient (core/winograd.c), float32:
 *   - the Cook-Toom matrices of every F(m, r) with alpha <= 8 satisfy the 1-D
 *     identity A^T (G g .* B^T d) = correlation exactly (up to double rounding);
 *   - random layers (r = 3 and 5, every padding 0..r-1, odd sizes, channel counts
 *     that are multiples of nothing, several blocks of columns and partial lane
 *     groups) against the input gradient computed in double, for every m the
 *     engine may use; the error is relative to the sum of |w * dout| behind each
 *     element, and its bound per alpha is stated below with the measurement;
 *   - the direct float32 path on the same cases, for comparison (printed);
 *   - the same bits whatever order the parts of the parallel loop run in.
 * Costs about 0.2 s.
 *
 * With `--bench MODEL.h5 [samples] [reps] [m]` it instead times, for every layer of the
 * model that Winograd serves, the direct backward and Winograd's for each m (or only
 * the given m) on `samples` (default 100) backward samples (median CPU time of
 * `reps`), and prints the error of both against double on two samples
 * (docs/performance.md, "Winograd").
 *
 * With `--bench-shape C OC H [samples] [reps]` it times one 3x3 layer of that shape
 * (C -> OC channels, HxH, padding 1, random weights) direct and by F(2x2, 3x3),
 * backward and forward, and says whether the engine would use Winograd for it
 * (wino_worth; docs/performance.md, "Small layers stay direct").
 */
#define _POSIX_C_SOURCE 200809L
#define TEST_NAME "test_winograd"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "salcore.h"
#include "test_util.h"
#include "winograd.h"

/* Bounds on max |error| / scale (rel_error) per alpha, each about 3x the largest
 * measured over this file's cases on x86-64 (Sapphire Rapids, OpenBLAS's AVX-512
 * kernels): alpha 4: 8.2e-8, 5: 6.8e-7, 6: 1.3e-6, 7: 2.5e-6, 8: 2.5e-6 (printed
 * as "worst" at the end). The direct path measures up to 1e-7 on the same cases;
 * float32's unit roundoff is 6e-8. A wrong matrix entry gives errors of order 1. */
static const double bound_by_alpha[WINO_MAX_ALPHA + 1] = {0, 0, 0, 0, 3e-7, 2e-6,
                                                          4e-6, 8e-6, 8e-6};
static double worst_by_alpha[WINO_MAX_ALPHA + 1];

static int failures;
static uint64_t rng = 12345;

static double uniform(double lo, double hi) { return uniform_from(&rng, lo, hi); }

/* din (n,C,H,W) in double, and the sum of |terms| behind each element. */
static void backward_ref(double *din, double *din_abs, const float *dout, const float *w,
                         int n, const sal_layer *L) {
    const int C = L->in_c, OC = L->out_c, H = L->in_h, W = L->in_w;
    const int OH = L->out_h, OW = L->out_w, r = L->kh;
    const size_t plane = (size_t)H * W;
    memset(din, 0, sizeof(double) * n * C * plane);
    memset(din_abs, 0, sizeof(double) * n * C * plane);
    for (int i = 0; i < n; i++)
        for (int oc = 0; oc < OC; oc++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const double g = dout[(((size_t)i * OC + oc) * OH + oy) * OW + ox];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < r; ky++) {
                            const int y = oy - L->ph + ky;
                            if (y < 0 || y >= H) continue;
                            for (int kx = 0; kx < r; kx++) {
                                const int x = ox - L->pw + kx;
                                if (x < 0 || x >= W) continue;
                                const double t = g * w[(((size_t)oc * C + c) * r + ky) * r + kx];
                                const size_t o = ((size_t)i * C + c) * plane + (size_t)y * W + x;
                                din[o] += t;
                                din_abs[o] += fabs(t);
                            }
                        }
                }
}

/* out (n,OC,OH,OW) = conv(in) + bias in double, and the sum of |terms| (bias
 * included) behind each element. */
static void forward_ref(double *out, double *out_abs, const float *in, const float *w,
                        const float *bias, int n, const sal_layer *L) {
    const int C = L->in_c, OC = L->out_c, H = L->in_h, W = L->in_w;
    const int OH = L->out_h, OW = L->out_w, r = L->kh;
    for (int i = 0; i < n; i++)
        for (int oc = 0; oc < OC; oc++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    double s = bias[oc], sa = fabs(bias[oc]);
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < r; ky++) {
                            const int y = oy - L->ph + ky;
                            if (y < 0 || y >= H) continue;
                            for (int kx = 0; kx < r; kx++) {
                                const int x = ox - L->pw + kx;
                                if (x < 0 || x >= W) continue;
                                const double t =
                                    (double)w[(((size_t)oc * C + c) * r + ky) * r + kx] *
                                    in[(((size_t)i * C + c) * H + y) * W + x];
                                s += t;
                                sa += fabs(t);
                            }
                        }
                    const size_t o = (((size_t)i * OC + oc) * OH + oy) * OW + ox;
                    out[o] = s;
                    out_abs[o] = sa;
                }
}

/* max |got - ref| / scale, the scale of an element the largest sum of |terms| in
 * its plane: Winograd's error in a tile comes from every product in it, not from
 * the element's own terms alone. */
static double rel_error(const float *got, const double *ref, const double *ref_abs,
                        size_t count, size_t plane) {
    double worst = 0;
    for (size_t p0 = 0; p0 < count; p0 += plane) {
        double scale = 0;
        for (size_t k = p0; k < p0 + plane; k++) scale = fmax(scale, ref_abs[k]);
        for (size_t k = p0; k < p0 + plane; k++) {
            double e = fabs((double)got[k] - ref[k]) / (scale > 0 ? scale : 1);
            if (!(e <= worst)) worst = e; /* NaN (an element never written) wins */
        }
    }
    return worst;
}

static sal_layer conv_layer(int C, int OC, int H, int W, int r, int ph, int pw) {
    sal_layer L;
    memset(&L, 0, sizeof L);
    L.kind = SAL_LAYER_CONV;
    L.in_c = C, L.in_h = H, L.in_w = W, L.out_c = OC;
    L.kh = L.kw = r, L.sh = L.sw = 1, L.ph = ph, L.pw = pw, L.groups = 1;
    L.out_h = H + 2 * ph - r + 1, L.out_w = W + 2 * pw - r + 1;
    return L;
}

/* A parallel loop that runs the parts last first: the results must not change. */
static void reverse_for(void *pool, int n, sal_parallel_body body, void *arg) {
    (void)pool;
    for (int i = n - 1; i >= 0; i--) body(arg, i);
}

static int plan_identities(void) {
    int bad = 0;
    for (int r = 2; r <= 7; r++)
        for (int m = 1; m + r - 1 <= WINO_MAX_ALPHA; m++) {
            wino_plan p;
            if (wino_plan_init(&p, m, r)) {
                printf("  F(%d,%d): plan refused FAIL\n", m, r);
                bad++;
                continue;
            }
            double e = wino_plan_identity_error(&p);
            if (!(e < 1e-12)) {
                printf("  F(%d,%d): identity error %.3g FAIL\n", m, r, e);
                bad++;
            }
        }
    wino_plan p;
    if (!wino_plan_init(&p, 7, 3)) {
        printf("  F(7,3) (alpha 9) accepted FAIL\n");
        bad++;
    }
    printf("  Cook-Toom identities of every F(m, r), alpha <= 8: %s\n", bad ? "FAIL" : "OK");
    return bad;
}

/* One random layer: Winograd for every m with alpha <= 8 against double. */
static void layer_case(int C, int OC, int H, int W, int r, int ph, int pw, int n) {
    sal_layer L = conv_layer(C, OC, H, W, r, ph, pw);
    const size_t in_e = (size_t)n * C * H * W, out_e = (size_t)n * OC * L.out_h * L.out_w;
    float *w = xcalloc((size_t)OC * C * r * r, sizeof *w);
    float *dout = xcalloc(out_e, sizeof *dout), *din = xcalloc(in_e, sizeof *din);
    double *ref = xcalloc(in_e, sizeof *ref), *ref_abs = xcalloc(in_e, sizeof *ref_abs);
    for (size_t k = 0; k < (size_t)OC * C * r * r; k++) w[k] = (float)uniform(-1, 1);
    for (size_t k = 0; k < out_e; k++) dout[k] = (float)uniform(-1, 1);
    backward_ref(ref, ref_abs, dout, w, n, &L);
    /* The direct path, for scale. */
    const int g = n;
    float *col = xcalloc(conv_scratch_elems(&L, g), sizeof *col);
    conv_backward_f32(din, dout, n, w, &L, col, g, NULL);
    const double direct = rel_error(din, ref, ref_abs, in_e, (size_t)H * W);
    free(col);
    printf("  C %d OC %d %dx%d r %d pad %d,%d n %d: direct %.2g", C, OC, H, W, r, ph, pw, n,
           direct);
    for (int m = 2; m + r - 1 <= WINO_MAX_ALPHA; m++) {
        wino_plan p;
        wino_plan_init(&p, m, r);
        float *U = xcalloc(wino_weights_elems(&L, &p), sizeof *U);
        float *scratch = xcalloc(wino_scratch_elems(&L, &p), sizeof *scratch);
        float *din2 = xcalloc(in_e, sizeof *din2);
        wino_transform_weights(U, w, &L, &p);
        for (size_t k = 0; k < in_e; k++) din[k] = NAN; /* every element must be written */
        wino_conv_backward(din, dout, n, U, &p, &L, scratch, NULL);
        const double e = rel_error(din, ref, ref_abs, in_e, (size_t)H * W);
        sal_par par = {reverse_for, NULL};
        wino_conv_backward(din2, dout, n, U, &p, &L, scratch, &par);
        const int same = !memcmp(din, din2, sizeof *din * in_e);
        const int ok = e <= bound_by_alpha[p.alpha] && same;
        if (!(e <= worst_by_alpha[p.alpha])) worst_by_alpha[p.alpha] = e;
        printf(", F(%d) %.2g%s%s", m, e, same ? "" : " (differs in parallel)", ok ? "" : " FAIL");
        failures += !ok;
        free(U), free(scratch), free(din2);
    }
    printf("\n");

    /* The forward (convolution = "fastest"), bias included, on random inputs. */
    float *in = xcalloc(in_e, sizeof *in), *bias = xcalloc(OC, sizeof *bias);
    float *out = xcalloc(out_e, sizeof *out), *out2 = xcalloc(out_e, sizeof *out2);
    double *fref = xcalloc(out_e, sizeof *fref), *fref_abs = xcalloc(out_e, sizeof *fref_abs);
    for (size_t k = 0; k < in_e; k++) in[k] = (float)uniform(-1, 1);
    for (int k = 0; k < OC; k++) bias[k] = (float)uniform(-1, 1);
    forward_ref(fref, fref_abs, in, w, bias, n, &L);
    const size_t oplane = (size_t)L.out_h * L.out_w;
    col = xcalloc(conv_scratch_elems(&L, g), sizeof *col);
    conv_forward_f32(out, in, n, w, bias, &L, col, g, NULL);
    printf("    forward: direct %.2g", rel_error(out, fref, fref_abs, out_e, oplane));
    free(col);
    for (int m = 2; m + r - 1 <= WINO_MAX_ALPHA; m++) {
        wino_plan p;
        wino_plan_init(&p, m, r);
        float *Uf = xcalloc(wino_weights_elems(&L, &p), sizeof *Uf);
        float *scratch = xcalloc(wino_scratch_elems(&L, &p), sizeof *scratch);
        wino_transform_weights_forward(Uf, w, &L, &p);
        for (size_t k = 0; k < out_e; k++) out[k] = NAN;
        wino_conv_forward(out, in, n, Uf, bias, &p, &L, scratch, NULL);
        const double e = rel_error(out, fref, fref_abs, out_e, oplane);
        sal_par par = {reverse_for, NULL};
        wino_conv_forward(out2, in, n, Uf, bias, &p, &L, scratch, &par);
        const int same = !memcmp(out, out2, sizeof *out * out_e);
        const int ok = e <= bound_by_alpha[p.alpha] && same;
        if (!(e <= worst_by_alpha[p.alpha])) worst_by_alpha[p.alpha] = e;
        printf(", F(%d) %.2g%s%s", m, e, same ? "" : " (differs in parallel)", ok ? "" : " FAIL");
        failures += !ok;
        free(Uf), free(scratch);
    }
    printf("\n");
    free(in), free(bias), free(out), free(out2), free(fref), free(fref_abs);
    free(w), free(dout), free(din), free(ref), free(ref_abs);
}

/* ---- --bench ------------------------------------------------------------------------- */

/* CPU time of the process: steadier than wall time on a shared machine (run the
 * bench with OPENBLAS_NUM_THREADS=1, so it is one thread's). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench(const char *path, int n, int reps, int only_m) {
    char err[SAL_ERR_LEN];
    sal_model *model;
    if (sal_model_open(path, &model, err, sizeof err) ||
        sal_model_load_params(model, SAL_F32, NULL, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    const float *P = sal_model_params(model, SAL_F32);
    double *t = xcalloc(reps, sizeof *t);
    for (int i = 0; i < sal_model_num_layers(model); i++) {
        const sal_layer *L = sal_model_layer(model, i);
        if (!wino_eligible(L)) continue;
        const float *w = P + L->weight_off;
        const size_t in_e = (size_t)n * L->in_c * L->in_h * L->in_w;
        const size_t out_e = (size_t)n * L->out_c * L->out_h * L->out_w;
        float *dout = xcalloc(out_e, sizeof *dout), *din = xcalloc(in_e, sizeof *din);
        for (size_t k = 0; k < out_e; k++) dout[k] = (float)uniform(-1, 1);
        const size_t e2 = (size_t)2 * L->in_c * L->in_h * L->in_w;
        double *ref = xcalloc(e2, sizeof *ref), *ref_abs = xcalloc(e2, sizeof *ref_abs);
        backward_ref(ref, ref_abs, dout, w, 2, L);
        const int P1 = L->out_h * L->out_w, g0 = (2048 + P1 - 1) / P1, g = g0 < n ? g0 : n;
        float *col = xcalloc(conv_scratch_elems(L, g), sizeof *col);
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            conv_backward_f32(din, dout, n, w, L, col, g, NULL);
            t[k] = now() - t0;
        }
        qsort(t, reps, sizeof *t, by_value);
        printf("%s (%d->%d, %dx%d, r %d), %d samples: direct %.1f ms, error %.2g\n", L->name,
               L->out_c, L->in_c, L->in_h, L->in_w, L->kh, n, t[reps / 2] * 1e3,
               rel_error(din, ref, ref_abs, e2, (size_t)L->in_h * L->in_w));
        free(col);
        for (int m = 2; m + L->kh - 1 <= WINO_MAX_ALPHA; m++) {
            if (only_m && m != only_m) continue;
            wino_plan p;
            wino_plan_init(&p, m, L->kh);
            float *U = xcalloc(wino_weights_elems(L, &p), sizeof *U);
            float *scratch = xcalloc(wino_scratch_elems(L, &p), sizeof *scratch);
            double t0 = now();
            wino_transform_weights(U, w, L, &p);
            const double tw = now() - t0;
            for (int k = 0; k < reps; k++) {
                t0 = now();
                wino_conv_backward(din, dout, n, U, &p, L, scratch, NULL);
                t[k] = now() - t0;
            }
            qsort(t, reps, sizeof *t, by_value);
            printf("  F(%dx%d, %dx%d)%s: %.1f ms, error %.2g (weights: %.0f ms, %.1f MB)\n", m,
                   m, L->kh, L->kh, m == wino_choose_m(L, 0) ? " [chosen]" : "", t[reps / 2] * 1e3,
                   rel_error(din, ref, ref_abs, e2, (size_t)L->in_h * L->in_w), tw * 1e3,
                   wino_weights_elems(L, &p) * 4e-6);
            free(U), free(scratch);
        }
        free(dout), free(din), free(ref), free(ref_abs);
    }
    free(t);
    sal_model_free(model);
    return 0;
}

/* Median CPU time of reps calls of fn(arg). */
typedef void (*bench_fn)(void *);
static double median_time(bench_fn fn, void *arg, int reps, double *t) {
    for (int k = 0; k < reps; k++) {
        const double t0 = now();
        fn(arg);
        t[k] = now() - t0;
    }
    qsort(t, reps, sizeof *t, by_value);
    return t[reps / 2];
}

typedef struct {
    const sal_layer *L;
    const wino_plan *p;
    float *in, *out, *w, *b, *U, *Uf, *col, *scratch;
    int n, g;
} shape_job;

static void direct_bwd(void *a) {
    shape_job *j = a;
    conv_backward_f32(j->in, j->out, j->n, j->w, j->L, j->col, j->g, NULL);
}
static void wino_bwd(void *a) {
    shape_job *j = a;
    wino_conv_backward(j->in, j->out, j->n, j->U, j->p, j->L, j->scratch, NULL);
}
static void direct_fwd(void *a) {
    shape_job *j = a;
    conv_forward_f32(j->out, j->in, j->n, j->w, j->b, j->L, j->col, j->g, NULL);
}
static void wino_fwd(void *a) {
    shape_job *j = a;
    wino_conv_forward(j->out, j->in, j->n, j->Uf, j->b, j->p, j->L, j->scratch, NULL);
}

static int bench_shape(int C, int OC, int H, int n, int reps) {
    if (C < 1 || OC < 1 || H < 1 || n < 1 || reps < 1) {
        fprintf(stderr, "usage: test_winograd --bench-shape C OC H [samples] [reps]\n");
        return 2;
    }
    const sal_layer L = conv_layer(C, OC, H, H, 3, 1, 1);
    wino_plan p;
    wino_plan_init(&p, 2, 3);
    const size_t in_e = (size_t)n * C * H * H, out_e = (size_t)n * OC * H * H;
    const int P1 = H * H, g0 = (2048 + P1 - 1) / P1;
    shape_job j = {&L, &p, xcalloc(in_e, sizeof(float)), xcalloc(out_e, sizeof(float)),
                   xcalloc((size_t)OC * C * 9, sizeof(float)), xcalloc(OC, sizeof(float)),
                   xcalloc(wino_weights_elems(&L, &p), sizeof(float)),
                   xcalloc(wino_weights_elems(&L, &p), sizeof(float)), NULL,
                   xcalloc(wino_scratch_elems(&L, &p), sizeof(float)), n, g0 < n ? g0 : n};
    j.col = xcalloc(conv_scratch_elems(&L, j.g), sizeof(float));
    for (size_t k = 0; k < (size_t)OC * C * 9; k++) j.w[k] = (float)uniform(-1, 1);
    for (size_t k = 0; k < in_e; k++) j.in[k] = (float)uniform(-1, 1);
    for (size_t k = 0; k < out_e; k++) j.out[k] = (float)uniform(-1, 1);
    wino_transform_weights(j.U, j.w, &L, &p);
    wino_transform_weights_forward(j.Uf, j.w, &L, &p);
    double *t = xcalloc(reps, sizeof *t);
    const double bd = median_time(direct_bwd, &j, reps, t), bw = median_time(wino_bwd, &j, reps, t);
    const double fd = median_time(direct_fwd, &j, reps, t), fw = median_time(wino_fwd, &j, reps, t);
    printf("%d -> %d channels, %dx%d, %d samples: backward direct %.1f ms, F(2x2, 3x3) %.1f ms "
           "(%.2fx); forward direct %.1f ms, F(2x2, 3x3) %.1f ms (%.2fx); engine: %s\n",
           C, OC, H, H, n, bd * 1e3, bw * 1e3, bd / bw, fd * 1e3, fw * 1e3, fd / fw,
           wino_worth(&L) ? "Winograd" : "direct");
    free(t), free(j.in), free(j.out), free(j.w), free(j.b), free(j.U), free(j.Uf), free(j.col);
    free(j.scratch);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 4 && !strcmp(argv[1], "--bench-shape"))
        return bench_shape(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
                           argc > 5 ? atoi(argv[5]) : 4, argc > 6 ? atoi(argv[6]) : 5);
    if (argc > 2 && !strcmp(argv[1], "--bench"))
        return bench(argv[2], argc > 3 ? atoi(argv[3]) : 100, argc > 4 ? atoi(argv[4]) : 5,
                     argc > 5 ? atoi(argv[5]) : 0);
    failures += plan_identities();
    /* r = 3: every padding, odd planes, channels of no common factor. */
    for (int ph = 0; ph <= 2; ph++)
        for (int pw = 0; pw <= 2; pw++) layer_case(5, 7, 9, 11, 3, ph, pw, 2);
    layer_case(19, 33, 13, 13, 3, 1, 1, 3);  /* AlexNet's plane */
    layer_case(3, 17, 1, 1, 3, 1, 1, 4);     /* one pixel */
    layer_case(1, 1, 3, 3, 3, 0, 0, 1);      /* one output pixel */
    layer_case(6, 10, 31, 29, 3, 1, 1, 2);   /* several blocks of columns */
    /* r = 5: every padding, AlexNet conv2's plane. */
    for (int pad = 0; pad <= 4; pad++) layer_case(5, 6, 11, 9, 5, pad, 4 - pad, 2);
    layer_case(9, 13, 27, 27, 5, 2, 2, 2);
    printf("  worst per alpha (bound):");
    for (int a = 4; a <= WINO_MAX_ALPHA; a++)
        printf(" %d: %.2g (%.0g)", a, worst_by_alpha[a], bound_by_alpha[a]);
    printf("\n%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
