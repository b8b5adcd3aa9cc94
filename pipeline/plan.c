/*
 * The plan: built from the config and the model header on rank 0, packed into
 * bytes for MPI_Bcast and unpacked on the other ranks. Layout: a sequence of
 * little records, int32s and length-prefixed strings, in the order of sp_plan.
 * The reader checks every record against the buffer's length and the plan's own
 * limits (a damaged or foreign message is refused with a reason, never read past
 * its end), so tests/fuzz/fuzz_messages.c can feed it arbitrary bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* Bounds a plan built from a checked config and model respects (config.c's
 * [run] limits, model.c's sizes); the reader refuses anything beyond them. */
#define PLAN_MAX_BATCH 4096
#define PLAN_MAX_THREADS 1024
#define PLAN_MAX_DIM (1 << 20)
#define PLAN_MAX_ACT ((int64_t)1 << 30)

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- building ------------------------------------------------------------------ */

/* Appends the model's layer names to an error message: every name (and alias) of a
 * small model; of a large one (a graph of hundreds of nodes) its main layers, which
 * are the nodes with an alias (DNNBrain's names) and the top-level nodes (names
 * without a '.': relu, maxpool, fc ...), with runs such as layer3_bottleneck0 ..
 * layer3_bottleneck35 shortened, and a pointer to --layers for the inner nodes. */
#define LIST_ALL_MAX 40

/* The name's trailing number or letter after a digit (layer3_bottleneck35 -> 35 with
 * a 17-byte prefix, inception4c -> 'c' with 10), or -1 when it ends in neither. */
static int tail_value(const char *s, size_t *prefix) {
    size_t n = strlen(s), i = n;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9') i--;
    if (i < n && n - i <= 6 && i > 0) {
        *prefix = i;
        return atoi(s + i);
    }
    if (n > 1 && s[n - 1] >= 'a' && s[n - 1] <= 'z' && s[n - 2] >= '0' && s[n - 2] <= '9') {
        *prefix = n - 1;
        return s[n - 1];
    }
    return -1;
}

/* The node's name in the short list, or NULL when it is an inner node. */
static const char *main_name(const sal_layer *L) {
    return L->alias[0] ? L->alias : strchr(L->name, '.') ? NULL : L->name;
}

static int list_layers(char *err, size_t errlen, int off, const sal_model *m) {
    const int n = sal_model_num_layers(m);
    int naliases = 0;
    for (int i = 0; i < n; i++) naliases += sal_model_layer(m, i)->alias[0] != 0;
    if (n <= LIST_ALL_MAX || !naliases) {
        off += snprintf(err + off, errlen - off, "; its layers:");
        for (int i = 0; i < n && i < LIST_ALL_MAX && off > 0 && (size_t)off < errlen; i++) {
            const sal_layer *L = sal_model_layer(m, i);
            off += snprintf(err + off, errlen - off, L->alias[0] ? " %s (%s)" : " %s",
                            L->name, L->alias);
        }
        if (n > LIST_ALL_MAX && off > 0 && (size_t)off < errlen)
            off += snprintf(err + off, errlen - off, " ... and %d more", n - LIST_ALL_MAX);
        return off;
    }
    off += snprintf(err + off, errlen - off,
                    "; its main layers (DNNBrain's names and the top-level nodes):");
    const char *first = NULL, *last = NULL; /* the run being collected */
    int len = 0, last_val = -1;
    size_t last_pre = 0;
    for (int i = 0; i <= n && off > 0 && (size_t)off < errlen; i++) {
        const char *a = i < n ? main_name(sal_model_layer(m, i)) : "";
        if (!a) continue;
        size_t pre = 0;
        int val = i < n ? tail_value(a, &pre) : -1;
        if (len && val >= 0 && last_val >= 0 && val == last_val + 1 && pre == last_pre &&
            !strncmp(a, last, pre)) {
            last = a, last_val = val, len++;
            continue;
        }
        if (len >= 3)
            off += snprintf(err + off, errlen - off, " %s .. %s", first, last);
        else if (len == 2)
            off += snprintf(err + off, errlen - off, " %s %s", first, last);
        else if (len == 1)
            off += snprintf(err + off, errlen - off, " %s", first);
        first = last = a, last_val = val, last_pre = pre, len = 1;
    }
    if (off > 0 && (size_t)off < errlen)
        off += snprintf(err + off, errlen - off, "; each of its %d nodes has a name of its "
                        "own too (`salpipe --layers %s` lists them all)", n, sal_model_path(m));
    return off;
}

/* The index of the node named (or aliased) `name`, or -1 with err saying
 * "CONFIG:LINE:COL: layer 'conv9' is not in model M (did you mean 'conv2'?); its
 * layers: ..." (after "key 'KEY': " when key is not NULL). */
static int find_layer(const sal_model *m, const char *name, const char *key,
                      const sp_config *c, int line, int col, char *err, size_t errlen) {
    int li = sal_model_find_layer(m, name);
    if (li >= 0) return li;
    const int n = sal_model_num_layers(m);
    const char **cands = malloc(sizeof *cands * (2 * (size_t)n + 1));
    const char *near = NULL;
    if (cands) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            const sal_layer *L = sal_model_layer(m, i);
            cands[k++] = L->name;
            if (L->alias[0]) cands[k++] = L->alias;
        }
        cands[k] = NULL;
        near = sp_config_closest(name, cands);
    }
    int off = snprintf(err, errlen, "%s:%d:%d: %s%s%slayer '%s' is not in model %s",
                       c->config_path, line, col, key ? "key '" : "", key ? key : "",
                       key ? "': " : "", name, c->model_path);
    if (near && off > 0 && (size_t)off < errlen)
        off += snprintf(err + off, errlen - off, " (did you mean '%s'?)", near);
    free(cands);
    if (off > 0 && (size_t)off < errlen) list_layers(err, errlen, off, m);
    return -1;
}

typedef struct {
    sal_target ref;
    int t; /* index in the config's targets */
} target_ref;

/* By layer, unit, then config order (so the first spelling is reported first). */
static int cmp_target_ref(const void *pa, const void *pb) {
    const target_ref *a = pa, *b = pb;
    if (a->ref.layer != b->ref.layer) return a->ref.layer < b->ref.layer ? -1 : 1;
    if (a->ref.unit != b->ref.unit) return a->ref.unit < b->ref.unit ? -1 : 1;
    return (a->t > b->t) - (a->t < b->t);
}

/* Resolves the config's targets against the model; errors name the config line. A
 * target may name a node by its name or its alias; the plan keeps the spelling
 * the config used, for the output's labels and the previews' file names. */
static int resolve_targets(sp_plan *p, const sp_config *c, const sal_model *m, char *err,
                           size_t errlen) {
    p->ntargets = c->ntargets;
    p->targets = malloc(sizeof *p->targets * (c->ntargets > 0 ? c->ntargets : 1));
    /* zeroed: the names travel whole, NUL padding included */
    p->target_names = calloc(c->ntargets > 0 ? c->ntargets : 1, sizeof *p->target_names);
    if (!p->targets || !p->target_names) return fail(err, errlen, "out of memory");
    for (int t = 0; t < c->ntargets; t++) {
        const sp_target *ct = &c->targets[t];
        int li = find_layer(m, ct->layer, NULL, c, ct->layer_line, ct->layer_col, err, errlen);
        if (li < 0) return -1;
        const sal_layer *L = sal_model_layer(m, li);
        if (ct->unit < 1 || ct->unit > L->out_c)
            return fail(err, errlen, "%s:%d:%d: unit %d of layer %s is out of range: the "
                        "layer has units 1..%d", c->config_path, ct->line, ct->col, ct->unit,
                        ct->layer, L->out_c);
        p->targets[t] = (sal_target){li, ct->unit - 1};
        snprintf(p->target_names[t], sizeof p->target_names[t], "%s", ct->layer);
    }
    /* A node's name and its alias are one layer: the same unit under both would
     * compute and store the same maps twice (config.c catches the same spelling). */
    target_ref *r = malloc(sizeof *r * (c->ntargets > 0 ? c->ntargets : 1));
    if (!r) return fail(err, errlen, "out of memory");
    for (int t = 0; t < c->ntargets; t++) r[t] = (target_ref){p->targets[t], t};
    qsort(r, c->ntargets, sizeof *r, cmp_target_ref);
    for (int i = 1; i < c->ntargets; i++)
        if (r[i - 1].ref.layer == r[i].ref.layer && r[i - 1].ref.unit == r[i].ref.unit) {
            const sp_target *a = &c->targets[r[i - 1].t], *b = &c->targets[r[i].t];
            const sal_layer *L = sal_model_layer(m, r[i].ref.layer);
            fail(err, errlen, "%s:%d:%d: layer '%s' unit %d is layer '%s' unit %d of line %d, "
                 "column %d ('%s' is also called '%s'); list each layer and unit once",
                 c->config_path, b->line, b->col, b->layer, (int)b->unit, a->layer,
                 (int)a->unit, a->line, a->col, L->name, L->alias);
            free(r);
            return -1;
        }
    free(r);
    return 0;
}

/* [saliency.gradcam] layer: a node of the model (by name or alias) whose output has
 * a spatial extent, since Grad-CAM averages the gradient over it and upsamples the
 * map from it. Checked whenever it is set, whether or not a Grad-CAM method is asked
 * for. */
static int resolve_gradcam(sp_plan *p, const sp_config *c, const sal_model *m, char *err,
                           size_t errlen) {
    if (!c->gradcam_layer[0]) return 0;
    int li = find_layer(m, c->gradcam_layer, "saliency.gradcam.layer", c,
                        c->gradcam_line, c->gradcam_col, err, errlen);
    if (li < 0) return -1;
    const sal_layer *L = sal_model_layer(m, li);
    if (L->out_h == 1 && L->out_w == 1)
        return fail(err, errlen, "%s:%d:%d: key 'saliency.gradcam.layer': layer '%s' has no "
                    "spatial output (its output is %dx%dx%d, channels x height x width); "
                    "Grad-CAM needs a layer whose maps have a height and width, like the last "
                    "convolution or its ReLU (`salpipe --layers %s` lists the shapes)",
                    c->config_path, c->gradcam_line, c->gradcam_col, c->gradcam_layer,
                    L->out_c, L->out_h, L->out_w, c->model_path);
    p->gradcam_layer = li;
    snprintf(p->gradcam_name, sizeof p->gradcam_name, "%s", c->gradcam_layer);
    return 0;
}

void sp_plan_method_params(const sp_plan *p, sal_method_params *par) {
    sal_method_params_default(par);
    par->sg_samples = p->smoothgrad.samples;
    par->sg_noise = p->smoothgrad.noise;
    par->sg_base = p->smoothgrad.base;
    par->sg_statistic = (sal_sg_statistic)p->smoothgrad.statistic;
    par->sg_seed = p->smoothgrad.seed;
    par->ig_steps = p->integrated_gradients.steps;
    par->ig_rule = (sal_ig_rule)p->integrated_gradients.rule;
    par->ig_baseline = (sal_ig_baseline)p->integrated_gradients.baseline;
    par->cam_layer = p->gradcam_layer;
    par->convolution = p->convolution;
}

sp_batch_shape sp_plan_batch_shape(const sp_plan *p) {
    const size_t rs = p->precision == SAL_F64 ? sizeof(double) : sizeof(float);
    const size_t cam_bytes = (size_t)p->pre.height * p->pre.width * rs;
    int cams = 0, gaps = 0;
    for (int i = 0; i < p->nmethods; i++) {
        cams |= p->methods[i] == SAL_METHOD_GRADCAM;
        gaps |= p->methods[i] == SAL_METHOD_INTEGRATED_GRADIENTS;
    }
    return (sp_batch_shape){.nimages = p->nimages, .batch = p->batch,
                            .ntargets = p->ntargets, .nmaps = p->nmethods - cams,
                            .ncams = cams, .ngaps = gaps, .real_size = rs,
                            .max_chunk = sp_chunk_bound(cam_bytes * sp_plan_map_channels(p)),
                            .max_cam_chunk = sp_chunk_bound(cam_bytes)};
}

/* The first target that does not read node `layer` (its Grad-CAM gradient there would
 * be zero by construction), or -1. */
static int target_not_reading(const sp_plan *p, const sal_model *m, int layer) {
    for (int t = 0; t < p->ntargets; t++)
        if (sal_model_reads(m, p->targets[t].layer, layer) == 0) return t;
    return -1;
}

/* The methods' parameters that need the targets or each other. */
static int check_method_params(const sp_plan *p, const sp_config *c, const sal_model *m,
                               char *err, size_t errlen) {
    for (int i = 0; i < c->nmethods; i++) {
        if (c->methods[i] == SAL_METHOD_INTEGRATED_GRADIENTS &&
            c->integrated_gradients.rule == SP_IG_RIEMANN_TRAPEZOID &&
            c->integrated_gradients.steps < 2)
            return fail(err, errlen, "%s:%d:%d: key 'saliency.methods[%d]': "
                        "integrated_gradients with rule \"riemann_trapezoid\" needs steps >= 2 "
                        "(Captum's rule puts its ends at the baseline and the image), not %d",
                        c->config_path, c->method_line[i], c->method_col[i], i,
                        (int)c->integrated_gradients.steps);
        if ((c->methods[i] == SAL_METHOD_GRADCAM || c->methods[i] == SAL_METHOD_GUIDED_GRADCAM) &&
            p->gradcam_layer >= 0) {
            int t = target_not_reading(p, m, p->gradcam_layer);
            if (t >= 0)
                return fail(err, errlen, "%s:%d:%d: key 'saliency.gradcam.layer': target %s "
                            "unit %d does not depend on layer '%s' (it comes before it or on "
                            "another branch), so its Grad-CAM map would be zero; choose a "
                            "layer every target reads",
                            c->config_path, c->gradcam_line, c->gradcam_col,
                            p->target_names[t], p->targets[t].unit + 1, c->gradcam_layer);
        }
    }
    return 0;
}

int sp_plan_build(sp_plan *p, const sp_config *c, const sal_model *m, char *err,
                  size_t errlen) {
    memset(p, 0, sizeof *p);
    p->model_path = strdup(c->model_path);
    p->pre = *sal_model_preprocess(m);
    if (c->resize != SP_RESIZE_MODEL) p->pre.resize_crop = c->resize == SP_RESIZE_CROP;
    p->precision = c->precision;
    p->convolution = c->convolution;
    p->batch = c->batch;
    p->threads = c->threads;
    p->compression = c->compression;
    p->nmethods = c->nmethods;
    memcpy(p->methods, c->methods, sizeof c->methods);
    p->smoothgrad = c->smoothgrad;
    p->integrated_gradients = c->integrated_gradients;
    p->gradcam_layer = -1;
    p->previews_dir = c->previews_dir ? strdup(c->previews_dir) : NULL;
    p->preview_gray = c->preview_gray;
    p->max_abs = c->max_abs;
    p->writers = c->writers;
    p->nimages = c->nimages;
    p->image_paths = calloc(c->nimages, sizeof *p->image_paths);
    /* The plan borrows the config's image strings (a million paths, once); the
     * config outlives the plan. */
    p->borrowed = 1;
    int oom = !p->model_path || !p->image_paths || (c->previews_dir && !p->previews_dir);
    for (int i = 0; !oom && i < c->nimages; i++) p->image_paths[i] = c->images[i].path;
    if (!oom) { /* the output's /image labels, and the previews' file names */
        p->image_labels = calloc(c->nimages, sizeof *p->image_labels);
        oom = !p->image_labels;
        for (int i = 0; !oom && i < c->nimages; i++)
            p->image_labels[i] = c->images[i].display;
    }
    if (oom) fail(err, errlen, "out of memory");
    if (oom || resolve_targets(p, c, m, err, errlen) || resolve_gradcam(p, c, m, err, errlen) ||
        check_method_params(p, c, m, err, errlen)) {
        sp_plan_free(p);
        return -1;
    }
    return 0;
}

/* ---- packing ------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    const char *rd;
    size_t left;
    const char *bad; /* the first record that did not fit, or NULL */
} packer;

static void put(packer *k, const void *p, size_t n) {
    if (k->bad) return;
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4096;
        while (cap < k->len + n) cap *= 2;
        char *b = realloc(k->buf, cap);
        if (!b) {
            k->bad = "out of memory";
            return;
        }
        k->buf = b;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
}

static void put_i32(packer *k, int32_t v) { put(k, &v, sizeof v); }
static void put_str(packer *k, const char *s) {
    int32_t n = s ? (int32_t)strlen(s) : -1;
    put_i32(k, n);
    if (n > 0) put(k, s, (size_t)n);
}

/* Copies n bytes, or zeroes p and marks the buffer bad (`what` says where). */
static void get(packer *k, void *p, size_t n, const char *what) {
    if (k->bad || n > k->left) {
        if (!k->bad) k->bad = what;
        memset(p, 0, n);
        return;
    }
    memcpy(p, k->rd, n);
    k->rd += n;
    k->left -= n;
}

static int32_t get_i32(packer *k, const char *what) {
    int32_t v;
    get(k, &v, sizeof v, what);
    return v;
}

/* A length-prefixed string: NULL for length -1 (only where `optional`); a string
 * holding a NUL byte, a negative length or one past the end marks the buffer bad.
 * With block NULL the string gets its own malloc; else it goes to *block, which
 * advances past it and its NUL (the caller sized the block by the bytes left: a
 * string takes its length + 4 in the buffer and its length + 1 there). */
static char *get_str(packer *k, const char *what, int optional, char **block) {
    int32_t n = get_i32(k, what);
    if (k->bad) return NULL;
    if (n == -1 && optional) return NULL;
    if (n < 0 || (size_t)n > k->left || memchr(k->rd, '\0', (size_t)n)) {
        k->bad = what;
        return NULL;
    }
    char *s = block ? *block : malloc((size_t)n + 1);
    if (!s) {
        k->bad = "out of memory";
        return NULL;
    }
    if (block) *block += (size_t)n + 1;
    get(k, s, (size_t)n, what);
    s[n] = 0;
    return s;
}

char *sp_plan_pack(const sp_plan *p, size_t *bytes) {
    packer k = {0};
    /* One allocation of the right size: a million image paths are not copied over
     * and over while the buffer doubles. */
    size_t need = 4096 + (sizeof *p->targets + sizeof *p->target_names) * (size_t)p->ntargets;
    for (int i = 0; i < p->nimages; i++) {
        need += 4 + strlen(p->image_paths[i]);
        if (p->image_labels) need += 4 + strlen(p->image_labels[i]);
    }
    if (p->model_path) need += strlen(p->model_path);
    if (p->previews_dir) need += strlen(p->previews_dir);
    if (!(k.buf = malloc(need))) return NULL;
    k.cap = need;
    put_str(&k, p->model_path);
    put(&k, &p->pre, sizeof p->pre);
    put_i32(&k, p->precision);
    put_i32(&k, p->convolution);
    put_i32(&k, p->batch);
    put_i32(&k, p->threads);
    put_i32(&k, p->compression);
    put_i32(&k, p->ntargets);
    put(&k, p->targets, sizeof *p->targets * p->ntargets);
    put(&k, p->target_names, sizeof *p->target_names * p->ntargets);
    put_i32(&k, p->nmethods);
    for (int i = 0; i < p->nmethods; i++) put_i32(&k, p->methods[i]);
    put_i32(&k, p->smoothgrad.samples);
    put(&k, &p->smoothgrad.noise, sizeof p->smoothgrad.noise);
    put_i32(&k, p->smoothgrad.base);
    put_i32(&k, p->smoothgrad.statistic);
    put(&k, &p->smoothgrad.seed, sizeof p->smoothgrad.seed);
    put_i32(&k, p->integrated_gradients.steps);
    put_i32(&k, p->integrated_gradients.rule);
    put_i32(&k, p->integrated_gradients.baseline);
    put_i32(&k, p->gradcam_layer);
    put(&k, p->gradcam_name, sizeof p->gradcam_name);
    put_str(&k, p->previews_dir);
    put_i32(&k, p->preview_gray);
    put_i32(&k, p->max_abs);
    put_i32(&k, p->writers);
    put_i32(&k, p->nimages);
    for (int i = 0; i < p->nimages; i++) put_str(&k, p->image_paths[i]);
    /* Rank 0 keeps every image's label for the output; the others need them only
     * for preview file names and (writers > 1) their part files. */
    const int labels = p->image_labels && (p->previews_dir || p->writers > 1);
    put_i32(&k, labels);
    for (int i = 0; labels && i < p->nimages; i++) put_str(&k, p->image_labels[i]);
    if (k.bad) {
        free(k.buf);
        return NULL;
    }
    *bytes = k.len;
    return k.buf;
}

/* The values a plan built by sp_plan_build can hold; NULL when p is one, else what
 * is wrong. Lengths were checked while reading. */
static const char *plan_invalid(const sp_plan *p) {
    const sal_preprocess *pp = &p->pre;
    if (pp->channels != 1 && pp->channels != 3) return "preprocess channels";
    if (pp->height < 1 || pp->height > PLAN_MAX_DIM || pp->width < 1 ||
        pp->width > PLAN_MAX_DIM ||
        (int64_t)pp->channels * pp->height * pp->width > PLAN_MAX_ACT)
        return "preprocess input size";
    for (int c = 0; c < pp->channels; c++)
        if (!isfinite(pp->mean[c]) || !isfinite(pp->std[c]) || !(pp->std[c] > 0))
            return "preprocess mean/std";
    if ((pp->resize_crop != 0 && pp->resize_crop != 1) || pp->resize_size < 1 ||
        pp->resize_size > PLAN_MAX_DIM)
        return "preprocess resize";
    if (p->precision != SAL_F32 && p->precision != SAL_F64) return "precision";
    if (p->convolution != SAL_CONV_FAST && p->convolution != SAL_CONV_DIRECT &&
        p->convolution != SAL_CONV_FASTEST)
        return "convolution";
    if (p->batch < 1 || p->batch > PLAN_MAX_BATCH) return "batch";
    if (p->threads < 1 || p->threads > PLAN_MAX_THREADS) return "threads";
    if (p->compression < 0 || p->compression > 9) return "compression";
    for (int t = 0; t < p->ntargets; t++)
        if (p->targets[t].layer < 0 || p->targets[t].unit < 0 || !p->target_names[t][0] ||
            !memchr(p->target_names[t], '\0', sizeof p->target_names[t]))
            return "target";
    for (int i = 0; i < p->nmethods; i++) {
        if ((int)p->methods[i] < 0 || p->methods[i] >= SAL_METHOD_COUNT) return "method";
        for (int j = 0; j < i; j++)
            if (p->methods[j] == p->methods[i]) return "method (repeated)";
    }
    const sp_smoothgrad *sg = &p->smoothgrad;
    if (sg->samples < 1 || sg->samples > SP_MAX_SAMPLES) return "smoothgrad samples";
    if (!isfinite(sg->noise) || !(sg->noise >= 0)) return "smoothgrad noise";
    if ((int)sg->base < 0 || sg->base > SAL_METHOD_DECONVNET) return "smoothgrad base";
    if ((int)sg->statistic < 0 || sg->statistic >= SP_SG_STATISTIC_COUNT)
        return "smoothgrad statistic";
    if (sg->seed > (uint64_t)INT64_MAX) return "smoothgrad seed";
    const sp_integrated_gradients *ig = &p->integrated_gradients;
    if (ig->steps < 1 || ig->steps > SP_MAX_STEPS) return "integrated gradients steps";
    if ((int)ig->rule < 0 || ig->rule >= SP_IG_RULE_COUNT) return "integrated gradients rule";
    if ((int)ig->baseline < 0 || ig->baseline >= SP_IG_BASELINE_COUNT)
        return "integrated gradients baseline";
    /* The name travels whole, NUL padding included (so the bytes pack back alike). */
    const size_t gl = strnlen(p->gradcam_name, sizeof p->gradcam_name);
    if (gl == sizeof p->gradcam_name || (p->gradcam_layer < 0) != (gl == 0) ||
        p->gradcam_layer < -1)
        return "gradcam layer";
    for (size_t i = gl; i < sizeof p->gradcam_name; i++)
        if (p->gradcam_name[i]) return "gradcam layer name (padding)";
    for (int i = 0; i < p->nmethods; i++)
        if ((p->methods[i] == SAL_METHOD_GRADCAM || p->methods[i] == SAL_METHOD_GUIDED_GRADCAM) &&
            p->gradcam_layer < 0)
            return "method (Grad-CAM without a layer)";
    if (p->preview_gray != 0 && p->preview_gray != 1) return "preview mode";
    if (p->max_abs != 0 && p->max_abs != 1) return "output channels";
    if (p->writers < 1 || p->writers > 4096) return "writers";
    if (!p->model_path[0]) return "model path (empty)";
    for (int i = 0; i < p->nimages; i++)
        if (!p->image_paths[i][0]) return "image path (empty)";
    return NULL;
}

int sp_plan_unpack(sp_plan *p, const char *buf, size_t bytes, char *err, size_t errlen) {
    packer k = {.rd = buf, .left = bytes};
    memset(p, 0, sizeof *p);
    p->model_path = get_str(&k, "model path", 0, NULL);
    get(&k, &p->pre, sizeof p->pre, "preprocess");
    p->precision = (sal_precision)get_i32(&k, "precision");
    p->convolution = (sal_conv_mode)get_i32(&k, "convolution");
    p->batch = get_i32(&k, "batch");
    p->threads = get_i32(&k, "threads");
    p->compression = get_i32(&k, "compression");
    int32_t nt = get_i32(&k, "target count");
    /* Every count is checked against the bytes left before anything is allocated. */
    if (!k.bad && (nt < 1 || (size_t)nt > k.left / (sizeof *p->targets +
                                                    sizeof *p->target_names)))
        k.bad = "target count";
    if (!k.bad && (!(p->targets = malloc(sizeof *p->targets * nt)) ||
                   !(p->target_names = malloc(sizeof *p->target_names * nt))))
        k.bad = "out of memory";
    if (!k.bad) {
        p->ntargets = nt;
        get(&k, p->targets, sizeof *p->targets * nt, "targets");
        get(&k, p->target_names, sizeof *p->target_names * nt, "target names");
    }
    int32_t nm = get_i32(&k, "method count");
    if (!k.bad && (nm < 1 || nm > SAL_METHOD_COUNT)) k.bad = "method count";
    for (int i = 0; !k.bad && i < nm; i++) p->methods[i] = (sal_method)get_i32(&k, "methods");
    if (!k.bad) p->nmethods = nm;
    p->smoothgrad.samples = get_i32(&k, "smoothgrad samples");
    get(&k, &p->smoothgrad.noise, sizeof p->smoothgrad.noise, "smoothgrad noise");
    p->smoothgrad.base = (sal_method)get_i32(&k, "smoothgrad base");
    p->smoothgrad.statistic = (sp_sg_statistic)get_i32(&k, "smoothgrad statistic");
    get(&k, &p->smoothgrad.seed, sizeof p->smoothgrad.seed, "smoothgrad seed");
    p->integrated_gradients.steps = get_i32(&k, "integrated gradients steps");
    p->integrated_gradients.rule = (sp_ig_rule)get_i32(&k, "integrated gradients rule");
    p->integrated_gradients.baseline =
        (sp_ig_baseline)get_i32(&k, "integrated gradients baseline");
    p->gradcam_layer = get_i32(&k, "gradcam layer");
    get(&k, p->gradcam_name, sizeof p->gradcam_name, "gradcam layer name");
    p->previews_dir = get_str(&k, "previews directory", 1, NULL);
    p->preview_gray = get_i32(&k, "preview mode");
    p->max_abs = get_i32(&k, "output channels");
    p->writers = get_i32(&k, "writers");
    int32_t ni = get_i32(&k, "image count");
    /* each path takes at least its 4-byte length */
    if (!k.bad && (ni < 1 || (size_t)ni > k.left / 4)) k.bad = "image count";
    if (!k.bad && !(p->image_paths = calloc((size_t)ni, sizeof *p->image_paths)))
        k.bad = "out of memory";
    if (!k.bad) p->nimages = ni;
    /* Image paths and labels go to one block, no larger than the bytes left. */
    char *block = NULL;
    if (!k.bad && !(block = p->strings = malloc(k.left ? k.left : 1))) k.bad = "out of memory";
    for (int i = 0; !k.bad && i < ni; i++)
        p->image_paths[i] = get_str(&k, "image path", 0, &block);
    int32_t labels = get_i32(&k, "labels flag");
    if (!k.bad && labels != 0 && labels != 1) k.bad = "labels flag";
    if (!k.bad && labels && (size_t)ni > k.left / 4) k.bad = "image labels";
    if (!k.bad && labels && !(p->image_labels = calloc((size_t)ni, sizeof *p->image_labels)))
        k.bad = "out of memory";
    for (int i = 0; !k.bad && labels && i < ni; i++)
        p->image_labels[i] = get_str(&k, "image label", 0, &block);
    if (!k.bad && k.left) k.bad = "trailing bytes";
    const char *invalid = k.bad ? NULL : plan_invalid(p);
    if (k.bad || invalid) {
        fail(err, errlen, "malformed plan (%zu bytes): %s %s", bytes, k.bad ? k.bad : invalid,
             k.bad ? "does not fit the message" : "out of range");
        sp_plan_free(p);
        return -1;
    }
    return 0;
}

void sp_plan_free(sp_plan *p) {
    free(p->model_path);
    free(p->targets);
    free(p->target_names);
    free(p->previews_dir);
    for (int i = 0; !p->borrowed && !p->strings && i < p->nimages; i++) {
        if (p->image_paths) free(p->image_paths[i]);
        if (p->image_labels) free(p->image_labels[i]);
    }
    free(p->strings);
    free(p->image_paths);
    free(p->image_labels);
    memset(p, 0, sizeof *p);
}

/* ---- what the plan means for the output and for people ---------------------- */

const char *sp_plan_method_text(const sp_plan *p, sal_method m, char *buf, size_t len) {
    const sp_smoothgrad *sg = &p->smoothgrad;
    const sp_integrated_gradients *ig = &p->integrated_gradients;
    switch (m) {
    case SAL_METHOD_SMOOTHGRAD:
        snprintf(buf, len, "smoothgrad (samples %d, noise %g, base %s, statistic %s, seed %llu)",
                 (int)sg->samples, sg->noise, sal_method_name(sg->base),
                 sp_sg_statistic_names[sg->statistic], (unsigned long long)sg->seed);
        break;
    case SAL_METHOD_INTEGRATED_GRADIENTS:
        snprintf(buf, len, "integrated_gradients (steps %d, rule %s, baseline %s)",
                 (int)ig->steps, sp_ig_rule_names[ig->rule],
                 sp_ig_baseline_names[ig->baseline]);
        break;
    case SAL_METHOD_GRADCAM:
    case SAL_METHOD_GUIDED_GRADCAM:
        snprintf(buf, len, "%s (layer %s)", sal_method_name(m), p->gradcam_name);
        break;
    default: snprintf(buf, len, "%s", sal_method_name(m)); break;
    }
    return buf;
}

/* The root attributes of the methods' parameters (docs/output-format.md): the
 * backward convolutions every method uses (float64 is always direct; files from
 * before the attribute were made direct), what a map's channels hold ([output]
 * channels; files from before it hold all), then those of the methods asked for, so
 * a file of vanilla and guided maps has no others. */
static int method_params(const sp_plan *p, sp_output_param *q) {
    int n = 0, sg = 0, ig = 0, cam = 0;
    const int direct = p->precision == SAL_F64 || p->convolution == SAL_CONV_DIRECT;
    q[n++] = (sp_output_param){.name = "convolution", .kind = SP_PARAM_STRING,
                               .s = direct ? "direct"
                                    : p->convolution == SAL_CONV_FASTEST ? "fastest" : "fast",
                               .absent = "direct"};
    q[n++] = (sp_output_param){.name = "channels", .kind = SP_PARAM_STRING,
                               .s = sp_channels_names[p->max_abs], .absent = "all"};
    for (int i = 0; i < p->nmethods; i++) {
        sg |= p->methods[i] == SAL_METHOD_SMOOTHGRAD;
        ig |= p->methods[i] == SAL_METHOD_INTEGRATED_GRADIENTS;
        cam |= p->methods[i] == SAL_METHOD_GRADCAM || p->methods[i] == SAL_METHOD_GUIDED_GRADCAM;
    }
    if (sg) {
        const sp_smoothgrad *s = &p->smoothgrad;
        q[n++] = (sp_output_param){.name = "smoothgrad_samples", .kind = SP_PARAM_INT,
                                   .i = s->samples};
        q[n++] = (sp_output_param){.name = "smoothgrad_noise", .kind = SP_PARAM_DOUBLE,
                                   .d = s->noise};
        q[n++] = (sp_output_param){.name = "smoothgrad_base", .kind = SP_PARAM_STRING,
                                   .s = sal_method_name(s->base)};
        q[n++] = (sp_output_param){.name = "smoothgrad_statistic", .kind = SP_PARAM_STRING,
                                   .s = sp_sg_statistic_names[s->statistic]};
        q[n++] = (sp_output_param){.name = "smoothgrad_seed", .kind = SP_PARAM_UINT64,
                                   .u = s->seed};
        q[n++] = (sp_output_param){.name = "smoothgrad_noise_generator",
                                   .kind = SP_PARAM_STRING, .s = SAL_NOISE_GENERATOR};
    }
    if (ig) {
        const sp_integrated_gradients *g = &p->integrated_gradients;
        q[n++] = (sp_output_param){.name = "integrated_gradients_steps", .kind = SP_PARAM_INT,
                                   .i = g->steps};
        q[n++] = (sp_output_param){.name = "integrated_gradients_rule",
                                   .kind = SP_PARAM_STRING, .s = sp_ig_rule_names[g->rule]};
        q[n++] = (sp_output_param){.name = "integrated_gradients_baseline",
                                   .kind = SP_PARAM_STRING,
                                   .s = sp_ig_baseline_names[g->baseline]};
    }
    if (cam)
        q[n++] = (sp_output_param){.name = "gradcam_layer", .kind = SP_PARAM_STRING,
                                   .s = p->gradcam_name};
    return n;
}

int sp_plan_output_layout(const sp_plan *p, const sp_provenance *prov, sp_output_layout *lay,
                          void **store) {
    /* One block: target layer names, units (1-based), method names, parameters. */
    const size_t T = (size_t)p->ntargets, M = (size_t)p->nmethods;
    char *b = malloc(T * (sizeof(char *) + sizeof(int32_t)) + M * sizeof(char *) +
                     SP_OUTPUT_MAX_PARAMS * sizeof(sp_output_param));
    *store = b;
    if (!b) return -1;
    sp_output_param *params = (sp_output_param *)b;
    const char **layers = (const char **)(params + SP_OUTPUT_MAX_PARAMS);
    const char **methods = layers + T;
    int32_t *units = (int32_t *)(methods + M);
    for (size_t t = 0; t < T; t++) {
        layers[t] = p->target_names[t];
        units[t] = p->targets[t].unit + 1;
    }
    /* /saliency's methods: all but gradcam, which has /gradcam of its own. */
    int nmaps = 0, gradcam = 0, ig = 0;
    for (size_t i = 0; i < M; i++) {
        gradcam |= p->methods[i] == SAL_METHOD_GRADCAM;
        ig |= p->methods[i] == SAL_METHOD_INTEGRATED_GRADIENTS;
        if (p->methods[i] != SAL_METHOD_GRADCAM) methods[nmaps++] = sal_method_name(p->methods[i]);
    }
    *lay = (sp_output_layout){
        .nimages = p->nimages, .ntargets = p->ntargets, .nmethods = nmaps,
        .gradcam = gradcam, .ig_gap = ig,
        .channels = sp_plan_map_channels(p), .height = p->pre.height, .width = p->pre.width,
        .precision = p->precision, .compression = p->compression,
        .images = (const char *const *)p->image_labels, .target_layers = layers,
        .target_units = units, .methods = methods, .params = params,
        .nparams = method_params(p, params), .salpipe_version = prov->salpipe_version,
        .config_path = prov->config_path, .config_text = prov->config_text,
        .model_path = p->model_path, .model_sha256 = prov->model_sha256,
        .model_name = prov->model_name, .preprocess = &p->pre, .lock = prov->lock,
        .writers = p->writers};
    return 0;
}
