/*
 * Test hook: runs the attribution driver (sal_attrib) on given inputs and writes
 * everything it computes, so a Python test can compare it with
 * tests/reference/methods_reference.py.
 *
 *   attrib_dump MODEL.h5 f64|f32 IN.bin N OUT.bin --target NAME:UNIT [...]
 *       --methods m1,m2,... [--samples S] [--noise X] [--base B] [--statistic ST]
 *       [--seed K] [--steps K] [--rule R] [--baseline B] [--gradcam-layer NAME]
 *       [--batch B]
 *
 * IN.bin: N normalized images (N, C, H, W) in the precision, C order, native endian.
 * UNIT is 0-based. Image k is job image k (SmoothGrad's noise key). OUT.bin, in this
 * order: maps (N, T, num_maps, C, H, W) and activations (N, T) in the precision,
 * then cams (N, T, H, W) in the precision when gradcam is asked, then gaps (N, T)
 * float64 when integrated_gradients is asked. Exit 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"

static int die(const char *msg) {
    fprintf(stderr, "attrib_dump: %s\n", msg);
    return 1;
}

static int named(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

int main(int argc, char **argv) {
    char err[SAL_ERR_LEN];
    if (argc < 6) return die("usage: attrib_dump MODEL f64|f32 IN.bin N OUT.bin --target ...");
    const sal_precision prec = !strcmp(argv[2], "f64") ? SAL_F64 : SAL_F32;
    const int n = atoi(argv[4]);
    sal_model *m = NULL;
    if (sal_model_open(argv[1], &m, err, sizeof err) ||
        sal_model_load_params(m, prec, NULL, err, sizeof err))
        return die(err);
    sal_method_params par;
    sal_method_params_default(&par);
    sal_target t[16];
    sal_method meth[SAL_METHOD_COUNT];
    int T = 0, M = 0, batch = n;
    static const char *const stats[] = {"mean", "mean_square", "variance"};
    static const char *const rules[] = {"gausslegendre", "riemann_trapezoid"};
    static const char *const bases[] = {"zero", "black"};
    for (int i = 6; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--target") && T < 16) {
            char name[SAL_NAME_LEN];
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof name) return die("bad --target");
            memcpy(name, v, colon - v);
            name[colon - v] = 0;
            t[T].layer = sal_model_find_layer(m, name);
            t[T].unit = atoi(colon + 1);
            if (t[T++].layer < 0) return die("unknown target layer");
        } else if (!strcmp(k, "--methods")) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
                meth[M] = sal_method_from_name(s);
                if (M >= SAL_METHOD_COUNT || meth[M] == SAL_METHOD_COUNT)
                    return die("unknown method");
                M++;
            }
        } else if (!strcmp(k, "--samples")) par.sg_samples = atoi(v);
        else if (!strcmp(k, "--noise")) par.sg_noise = atof(v);
        else if (!strcmp(k, "--base")) par.sg_base = sal_method_from_name(v);
        else if (!strcmp(k, "--statistic")) par.sg_statistic = (sal_sg_statistic)named(v, stats, 3);
        else if (!strcmp(k, "--seed")) par.sg_seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--steps")) par.ig_steps = atoi(v);
        else if (!strcmp(k, "--rule")) par.ig_rule = (sal_ig_rule)named(v, rules, 2);
        else if (!strcmp(k, "--baseline")) par.ig_baseline = (sal_ig_baseline)named(v, bases, 2);
        else if (!strcmp(k, "--gradcam-layer")) par.cam_layer = sal_model_find_layer(m, v);
        else if (!strcmp(k, "--batch")) batch = atoi(v);
        else return die("unknown option");
    }
    if (!T || !M || n < 1 || batch < 1) return die("need targets, methods and N >= 1");
    const sal_preprocess *pp = sal_model_preprocess(m);
    const size_t rs = prec == SAL_F64 ? 8 : 4, plane = (size_t)pp->height * pp->width;
    const size_t E = pp->channels * plane;
    sal_attrib *a = NULL;
    if (sal_attrib_init(&a, m, prec, batch, t, T, meth, M, &par, err, sizeof err))
        return die(err);
    const int NM = sal_attrib_num_maps(a);
    int cam = 0, ig = 0;
    for (int i = 0; i < M; i++) {
        cam |= meth[i] == SAL_METHOD_GRADCAM;
        ig |= meth[i] == SAL_METHOD_INTEGRATED_GRADIENTS;
    }
    char *in = malloc(rs * n * E), *maps = malloc(rs * n * T * (NM ? NM : 1) * E);
    char *acts = malloc(rs * n * T), *cams = malloc(rs * n * T * plane);
    double *gaps = malloc(sizeof(double) * n * T);
    int64_t *ids = malloc(sizeof *ids * n);
    FILE *f = fopen(argv[3], "rb");
    if (!in || !maps || !acts || !cams || !gaps || !ids || !f ||
        fread(in, rs * E, n, f) != (size_t)n)
        return die("cannot read the inputs");
    fclose(f);
    for (int k0 = 0; k0 < n; k0 += batch) {
        const int c = n - k0 < batch ? n - k0 : batch;
        for (int k = 0; k < c; k++) ids[k] = k0 + k;
        if (sal_attrib_run(a, in + rs * k0 * E, c, ids, maps + rs * k0 * T * NM * E,
                           acts + rs * k0 * T, cam ? cams + rs * k0 * T * plane : NULL,
                           ig ? gaps + (size_t)k0 * T : NULL, err, sizeof err))
            return die(err);
    }
    f = fopen(argv[5], "wb");
    if (!f || fwrite(maps, rs * T * NM * E, n, f) != (size_t)n ||
        fwrite(acts, rs * T, n, f) != (size_t)n ||
        (cam && fwrite(cams, rs * T * plane, n, f) != (size_t)n) ||
        (ig && fwrite(gaps, sizeof(double) * T, n, f) != (size_t)n) || fclose(f))
        return die("cannot write the output");
    sal_attrib_free(a);
    sal_model_free(m);
    free(in), free(maps), free(acts), free(cams), free(gaps), free(ids);
    return 0;
}
