/*
 * One-hot rows (issue 13, lever 2; core/onehot.c): the engine computes a conv or
 * linear backward from one channel's weights when the row's gradient lies in that
 * channel. This test runs the same engines with the shortcut on and off and compares
 * the maps:
 *
 *   test_onehot GRAPH_DIR ALEXNET.h5
 *
 * Networks: the residual and inception graphs of tests/make_graph_models.py (a seed
 * through batch norm, a 3-input add, a concat whose other branches get zero rows,
 * 1x1 and 1x3 convolutions, max-pool) and the seeded AlexNet (conv, ReLU and
 * max-pool targets over convolutions, fc targets; conv1's 55x55 plane is scattered
 * by conv.c in blocks of rows, the others in one). Every engine holds targets at
 * several depths, so chunks mix seeded rows with dense rows from above, and runs
 * vanilla, guided and deconvnet on 2 images. Per precision and convolution mode:
 *   - direct convolutions: the maps equal the full product's bit for bit (a chunk
 *     mixing dense and one-hot rows at a node keeps the full product; the one-hot
 *     kernel adds each element's terms in col2im's order, and these planes are
 *     scattered in one block); the tolerances, 1e-12 of the map's largest element
 *     in float64 and 2e-6 in float32, are for wider planes (conv.c scatters those
 *     by blocks of rows, another order of the same terms);
 *   - float32 with Winograd (the default; not for AlexNet's mixed targets, to save
 *     time): the full product's Winograd rounding is gone from the first product;
 *     maps within 1e-5 of the largest element;
 *   - the shortcut was taken (rows counted by the engine) with it on, never off.
 * Before the networks, the kernel alone on grouped, strided and 1x1 layers (float64,
 * bit for bit against conv_backward).
 * Prints the largest differences; exit status 1 on any failure. About 8 s of CPU,
 * most of it AlexNet's engines.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAL_DOUBLE 1 /* layers.h's kernels: the float64 copies */
#include "engine_internal.h"
#include "layers.h"
#include "salcore.h"
#define TEST_NAME "test_onehot"
#include "test_util.h"

#define NIMG 2
#define MAXT 12

static int failures;

typedef struct {
    const char *names[MAXT];
    int units[MAXT];
    int exact; /* 1: direct maps must equal the full product's bit for bit */
} target_list;

static sal_model *open_model(const char *path) {
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err) ||
        sal_model_load_params(m, SAL_F64, NULL, err, sizeof err) ||
        sal_model_load_params(m, SAL_F32, NULL, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    return m;
}

/* Maps of one engine over the input, the shortcut on or off; *rows: its count. */
static void *run(const sal_model *m, sal_precision p, sal_conv_mode mode, int on,
                 const sal_target *t, int T, const void *input, long *rows) {
    const sal_method meth[3] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED,
                                SAL_METHOD_DECONVNET};
    char err[SAL_ERR_LEN];
    sal_engine *e;
    const sal_preprocess *pre = sal_model_preprocess(m);
    size_t in = (size_t)pre->channels * pre->height * pre->width;
    void *maps = xcalloc(in * NIMG * T * 3, p == SAL_F64 ? 8 : 4);
    if (sal_engine_init(&e, m, p, NIMG, t, T, meth, 3, err, sizeof err) ||
        sal_engine_set_convolution(e, mode, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    engine_set_one_hot(e, on);
    if (sal_engine_run(e, input, NIMG, maps, NULL, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    *rows = e->onehot_rows;
    sal_engine_free(e);
    return maps;
}

static double get(const void *v, sal_precision p, size_t i) {
    return p == SAL_F64 ? ((const double *)v)[i] : ((const float *)v)[i];
}

static void compare(const char *model, const sal_model *m, const target_list *tl, int T,
                    const sal_target *t, sal_precision p, sal_conv_mode mode,
                    const void *input) {
    long rows_on, rows_off;
    void *a = run(m, p, mode, 1, t, T, input, &rows_on);
    void *b = run(m, p, mode, 0, t, T, input, &rows_off);
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t in = (size_t)pre->channels * pre->height * pre->width;
    const int direct = mode == SAL_CONV_DIRECT || p == SAL_F64;
    double worst = 0;
    long differ = 0;
    for (int img = 0; img < NIMG; img++)
        for (int k = 0; k < T; k++)
            for (int meth = 0; meth < 3; meth++) {
                size_t base = (((size_t)img * T + k) * 3 + meth) * in;
                double big = 0, d = 0;
                for (size_t i = 0; i < in; i++) {
                    double x = get(a, p, base + i), y = get(b, p, base + i);
                    if (fabs(y) > big) big = fabs(y);
                    if (x != y || isnan(x) != isnan(y)) differ++;
                    if (fabs(x - y) > d || isnan(x - y)) d = isnan(x - y) ? INFINITY : fabs(x - y);
                }
                double rel = big > 0 ? d / big : d;
                if (rel > worst) worst = rel;
            }
    double tol = p == SAL_F64 ? 1e-12 : direct ? 2e-6 : 1e-5;
    const char *pn = p == SAL_F64 ? "float64" : "float32";
    const char *mn = mode == SAL_CONV_DIRECT ? "direct" : "fast";
    const int exact = direct && tl->exact;
    int ok = worst <= tol && rows_on > 0 && rows_off == 0 && (!exact || differ == 0);
    printf("  %-16s %s %-6s one-hot rows %3ld (off %ld); max diff %.3g of the map's "
           "largest (tol %.0e); %ld elements differ%s  %s\n",
           model, pn, mn, rows_on, rows_off, worst, tol, differ,
           exact ? " (0 expected)" : "", ok ? "OK" : "FAIL");
    if (!ok) failures++;
    free(a);
    free(b);
}

/* The kernel alone on layers the networks lack (groups, strides, asymmetric padding,
 * 1x1): conv_backward_onehot against conv_backward with dout one-hot in every channel
 * in turn, float64, bit for bit. */
static void check_kernel(const char *what, sal_layer L) {
    L.kind = SAL_LAYER_CONV;
    L.out_h = (L.in_h + 2 * L.ph - L.kh) / L.sh + 1;
    L.out_w = (L.in_w + 2 * L.pw - L.kw) / L.sw + 1;
    const size_t P = (size_t)L.out_h * L.out_w, in = (size_t)L.in_c * L.in_h * L.in_w;
    const size_t nw = (size_t)L.out_c * (L.in_c / L.groups) * L.kh * L.kw;
    double *w = xcalloc(nw, sizeof *w), *g = xcalloc(L.out_c * P, sizeof *g);
    double *a = xcalloc(in, sizeof *a), *b = xcalloc(in, sizeof *b);
    double *scratch = xcalloc(conv_scratch_elems(&L, 1) + 1, sizeof *scratch);
    uint64_t st = 0x1ee7u;
    for (size_t i = 0; i < nw; i++) w[i] = uniform_from(&st, -1, 1);
    long differ = 0;
    for (int u = 0; u < L.out_c; u++) {
        memset(g, 0, sizeof *g * L.out_c * P);
        for (size_t p = 0; p < P; p++) /* some zeros, as below a ReLU */
            g[u * P + p] = p % 3 ? uniform_from(&st, -1, 1) : 0;
        conv_backward_f64(b, g, 1, w, &L, scratch, 1, NULL);
        conv_backward_onehot_f64(a, g, hot_channel_f64(g, L.out_c, P), w, &L);
        for (size_t i = 0; i < in; i++) differ += a[i] != b[i];
    }
    printf("  kernel %-24s %ld elements differ (0 expected)  %s\n", what, differ,
           differ ? "FAIL" : "OK");
    if (differ) failures++;
    free(w), free(g), free(a), free(b), free(scratch);
}

static void check_model(sal_model *m, const char *model, const target_list *tl,
                        int fast) {
    const char *path = sal_model_path(m);
    sal_target t[MAXT];
    int T = 0;
    for (; T < MAXT && tl->names[T]; T++) {
        t[T].layer = sal_model_find_layer(m, tl->names[T]);
        t[T].unit = tl->units[T];
        if (t[T].layer < 0) {
            fprintf(stderr, TEST_NAME ": %s has no node %s\n", path, tl->names[T]);
            exit(2);
        }
    }
    const sal_preprocess *pre = sal_model_preprocess(m);
    size_t n = (size_t)pre->channels * pre->height * pre->width * NIMG;
    double *x64 = xcalloc(n, sizeof *x64);
    float *x32 = xcalloc(n, sizeof *x32);
    uint64_t st = 0x0be407u;
    for (size_t i = 0; i < n; i++) {
        x64[i] = uniform_from(&st, -2, 2);
        x32[i] = (float)x64[i];
    }
    compare(model, m, tl, T, t, SAL_F64, SAL_CONV_DIRECT, x64);
    compare(model, m, tl, T, t, SAL_F32, SAL_CONV_DIRECT, x32);
    if (fast) compare(model, m, tl, T, t, SAL_F32, SAL_CONV_FAST, x32);
    free(x64);
    free(x32);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_onehot GRAPH_DIR ALEXNET.h5\n");
        return 2;
    }
    char path[4096];
    check_kernel("groups 2, 3x3 s2 p1", (sal_layer){.in_c = 4, .in_h = 9, .in_w = 8,
                 .out_c = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .groups = 2});
    check_kernel("groups 3, 2x5 s(1,3) p(0,2)", (sal_layer){.in_c = 3, .in_h = 7,
                 .in_w = 11, .out_c = 6, .kh = 2, .kw = 5, .sh = 1, .sw = 3, .ph = 0,
                 .pw = 2, .groups = 3});
    check_kernel("1x1", (sal_layer){.in_c = 5, .in_h = 6, .in_w = 7, .out_c = 4, .kh = 1,
                 .kw = 1, .sh = 1, .sw = 1, .groups = 1});
    /* Every graph plane is small: conv.c scatters it in one block, so exact. */
    const target_list residual = {
        {"conv1", "bn1", "relu", "layer1.0.conv1", "layer1.0.relu", "layer1.0.add",
         "layer1.0.relu_2", "fc"},
        {1, 2, 3, 0, 2, 1, 3, 4}, 1};
    snprintf(path, sizeof path, "%s/graph_residual.h5", argv[1]);
    sal_model *m = open_model(path);
    check_model(m, "graph_residual", &residual, 1);
    sal_model_free(m);
    const target_list inception = {
        {"conv1.relu", "maxpool1", "inception3a.branch2.1.conv", "inception3a.cat",
         "inception3a.cat", "fc"},
        {4, 5, 2, 3, 6, 1}, 1};
    snprintf(path, sizeof path, "%s/graph_inception.h5", argv[1]);
    m = open_model(path);
    check_model(m, "graph_inception", &inception, 1);
    sal_model_free(m);
    /* Alone, a conv5 unit's seed: exact (13x13 planes). */
    const target_list conv5 = {{"conv5_maxpool"}, {17}, 1};
    m = open_model(argv[2]);
    check_model(m, "alexnet conv5", &conv5, 1);
    /* Mixed: chunks holding dense and one-hot rows at a node keep the full product,
     * so the maps stay those of the full product bit for bit. */
    const target_list alexnet = {
        {"conv1_relu", "conv2", "conv3_relu", "conv4", "conv5_maxpool", "fc1_relu",
         "fc3"},
        {7, 100, 5, 200, 17, 1000, 539}, 1};
    check_model(m, "alexnet", &alexnet, 0);
    sal_model_free(m);
    if (failures) printf("%d comparison(s) FAILED\n", failures);
    return failures ? 1 : 0;
}
