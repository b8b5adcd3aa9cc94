/*
 * Winograd weights in a caller's block (salcore.h, sal_model_wino_bytes; issue 13):
 * what salpipe puts in the node's shared window so that a node holds one copy and
 * its ranks transform a share each.
 *
 *   test_wino_shared ALEXNET.h5 VGG11_BN.h5
 *
 * For each network and the modes "fast" and "fastest":
 *   - the block filled as 2, 3 and 7 parts, each part alone in a fresh buffer, is
 *     the block filled as one part, byte for byte, and no word is written by two
 *     parts (each part is filled over NaNs, to see which words it writes);
 *   - an engine created after the block is attached gives the maps of an engine
 *     that transformed its own weights, bit for bit, and holds that much less;
 *     after detaching, a new engine owns its weights again;
 *   - "direct", float64-only use and out-of-range targets size no block.
 * AlexNet has 3x3 layers (conv3-5) and, for "fastest", a 5x5 one (conv2); VGG11-BN
 * stops at its fourth convolution. About 4 s of CPU (~1 min under ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"
#define TEST_NAME "test_wino_shared"
#include "test_util.h"

#define NIMG 1

static int failures;

static void report(int ok, const char *model, const char *mode, const char *what) {
    printf("  %-10s %-8s %-58s %s\n", model, mode, what, ok ? "OK" : "FAIL");
    if (!ok) failures++;
}

/* Part `part` of `nparts` over a fresh buffer of `pattern`. */
static uint64_t *fill(const sal_model *m, sal_conv_mode mode, const sal_target *t, int T,
                      size_t bytes, int part, int nparts, int pattern) {
    char err[SAL_ERR_LEN];
    uint64_t *b = aligned_alloc(64, bytes);
    if (!b) {
        fprintf(stderr, TEST_NAME ": out of memory\n");
        exit(2);
    }
    memset(b, pattern, bytes);
    if (sal_model_wino_fill_part(m, mode, t, T, b, part, nparts, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    return b;
}

/* Maps of NIMG seeded images (float32, vanilla and guided) and the engine's bytes;
 * with run 0 only the bytes (NULL returned). */
static unsigned char *maps_of(const sal_model *m, sal_conv_mode mode, const sal_target *t,
                              int T, size_t *workspace, int run) {
    char err[SAL_ERR_LEN];
    const sal_method meth[2] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED};
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t in = (size_t)pre->channels * pre->height * pre->width;
    float *x = xcalloc(in * NIMG, sizeof *x);
    uint64_t st = 0x51u;
    for (size_t i = 0; i < in * NIMG; i++) x[i] = (float)uniform_from(&st, -2, 2);
    unsigned char *maps = xcalloc(in * NIMG * T * 2, sizeof(float));
    sal_engine *e;
    if (sal_engine_init(&e, m, SAL_F32, NIMG, t, T, meth, 2, err, sizeof err) ||
        sal_engine_set_convolution(e, mode, err, sizeof err) ||
        (run && sal_engine_run(e, x, NIMG, maps, NULL, NULL, NULL, err, sizeof err))) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    *workspace = sal_engine_workspace_bytes(e);
    sal_engine_free(e);
    free(x);
    if (!run) free(maps);
    return run ? maps : NULL;
}

static void check_mode(sal_model *m, sal_conv_mode mode, const char *mname,
                       const sal_target *t, int T) {
    char err[SAL_ERR_LEN], what[128];
    const char *name = sal_model_name(m);
    const size_t bytes = sal_model_wino_bytes(m, mode, t, T);
    snprintf(what, sizeof what, "block of %zu bytes (more than 0 expected)", bytes);
    report(bytes > 0, name, mname, what);
    if (!bytes) return;
    /* Compared in 8-byte words: the block and its layers start at 64-byte
     * boundaries, and a row's runs are out_c or in_c floats (at least 64 here), so
     * no word holds bytes of two parts. */
    const size_t words = bytes / 8;
    /* All-ones words are two NaNs, which no transform of finite weights writes. */
    const uint64_t nan2 = ~(uint64_t)0;
    uint64_t *whole = fill(m, mode, t, T, bytes, 0, 1, 0xFF);
    const int counts[] = {2, 3, 7};
    uint64_t *merged = xcalloc(words, 8);
    unsigned char *times = xcalloc(words, 1);
    for (int c = 0; c < 3; c++) {
        const int n = counts[c];
        memset(merged, 0xFF, bytes);
        memset(times, 0, words);
        size_t twice = 0, empty_parts = 0;
        for (int p = 0; p < n; p++) {
            uint64_t *a = fill(m, mode, t, T, bytes, p, n, 0xFF);
            size_t wrote = 0;
            for (size_t i = 0; i < words; i++)
                if (a[i] != nan2) {
                    twice += times[i]++ > 0;
                    merged[i] = a[i];
                    wrote++;
                }
            empty_parts += wrote == 0;
            free(a);
        }
        const int same = memcmp(merged, whole, bytes) == 0;
        snprintf(what, sizeof what, "%d parts: the whole block, %zu words written twice", n,
                 twice);
        report(same && twice == 0, name, mname, what);
        /* VGG11-BN's and AlexNet's layers have more rows than 7 parts: none idle. */
        snprintf(what, sizeof what, "%d parts: %zu parts write nothing (0 expected)", n,
                 empty_parts);
        report(empty_parts == 0, name, mname, what);
    }
    free(merged);
    free(times);

    size_t own_ws, att_ws, again_ws;
    unsigned char *own = maps_of(m, mode, t, T, &own_ws, 1);
    if (sal_model_attach_wino(m, mode, t, T, whole, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    unsigned char *att = maps_of(m, mode, t, T, &att_ws, 1);
    /* The other mode's engines do not borrow this mode's block. */
    const sal_conv_mode other = mode == SAL_CONV_FAST ? SAL_CONV_FASTEST : SAL_CONV_FAST;
    size_t other_own, other_att;
    maps_of(m, other, t, T, &other_att, 0);
    sal_model_attach_wino(m, mode, NULL, 0, NULL, NULL, 0);
    maps_of(m, other, t, T, &other_own, 0);
    maps_of(m, mode, t, T, &again_ws, 0);
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t mb = (size_t)pre->channels * pre->height * pre->width * NIMG * T * 2 * 4;
    size_t differ = 0;
    for (size_t i = 0; i < mb; i++) differ += own[i] != att[i];
    snprintf(what, sizeof what, "maps with the block: %zu bytes differ (0 expected)", differ);
    report(differ == 0, name, mname, what);
    /* The block's layers are padded to 64 bytes; the engine counts them unpadded. */
    const size_t saved = own_ws - att_ws;
    snprintf(what, sizeof what, "engine holds %zu bytes less (the block's %zu, less padding)",
             saved, bytes);
    report(own_ws > att_ws && saved <= bytes && saved + 64 * 64 >= bytes, name, mname, what);
    snprintf(what, sizeof what, "detached: engine owns its weights again (%zu bytes)",
             again_ws);
    report(again_ws == own_ws, name, mname, what);
    report(other_att == other_own, name, mname, "the other mode's engine does not borrow");
    free(own);
    free(att);
    free(whole);
}

static void check(const char *path, const char *layer, int unit) {
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err) ||
        sal_model_load_params(m, SAL_F32, NULL, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    const sal_target t[2] = {{sal_model_find_layer(m, layer), unit}, {0, 1}};
    if (t[0].layer < 0) {
        fprintf(stderr, TEST_NAME ": %s has no node %s\n", path, layer);
        exit(2);
    }
    check_mode(m, SAL_CONV_FAST, "fast", t, 2);
    check_mode(m, SAL_CONV_FASTEST, "fastest", t, 2);
    const sal_target bad[1] = {{sal_model_num_layers(m), 0}};
    report(sal_model_wino_bytes(m, SAL_CONV_DIRECT, t, 2) == 0 &&
               sal_model_wino_bytes(m, SAL_CONV_FAST, bad, 1) == 0 &&
               sal_model_wino_bytes(m, SAL_CONV_FAST, t, 0) == 0,
           sal_model_name(m), "", "direct, a target out of range, no target: no block");
    sal_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_wino_shared ALEXNET.h5 VGG11_BN.h5\n");
        return 2;
    }
    check(argv[1], "fc3", 539);
    check(argv[2], "conv4", 7);
    if (failures) printf("%d check(s) FAILED\n", failures);
    return failures ? 1 : 0;
}
