/*
 * The attribution driver's set-up (salcore.h, "attribution methods"; the state in
 * attribution_internal.h): which engines the asked methods need, their workspace,
 * the Integrated Gradients path, and the dispatch to the precision's runs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution_internal.h"
#include "attrib.h"
#include "engine_internal.h"
#include "model_internal.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void sal_method_params_default(sal_method_params *p) {
    memset(p, 0, sizeof *p);
    p->sg_samples = 50;
    p->sg_noise = 0.15;
    p->sg_base = SAL_METHOD_VANILLA;
    p->sg_statistic = SAL_SG_MEAN;
    p->sg_seed = 0;
    p->sg_columns = 0; /* automatic */
    p->ig_steps = 50;
    p->ig_rule = SAL_IG_GAUSS_LEGENDRE;
    p->ig_baseline = SAL_IG_BASELINE_ZERO;
    p->cam_layer = -1;
}

/* Checks the parameters of the asked methods. */
static int check_params(const sal_model *m, const sal_attrib *a, char *err, size_t errlen) {
    const sal_method_params *p = &a->par;
    if (a->want[SAL_METHOD_SMOOTHGRAD]) {
        if (p->sg_samples < 1 || p->sg_samples > 1000000)
            return fail(err, errlen, "smoothgrad: samples %d out of range 1..1000000",
                        (int)p->sg_samples);
        if (!(p->sg_noise >= 0) || p->sg_noise > 1e6)
            return fail(err, errlen, "smoothgrad: noise %g must be >= 0", p->sg_noise);
        if ((int)p->sg_base < 0 || p->sg_base > SAL_METHOD_DECONVNET)
            return fail(err, errlen, "smoothgrad: base must be vanilla, guided or deconvnet");
        if ((int)p->sg_statistic < 0 || p->sg_statistic > SAL_SG_VARIANCE)
            return fail(err, errlen, "smoothgrad: unknown statistic %d", (int)p->sg_statistic);
        if (p->sg_columns < 0 || p->sg_columns > 65536)
            return fail(err, errlen, "smoothgrad: columns %d out of range 0..65536 "
                        "(0: automatic)", (int)p->sg_columns);
    }
    if (a->want[SAL_METHOD_INTEGRATED_GRADIENTS]) {
        if (p->ig_steps < 1 || p->ig_steps > SAL_QUADRATURE_MAX_STEPS)
            return fail(err, errlen, "integrated_gradients: steps %d out of range 1..%d",
                        (int)p->ig_steps, SAL_QUADRATURE_MAX_STEPS);
        if ((int)p->ig_rule < 0 || p->ig_rule > SAL_IG_RIEMANN_TRAPEZOID)
            return fail(err, errlen, "integrated_gradients: unknown rule %d", (int)p->ig_rule);
        if ((int)p->ig_baseline < 0 || p->ig_baseline > SAL_IG_BASELINE_BLACK)
            return fail(err, errlen, "integrated_gradients: unknown baseline %d",
                        (int)p->ig_baseline);
    }
    if (a->want[SAL_METHOD_GRADCAM] || a->want[SAL_METHOD_GUIDED_GRADCAM]) {
        if (p->cam_layer < 0 || p->cam_layer >= m->nlayers)
            return fail(err, errlen, "gradcam: no layer given (node index %d)",
                        (int)p->cam_layer);
        const sal_layer *L = &m->layers[p->cam_layer];
        if (L->out_h * L->out_w <= 1)
            return fail(err, errlen, "gradcam: layer %s has no spatial map (%dx%dx%d)",
                        L->name, (int)L->out_c, (int)L->out_h, (int)L->out_w);
    }
    return 0;
}

/* Working memory SmoothGrad's copies may take beyond max_batch columns: an engine of
 * more columns streams the weights of the fully connected layers once for more copies
 * (W4 in docs/performance.md: 50 copies per run instead of 8 cut AlexNet's CPU time
 * by a third). The statistic adds the samples in their order whatever the runs, and
 * each column is computed alone: float32 maps do not depend on the columns per run;
 * float64 maps may in their last bits (OpenBLAS's dgemm), as they do on max_batch. */
#define SG_COLUMN_BUDGET ((size_t)1 << 30)
#define SG_MAX_COLUMNS 4096 /* [run] batch's own limit */

/* SmoothGrad's copies per engine run into *cols: sg_columns when given, else all of an
 * image's samples when their workspace (the engine's, measured on a one-column engine,
 * plus the copies and their maps) fits SG_COLUMN_BUDGET, else as many as fit, never
 * fewer than max_batch. */
static int sg_columns(const sal_attrib *a, int *cols, char *err, size_t errlen) {
    const int S = a->par.sg_samples, B = a->max_batch, given = a->par.sg_columns;
    *cols = S < B ? S : B;
    if (given > 0) *cols = given < S ? given : S;
    if (given > 0 || S <= B) return 0;
    sal_engine *probe;
    if (engine_init(&probe, a->m, a->prec, 1, a->targets, a->ntargets, &a->par.sg_base, 1,
                    SAL_CONV_DIRECT, NULL, err, errlen)) /* the same workspace either way */
        return -1;
    const size_t rs = a->prec == SAL_F64 ? sizeof(double) : sizeof(float);
    const size_t maps = a->fold_elems > a->in_elems ? a->fold_elems : a->in_elems;
    const size_t per = sal_engine_workspace_bytes(probe) +
                       rs * (a->in_elems + (size_t)a->ntargets * maps);
    sal_engine_free(probe);
    size_t fit = SG_COLUMN_BUDGET / (per ? per : 1);
    if (fit > SG_MAX_COLUMNS) fit = SG_MAX_COLUMNS;
    if (fit > (size_t)B) *cols = fit < (size_t)S ? (int)fit : S;
    return 0;
}

/* The fold's convolution (attribution_internal.h): the one node reading the network
 * input, when it is a convolution reading nothing else; else -1. */
static int fold_node(const sal_model *m) {
    int node = -1;
    for (int i = 0; i < m->nlayers; i++)
        for (int k = 0; k < m->layers[i].ninputs; k++)
            if (m->layers[i].inputs[k] == -1) {
                if (node >= 0 || m->layers[i].kind != SAL_LAYER_CONV ||
                    m->layers[i].ninputs != 1)
                    return -1;
                node = i;
            }
    return node;
}

/* Stops engine e at the fold's node; 1 when it does (every target reads the node). */
static int fold_engine(sal_attrib *a, sal_engine *e) {
    char why[SAL_ERR_LEN];
    return a->fold >= 0 && sal_engine_stop_at(e, a->fold, why, sizeof why) == 0;
}

/* The engines and their workspace. */
static int build(sal_attrib *a, char *err, size_t errlen) {
    const sal_model *m = a->m;
    const size_t rs = a->prec == SAL_F64 ? sizeof(double) : sizeof(float);
    const int T = a->ntargets, B = a->max_batch;
    const sal_preprocess *pp = sal_model_preprocess(m);
    const size_t plane = (size_t)pp->height * pp->width;
    a->in_elems = (size_t)pp->channels * plane;

    /* rules: the ReLU-rule maps the asked methods read. */
    /* Engines share one copy of the Winograd weights (freed together). */
    const sal_conv_mode conv = a->par.convolution;
    static const sal_method rule_of[3] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED,
                                          SAL_METHOD_DECONVNET};
    int need_rule[3] = {a->want[SAL_METHOD_VANILLA] || a->want[SAL_METHOD_GRADIENT_X_INPUT],
                        a->want[SAL_METHOD_GUIDED] || a->want[SAL_METHOD_GUIDED_GRADCAM],
                        a->want[SAL_METHOD_DECONVNET]};
    sal_method rules[3];
    for (int r = 0; r < 3; r++) {
        a->rule_slot[r] = -1;
        if (need_rule[r]) {
            a->rule_slot[r] = a->nrules;
            rules[a->nrules++] = rule_of[r];
        }
    }
    if (a->nrules &&
        engine_init(&a->rules, m, a->prec, B, a->targets, T, rules, a->nrules, conv, NULL, err,
                    errlen))
        return -1;
    const sal_method vanilla = SAL_METHOD_VANILLA;
    if (a->want[SAL_METHOD_GRADCAM] || a->want[SAL_METHOD_GUIDED_GRADCAM]) {
        const sal_layer *L = &m->layers[a->par.cam_layer];
        a->cam_c = L->out_c;
        a->cam_plane = (size_t)L->out_h * L->out_w;
        a->cam_elems = a->cam_c * a->cam_plane;
        if (engine_init(&a->cam, m, a->prec, B, a->targets, T, &vanilla, 1, conv, a->rules, err,
                        errlen) ||
            sal_engine_stop_at(a->cam, a->par.cam_layer, err, errlen)) {
            char why[SAL_ERR_LEN];
            snprintf(why, sizeof why, "%s", err);
            return fail(err, errlen, "gradcam: layer %s: %s", L->name, why);
        }
        a->cam_grad = malloc(rs * B * T * a->cam_elems);
        a->cam_value = malloc(rs * B * a->cam_elems);
        a->cam_up = malloc(rs * B * T * plane);
        a->cam_sum = malloc(sizeof(double) * a->cam_plane);
        a->cam_low = malloc(rs * a->cam_plane);
        if (!a->cam_grad || !a->cam_value || !a->cam_up || !a->cam_sum || !a->cam_low)
            return fail(err, errlen, "gradcam: out of memory");
    }
    int chunk = 0;
    a->fold = fold_node(m);
    if (a->fold >= 0) a->fold_elems = engine_layer_elems(m, a->fold);
    if (a->want[SAL_METHOD_SMOOTHGRAD]) {
        if (sg_columns(a, &a->sg_cols, err, errlen) ||
            engine_init(&a->sg, m, a->prec, a->sg_cols, a->targets, T, &a->par.sg_base, 1,
                        conv, a->rules ? a->rules : a->cam, err, errlen))
            return -1;
        /* Only the mean is linear in the samples' maps. */
        a->sg_fold = a->par.sg_statistic == SAL_SG_MEAN && fold_engine(a, a->sg);
        chunk = a->sg_cols;
    }
    if (a->want[SAL_METHOD_INTEGRATED_GRADIENTS]) {
        const int steps = a->par.ig_steps;
        const int c = a->ig_cols = steps < B ? steps : B;
        if (c > chunk) chunk = c;
        if (engine_init(&a->ig, m, a->prec, c, a->targets, T, &vanilla, 1, conv,
                        a->rules ? a->rules : a->cam ? a->cam : a->sg, err, errlen))
            return -1;
        a->ig_fold = fold_engine(a, a->ig);
        a->alphas = malloc(sizeof(double) * steps);
        a->weights = malloc(sizeof(double) * steps);
        a->baseline_f = calloc(T, sizeof(double));
        if (!a->alphas || !a->weights || !a->baseline_f)
            return fail(err, errlen, "integrated_gradients: out of memory");
        char why[SAL_ERR_LEN];
        if (sal_quadrature(a->par.ig_rule == SAL_IG_RIEMANN_TRAPEZOID ? SAL_RULE_RIEMANN_TRAPEZOID
                                                                      : SAL_RULE_GAUSSLEGENDRE,
                           steps, a->alphas, a->weights, why, sizeof why))
            return fail(err, errlen, "integrated_gradients: %s", why);
    }
    a->chunk = chunk;
    a->sample_elems = a->in_elems;
    if (a->sg_fold || a->ig_fold) {
        const sal_layer *L = &m->layers[a->fold];
        if (a->fold_elems > a->sample_elems) a->sample_elems = a->fold_elems;
        a->fold_sum = malloc(rs * a->fold_elems);
        a->fold_col = malloc(rs * (conv_scratch_elems(L, 1) + 1));
        if (!a->fold_sum || !a->fold_col) return fail(err, errlen, "attribution: out of memory");
    }
    if (chunk) {
        const size_t S = a->sample_elems;
        a->cols = malloc(rs * chunk * a->in_elems);
        a->col_maps = malloc(rs * chunk * T * S);
        a->acc = malloc(sizeof(double) * T * S);
        a->acc2 = malloc(sizeof(double) * T * S);
        a->noise = malloc(sizeof(double) * a->in_elems);
        if (!a->cols || !a->col_maps || !a->acc || !a->acc2 || !a->noise)
            return fail(err, errlen, "attribution: out of memory for %d samples per run", chunk);
    }
    if (a->nrules) {
        a->rule_maps = malloc(rs * B * T * a->nrules * a->in_elems);
        if (!a->rule_maps) return fail(err, errlen, "attribution: out of memory");
    }
    a->acts = malloc(rs * (B > chunk ? B : chunk) * T);
    if (!a->acts) return fail(err, errlen, "attribution: out of memory");
    return 0;
}

int sal_attrib_init(sal_attrib **out, const sal_model *m, sal_precision p, int max_batch,
                    const sal_target *targets, int ntargets, const sal_method *methods,
                    int nmethods, const sal_method_params *par, char *err, size_t errlen) {
    *out = NULL;
    if (nmethods < 1 || nmethods > SAL_METHOD_COUNT)
        return fail(err, errlen, "attribution: %d methods (1..%d)", nmethods, SAL_METHOD_COUNT);
    if (ntargets < 1) return fail(err, errlen, "attribution: no targets");
    if (max_batch < 1 || max_batch > 65536)
        return fail(err, errlen, "attribution: batch size %d out of range 1..65536", max_batch);
    sal_attrib *a = calloc(1, sizeof *a);
    if (!a) return fail(err, errlen, "attribution: out of memory");
    a->m = m;
    a->prec = p;
    a->max_batch = max_batch;
    a->ntargets = ntargets;
    a->nmethods = nmethods;
    if (par) a->par = *par;
    else sal_method_params_default(&a->par);
    a->targets = malloc(sizeof *targets * ntargets);
    a->methods = malloc(sizeof *methods * nmethods);
    if (!a->targets || !a->methods) {
        sal_attrib_free(a);
        return fail(err, errlen, "attribution: out of memory");
    }
    memcpy(a->targets, targets, sizeof *targets * ntargets);
    memcpy(a->methods, methods, sizeof *methods * nmethods);
    for (int k = 0; k < SAL_METHOD_COUNT; k++) a->map_slot[k] = -1;
    for (int i = 0; i < nmethods; i++) {
        sal_method k = methods[i];
        if ((int)k < 0 || k >= SAL_METHOD_COUNT || a->want[k]) {
            sal_attrib_free(a);
            return fail(err, errlen, "attribution: method %d unknown or asked twice", (int)k);
        }
        a->want[k] = 1;
        if (k != SAL_METHOD_GRADCAM) a->map_slot[k] = a->nmaps++;
    }
    if (check_params(m, a, err, errlen) || build(a, err, errlen)) {
        sal_attrib_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int sal_attrib_num_maps(const sal_attrib *a) { return a->nmaps; }

int sal_attrib_run(sal_attrib *a, const void *input, int n, const int64_t *image, void *maps,
                   void *activations, void *cams, double *ig_gap, char *err,
                   size_t errlen) {
    if (n < 1 || n > a->max_batch)
        return fail(err, errlen, "attribution: batch of %d images, sized for 1..%d", n,
                    a->max_batch);
    for (int k = 0; k < n; k++)
        if (image[k] < 0 || image[k] >= (int64_t)UINT32_MAX)
            return fail(err, errlen, "attribution: image index %lld out of range",
                        (long long)image[k]);
    if (a->prec == SAL_F64)
        return sal_attrib_run_f64(a, input, n, image, maps, activations, cams, ig_gap, err,
                                  errlen);
    return sal_attrib_run_f32(a, input, n, image, maps, activations, cams, ig_gap, err,
                              errlen);
}

void sal_method_passes(const sal_method *methods, int nmethods, const sal_method_params *par,
                       int ntargets, double *forward, double *backward) {
    int want[SAL_METHOD_COUNT] = {0};
    for (int i = 0; i < nmethods; i++)
        if ((int)methods[i] >= 0 && methods[i] < SAL_METHOD_COUNT) want[methods[i]] = 1;
    /* The ReLU-rule maps the methods read, as build() makes them. */
    const int nrules = (want[SAL_METHOD_VANILLA] || want[SAL_METHOD_GRADIENT_X_INPUT]) +
                       (want[SAL_METHOD_GUIDED] || want[SAL_METHOD_GUIDED_GRADCAM]) +
                       want[SAL_METHOD_DECONVNET];
    const int cam = want[SAL_METHOD_GRADCAM] || want[SAL_METHOD_GUIDED_GRADCAM];
    const double T = ntargets;
    double f = 0, b = 0;
    if (nrules) f += 1, b += T * nrules;
    if (cam) f += 1, b += T; /* each stops at its node */
    if (want[SAL_METHOD_SMOOTHGRAD]) f += par->sg_samples, b += (double)par->sg_samples * T;
    if (want[SAL_METHOD_INTEGRATED_GRADIENTS]) f += par->ig_steps, b += (double)par->ig_steps * T;
    if (!nrules && !cam) f += 1; /* the activations */
    *forward = f;
    *backward = b;
}

void sal_attrib_passes(const sal_attrib *a, double *forward, double *backward) {
    sal_method_passes(a->methods, a->nmethods, &a->par, a->ntargets, forward, backward);
}

void sal_attrib_set_parallel(sal_attrib *a, sal_parallel_for pfor, void *pool) {
    a->pfor = pfor;
    a->pool = pool;
    sal_engine *e[4] = {a->rules, a->cam, a->sg, a->ig};
    for (int i = 0; i < 4; i++)
        if (e[i]) sal_engine_set_parallel(e[i], pfor, pool);
}

size_t sal_attrib_workspace_bytes(const sal_attrib *a) {
    const size_t rs = a->prec == SAL_F64 ? sizeof(double) : sizeof(float);
    const int T = a->ntargets, B = a->max_batch;
    const sal_preprocess *pp = sal_model_preprocess(a->m);
    size_t bytes = 0;
    sal_engine *e[4] = {a->rules, a->cam, a->sg, a->ig};
    for (int i = 0; i < 4; i++)
        if (e[i]) bytes += sal_engine_workspace_bytes(e[i]);
    bytes += rs * B * T * a->nrules * a->in_elems;
    if (a->cam)
        bytes += rs * B * (T + 1) * a->cam_elems + rs * B * T * pp->height * pp->width;
    if (a->chunk)
        bytes += rs * a->chunk * a->in_elems + rs * a->chunk * T * a->sample_elems +
                 sizeof(double) * (2 * T * a->sample_elems + a->in_elems);
    if (a->fold_sum)
        bytes += rs * (a->fold_elems + conv_scratch_elems(&a->m->layers[a->fold], 1) + 1);
    return bytes;
}

void sal_attrib_free(sal_attrib *a) {
    if (!a) return;
    sal_engine_free(a->rules);
    sal_engine_free(a->cam);
    sal_engine_free(a->sg);
    sal_engine_free(a->ig);
    free(a->targets), free(a->methods);
    free(a->alphas), free(a->weights), free(a->baseline_f);
    free(a->rule_maps), free(a->cam_grad), free(a->cam_value), free(a->cam_up);
    free(a->cam_sum), free(a->cam_low);
    free(a->cols), free(a->col_maps), free(a->acts);
    free(a->acc), free(a->acc2), free(a->noise);
    free(a->fold_sum), free(a->fold_col);
    free(a);
}
