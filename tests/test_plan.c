/*
 * Unit tests of the plan (pipeline/plan.c) and the batch message (pipeline/batch.c)
 * with issue 12's method parameters: configs built into plans against the tiny
 * model, the errors that need the model (the Grad-CAM layer, methods the engine does
 * not have yet), the plan's bytes round trip and the reader's refusal of every bad
 * parameter, the output's parameter attributes and the resume check on them, and a
 * batch message written and read back.
 *
 *     test_plan DIR MODEL.h5 CASE...    (CTest runs one per test; DIR is scratch)
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "batch.h"
#include "config.h"
#include "output.h"
#include "plan.h"
#define TEST_NAME "test_plan"
#include "test_util.h"


static const char *model_path; /* the tiny model: conv1 .. fc2, 3x7x7 input */
static char dir[PATH_MAX];

/* Config lines 1..9; what a case appends starts on line 10. */
#define BASE                                                                          \
    "[model]\npath = \"m.h5\"\n[images]\nfiles = [\"a.png\"]\n[[targets]]\n"          \
    "layer = \"fc2\"\nunits = [1]\n[output]\npath = \"o.h5\"\n"


static void put(const char *rel, const char *text) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f)) die("cannot write", path);
}

/* Loads `toml` (as dir/job.toml) and the model, and builds the plan. Returns the
 * build's result; err holds its message. The config and model are freed. */
static int build(const char *toml, sp_plan *p, sp_config *cfg, sal_model **m, char *err) {
    char path[PATH_MAX + 64];
    put("job.toml", toml);
    snprintf(path, sizeof path, "%s/job.toml", dir);
    memset(p, 0, sizeof *p);
    if (sp_config_load(path, cfg, err, SAL_ERR_LEN)) {
        fprintf(stderr, "config refused: %s\n", err);
        exit(2);
    }
    if (sal_model_open(cfg->model_path, m, err, SAL_ERR_LEN)) {
        fprintf(stderr, "model refused: %s\n", err);
        exit(2);
    }
    return sp_plan_build(p, cfg, *m, err, SAL_ERR_LEN);
}

static void unbuild(sp_plan *p, sp_config *cfg, sal_model *m) {
    sp_plan_free(p);
    sp_config_free(cfg);
    sal_model_free(m);
}

/* The plan must be refused with "job.toml:LINE:COL: " and every string given. */
static int expect_refused(const char *toml, int line, int col, ...) {
    sp_plan p;
    sp_config cfg;
    sal_model *m;
    char err[SAL_ERR_LEN], prefix[PATH_MAX + 32];
    int rc = build(toml, &p, &cfg, &m, err);
    unbuild(&p, &cfg, m);
    CHECK(rc == -1, "built a plan from:\n%s", toml);
    printf("  error: %s\n", err);
    snprintf(prefix, sizeof prefix, "%s/job.toml:%d:%d: ", dir, line, col);
    CHECK(!strncmp(err, prefix, strlen(prefix)), "want the prefix \"%s\"", prefix);
    va_list ap;
    va_start(ap, col);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err, s)) {
            va_end(ap);
            CHECK(0, "the message lacks \"%s\"", s);
        }
    va_end(ap);
    return 0;
}

/* ---- building --------------------------------------------------------------------- */

static int case_gradcam_layer(void) {
    sp_plan p;
    sp_config cfg;
    sal_model *m;
    char err[SAL_ERR_LEN];
    CHECK(build(BASE "[saliency.gradcam]\nlayer = \"conv1_maxpool\"\n", &p, &cfg, &m, err) == 0,
          "%s", err);
    CHECK(p.gradcam_layer == 3 && !strcmp(p.gradcam_name, "conv1_maxpool"),
          "gradcam layer %d '%s'", p.gradcam_layer, p.gradcam_name);
    unbuild(&p, &cfg, m);
    CHECK(build(BASE, &p, &cfg, &m, err) == 0, "%s", err);
    CHECK(p.gradcam_layer == -1 && !p.gradcam_name[0], "no gradcam layer: %d", p.gradcam_layer);
    unbuild(&p, &cfg, m);
    return expect_refused(BASE "[saliency.gradcam]\nlayer = \"conv1_rleu\"\n", 11, 9,
                          "'saliency.gradcam.layer'", "'conv1_rleu' is not in model",
                          "did you mean 'conv1_relu'", NULL) ||
           expect_refused(BASE "[saliency.gradcam]\nlayer = \"fc1\"\n", 11, 9,
                          "'saliency.gradcam.layer'", "'fc1' has no spatial output", "5x1x1",
                          NULL) ||
           expect_refused(BASE "[saliency.gradcam]\nlayer = \"flatten\"\n", 11, 9,
                          "no spatial output", "16x1x1", NULL);
}

/* The checks that need the targets or two parameters at once: Captum's trapezoid
 * rule with one step, a Grad-CAM layer some target does not read. */
static int case_method_checks(void) {
    return expect_refused(BASE "[saliency]\nmethods = [\"integrated_gradients\"]\n"
                          "[saliency.integrated_gradients]\nsteps = 1\n"
                          "rule = \"riemann_trapezoid\"\n", 11, 12, "'saliency.methods[0]'",
                          "needs steps >= 2", NULL) ||
           expect_refused(BASE "[[targets]]\nlayer = \"conv1\"\nunits = [1]\n[saliency]\n"
                          "methods = [\"gradcam\"]\n[saliency.gradcam]\n"
                          "layer = \"conv1_maxpool\"\n", 16, 9, "'saliency.gradcam.layer'",
                          "target conv1 unit 1 does not depend on layer 'conv1_maxpool'",
                          NULL);
}

static int case_method_text(void) {
    sp_plan p;
    sp_config cfg;
    sal_model *m;
    char err[SAL_ERR_LEN], t[256];
    CHECK(build(BASE "[saliency.smoothgrad]\nsamples = 20\nnoise = 0.2\nbase = \"guided\"\n"
                "statistic = \"mean_square\"\nseed = 12345678901234\n"
                "[saliency.integrated_gradients]\nrule = \"riemann_trapezoid\"\n"
                "[saliency.gradcam]\nlayer = \"conv1_relu\"\n", &p, &cfg, &m, err) == 0,
          "%s", err);
    sp_plan_method_text(&p, SAL_METHOD_SMOOTHGRAD, t, sizeof t);
    CHECK(!strcmp(t, "smoothgrad (samples 20, noise 0.2, base guided, statistic mean_square, "
                     "seed 12345678901234)"), "%s", t);
    sp_plan_method_text(&p, SAL_METHOD_INTEGRATED_GRADIENTS, t, sizeof t);
    CHECK(!strcmp(t, "integrated_gradients (steps 50, rule riemann_trapezoid, baseline zero)"),
          "%s", t);
    sp_plan_method_text(&p, SAL_METHOD_GUIDED_GRADCAM, t, sizeof t);
    CHECK(!strcmp(t, "guided_gradcam (layer conv1_relu)"), "%s", t);
    sp_plan_method_text(&p, SAL_METHOD_VANILLA, t, sizeof t);
    CHECK(!strcmp(t, "vanilla"), "%s", t);
    unbuild(&p, &cfg, m);
    return 0;
}

/* ---- the plan's bytes --------------------------------------------------------------- */

/* A plan with every parameter away from its default and all eight methods (set by
 * hand: sp_plan_build refuses five of them until the engine has them). */
static int full_plan(sp_plan *p, sp_config *cfg, sal_model **m) {
    char err[SAL_ERR_LEN];
    CHECK(build(BASE "[saliency.smoothgrad]\nsamples = 20\nnoise = 0.25\nbase = \"deconvnet\"\n"
                "statistic = \"variance\"\nseed = 9223372036854775807\n"
                "[saliency.integrated_gradients]\nsteps = 64\nrule = \"riemann_trapezoid\"\n"
                "baseline = \"black\"\n[saliency.gradcam]\nlayer = \"conv1_relu\"\n",
                p, cfg, m, err) == 0, "%s", err);
    p->nmethods = SAL_METHOD_COUNT;
    for (int i = 0; i < SAL_METHOD_COUNT; i++)
        p->methods[i] = (sal_method)(SAL_METHOD_COUNT - 1 - i);
    return 0;
}

static int case_pack_roundtrip(void) {
    sp_plan p, q;
    sp_config cfg;
    sal_model *m;
    char err[SAL_ERR_LEN];
    if (full_plan(&p, &cfg, &m)) return 1;
    size_t n = 0, n2 = 0;
    char *buf = sp_plan_pack(&p, &n);
    CHECK(buf, "pack failed");
    CHECK(sp_plan_unpack(&q, buf, n, err, sizeof err) == 0, "%s", err);
    CHECK(q.nmethods == SAL_METHOD_COUNT && !memcmp(q.methods, p.methods, sizeof p.methods),
          "methods");
    CHECK(q.smoothgrad.samples == 20 && q.smoothgrad.noise == 0.25 &&
          q.smoothgrad.base == SAL_METHOD_DECONVNET && q.smoothgrad.statistic == SP_SG_VARIANCE &&
          q.smoothgrad.seed == UINT64_C(9223372036854775807), "smoothgrad");
    CHECK(q.integrated_gradients.steps == 64 &&
          q.integrated_gradients.rule == SP_IG_RIEMANN_TRAPEZOID &&
          q.integrated_gradients.baseline == SP_IG_BASELINE_BLACK, "integrated gradients");
    CHECK(q.gradcam_layer == 2 && !strcmp(q.gradcam_name, "conv1_relu"), "gradcam %d %s",
          q.gradcam_layer, q.gradcam_name);
    CHECK(q.image_labels == NULL, "labels travel only with previews");
    char *again = sp_plan_pack(&q, &n2);
    CHECK(again && n2 == n && !memcmp(again, buf, n), "packs back to the same bytes");
    free(again);
    free(buf);
    sp_plan_free(&q);
    unbuild(&p, &cfg, m);
    return 0;
}

/* Spoils one parameter of p (case k); returns what the reader must name, or NULL
 * past the last case. */
static const char *spoil(sp_plan *p, int k) {
    switch (k) {
    case 0: p->smoothgrad.samples = 0; return "smoothgrad samples";
    case 1: p->smoothgrad.samples = SP_MAX_SAMPLES + 1; return "smoothgrad samples";
    case 2: p->smoothgrad.noise = -0.5; return "smoothgrad noise";
    case 3: p->smoothgrad.noise = NAN; return "smoothgrad noise";
    case 4: p->smoothgrad.noise = INFINITY; return "smoothgrad noise";
    case 5: p->smoothgrad.base = SAL_METHOD_GRADIENT_X_INPUT; return "smoothgrad base";
    case 6: p->smoothgrad.base = (sal_method)-1; return "smoothgrad base";
    case 7: p->smoothgrad.statistic = SP_SG_STATISTIC_COUNT; return "smoothgrad statistic";
    case 8: p->smoothgrad.seed = UINT64_MAX; return "smoothgrad seed";
    case 9: p->integrated_gradients.steps = 0; return "integrated gradients steps";
    case 10: p->integrated_gradients.steps = SP_MAX_STEPS + 1; return "integrated gradients steps";
    case 11: p->integrated_gradients.rule = SP_IG_RULE_COUNT; return "integrated gradients rule";
    case 12:
        p->integrated_gradients.baseline = (sp_ig_baseline)-1;
        return "integrated gradients baseline";
    case 13: p->gradcam_name[0] = 0; return "gradcam layer";
    case 14: p->gradcam_layer = -1; return "gradcam layer";
    case 15: /* no name, and a layer index below -1 */
        p->gradcam_layer = -2;
        memset(p->gradcam_name, 0, sizeof p->gradcam_name);
        return "gradcam layer";
    case 16: p->gradcam_name[SAL_NAME_LEN - 1] = 'x'; return "gradcam layer name (padding)";
    case 17:
        p->gradcam_layer = -1;
        memset(p->gradcam_name, 0, sizeof p->gradcam_name);
        return "method (Grad-CAM without a layer)";
    case 18: p->methods[0] = SAL_METHOD_COUNT; return "method";
    default: return NULL;
    }
}

/* Each bad value, packed by a sender that does not check, is refused by the reader
 * with a message naming it. */
static int case_unpack_refuses(void) {
    sp_plan good;
    sp_config cfg;
    sal_model *m;
    if (full_plan(&good, &cfg, &m)) return 1;
    for (int k = 0;; k++) {
        sp_plan p = good, q;
        const char *what = spoil(&p, k);
        if (!what) break;
        size_t n = 0;
        char *buf = sp_plan_pack(&p, &n), err[SAL_ERR_LEN] = "";
        CHECK(buf, "pack failed");
        int rc = sp_plan_unpack(&q, buf, n, err, sizeof err);
        free(buf);
        printf("  %-34s -> %s\n", what, rc ? err : "accepted");
        CHECK(rc == -1, "a plan with a bad %s was accepted", what);
        CHECK(strstr(err, what), "the message does not name '%s'", what);
    }
    unbuild(&good, &cfg, m);
    return 0;
}

/* ---- the output -------------------------------------------------------------------- */

static int open_with(const sp_plan *p, const char *out, int overwrite, char *err) {
    sp_provenance prov = {"test", "job.toml", "# config\n", "00", "tiny", NULL};
    sp_output_layout lay;
    void *store;
    sp_output *o;
    int8_t status[1];
    if (sp_plan_output_layout(p, &prov, &lay, &store)) {
        snprintf(err, SAL_ERR_LEN, "out of memory");
        return -1;
    }
    int rc = sp_output_open(out, &lay, overwrite, &o, status, err, SAL_ERR_LEN);
    free(store);
    if (rc == SP_OUT_OK && sp_output_close(o, err, SAL_ERR_LEN)) rc = SP_OUT_IOERR;
    return rc;
}

/* The names of the root attributes of the methods' parameters that `out` has. */
static void param_attrs(const char *out, char *names, size_t len) {
    static const char *const all[] = {
        "smoothgrad_samples", "smoothgrad_noise", "smoothgrad_base", "smoothgrad_statistic",
        "smoothgrad_seed", "smoothgrad_noise_generator", "integrated_gradients_steps",
        "integrated_gradients_rule", "integrated_gradients_baseline", "gradcam_layer", NULL};
    names[0] = 0;
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    for (int i = 0; f >= 0 && all[i]; i++)
        if (H5Aexists(f, all[i]) > 0)
            snprintf(names + strlen(names), len - strlen(names), "%s%s", names[0] ? " " : "",
                     all[i]);
    if (f >= 0) H5Fclose(f);
}

/* The string attribute `name` of `out` into buf ("" when absent). */
static void str_attr(const char *out, const char *name, char *buf, size_t len) {
    buf[0] = 0;
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return;
    if (H5Aexists(f, name) > 0) {
        hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Tcopy(H5T_C_S1);
        char *v = NULL;
        H5Tset_size(t, H5T_VARIABLE);
        if (H5Aread(a, t, &v) >= 0 && v) snprintf(buf, len, "%s", v);
        H5free_memory(v);
        H5Tclose(t), H5Aclose(a);
    }
    H5Fclose(f);
}

static int case_output_params(void) {
    sp_plan p;
    sp_config cfg;
    sal_model *m;
    char err[SAL_ERR_LEN], out[PATH_MAX + 8], names[512];
    if (full_plan(&p, &cfg, &m)) return 1;
    snprintf(out, sizeof out, "%s/o.h5", dir);
    const sp_plan full = p;

    /* vanilla and guided: no parameter attributes (files as before issue 12) */
    p.nmethods = 2;
    p.methods[0] = SAL_METHOD_VANILLA;
    p.methods[1] = SAL_METHOD_GUIDED;
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    param_attrs(out, names, sizeof names);
    CHECK(!names[0], "vanilla/guided file has parameter attributes: %s", names);

    /* each method brings its own */
    struct {
        sal_method meth;
        const char *want;
    } one[] = {
        {SAL_METHOD_SMOOTHGRAD, "smoothgrad_samples smoothgrad_noise smoothgrad_base "
                                "smoothgrad_statistic smoothgrad_seed "
                                "smoothgrad_noise_generator"},
        {SAL_METHOD_INTEGRATED_GRADIENTS, "integrated_gradients_steps integrated_gradients_rule "
                                          "integrated_gradients_baseline"},
        {SAL_METHOD_GRADCAM, "gradcam_layer"},
        {SAL_METHOD_GUIDED_GRADCAM, "gradcam_layer"},
        {SAL_METHOD_GRADIENT_X_INPUT, ""},
    };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        p.nmethods = 1;
        p.methods[0] = one[i].meth;
        CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
        param_attrs(out, names, sizeof names);
        CHECK(!strcmp(names, one[i].want), "%s: attributes '%s', want '%s'",
              sal_method_name(one[i].meth), names, one[i].want);
    }

    /* the values, as written */
    p = full;
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    /* every method: /method lists all but gradcam, which has /gradcam; IG's gap */
    hid_t md = H5Dopen2(f, "method", H5P_DEFAULT), ms = H5Dget_space(md);
    CHECK(H5Sget_simple_extent_npoints(ms) == SAL_METHOD_COUNT - 1, "/method has %lld entries",
          (long long)H5Sget_simple_extent_npoints(ms));
    char *mnames[SAL_METHOD_COUNT] = {0};
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    H5Tset_cset(vs, H5T_CSET_UTF8);
    CHECK(H5Dread(md, vs, H5S_ALL, H5S_ALL, H5P_DEFAULT, mnames) >= 0, "read /method");
    for (int i = 0; i < SAL_METHOD_COUNT - 1; i++) {
        CHECK(mnames[i] && strcmp(mnames[i], "gradcam"), "/method[%d] is gradcam", i);
        H5free_memory(mnames[i]);
    }
    H5Tclose(vs);
    H5Sclose(ms);
    H5Dclose(md);
    CHECK(H5Lexists(f, "gradcam", H5P_DEFAULT) > 0 &&
              H5Lexists(f, "integrated_gradients_gap", H5P_DEFAULT) > 0,
          "no /gradcam or /integrated_gradients_gap with every method");
    int32_t samples = 0, steps = 0;
    double noise = 0;
    uint64_t seed = 0;
    hid_t a;
    CHECK(f >= 0, "cannot open %s", out);
    a = H5Aopen(f, "smoothgrad_samples", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT32, &samples), H5Aclose(a);
    a = H5Aopen(f, "smoothgrad_noise", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &noise), H5Aclose(a);
    a = H5Aopen(f, "smoothgrad_seed", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_UINT64, &seed), H5Aclose(a);
    a = H5Aopen(f, "integrated_gradients_steps", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT32, &steps), H5Aclose(a);
    H5Fclose(f);
    CHECK(samples == 20 && noise == 0.25 && seed == UINT64_C(9223372036854775807) && steps == 64,
          "values %d %g %llu %d", (int)samples, noise, (unsigned long long)seed, (int)steps);

    /* resume: the same parameters go on; any other is refused, naming it */
    CHECK(open_with(&p, out, 0, err) == SP_OUT_OK, "same parameters refused: %s", err);
    static const char *const changed[] = {
        "smoothgrad_samples", "smoothgrad_noise", "smoothgrad_base", "smoothgrad_statistic",
        "smoothgrad_seed", "integrated_gradients_steps", "integrated_gradients_rule",
        "integrated_gradients_baseline", "gradcam_layer"};
    for (int k = 0; k < 9; k++) {
        p = full;
        switch (k) {
        case 0: p.smoothgrad.samples = 21; break;
        case 1: p.smoothgrad.noise = 0.25000000000000006; break;
        case 2: p.smoothgrad.base = SAL_METHOD_GUIDED; break;
        case 3: p.smoothgrad.statistic = SP_SG_MEAN; break;
        case 4: p.smoothgrad.seed = 1; break;
        case 5: p.integrated_gradients.steps = 50; break;
        case 6: p.integrated_gradients.rule = SP_IG_GAUSSLEGENDRE; break;
        case 7: p.integrated_gradients.baseline = SP_IG_BASELINE_ZERO; break;
        case 8: strcpy(p.gradcam_name, "conv1"); break;
        }
        int rc = open_with(&p, out, 0, err);
        printf("  other %-30s -> %s\n", changed[k], rc ? err : "resumed");
        CHECK(rc == SP_OUT_MISMATCH, "another %s was not refused (%d)", changed[k], rc);
        CHECK(strstr(err, changed[k]) && strstr(err, "--overwrite"),
              "the message does not name %s and --overwrite", changed[k]);
    }
    /* a file whose noise came from another generator (an older or newer build), or
     * from a build before the attribute: refused, naming it */
    for (int k = 0; k < 2; k++) {
        p = full;
        CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
        f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
        CHECK(f >= 0 && H5Adelete(f, "smoothgrad_noise_generator") >= 0, "delete attribute");
        if (k == 0) {
            const char *old = "philox4x32-10 box-muller libm";
            hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
            H5Tset_size(t, H5T_VARIABLE);
            a = H5Acreate2(f, "smoothgrad_noise_generator", t, sp, H5P_DEFAULT, H5P_DEFAULT);
            CHECK(a >= 0 && H5Awrite(a, t, &old) >= 0, "write attribute");
            H5Aclose(a), H5Sclose(sp), H5Tclose(t);
        }
        H5Fclose(f);
        int rc = open_with(&p, out, 0, err);
        printf("  %s generator -> %s\n", k ? "no" : "another", rc ? err : "resumed");
        CHECK(rc == SP_OUT_MISMATCH && strstr(err, "smoothgrad_noise_generator") &&
                  strstr(err, "--overwrite") && (k || strstr(err, SAL_NOISE_GENERATOR)),
              "a file with %s noise generator was not refused by name (%d)",
              k ? "no" : "another", rc);
    }
    /* the backward convolutions, recorded as run (float64 is always direct): a resume
     * with the other mode is refused by name; a file from before the attribute was
     * made direct, so it resumes with "direct" and is refused with "fast" */
    char conv[32];
    p = full;
    p.precision = SAL_F32;
    p.convolution = SAL_CONV_FAST;
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    str_attr(out, "convolution", conv, sizeof conv);
    CHECK(!strcmp(conv, "fast"), "float32 fast: convolution '%s'", conv);
    p.convolution = SAL_CONV_DIRECT;
    int rc = open_with(&p, out, 0, err);
    printf("  other convolution -> %s\n", rc ? err : "resumed");
    CHECK(rc == SP_OUT_MISMATCH && strstr(err, "convolution") && strstr(err, "fast"),
          "a fast file resumed with direct convolutions (%d)", rc);
    p.convolution = SAL_CONV_FASTEST; /* fast and fastest differ in the forward */
    rc = open_with(&p, out, 0, err);
    printf("  fast file, fastest -> %s\n", rc ? err : "resumed");
    CHECK(rc == SP_OUT_MISMATCH && strstr(err, "convolution") && strstr(err, "fast"),
          "a fast file resumed with convolution fastest (%d)", rc);
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    str_attr(out, "convolution", conv, sizeof conv);
    CHECK(!strcmp(conv, "fastest"), "float32 fastest: convolution '%s'", conv);
    p.convolution = SAL_CONV_FAST;
    rc = open_with(&p, out, 0, err);
    CHECK(rc == SP_OUT_MISMATCH && strstr(err, "fastest"),
          "a fastest file resumed with convolution fast (%d)", rc);
    p.precision = SAL_F64;
    p.convolution = SAL_CONV_FAST;
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    str_attr(out, "convolution", conv, sizeof conv);
    CHECK(!strcmp(conv, "direct"), "float64 fast: convolution '%s'", conv);
    p.convolution = SAL_CONV_DIRECT;
    CHECK(open_with(&p, out, 0, err) == SP_OUT_OK, "float64 with direct refused: %s", err);
    p.precision = SAL_F32;
    CHECK(open_with(&p, out, 1, err) == SP_OUT_OK, "%s", err);
    f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0 && H5Adelete(f, "convolution") >= 0, "delete attribute");
    H5Fclose(f);
    CHECK(open_with(&p, out, 0, err) == SP_OUT_OK, "a file without convolution refused "
          "with direct: %s", err);
    p.convolution = SAL_CONV_FAST;
    rc = open_with(&p, out, 0, err);
    printf("  no convolution attribute, fast -> %s\n", rc ? err : "resumed");
    CHECK(rc == SP_OUT_MISMATCH && strstr(err, "convolution") && strstr(err, "direct"),
          "a file from before the attribute resumed with fast convolutions (%d)", rc);
    p = full;
    unbuild(&p, &cfg, m);
    return 0;
}

/* ---- the batch message ----------------------------------------------------------- */

static int case_batch_roundtrip(void) {
    const sp_batch_shape s = {.nimages = 5, .batch = 3, .ntargets = 2, .nmaps = 2,
                              .real_size = 4, .max_chunk = 16};
    sp_batch_writer w;
    CHECK(sp_batch_writer_init(&w, &s, 64) == 0, "out of memory");
    /* batch 1: images 3 (done) and 4 (failed, with a message longer than kept) */
    const float acts[2] = {1.5f, -2.0f};
    char longmsg[100];
    memset(longmsg, 'e', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    sp_batch_begin(&w, 1, 2);
    sp_batch_put_image(&w, 3, 1, "", acts, NULL);
    sp_batch_put_image(&w, 4, -1, longmsg, NULL, NULL);
    CHECK(w.nslots == 4, "%d slots for one done image of 2 x 2 maps", w.nslots);
    for (int q = 3; q >= 0; q--) { /* any order, as the team finishes them */
        memset(sp_batch_slot(&w, q), 'a' + q, (size_t)q + 1);
        sp_batch_slot_done(&w, q, (size_t)q + 1);
    }
    sp_batch_end(&w);
    size_t want = 8 + (12 + 8 + 4 * 8 + 1 + 2 + 3 + 4) + (12 + 64);
    CHECK(w.len == want, "message of %zu bytes, want %zu", w.len, want);
    sp_batch b;
    char err[SAL_ERR_LEN];
    CHECK(sp_batch_unpack(w.buf, w.len, &s, &b, err, sizeof err) == 0, "%s", err);
    CHECK(b.batch == 1 && b.count == 2, "batch %d count %d", (int)b.batch, (int)b.count);
    CHECK(b.images[0].image == 3 && b.images[0].status == 1 && b.images[0].msg_len == 0,
          "image 3");
    CHECK(!memcmp(b.images[0].acts, acts, sizeof acts), "activations");
    for (int q = 0; q < 4; q++) {
        CHECK(b.images[0].sizes[q] == (size_t)q + 1, "map %d: %zu bytes", q, b.images[0].sizes[q]);
        for (int k = 0; k <= q; k++)
            CHECK(((const char *)b.images[0].chunks[q])[k] == 'a' + q, "map %d byte %d", q, k);
    }
    CHECK(b.images[1].image == 4 && b.images[1].status == -1 && b.images[1].msg_len == 64,
          "image 4: message of %d bytes", (int)b.images[1].msg_len);
    sp_batch_free(&b);
    sp_batch_writer_free(&w);
    return 0;
}

/* Issue 12's message: gaps after the activations, Grad-CAM chunks after the maps.
 * Batch 0 of 2 images: image 0 done, image 1 failed. Then a spoiled Grad-CAM size
 * and a non-finite gap are refused. */
static int case_batch_methods(void) {
    const sp_batch_shape s = {.nimages = 2, .batch = 2, .ntargets = 2, .nmaps = 1, .ncams = 1,
                              .ngaps = 1, .real_size = 8, .max_chunk = 16,
                              .max_cam_chunk = 5};
    sp_batch_writer w;
    CHECK(sp_batch_writer_init(&w, &s, 8) == 0, "out of memory");
    const double acts[2] = {1.5, -2.0}, gaps[2] = {0.25, -1e-9};
    sp_batch_begin(&w, 0, 2);
    sp_batch_put_image(&w, 0, 1, "", acts, gaps);
    sp_batch_put_image(&w, 1, -1, "bad", NULL, NULL);
    CHECK(w.nslots == 4, "%d slots for one done image of 2 maps and 2 cams", w.nslots);
    for (int q = 3; q >= 0; q--) {
        memset(sp_batch_slot(&w, q), 'a' + q, (size_t)q + 2); /* cams: 4 and 5 bytes */
        sp_batch_slot_done(&w, q, (size_t)q + 2);
    }
    sp_batch_end(&w);
    size_t want = 8 + (12 + 16 + 16 + 8 * 4 + 2 + 3 + 4 + 5) + (12 + 3);
    CHECK(w.len == want, "message of %zu bytes, want %zu", w.len, want);
    sp_batch b;
    char err[SAL_ERR_LEN];
    CHECK(sp_batch_unpack(w.buf, w.len, &s, &b, err, sizeof err) == 0, "%s", err);
    const sp_batch_image *im = &b.images[0];
    CHECK(!memcmp(im->acts, acts, sizeof acts) && im->gaps && !memcmp(im->gaps, gaps, sizeof gaps),
          "activations and gaps");
    for (int q = 0; q < 4; q++) {
        const void *c = q < 2 ? im->chunks[q] : im->cams[q - 2];
        size_t z = q < 2 ? im->sizes[q] : im->cam_sizes[q - 2];
        CHECK(z == (size_t)q + 2, "chunk %d: %zu bytes", q, z);
        for (size_t k = 0; k < z; k++)
            CHECK(((const char *)c)[k] == 'a' + q, "chunk %d byte %zu", q, k);
    }
    CHECK(b.images[1].status == -1 && !b.images[1].gaps && !b.images[1].cams, "failed image");
    sp_batch_free(&b);
    /* The same bytes under a shape without gaps or cams do not parse. */
    sp_batch_shape other = s;
    other.ngaps = 0;
    CHECK(sp_batch_unpack(w.buf, w.len, &other, &b, err, sizeof err) != 0, "read without gaps");
    other = s;
    other.ncams = 0;
    CHECK(sp_batch_unpack(w.buf, w.len, &other, &b, err, sizeof err) != 0, "read without cams");
    /* Grad-CAM chunk 1 (5 bytes, the largest allowed) claims 6. */
    char *bad = malloc(w.len);
    memcpy(bad, w.buf, w.len);
    const size_t cam1 = 8 + 12 + 16 + 16 + (8 + 2) + (8 + 3) + (8 + 4);
    int64_t z;
    memcpy(&z, bad + cam1, sizeof z);
    CHECK(z == 5, "Grad-CAM chunk 1 size at %zu is %lld", cam1, (long long)z);
    z = 6;
    memcpy(bad + cam1, &z, sizeof z);
    CHECK(sp_batch_unpack(bad, w.len, &s, &b, err, sizeof err) != 0 &&
              strstr(err, "Grad-CAM map 1 of 6 bytes"), "spoiled cam size: '%s'", err);
    /* A NaN and an infinite gap. */
    const double nonfinite[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        memcpy(bad, w.buf, w.len);
        memcpy(bad + 8 + 12 + 16 + 8, &nonfinite[k], sizeof(double));
        CHECK(sp_batch_unpack(bad, w.len, &s, &b, err, sizeof err) != 0 &&
                  strstr(err, "gap of target 1 is not finite"), "gap %g: '%s'", nonfinite[k], err);
    }
    free(bad);
    sp_batch_writer_free(&w);
    return 0;
}

/* ---- driver ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    {"gradcam_layer", case_gradcam_layer},   {"method_checks", case_method_checks},
    {"method_text", case_method_text},       {"pack_roundtrip", case_pack_roundtrip},
    {"unpack_refuses", case_unpack_refuses}, {"output_params", case_output_params},
    {"batch_roundtrip", case_batch_roundtrip}, {"batch_methods", case_batch_methods},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_plan DIR MODEL.h5 CASE...\n");
        return 2;
    }
    static char model_abs[PATH_MAX];
    if (!realpath(argv[2], model_abs)) die("cannot find the model", argv[2]);
    model_path = model_abs;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int failed = 0;
    for (int a = 3; a < argc; a++) {
        int i = 0;
        while (i < NCASES && strcmp(cases[i].name, argv[a])) i++;
        if (i == NCASES) {
            fprintf(stderr, "test_plan: no case '%s'\n", argv[a]);
            return 2;
        }
        snprintf(dir, sizeof dir, "%s/%s", argv[1], cases[i].name);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        mkdir(argv[1], 0755);
        if (mkdir(dir, 0755)) die("cannot create", dir);
        char link[PATH_MAX + 8];
        snprintf(link, sizeof link, "%s/m.h5", dir);
        if (symlink(model_path, link)) die("cannot link the model into", dir);
        printf("case %s\n", cases[i].name);
        int rc = cases[i].fn();
        printf("%s %s\n", rc ? "FAIL" : "ok", cases[i].name);
        failed += rc;
    }
    return failed ? 1 : 0;
}
