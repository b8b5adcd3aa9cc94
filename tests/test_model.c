/*
 * Model loader tests. Three modes, each a CTest test:
 *
 *   test_model tiny DIR        DIR from tests/make_bad_models.py: the tiny good model
 *                              (h5py- and MATLAB-style) loads with the right shapes,
 *                              offsets and exact values; every bad file is refused
 *                              with a message naming the file, the place and the
 *                              problem.
 *   test_model graph DIR       DIR from tests/make_graph_models.py: format 2 graphs
 *                              load with their inputs, aliases and shapes; each bad
 *                              graph (cycle, missing input, misordered node, add or
 *                              concat shapes, arity, names) is refused by name
 *   test_model alexnet FILE    an exported seeded AlexNet: DNNBrain names and shapes
 *   test_model vgg11_bn FILE   an exported seeded VGG11-BN: the same
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"

static int failures, checks;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

static const char *dir;

static const char *file(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* Every word must appear in msg; the file's name always must. */
static void check_words(const char *what, const char *name, const char *msg,
                        const char *const *words) {
    CHECK(strstr(msg, name) != NULL, "%s: message does not name the file: %s", what, msg);
    for (int i = 0; words[i]; i++)
        CHECK(strstr(msg, words[i]) != NULL, "%s: message lacks \"%s\": %s", what,
              words[i], msg);
}

/* The file must be refused by sal_model_open. */
static void refuse_open(const char *name, const char *const *words) {
    char err[SAL_ERR_LEN];
    sal_model *m = (sal_model *)1;
    int r = sal_model_open(file(name), &m, err, sizeof err);
    CHECK(r != 0, "%s: opened, expected a refusal", name);
    CHECK(m == NULL, "%s: *out not NULL after a refusal", name);
    if (r) {
        printf("  refused %-24s %s\n", name, err);
        check_words(name, name, err, words);
    }
    if (!r) sal_model_free(m);
}

/* The file must open but its parameters must be refused in precision p. */
static void refuse_load(const char *name, sal_precision p, const char *const *words) {
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    if (sal_model_open(file(name), &m, err, sizeof err)) {
        CHECK(0, "%s: open refused, expected only the load to be: %s", name, err);
        return;
    }
    int r = sal_model_load_params(m, p, NULL, err, sizeof err);
    CHECK(r != 0, "%s: parameters loaded, expected a refusal", name);
    CHECK(sal_model_params(m, p) == NULL, "%s: parameters set after a refusal", name);
    if (r) {
        printf("  refused %-24s %s\n", name, err);
        check_words(name, name, err, words);
    }
    sal_model_free(m);
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_bad_files(void) {
    refuse_open("missing.h5", W("cannot open model file", "No such file"));
    refuse_open("not_hdf5.h5", W("not an HDF5 file", "export_torchvision.py"));
    refuse_open("truncated.h5", W("truncated", "export_torchvision.py"));
    refuse_open("bad_format.h5", W("'format'", "'keras-model'", "salpipe-model"));
    refuse_open("bad_no_format.h5", W("'format'", "missing", "salpipe-model"));
    refuse_open("bad_version.h5", W("format_version 3", "not supported", "versions 1 to 2"));
    refuse_open("bad_root_attr.h5", W("root", "missing attribute 'input_size'",
                                      "export_torchvision.py"));
    refuse_open("bad_missing_dataset.h5",
                W("/layers/000", "conv1", "missing dataset 'bias'", "export_torchvision.py"));
    refuse_open("bad_missing_attr.h5",
                W("/layers/003", "conv1_maxpool", "missing attribute 'kernel_size'"));
    refuse_open("bad_shape.h5",
                W("conv1", "'weight'", "shape (4, 3, 3, 2)", "expected (4, 3, 3, 3)"));
    refuse_open("bad_dtype.h5", W("/layers/007", "fc1", "'weight'", "int32",
                                  "expected float32 or float64"));
    refuse_open("bad_kind.h5", W("/layers/008", "fc1_relu", "unknown layer kind 'softmax'"));
    refuse_open("bad_dup_name.h5", W("/layers/008", "'conv1_relu'", "already used",
                                     "/layers/002"));
    refuse_open("bad_name_chars.h5", W("/layers/008", "'fc1:relu'", "letters"));
    refuse_open("bad_absurd_dim.h5", W("conv1", "out_channels", "1073741824", "1048576"));
    refuse_open("bad_absurd_input.h5", W("input 1048576x1048576", "elements per image"));
    refuse_open("bad_absurd_act.h5", W("avgpool", "4x1048576x1048576", "elements per image"));
    refuse_open("bad_absurd_params.h5", W("conv1", "'weight'", "more than"));
    refuse_open("bad_count.h5", W("/layers", "10 members", "'count' = 11"));
    refuse_open("bad_chain_features.h5",
                W("fc1", "in_features = 15", "gives 16x1x1 = 16"));
    refuse_open("bad_chain_channels.h5",
                W("conv1", "in_channels = 2", "gives 3 channels"));
    refuse_open("bad_dilation.h5", W("conv1_maxpool", "dilation (2, 2)", "not supported"));

    refuse_load("bad_nan.h5", SAL_F32, W("/layers/007", "fc1", "'weight'", "element 17", "NaN"));
    refuse_load("bad_nan.h5", SAL_F64, W("fc1", "'weight'", "NaN"));
    refuse_load("bad_inf.h5", SAL_F64, W("/layers/000", "conv1", "'bias'", "element 2", "-Inf"));
    refuse_load("bad_f32_range.h5", SAL_F32, W("fc2", "'weight'", "element 4", "float32 range"));
    refuse_load("bad_running_var.h5", SAL_F32, W("conv1_bn", "'running_var'", "element 1"));

    /* The float64 file is fine in float64. */
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    CHECK(!sal_model_open(file("bad_f32_range.h5"), &m, err, sizeof err), "%s", err);
    if (m) {
        CHECK(!sal_model_load_params(m, SAL_F64, NULL, err, sizeof err), "%s", err);
        sal_model_free(m);
    }
}

/* One array of expected.txt (hex floats), or NULL. */
static double *expected(const char *key, int *n) {
    FILE *f = fopen(file("expected.txt"), "r");
    if (!f) return NULL;
    char k[64];
    double *v = NULL;
    while (!v && fscanf(f, "%63s %d", k, n) == 2) {
        int want = !strcmp(k, key);
        if (want && !(v = malloc(sizeof *v * (size_t)*n))) break;
        for (int i = 0; i < *n; i++) {
            char tok[64];
            if (fscanf(f, "%63s", tok) != 1) break;
            if (want) v[i] = strtod(tok, NULL);
        }
    }
    fclose(f);
    return v;
}

/* Layer `name`'s weight or bias slot equals expected.txt's `key`, bit for bit. */
static void check_values(const sal_model *m, sal_precision p, const char *name, int bias,
                         const char *key) {
    int n = 0, li = sal_model_find_layer(m, name);
    double *want = expected(key, &n);
    CHECK(want != NULL && li >= 0, "no expected %s or layer %s", key, name);
    if (!want || li < 0) {
        free(want);
        return;
    }
    const sal_layer *L = sal_model_layer(m, li);
    int64_t off = bias ? L->bias_off : L->weight_off, cnt = bias ? L->bias_count : L->weight_count;
    CHECK(cnt == n, "%s: %lld values, expected %d", key, (long long)cnt, n);
    int bad = 0;
    double maxd = 0;
    for (int i = 0; i < n && cnt == n; i++) {
        double got = p == SAL_F64 ? ((const double *)sal_model_params(m, p))[off + i]
                                  : ((const float *)sal_model_params(m, p))[off + i];
        if (got != want[i]) bad++;
        if (fabs(got - want[i]) > maxd) maxd = fabs(got - want[i]);
    }
    printf("  %-14s %s: %d values, max difference %g\n", key,
           p == SAL_F64 ? "float64" : "float32", n, maxd);
    CHECK(bad == 0, "%s (%s): %d of %d values differ, max %g", key,
          p == SAL_F64 ? "f64" : "f32", bad, n, maxd);
    free(want);
}

typedef struct {
    const char *name;
    sal_layer_kind kind;
    int c, h, w;
} shape;

/* Names, kinds and output shapes of every layer, in order, plus the offsets
 * chaining through one contiguous block. */
static void check_layers(const sal_model *m, const shape *want, int n) {
    CHECK(sal_model_num_layers(m) == n, "%d layers, expected %d", sal_model_num_layers(m), n);
    int64_t off = 0;
    for (int i = 0; i < n && i < sal_model_num_layers(m); i++) {
        const sal_layer *L = sal_model_layer(m, i);
        CHECK(!strcmp(L->name, want[i].name), "layer %d is '%s', expected '%s'", i,
              L->name, want[i].name);
        CHECK(L->kind == want[i].kind, "%s: kind %s, expected %s", L->name,
              sal_layer_kind_name(L->kind), sal_layer_kind_name(want[i].kind));
        CHECK(L->out_c == want[i].c && L->out_h == want[i].h && L->out_w == want[i].w,
              "%s: output %dx%dx%d, expected %dx%dx%d", L->name, L->out_c, L->out_h,
              L->out_w, want[i].c, want[i].h, want[i].w);
        CHECK(sal_model_find_layer(m, want[i].name) == i, "find_layer(%s)", want[i].name);
        if (i > 0) {
            const sal_layer *P = sal_model_layer(m, i - 1);
            if (L->kind == SAL_LAYER_LINEAR)
                CHECK(L->in_c == P->out_c * P->out_h * P->out_w && L->in_h == 1 &&
                      L->in_w == 1, "%s: input %dx%dx%d", L->name, L->in_c, L->in_h,
                      L->in_w);
            else
                CHECK(L->in_c == P->out_c && L->in_h == P->out_h && L->in_w == P->out_w,
                      "%s: input %dx%dx%d does not follow %s", L->name, L->in_c, L->in_h,
                      L->in_w, P->name);
        }
        if (L->weight_count) {
            CHECK(L->weight_off == off && L->bias_off == off + L->weight_count,
                  "%s: offsets %lld/%lld, expected %lld", L->name, (long long)L->weight_off,
                  (long long)L->bias_off, (long long)off);
            off += L->weight_count + L->bias_count;
        } else {
            CHECK(L->weight_off == -1 && L->bias_off == -1 && L->bias_count == 0,
                  "%s: parameter slots on a layer without parameters", L->name);
        }
    }
    CHECK(sal_model_params_bytes(m, SAL_F32) == (size_t)off * 4, "params bytes %zu, expected %lld",
          sal_model_params_bytes(m, SAL_F32), (long long)off * 4);
    CHECK(sal_model_find_layer(m, "no_such_layer") == -1, "find_layer of an unknown name");
    CHECK(sal_model_layer(m, n) == NULL && sal_model_layer(m, -1) == NULL, "layer out of range");
}

static const shape tiny_layers[] = {
    {"conv1", SAL_LAYER_CONV, 4, 7, 7},      {"conv1_bn", SAL_LAYER_BATCHNORM, 4, 7, 7},
    {"conv1_relu", SAL_LAYER_RELU, 4, 7, 7}, {"conv1_maxpool", SAL_LAYER_MAXPOOL, 4, 4, 4},
    {"avgpool", SAL_LAYER_AVGPOOL, 4, 2, 2}, {"flatten", SAL_LAYER_FLATTEN, 16, 1, 1},
    {"dropout1", SAL_LAYER_DROPOUT, 16, 1, 1}, {"fc1", SAL_LAYER_LINEAR, 5, 1, 1},
    {"fc1_relu", SAL_LAYER_RELU, 5, 1, 1},   {"fc2", SAL_LAYER_LINEAR, 3, 1, 1},
};

/* The parts of sal_model_load_params_part, as the ranks of a node load them into one
 * shared block, give the bytes of one whole load, and each byte is written by exactly
 * one part: loaded alone into a block of NaN bytes, the parts' written bytes add up
 * to the block. m's parameters in precision p must be loaded already. */
static void check_parts(sal_model *m, sal_precision p, const char *what) {
    char err[SAL_ERR_LEN];
    size_t bytes = sal_model_params_bytes(m, p);
    unsigned char *whole = malloc(bytes), *block = malloc(bytes), *one = malloc(bytes);
    CHECK(whole && block && one, "%s: memory", what);
    if (!whole || !block || !one) goto done;
    memcpy(whole, sal_model_params(m, p), bytes);
    static const int counts[] = {2, 3, 7};
    for (int k = 0; k < 3; k++) {
        int n = counts[k];
        size_t written = 0;
        memset(block, 0xff, bytes);
        for (int part = 0; part < n; part++) {
            memset(one, 0xff, bytes);
            CHECK(!sal_model_load_params_part(m, p, one, part, n, err, sizeof err),
                  "%s: part %d of %d: %s", what, part, n, err);
            for (size_t i = 0; i < bytes; i++)
                if (one[i] != 0xff) written++, block[i] = one[i];
        }
        /* A weight's byte may itself be 0xff; the NaN pattern's words cannot be weights. */
        size_t words = 0, rs = p == SAL_F64 ? 8 : 4;
        for (size_t i = 0; i < bytes; i += rs) {
            int untouched = 1;
            for (size_t b = 0; b < rs; b++) untouched &= block[i + b] == 0xff;
            words += !untouched;
        }
        CHECK(words * rs == bytes && !memcmp(block, whole, bytes),
              "%s: %d parts give %zu of %zu words, %s", what, n, words, bytes / rs,
              memcmp(block, whole, bytes) ? "other bytes" : "the same bytes");
        CHECK(written <= bytes, "%s: %d parts overlap (%zu bytes written for %zu)", what, n,
              written, bytes);
    }
    CHECK(sal_model_load_params_part(m, p, NULL, 0, 2, err, sizeof err) &&
              sal_model_load_params_part(m, p, one, 2, 2, err, sizeof err),
          "%s: bad part arguments refused", what);
    /* m pointed at the last part's block: give it its own parameters again. */
    CHECK(!sal_model_load_params(m, p, NULL, err, sizeof err), "%s: reload: %s", what, err);
done:
    free(whole);
    free(block);
    free(one);
}

static void test_tiny(const char *name) {
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    printf("%s\n", name);
    if (sal_model_open(file(name), &m, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    CHECK(!strcmp(sal_model_name(m), "tiny"), "name '%s'", sal_model_name(m));
    CHECK(strstr(sal_model_path(m), name) != NULL, "path '%s'", sal_model_path(m));
    check_layers(m, tiny_layers, 10);
    const sal_layer *c1 = sal_model_layer(m, 0), *mp = sal_model_layer(m, 3);
    CHECK(c1->kh == 3 && c1->kw == 3 && c1->sh == 1 && c1->ph == 1 && c1->groups == 1,
          "conv1 hyper-parameters");
    CHECK(mp->kh == 2 && mp->sh == 2 && mp->ph == 0 && mp->ceil_mode == 1, "maxpool");
    CHECK(sal_model_layer(m, 1)->eps == 1e-5, "bn eps %g", sal_model_layer(m, 1)->eps);
    CHECK(sal_model_params_bytes(m, SAL_F64) == 223 * 8, "223 parameters");

    const sal_preprocess *pp = sal_model_preprocess(m);
    CHECK(pp->channels == 3 && pp->height == 7 && pp->width == 7, "input size");
    CHECK(pp->mean[0] == 0.485 && pp->mean[1] == 0.456 && pp->mean[2] == 0.406 &&
          pp->std[0] == 0.229 && pp->std[1] == 0.224 && pp->std[2] == 0.225,
          "mean/std must be the float64 decimal constants");
    CHECK(pp->resize_crop == 1 && pp->resize_size == 8, "resize crop 8");

    CHECK(sal_model_params(m, SAL_F32) == NULL, "params before loading");
    for (int p = SAL_F32; p <= SAL_F64; p++) {
        CHECK(!sal_model_load_params(m, (sal_precision)p, NULL, err, sizeof err), "%s", err);
        if (!sal_model_params(m, (sal_precision)p)) continue;
        int d = p == SAL_F64;
        check_values(m, (sal_precision)p, "conv1", 0, "conv1_weight");
        check_values(m, (sal_precision)p, "fc2", 1, "fc2_bias");
        check_values(m, (sal_precision)p, "conv1_bn", 0, d ? "bn_scale_f64" : "bn_scale_f32");
        check_values(m, (sal_precision)p, "conv1_bn", 1, d ? "bn_shift_f64" : "bn_shift_f32");
    }

    /* Reloading replaces the block; a caller-owned block gets the same bytes; an
     * attached block is used as is and not freed by the model. */
    CHECK(!sal_model_load_params(m, SAL_F32, NULL, err, sizeof err), "%s", err);
    size_t bytes = sal_model_params_bytes(m, SAL_F32);
    void *block = malloc(bytes);
    CHECK(block && !sal_model_load_params(m, SAL_F32, block, err, sizeof err), "%s", err);
    CHECK(sal_model_params(m, SAL_F32) == block, "caller block used");
    sal_model *m2 = NULL;
    CHECK(!sal_model_open(file(name), &m2, err, sizeof err), "%s", err);
    if (m2 && block) {
        CHECK(!sal_model_load_params(m2, SAL_F32, NULL, err, sizeof err), "%s", err);
        CHECK(!memcmp(sal_model_params(m2, SAL_F32), block, bytes), "same bytes");
        sal_model_attach_params(m2, SAL_F32, block);
        CHECK(sal_model_params(m2, SAL_F32) == block, "attached block");
    }
    sal_model_free(m2);
    for (int p = SAL_F32; m && p <= SAL_F64; p++) {
        CHECK(!sal_model_load_params(m, (sal_precision)p, NULL, err, sizeof err), "%s", err);
        check_parts(m, (sal_precision)p, name);
    }
    sal_model_free(m);
    free(block);
}

/* good_matlab.h5 must load to the same bytes as good.h5 in both precisions. */
static void test_same_params(const char *a, const char *b) {
    char err[SAL_ERR_LEN];
    sal_model *ma = NULL, *mb = NULL;
    CHECK(!sal_model_open(file(a), &ma, err, sizeof err), "%s", err);
    CHECK(!sal_model_open(file(b), &mb, err, sizeof err), "%s", err);
    for (int p = SAL_F32; ma && mb && p <= SAL_F64; p++) {
        CHECK(!sal_model_load_params(ma, (sal_precision)p, NULL, err, sizeof err), "%s", err);
        CHECK(!sal_model_load_params(mb, (sal_precision)p, NULL, err, sizeof err), "%s", err);
        const void *pa = sal_model_params(ma, (sal_precision)p);
        const void *pb = sal_model_params(mb, (sal_precision)p);
        CHECK(pa && pb && !memcmp(pa, pb, sal_model_params_bytes(ma, (sal_precision)p)),
              "%s and %s differ in %s", a, b, p ? "float64" : "float32");
    }
    sal_model_free(ma);
    sal_model_free(mb);
}

static void test_names(void) {
    for (int i = 0; i < SAL_METHOD_COUNT; i++)
        CHECK((int)sal_method_from_name(sal_method_name((sal_method)i)) == i, "method %d", i);
    CHECK(!strcmp(sal_method_name(SAL_METHOD_GUIDED), "guided"), "guided");
    CHECK(sal_method_from_name("Guided") == SAL_METHOD_COUNT, "names are exact");
    CHECK(sal_method_from_name(NULL) == SAL_METHOD_COUNT, "NULL name");
    CHECK(!strcmp(sal_layer_kind_name(SAL_LAYER_AVGPOOL), "adaptive_avgpool2d"), "kind");
    CHECK(!strcmp(sal_layer_kind_name(SAL_LAYER_KIND_COUNT), "unknown"), "bad kind");
}

static void test_torchvision(const char *arch, const char *path) {
    static const shape alexnet[] = {
        {"conv1", SAL_LAYER_CONV, 64, 55, 55}, {"conv1_relu", SAL_LAYER_RELU, 64, 55, 55},
        {"conv1_maxpool", SAL_LAYER_MAXPOOL, 64, 27, 27},
        {"conv2", SAL_LAYER_CONV, 192, 27, 27}, {"conv2_relu", SAL_LAYER_RELU, 192, 27, 27},
        {"conv2_maxpool", SAL_LAYER_MAXPOOL, 192, 13, 13},
        {"conv3", SAL_LAYER_CONV, 384, 13, 13}, {"conv3_relu", SAL_LAYER_RELU, 384, 13, 13},
        {"conv4", SAL_LAYER_CONV, 256, 13, 13}, {"conv4_relu", SAL_LAYER_RELU, 256, 13, 13},
        {"conv5", SAL_LAYER_CONV, 256, 13, 13}, {"conv5_relu", SAL_LAYER_RELU, 256, 13, 13},
        {"conv5_maxpool", SAL_LAYER_MAXPOOL, 256, 6, 6},
        {"avgpool", SAL_LAYER_AVGPOOL, 256, 6, 6}, {"flatten", SAL_LAYER_FLATTEN, 9216, 1, 1},
        {"dropout1", SAL_LAYER_DROPOUT, 9216, 1, 1}, {"fc1", SAL_LAYER_LINEAR, 4096, 1, 1},
        {"fc1_relu", SAL_LAYER_RELU, 4096, 1, 1}, {"dropout2", SAL_LAYER_DROPOUT, 4096, 1, 1},
        {"fc2", SAL_LAYER_LINEAR, 4096, 1, 1}, {"fc2_relu", SAL_LAYER_RELU, 4096, 1, 1},
        {"fc3", SAL_LAYER_LINEAR, 1000, 1, 1},
    };
    /* VGG11: 8 convolutions, max-pool after conv1, 2, 4, 6, 8; each conv + bn + relu. */
    shape vgg[38];
    int n = 0, hw = 224;
    static const int vgg_c[8] = {64, 128, 256, 256, 512, 512, 512, 512};
    static const char pool_after[8] = {1, 1, 0, 1, 0, 1, 0, 1};
    static char names[38][SAL_NAME_LEN];
    for (int i = 0; i < 8; i++) {
        static const char *const suffix[4] = {"", "_bn", "_relu", "_maxpool"};
        static const sal_layer_kind kinds[4] = {SAL_LAYER_CONV, SAL_LAYER_BATCHNORM,
                                                SAL_LAYER_RELU, SAL_LAYER_MAXPOOL};
        for (int k = 0; k < 3 + pool_after[i]; k++) {
            if (k == 3) hw /= 2;
            snprintf(names[n], SAL_NAME_LEN, "conv%d%s", i + 1, suffix[k]);
            vgg[n] = (shape){names[n], kinds[k], vgg_c[i], hw, hw};
            n++;
        }
    }
    const shape tail[] = {
        {"avgpool", SAL_LAYER_AVGPOOL, 512, 7, 7}, {"flatten", SAL_LAYER_FLATTEN, 25088, 1, 1},
        {"fc1", SAL_LAYER_LINEAR, 4096, 1, 1},     {"fc1_relu", SAL_LAYER_RELU, 4096, 1, 1},
        {"dropout1", SAL_LAYER_DROPOUT, 4096, 1, 1}, {"fc2", SAL_LAYER_LINEAR, 4096, 1, 1},
        {"fc2_relu", SAL_LAYER_RELU, 4096, 1, 1},  {"dropout2", SAL_LAYER_DROPOUT, 4096, 1, 1},
        {"fc3", SAL_LAYER_LINEAR, 1000, 1, 1},
    };
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++) vgg[n++] = tail[i];

    int is_alexnet = !strcmp(arch, "alexnet");
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    printf("%s\n", path);
    if (sal_model_open(path, &m, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    CHECK(!strcmp(sal_model_name(m), arch), "name '%s'", sal_model_name(m));
    if (is_alexnet)
        check_layers(m, alexnet, (int)(sizeof alexnet / sizeof *alexnet));
    else
        check_layers(m, vgg, n);
    const sal_layer *c1 = sal_model_layer(m, 0);
    if (is_alexnet)
        CHECK(c1->kh == 11 && c1->sh == 4 && c1->ph == 2, "alexnet conv1 11x11/4 pad 2");
    int64_t want = is_alexnet ? 61100840 : 132868840; /* torch's parameter count */
    CHECK(sal_model_params_bytes(m, SAL_F32) == (size_t)want * 4, "parameter count");
    const sal_preprocess *pp = sal_model_preprocess(m);
    CHECK(pp->channels == 3 && pp->height == 224 && pp->width == 224 && pp->mean[0] == 0.485 &&
          pp->std[2] == 0.225 && pp->resize_crop == 0 && pp->resize_size == 256,
          "ImageNet preprocessing");
    CHECK(!sal_model_load_params(m, SAL_F32, NULL, err, sizeof err), "%s", err);
    check_parts(m, SAL_F32, arch);
    sal_model_free(m);
}

/* ---- graph DIR: format 2 files of tests/make_graph_models.py ---------------------- */

/* Node `name`'s inputs are the nodes named in want (NULL-terminated; "input" = -1). */
static void check_inputs(const sal_model *m, const char *name, const char *const *want) {
    int i = sal_model_find_layer(m, name), n = 0;
    CHECK(i >= 0, "no node '%s'", name);
    if (i < 0) return;
    const sal_layer *L = sal_model_layer(m, i);
    while (want[n]) n++;
    CHECK(L->ninputs == n, "%s: %d inputs, expected %d", name, L->ninputs, n);
    for (int k = 0; k < n && k < L->ninputs; k++) {
        int j = strcmp(want[k], "input") ? sal_model_find_layer(m, want[k]) : -1;
        CHECK(L->inputs[k] == j && j < i, "%s: input %d is %d, expected %d ('%s')", name, k,
              L->inputs[k], j, want[k]);
    }
}

static const sal_layer *node_shape(const sal_model *m, const char *name, int c, int h, int w) {
    int i = sal_model_find_layer(m, name);
    CHECK(i >= 0, "no node '%s'", name);
    if (i < 0) return NULL;
    const sal_layer *L = sal_model_layer(m, i);
    CHECK(L->out_c == c && L->out_h == h && L->out_w == w, "%s: output %dx%dx%d, expected "
          "%dx%dx%d", name, L->out_c, L->out_h, L->out_w, c, h, w);
    return L;
}

static void test_graph_files(void) {
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    CHECK(!sal_model_open(file("graph_residual.h5"), &m, err, sizeof err), "%s", err);
    if (m) {
        CHECK(sal_model_num_layers(m) == 13, "%d nodes", sal_model_num_layers(m));
        check_inputs(m, "transform_input", W("input"));
        check_inputs(m, "conv1", W("transform_input"));
        check_inputs(m, "layer1.0.conv1", W("relu"));
        check_inputs(m, "layer1.0.downsample", W("relu"));
        check_inputs(m, "layer1.0.add", W("layer1.0.conv2", "layer1.0.downsample", "relu"));
        node_shape(m, "layer1.0.add", 4, 8, 8);
        CHECK(sal_model_find_layer(m, "layer1_bottleneck0") ==
              sal_model_find_layer(m, "layer1.0.relu_2"), "alias layer1_bottleneck0");
        const sal_layer *A = node_shape(m, "transform_input", 3, 8, 8);
        CHECK(A && A->kind == SAL_LAYER_AFFINE && A->weight_count == 3 && A->bias_count == 3,
              "channel_affine: scale and shift of 3");
        if (A && !sal_model_load_params(m, SAL_F64, NULL, err, sizeof err)) {
            const double *P = sal_model_params(m, SAL_F64);
            CHECK(P[A->weight_off] == 0.229 / 0.5 && P[A->bias_off + 2] == (0.406 - 0.5) / 0.5,
                  "channel_affine values %.17g %.17g", P[A->weight_off], P[A->bias_off + 2]);
        }
        sal_model_free(m);
    }
    m = NULL;
    CHECK(!sal_model_open(file("graph_inception.h5"), &m, err, sizeof err), "%s", err);
    if (m) {
        CHECK(sal_model_num_layers(m) == 19, "%d nodes", sal_model_num_layers(m));
        node_shape(m, "maxpool1", 6, 4, 4);
        check_inputs(m, "inception3a.branch3.avgpool", W("maxpool1"));
        check_inputs(m, "inception3a.cat", W("inception3a.branch1.relu",
                                             "inception3a.branch2.2.relu",
                                             "inception3a.branch3.conv",
                                             "inception3a.branch4.1.conv"));
        node_shape(m, "inception3a", 7, 4, 4);
        const sal_layer *B3 = node_shape(m, "inception3a.branch3.avgpool", 6, 4, 4);
        CHECK(B3 && B3->kind == SAL_LAYER_AVGPOOL2D && B3->count_include_pad == 0 &&
              B3->ceil_mode == 0 && B3->kh == 3 && B3->ph == 1, "branch3 avgpool2d");
        const sal_layer *P2 = node_shape(m, "maxpool2", 7, 3, 3);
        CHECK(P2 && P2->kind == SAL_LAYER_AVGPOOL2D && P2->count_include_pad == 1 &&
              P2->ceil_mode == 1 && P2->sh == 2, "maxpool2 avgpool2d ceil_mode");
        const sal_layer *K = node_shape(m, "inception3a.branch2.1.conv", 3, 4, 4);
        CHECK(K && K->kh == 1 && K->kw == 3 && K->ph == 0 && K->pw == 1, "1x3 kernel");
        sal_model_free(m);
    }
    /* One defect each; every message names the file and the node group. */
    refuse_open("bad_graph_cycle.h5", W("/layers/004", "'layer1.0.conv1'", "cycle"));
    refuse_open("bad_graph_missing.h5", W("/layers/008", "'layer1.0.add'",
                                          "reads 'layer9.0.conv2', which is no node of the file"));
    refuse_open("bad_graph_order.h5", W("/layers/003", "'inception3a.branch1.conv'",
                                        "'inception3a.branch3.avgpool'",
                                        "comes after it in the file"));
    refuse_open("bad_graph_add_shape.h5", W("/layers/008", "add inputs differ in shape"));
    refuse_open("bad_graph_add_one.h5", W("/layers/008", "takes 2 to 16 inputs"));
    refuse_open("bad_graph_concat_hw.h5", W("/layers/014", "'inception3a.cat'",
                                            "concat inputs differ in height or width"));
    refuse_open("bad_graph_relu_two.h5", W("/layers/009", "takes 1 input"));
    refuse_open("bad_graph_dup_alias.h5", W("/layers/015", "'inception3a'", "already used"));
    refuse_open("bad_graph_alias_is_name.h5", W("/layers/015", "'conv1'", "already used"));
    refuse_open("bad_graph_input_name.h5", W("/layers/001", "'input'", "reserved"));
    refuse_open("bad_graph_input_alias.h5", W("/layers/010", "'input'", "reserved"));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_model tiny DIR | graph DIR | alexnet FILE | "
                "vgg11_bn FILE\n");
        return 2;
    }
    if (!strcmp(argv[1], "graph")) {
        dir = argv[2];
        test_graph_files();
    } else if (!strcmp(argv[1], "tiny")) {
        dir = argv[2];
        test_names();
        test_tiny("good.h5");
        test_tiny("good_matlab.h5");
        test_same_params("good.h5", "good_matlab.h5");
        test_bad_files();
    } else {
        test_torchvision(argv[1], argv[2]);
    }
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
