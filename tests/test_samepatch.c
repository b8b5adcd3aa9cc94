/*
 * Identical patches, identical outputs (core/samepatch.c). Compiled once per
 * precision, like the kernels.
 *
 * The promise, checked bit for bit against a brute-force reference: after
 * same_outputs, output q of every channel holds exactly what the convolution
 * itself computed at ref(q), the first output whose input patch (the im2col column,
 * zero padding included) equals q's bit for bit. So equal patches give equal
 * outputs, and an output without an earlier equal patch is left as computed.
 *
 *   test_samepatch                       layer cases, every convolution path
 *   test_samepatch ALEXNET.h5 VGG11.h5   also through the engine (net.c), every
 *                                        convolution mode: each conv layer's output
 *                                        against its actual input in the forward
 *
 * Inputs: a gray field with a random square, a band of zeros (the padding's class)
 * and a few -0.0 (not the padding's class); 4x4 blocks of one of two colours (many
 * random repeats); random reals (no repeats: nothing may change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_check.h"
#include "salcore.h"
#if !SAL_DOUBLE
#include "winograd.h"
#endif
#define TEST_NAME "test_samepatch"
#include "test_util.h"

#if SAL_DOUBLE
typedef uint64_t bits_t;
#else
typedef uint32_t bits_t;
#endif

static int failures;

/* ---- the brute-force reference ---------------------------------------------------- */

static const bits_t *sort_patches; /* qsort has no context argument */
static size_t sort_K;

static int by_patch(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    int c = memcmp(sort_patches + i * sort_K, sort_patches + j * sort_K,
                   sort_K * sizeof(bits_t));
    return c ? c : (i > j) - (i < j);
}

/* ref[q] for group grp of one image in (C,H,W): the first output with the same
 * im2col column, bit for bit. Returns how many outputs have an earlier equal one. */
static long reference(int32_t *ref, const real *in, const sal_layer *L, int grp) {
    const int Cg = L->in_c / L->groups, OH = L->out_h, OW = L->out_w;
    const size_t P = (size_t)OH * OW, K = (size_t)Cg * L->kh * L->kw;
    bits_t *patch = xcalloc(P * K, sizeof *patch);
    int32_t *order = xcalloc(P, sizeof *order);
    for (size_t q = 0; q < P; q++) {
        const int oy = (int)(q / OW), ox = (int)(q % OW);
        bits_t *dst = patch + q * K;
        for (int c = 0; c < Cg; c++)
            for (int ky = 0; ky < L->kh; ky++)
                for (int kx = 0; kx < L->kw; kx++, dst++) {
                    const int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                    real v = 0;
                    if (y >= 0 && y < L->in_h && x >= 0 && x < L->in_w)
                        v = in[(((size_t)grp * Cg + c) * L->in_h + y) * L->in_w + x];
                    memcpy(dst, &v, sizeof v);
                }
        order[q] = (int32_t)q;
    }
    sort_patches = patch, sort_K = K;
    qsort(order, P, sizeof *order, by_patch);
    long repeats = 0;
    for (size_t t = 0; t < P; t++) {
        const int32_t q = order[t];
        if (t > 0 && !memcmp(patch + q * K, patch + order[t - 1] * K, K * sizeof(bits_t))) {
            ref[q] = ref[order[t - 1]];
            repeats++;
        } else {
            ref[q] = q;
        }
    }
    free(patch), free(order);
    return repeats;
}

/* out (OC, P) against plain (what the convolution computed): out[c][q] must be
 * plain[c][ref(q)], bit for bit. Returns the elements that are not; *repeats gets
 * the reference's count of repeated outputs (all groups). */
static long mismatches(const real *out, const real *plain, const real *in,
                       const sal_layer *L, long *repeats) {
    const int G = L->groups, OCg = L->out_c / G;
    const size_t P = (size_t)L->out_h * L->out_w;
    int32_t *ref = xcalloc(P, sizeof *ref);
    long bad = 0;
    *repeats = 0;
    for (int grp = 0; grp < G; grp++) {
        *repeats += reference(ref, in, L, grp);
        for (int oc = grp * OCg; oc < (grp + 1) * OCg; oc++)
            for (size_t q = 0; q < P; q++)
                bad += memcmp(out + oc * P + q, plain + oc * P + ref[q], sizeof(real)) != 0;
    }
    free(ref);
    return bad;
}

/* ---- layer cases ------------------------------------------------------------------ */

enum { GRAY, TWO_LEVEL, RANDOM, INPUTS };
static const char *const input_name[INPUTS] = {"gray field", "two-colour blocks",
                                               "random reals"};

static void fill(real *x, const sal_layer *L, int kind, uint64_t *st) {
    const int C = L->in_c, H = L->in_h, W = L->in_w;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                real v;
                if (kind == RANDOM) {
                    v = (real)uniform_from(st, -1, 1);
                } else if (kind == TWO_LEVEL) { /* one of two colours per 4x4 block */
                    uint64_t cell = ((uint64_t)(y / 4) * 977 + (uint64_t)(xx / 4)) * 0x9e3779b97f4a7c15u;
                    v = (cell >> 41) & 1 ? (real)(0.25 + c / 64.0) : (real)-0.5;
                } else {
                    const int sq = y >= H / 3 && y < H / 2 && xx >= W / 3 && xx < W / 2;
                    v = sq ? (real)uniform_from(st, -1, 1) : (real)(0.07 + 0.13 * c);
                    if (y >= H - 3) v = 0;                          /* like the padding */
                    if (y == H - 2 && xx % 7 == 3 && c == C / 2) v = -(real)0; /* not */
                }
                x[((size_t)c * H + y) * W + xx] = v;
            }
}

typedef void (*conv_path)(real *out, const real *in, const real *w, const real *b,
                          const sal_layer *L);

static void path_im2col(real *out, const real *in, const real *w, const real *b,
                        const sal_layer *L) {
    real *col = xcalloc(conv_scratch_elems(L, 1) + 1, sizeof *col);
    R(conv_forward)(out, in, 1, w, b, L, col, 1, NULL);
    free(col);
}

#if !SAL_DOUBLE
static void path_winograd(real *out, const real *in, const real *w, const real *b,
                          const sal_layer *L) {
    wino_plan p;
    if (wino_plan_init(&p, wino_choose_m(L, 1), L->kh)) {
        fprintf(stderr, TEST_NAME ": no Winograd plan for a %dx%d layer\n", L->kh, L->kw);
        exit(2);
    }
    float *Uf = xcalloc(wino_weights_elems(L, &p), sizeof *Uf);
    float *scratch = xcalloc(wino_scratch_elems(L, &p), sizeof *scratch);
    wino_transform_weights_forward(Uf, w, L, &p);
    wino_conv_forward(out, in, 1, Uf, b, &p, L, scratch, NULL);
    free(Uf), free(scratch);
}
#endif

static void layer_case(const char *name, sal_layer L, conv_path path, const char *pname) {
    const size_t nin = (size_t)L.in_c * L.in_h * L.in_w;
    const size_t nout = (size_t)L.out_c * L.out_h * L.out_w;
    const size_t nw = (size_t)L.out_c * (L.in_c / L.groups) * L.kh * L.kw;
    uint64_t st = 0x5a3e + nin;
    real *x = xcalloc(nin, sizeof *x), *w = xcalloc(nw, sizeof *w);
    real *b = xcalloc(L.out_c, sizeof *b), *plain = xcalloc(nout, sizeof *plain);
    real *out = xcalloc(nout, sizeof *out);
    void *scratch = xcalloc(same_scratch_bytes(&L), 1);
    for (size_t k = 0; k < nw; k++) w[k] = (real)uniform_from(&st, -1, 1);
    for (int k = 0; k < L.out_c; k++) b[k] = (real)uniform_from(&st, -1, 1);
    for (int kind = 0; kind < INPUTS; kind++) {
        fill(x, &L, kind, &st);
        path(plain, x, w, b, &L);
        memcpy(out, plain, nout * sizeof *out);
        const long copied = R(same_outputs)(out, x, &L, scratch);
        long repeats;
        const long bad = mismatches(out, plain, x, &L, &repeats);
        /* Without repeats there is nothing to check but "nothing changed". */
        const int ok = bad == 0 && copied == repeats && (kind == RANDOM) == (repeats == 0);
        printf("[" PREC "] %-38s %-8s %-16s %6ld repeated outputs (%6ld expected), "
               "%ld elements differ from the first equal patch's %s\n",
               name, pname, input_name[kind], copied, repeats, bad, ok ? "OK" : "FAIL");
        failures += !ok;
    }
    free(x), free(w), free(b), free(plain), free(out), free(scratch);
}

static void layer_cases(void) {
    static const struct {
        const char *name;
        int C, H, W, OC, k, s, p, groups, winograd;
    } cases[] = {
        {"3x3 p1 32->48 40x36 (vgg)", 32, 40, 36, 48, 3, 1, 1, 1, 1},
        {"5x5 p2 16->24 27x27 (alexnet conv2)", 16, 27, 27, 24, 5, 1, 2, 1, 1},
        {"11x11 s4 p2 3->16 119x119 (conv1)", 3, 119, 119, 16, 11, 4, 2, 1, 0},
        {"7x7 s2 p3 3->8 64x64 (resnet conv1)", 3, 64, 64, 8, 7, 2, 3, 1, 0},
        {"1x1 64->40 28x28 (no im2col)", 64, 28, 28, 40, 1, 1, 0, 1, 0},
        {"1x1 s2 16->8 15x15 (downsample)", 16, 15, 15, 8, 1, 2, 0, 1, 0},
        {"3x3 p1 groups 2 8->6 20x17", 8, 20, 17, 6, 3, 1, 1, 2, 0},
        {"3x3 s2 p1 6->5 21x21", 6, 21, 21, 5, 3, 2, 1, 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const int kk = cases[k].k, st = cases[k].s, pd = cases[k].p;
        const sal_layer L = conv_layer(cases[k].C, cases[k].H, cases[k].W, cases[k].OC, kk, kk,
                                       st, st, pd, pd, cases[k].groups);
        layer_case(cases[k].name, L, path_im2col, "im2col");
#if !SAL_DOUBLE
        if (cases[k].winograd) layer_case(cases[k].name, L, path_winograd, "winograd");
#endif
    }
}

/* ---- through the engine ----------------------------------------------------------- */

typedef struct {
    const sal_model *m;
    int n;
    size_t rs;
    void **value; /* per layer: its output for the batch */
} capture;

static void keep(void *ctx, int layer, const void *out, int n) {
    capture *c = ctx;
    const sal_layer *L = sal_model_layer(c->m, layer);
    const size_t bytes = c->rs * n * L->out_c * L->out_h * L->out_w;
    free(c->value[layer]);
    c->value[layer] = xcalloc(bytes, 1);
    memcpy(c->value[layer], out, bytes);
}

/* Image 0: a gray field with a random square (as fill's); image 1: random. Every
 * conv layer's output must already be what same_outputs makes of it. */
static void engine_case(const char *path, sal_conv_mode mode, sal_precision p) {
    static const char *const mode_name[] = {"fast", "direct", "fastest"};
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err) ||
        sal_model_load_params(m, p, NULL, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    const int nl = sal_model_num_layers(m);
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t in = (size_t)pre->channels * pre->height * pre->width;
    const size_t rs = p == SAL_F64 ? 8 : 4;
    int last_conv = -1;
    for (int i = 0; i < nl; i++)
        if (sal_model_layer(m, i)->kind == SAL_LAYER_CONV) last_conv = i;
    sal_target t = {last_conv, 0};
    const sal_method meth = SAL_METHOD_VANILLA;
    sal_engine *e;
    if (sal_engine_init(&e, m, p, 2, &t, 1, &meth, 1, err, sizeof err) ||
        sal_engine_set_convolution(e, mode, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    real *x = xcalloc(2 * in, sizeof *x);
    sal_layer first = {0};
    first.in_c = pre->channels, first.in_h = pre->height, first.in_w = pre->width;
    uint64_t st = 0x77;
    fill(x, &first, GRAY, &st);
    fill(x + in, &first, RANDOM, &st);
    capture c = {m, 2, rs, xcalloc(nl, sizeof(void *))};
    if (sal_engine_forward(e, x, 2, NULL, keep, &c, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    long layers = 0, repeats_all = 0, bad_all = 0, first_repeats = -1;
    for (int i = 0; i <= last_conv; i++) {
        const sal_layer *L = sal_model_layer(m, i);
        if (L->kind != SAL_LAYER_CONV) continue;
        const int src = L->inputs[0];
        const real *inp = src < 0 ? x : c.value[src];
        const real *outp = c.value[i];
        if (!inp || !outp) {
            fprintf(stderr, TEST_NAME ": no forward output of layer %d of %s\n", i, path);
            exit(2);
        }
        const size_t ie = (size_t)L->in_c * L->in_h * L->in_w;
        const size_t oe = (size_t)L->out_c * L->out_h * L->out_w;
        for (int img = 0; img < 2; img++) {
            long repeats;
            /* out against itself: out[q] must equal out[ref(q)] */
            bad_all += mismatches(outp + img * oe, outp + img * oe, inp + img * ie, L, &repeats);
            repeats_all += repeats;
            if (img == 0 && first_repeats < 0) first_repeats = repeats;
        }
        layers++;
    }
    const int ok = bad_all == 0 && first_repeats > 0;
    printf("[" PREC "] %-16s %-8s %2ld conv layers, %7ld repeated outputs (%ld in the first), "
           "%ld elements differ from the first equal patch's %s\n",
           sal_model_name(m), mode_name[mode], layers, repeats_all, first_repeats, bad_all,
           ok ? "OK" : "FAIL");
    failures += !ok;
    for (int i = 0; i < nl; i++) free(c.value[i]);
    free(c.value), free(x);
    sal_engine_free(e);
    sal_model_free(m);
}

int main(int argc, char **argv) {
    layer_cases();
    for (int a = 1; a < argc; a++) {
#if SAL_DOUBLE
        engine_case(argv[a], SAL_CONV_DIRECT, SAL_F64);
#else
        for (int mode = 0; mode < 3; mode++) engine_case(argv[a], (sal_conv_mode)mode, SAL_F32);
#endif
    }
    printf("[" PREC "] test_samepatch: %d check%s failed\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
