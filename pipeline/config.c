/*
 * The config checker (SPEC §3, docs/config.md): walks the TOML tree of toml_shim.h
 * and fills an sp_config, refusing anything it does not know. Every message starts
 * with CONFIG:LINE:COL and names the key by its dotted path (targets[1].units), what
 * was expected and what was found. The image sources are read by sources.c.
 *
 * Checks go from cheap to costly: unknown sections, then each section in a fixed
 * order, and only then the files and directories the image source names, so a typo
 * is reported before a missing directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_internal.h"

#define SP_MAX_BATCH 4096
#define SP_MAX_THREADS 1024
#define SP_MAX_WRITERS 4096
#define SP_MAX_TARGETS (1 << 20) /* a typo like "1-1000000000" must not eat memory */
#define SP_MAX_CONFIG_BYTES (16 << 20) /* the TOML tree takes ~30x the text's bytes */

static const char *const model_keys[] = {"path", NULL};
static const char *const images_keys[] = {"files", "list", "dir", "pattern", "stim_csv", NULL};
static const char *const targets_keys[] = {"layer", "units", NULL};
static const char *const saliency_keys[] = {"methods", "smoothgrad", "integrated_gradients",
                                             "gradcam", NULL};
static const char *const smoothgrad_keys[] = {"samples", "noise", "base", "statistic", "seed",
                                              NULL};
static const char *const ig_keys[] = {"steps", "rule", "baseline", NULL};
static const char *const gradcam_keys[] = {"layer", NULL};

const char *const sp_sg_statistic_names[] = {"mean", "mean_square", "variance", NULL};
const char *const sp_ig_rule_names[] = {"gausslegendre", "riemann_trapezoid", NULL};
const char *const sp_ig_baseline_names[] = {"zero", "black", NULL};
static const char *const preprocess_keys[] = {"resize", NULL};
static const char *const output_keys[] = {"path", "compression", "previews", "preview_mode",
                                           "channels", "writers", NULL};
const char *const sp_channels_names[] = {"all", "max_abs", NULL};
static const char *const run_keys[] = {"batch", "threads", "precision", "convolution", NULL};

static const struct {
    const char *name;
    const char *const *keys;
} sections[] = {
    {"model", model_keys},       {"images", images_keys},
    {"targets", targets_keys},   {"saliency", saliency_keys},
    {"preprocess", preprocess_keys}, {"output", output_keys},
    {"run", run_keys},
};
#define NSECTIONS ((int)(sizeof sections / sizeof sections[0]))

/* ---- messages --------------------------------------------------------------- */

int sp_cfg_fail(sp_cfg_ctx *ctx, int line, int col, const char *fmt, ...) {
    if (!ctx->err || ctx->errlen == 0) return -1;
    int n = snprintf(ctx->err, ctx->errlen, "%s:%d:%d: ", ctx->config_path, line, col);
    if (n >= 0 && (size_t)n < ctx->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* What the user wrote, for "found ...": a string is quoted and cut at 60 bytes
 * (on a UTF-8 character boundary). */
const char *sp_cfg_found(const sp_toml_node *v, char *buf, size_t len) {
    switch (v->kind) {
    case SP_TOML_STRING: {
        size_t cut = v->len;
        if (cut > 60) {
            cut = 60;
            while (cut > 0 && ((unsigned char)v->str[cut] & 0xC0) == 0x80) cut--;
        }
        snprintf(buf, len, "a string \"%.*s%s\"", (int)cut, v->str, cut < v->len ? "..." : "");
        break;
    }
    case SP_TOML_INTEGER: snprintf(buf, len, "an integer %lld", (long long)v->integer); break;
    case SP_TOML_FLOAT: snprintf(buf, len, "a float %g", v->real); break;
    case SP_TOML_BOOL: snprintf(buf, len, "a boolean %s", v->integer ? "true" : "false"); break;
    case SP_TOML_ARRAY:
        if (v->nitems)
            snprintf(buf, len, "an array of %d item%s", v->nitems, v->nitems > 1 ? "s" : "");
        else
            snprintf(buf, len, "an empty array");
        break;
    default: snprintf(buf, len, "%s", sp_toml_kind_name(v->kind)); break;
    }
    return buf;
}

int sp_cfg_wrong(sp_cfg_ctx *c, const sp_toml_node *v, const char *name, const char *expected) {
    char f[128];
    return sp_cfg_fail(c, v->line, v->col, "key '%s': expected %s, found %s", name, expected,
                       sp_cfg_found(v, f, sizeof f));
}

int sp_cfg_oom(sp_cfg_ctx *c) { return sp_cfg_fail(c, 1, 1, "out of memory"); }

/* Edit distance with transpositions (optimal string alignment), capped at 9. */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32) return 9;
    int d[33][33];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int m = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < m) m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m) m = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < m)
                m = d[i - 2][j - 2] + 1;
            d[i][j] = m;
        }
    return d[la][lb] < 9 ? d[la][lb] : 9;
}

const char *sp_config_closest(const char *word, const char *const *cands) {
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; cands[i]; i++) {
        int d = distance(word, cands[i]);
        if (d < bestd && d < (int)strlen(cands[i])) best = cands[i], bestd = d;
    }
    return best;
}

/* Writes "a, b, c" into buf. */
static const char *join(const char *const *words, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; words[i] && n < len; i++)
        n += snprintf(buf + n, len - n, "%s%s", i ? ", " : "", words[i]);
    return buf;
}

/* The section (other than `except`) that has `key`, or NULL. */
static const char *section_of(const char *key, const char *except) {
    for (int s = 0; s < NSECTIONS; s++)
        for (int k = 0; sections[s].keys[k]; k++)
            if (!strcmp(sections[s].keys[k], key) && strcmp(sections[s].name, except))
                return sections[s].name;
    return NULL;
}

/* ---- typed getters ------------------------------------------------------------ */

static int is_known(const char *key, const char *const *known) {
    for (int i = 0; known[i]; i++)
        if (!strcmp(known[i], key)) return 1;
    return 0;
}

/* Refuses keys of table `t` not in `known`. `prefix` is its dotted path, `label`
 * how the user writes the section ("[run]", "[[targets]]"). */
static int check_keys(sp_cfg_ctx *c, const sp_toml_node *t, const char *prefix,
                      const char *label, const char *section, const char *const *known) {
    for (int i = 0; i < t->nitems; i++) {
        const sp_toml_node *e = &t->items[i];
        if (is_known(e->key, known)) continue;
        char hint[160] = "", list[160];
        const char *near = sp_config_closest(e->key, known), *other = section_of(e->key, section);
        if (other) snprintf(hint, sizeof hint, " ('%s' belongs in [%s])", e->key, other);
        else if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
        return sp_cfg_fail(c, e->key_line, e->key_col, "unknown key '%s.%s'%s; %s takes: %s",
                           prefix, e->key, hint, label, join(known, list, sizeof list));
    }
    return 0;
}

static int missing(sp_cfg_ctx *c, const sp_toml_node *t, const char *name, const char *label) {
    return sp_cfg_fail(c, t->line, t->col, "missing required key '%s' in %s", name, label);
}

/* A non-empty string without NUL bytes. */
int sp_cfg_want_string(sp_cfg_ctx *c, const sp_toml_node *v, const char *name,
                       const char *what) {
    if (v->kind != SP_TOML_STRING) return sp_cfg_wrong(c, v, name, what);
    if (v->len == 0) return sp_cfg_fail(c, v->line, v->col, "key '%s': expected %s, found an "
                                        "empty string", name, what);
    if (strlen(v->str) != v->len)
        return sp_cfg_fail(c, v->line, v->col, "key '%s': the string contains a NUL character",
                           name);
    return 0;
}

/* A path, resolved against the config's directory into *out. */
static int want_path(sp_cfg_ctx *c, const sp_toml_node *v, const char *name, char **out) {
    if (sp_cfg_want_string(c, v, name, "a path (string)")) return -1;
    if (!(*out = sp_path_join(c->dir, v->str))) return sp_cfg_oom(c);
    return 0;
}

static int want_int(sp_cfg_ctx *c, const sp_toml_node *v, const char *name, int lo, int hi,
                    int *out) {
    char what[96];
    snprintf(what, sizeof what, "an integer from %d to %d", lo, hi);
    if (v->kind != SP_TOML_INTEGER || v->integer < lo || v->integer > hi)
        return sp_cfg_wrong(c, v, name, what);
    *out = (int)v->integer;
    return 0;
}

/* One of `names` (NULL-terminated); *out is its index. */
static int want_choice(sp_cfg_ctx *c, const sp_toml_node *v, const char *name,
                       const char *const *names, int *out) {
    char what[160], list[128];
    snprintf(what, sizeof what, "one of %s", join(names, list, sizeof list));
    if (sp_cfg_want_string(c, v, name, what)) return -1;
    for (int i = 0; names[i]; i++)
        if (!strcmp(v->str, names[i])) return *out = i, 0;
    const char *near = sp_config_closest(v->str, names);
    char f[128];
    char hint[64] = "";
    if (near) snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", near);
    return sp_cfg_fail(c, v->line, v->col, "key '%s': expected %s, found %s%s", name, what,
                       sp_cfg_found(v, f, sizeof f), hint);
}

/* The section `name` of the root as a table, or NULL when absent. */
static int section(sp_cfg_ctx *c, const sp_toml_node *root, const char *name,
                   const sp_toml_node **out) {
    *out = sp_toml_get(root, name);
    if (*out && (*out)->kind != SP_TOML_TABLE) {
        char what[64];
        snprintf(what, sizeof what, "a table [%s]", name);
        return sp_cfg_wrong(c, *out, name, what);
    }
    return 0;
}

/* ---- sections ----------------------------------------------------------------- */

static int check_root(sp_cfg_ctx *c, const sp_toml_node *root) {
    const char *names[NSECTIONS + 1];
    for (int s = 0; s < NSECTIONS; s++) names[s] = sections[s].name;
    names[NSECTIONS] = NULL;
    for (int i = 0; i < root->nitems; i++) {
        const sp_toml_node *e = &root->items[i];
        if (is_known(e->key, names)) continue;
        char hint[160] = "", list[160];
        const char *near = sp_config_closest(e->key, names), *other = section_of(e->key, "");
        if (near) snprintf(hint, sizeof hint, " (did you mean [%s]?)", near);
        else if (other) snprintf(hint, sizeof hint, " ('%s' belongs in [%s])", e->key, other);
        return sp_cfg_fail(c, e->key_line, e->key_col,
                           "unknown %s '%s'%s; the sections are: %s",
                           e->kind == SP_TOML_TABLE ? "section" : "key", e->key, hint,
                           join(names, list, sizeof list));
    }
    return 0;
}

static int load_model(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    const sp_toml_node *t, *v;
    if (section(c, root, "model", &t)) return -1;
    if (!t) return sp_cfg_fail(c, 1, 1, "missing required section [model] with "
                               "path = \"MODEL.h5\"");
    if (check_keys(c, t, "model", "[model]", "model", model_keys)) return -1;
    if (!(v = sp_toml_get(t, "path"))) return missing(c, t, "model.path", "[model]");
    cfg->model_line = v->line;
    cfg->model_col = v->col;
    return want_path(c, v, "model.path", &cfg->model_path);
}

/* Checks [images] for exactly one source; reading it comes last (sources.c). */
static int check_images(sp_cfg_ctx *c, const sp_toml_node *root, const sp_toml_node **src,
                        const sp_toml_node **pattern) {
    static const char *const kinds[] = {"files", "list", "dir", "stim_csv", NULL};
    const sp_toml_node *t;
    if (section(c, root, "images", &t)) return -1;
    if (!t) return sp_cfg_fail(c, 1, 1, "missing required section [images] with one of "
                               "files, list, dir, stim_csv");
    if (check_keys(c, t, "images", "[images]", "images", images_keys)) return -1;
    *src = NULL;
    for (int i = 0; i < t->nitems; i++) {
        const sp_toml_node *e = &t->items[i];
        if (!is_known(e->key, kinds)) continue;
        if (*src)
            return sp_cfg_fail(c, e->key_line, e->key_col,
                               "key 'images.%s': two image sources, images.%s (line %d) and "
                               "images.%s; set exactly one of files, list, dir, stim_csv",
                               e->key, (*src)->key, (*src)->key_line, e->key);
        *src = e;
    }
    if (!*src)
        return sp_cfg_fail(c, t->line, t->col, "no image source in [images]: set exactly one "
                           "of files, list, dir, stim_csv");
    *pattern = sp_toml_get(t, "pattern");
    if (*pattern && strcmp((*src)->key, "dir"))
        return sp_cfg_fail(c, (*pattern)->key_line, (*pattern)->key_col, "key 'images.pattern' "
                           "only goes with images.dir, not with images.%s", (*src)->key);
    return 0;
}

typedef struct {
    sp_target *t;
    int *table; /* which [[targets]] table each target came from */
    int n, cap;
} targets_acc;

static int add_target(sp_cfg_ctx *c, targets_acc *a, const char *layer, int table, int line,
                      int col) {
    if (a->n == SP_MAX_TARGETS)
        return sp_cfg_fail(c, line, col, "key 'targets[%d].units': too many targets (more "
                           "than %d)", table, SP_MAX_TARGETS);
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 16;
        sp_target *t = realloc(a->t, sizeof *t * cap);
        if (t) a->t = t;
        int *tb = realloc(a->table, sizeof *tb * cap);
        if (tb) a->table = tb;
        if (!t || !tb) return sp_cfg_oom(c);
        a->cap = cap;
    }
    sp_target *t = &a->t[a->n];
    memset(t, 0, sizeof *t);
    strcpy(t->layer, layer); /* length checked by the caller */
    t->line = line;
    t->col = col;
    a->table[a->n++] = table;
    return 0;
}

/* Digits at *s (no sign) into *v, saturating; returns the count of digits. */
static int digits(const char **s, int64_t *v) {
    int n = 0;
    *v = 0;
    for (; **s >= '0' && **s <= '9'; (*s)++, n++)
        if (*v < INT64_C(1) << 40) *v = *v * 10 + (**s - '0');
    return n;
}

/* "A-B" (inclusive) or "A", spaces allowed around the numbers. */
static int parse_range(const char *s, int64_t *lo, int64_t *hi) {
    while (*s == ' ') s++;
    if (!digits(&s, lo)) return -1;
    while (*s == ' ') s++;
    *hi = *lo;
    if (*s == '-') {
        s++;
        while (*s == ' ') s++;
        if (!digits(&s, hi)) return -1;
        while (*s == ' ') s++;
    }
    return *s ? -1 : 0;
}

static int load_units(sp_cfg_ctx *c, targets_acc *a, const sp_toml_node *u, const char *layer,
                      int ti) {
    char name[64];
    snprintf(name, sizeof name, "targets[%d].units", ti);
    const char *what = "a unit number, a list of them like [1, 5, 9] or a range like \"1-16\"";
    if (u->kind == SP_TOML_STRING) {
        int64_t lo, hi;
        char f[128];
        if (sp_cfg_want_string(c, u, name, what)) return -1;
        if (parse_range(u->str, &lo, &hi))
            return sp_cfg_fail(c, u->line, u->col, "key '%s': expected a range of units like "
                               "\"1-16\", found %s", name, sp_cfg_found(u, f, sizeof f));
        if (lo < 1)
            return sp_cfg_fail(c, u->line, u->col, "key '%s': units are 1-based, but the range "
                               "\"%s\" starts at 0", name, u->str);
        if (hi < lo)
            return sp_cfg_fail(c, u->line, u->col, "key '%s': the range \"%s\" is empty: its "
                               "first unit must not exceed its last", name, u->str);
        if (hi > INT32_MAX || hi - lo >= SP_MAX_TARGETS)
            return sp_cfg_fail(c, u->line, u->col, "key '%s': the range \"%s\" is too large "
                               "(at most %d units, each at most %d)", name, u->str,
                               SP_MAX_TARGETS, (int)INT32_MAX);
        for (int64_t k = lo; k <= hi; k++) {
            if (add_target(c, a, layer, ti, u->line, u->col)) return -1;
            a->t[a->n - 1].unit = (int32_t)k;
        }
        return 0;
    }
    const sp_toml_node *one = u->kind == SP_TOML_ARRAY ? u->items : u;
    int count = u->kind == SP_TOML_ARRAY ? u->nitems : 1;
    if (u->kind != SP_TOML_ARRAY && u->kind != SP_TOML_INTEGER)
        return sp_cfg_wrong(c, u, name, what);
    if (count == 0)
        return sp_cfg_fail(c, u->line, u->col, "key '%s': expected at least one unit, found "
                           "an empty array", name);
    for (int k = 0; k < count; k++) {
        const sp_toml_node *v = &one[k];
        char ename[80];
        if (u->kind == SP_TOML_ARRAY) snprintf(ename, sizeof ename, "%s[%d]", name, k);
        else snprintf(ename, sizeof ename, "%s", name);
        if (v->kind != SP_TOML_INTEGER || v->integer < 1 || v->integer > INT32_MAX)
            return sp_cfg_wrong(c, v, ename, "a unit number of at least 1 (units are 1-based)");
        if (add_target(c, a, layer, ti, v->line, v->col)) return -1;
        a->t[a->n - 1].unit = (int32_t)v->integer;
    }
    return 0;
}

typedef struct {
    const sp_target *t;
    int index;
} target_ref;

static int cmp_target(const void *pa, const void *pb) {
    const target_ref *a = pa, *b = pb;
    int s = strcmp(a->t->layer, b->t->layer);
    if (s) return s;
    if (a->t->unit != b->t->unit) return a->t->unit < b->t->unit ? -1 : 1;
    return a->index - b->index;
}

/* The same layer and unit twice would compute and store the same maps twice:
 * refused, naming the first place where a target is repeated and its original. */
static int check_duplicates(sp_cfg_ctx *c, const targets_acc *a) {
    target_ref *r = malloc(sizeof *r * a->n);
    if (!r) return sp_cfg_oom(c);
    for (int i = 0; i < a->n; i++) r[i] = (target_ref){&a->t[i], i};
    qsort(r, a->n, sizeof *r, cmp_target);
    int first = -1, again = -1;
    for (int i = 0; i + 1 < a->n; i++)
        if (!strcmp(r[i].t->layer, r[i + 1].t->layer) && r[i].t->unit == r[i + 1].t->unit &&
            (again < 0 || r[i + 1].index < again))
            first = r[i].index, again = r[i + 1].index;
    free(r);
    if (again < 0) return 0;
    const sp_target *t0 = &a->t[first], *t1 = &a->t[again];
    return sp_cfg_fail(c, t1->line, t1->col, "key 'targets[%d].units': duplicate target %s:%d, "
                       "already listed at line %d, column %d (targets[%d]); list each layer "
                       "and unit once", a->table[again], t1->layer, (int)t1->unit, t0->line,
                       t0->col, a->table[first]);
}

static int load_targets(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    const sp_toml_node *arr = sp_toml_get(root, "targets");
    if (!arr)
        return sp_cfg_fail(c, 1, 1, "no targets: add at least one [[targets]] table with "
                           "layer = \"...\" and units = [...]");
    if (arr->kind != SP_TOML_ARRAY)
        return sp_cfg_wrong(c, arr, "targets", "an array of tables [[targets]]");
    if (arr->nitems == 0)
        return sp_cfg_fail(c, arr->line, arr->col, "key 'targets': no targets: add at least "
                           "one [[targets]] table with layer = \"...\" and units = [...]");
    targets_acc a = {0};
    int rc = 0;
    for (int ti = 0; ti < arr->nitems && !rc; ti++) {
        const sp_toml_node *t = &arr->items[ti], *layer, *units;
        char prefix[32], name[48];
        snprintf(prefix, sizeof prefix, "targets[%d]", ti);
        if (t->kind != SP_TOML_TABLE) {
            rc = sp_cfg_wrong(c, t, prefix, "a table [[targets]] with layer and units");
            break;
        }
        if ((rc = check_keys(c, t, prefix, "[[targets]]", "targets", targets_keys))) break;
        snprintf(name, sizeof name, "%s.layer", prefix);
        if (!(layer = sp_toml_get(t, "layer")))
            rc = missing(c, t, name, "[[targets]]");
        else if (!(rc = sp_cfg_want_string(c, layer, name,
                                           "a layer name (string) like \"fc3\"")) &&
                 layer->len >= SAL_NAME_LEN)
            rc = sp_cfg_fail(c, layer->line, layer->col, "key '%s': layer names have at most "
                             "%d bytes", name, SAL_NAME_LEN - 1);
        if (rc) break;
        snprintf(name, sizeof name, "%s.units", prefix);
        if (!(units = sp_toml_get(t, "units"))) rc = missing(c, t, name, "[[targets]]");
        else {
            int first = a.n;
            rc = load_units(c, &a, units, layer->str, ti);
            for (int i = first; !rc && i < a.n; i++) {
                a.t[i].layer_line = layer->line;
                a.t[i].layer_col = layer->col;
            }
        }
    }
    if (!rc) rc = check_duplicates(c, &a);
    free(a.table);
    if (rc) {
        free(a.t);
        return -1;
    }
    cfg->targets = a.t;
    cfg->ntargets = a.n;
    return 0;
}

/* The table [saliency.NAME] (a key of [saliency]) into *out, or NULL when absent;
 * its keys checked against `keys`. */
static int subtable(sp_cfg_ctx *c, const sp_toml_node *saliency, const char *name,
                    const char *const *keys, const sp_toml_node **out) {
    char path[48], label[48];
    snprintf(path, sizeof path, "saliency.%s", name);
    snprintf(label, sizeof label, "[saliency.%s]", name);
    *out = saliency ? sp_toml_get(saliency, name) : NULL;
    if (!*out) return 0;
    if ((*out)->kind != SP_TOML_TABLE) {
        char what[64];
        snprintf(what, sizeof what, "a table %s", label);
        return sp_cfg_wrong(c, *out, path, what);
    }
    return check_keys(c, *out, path, label, "saliency", keys);
}

/* [saliency.smoothgrad]: samples, noise, base, statistic, seed (docs/config.md). */
static int load_smoothgrad(sp_cfg_ctx *c, const sp_toml_node *saliency, sp_config *cfg) {
    static const char *const bases[] = {"vanilla", "guided", "deconvnet", NULL};
    sp_smoothgrad *sg = &cfg->smoothgrad;
    const sp_toml_node *t, *v;
    int k;
    *sg = (sp_smoothgrad){.samples = 50, .noise = 0.15, .base = SAL_METHOD_VANILLA,
                          .statistic = SP_SG_MEAN, .seed = 0};
    if (subtable(c, saliency, "smoothgrad", smoothgrad_keys, &t) || !t) return t ? -1 : 0;
    if ((v = sp_toml_get(t, "samples")) &&
        want_int(c, v, "saliency.smoothgrad.samples", 1, SP_MAX_SAMPLES, &sg->samples))
        return -1;
    if ((v = sp_toml_get(t, "noise"))) {
        double x = v->kind == SP_TOML_FLOAT ? v->real : (double)v->integer;
        if ((v->kind != SP_TOML_FLOAT && v->kind != SP_TOML_INTEGER) || !isfinite(x) || x < 0)
            return sp_cfg_wrong(c, v, "saliency.smoothgrad.noise", "a finite number of at "
                                "least 0 (sigma as a fraction of max - min of the image)");
        sg->noise = x;
    }
    if ((v = sp_toml_get(t, "base"))) {
        if (want_choice(c, v, "saliency.smoothgrad.base", bases, &k)) return -1;
        sg->base = sal_method_from_name(bases[k]);
    }
    if ((v = sp_toml_get(t, "statistic"))) {
        if (want_choice(c, v, "saliency.smoothgrad.statistic", sp_sg_statistic_names, &k))
            return -1;
        sg->statistic = (sp_sg_statistic)k;
    }
    if ((v = sp_toml_get(t, "seed"))) {
        if (v->kind != SP_TOML_INTEGER || v->integer < 0)
            return sp_cfg_wrong(c, v, "saliency.smoothgrad.seed", "an integer from 0 to "
                                "9223372036854775807");
        sg->seed = (uint64_t)v->integer;
    }
    return 0;
}

/* [saliency.integrated_gradients]: steps, rule, baseline. */
static int load_integrated_gradients(sp_cfg_ctx *c, const sp_toml_node *saliency,
                                     sp_config *cfg) {
    sp_integrated_gradients *ig = &cfg->integrated_gradients;
    const sp_toml_node *t, *v;
    int k;
    *ig = (sp_integrated_gradients){.steps = 50, .rule = SP_IG_GAUSSLEGENDRE,
                                    .baseline = SP_IG_BASELINE_ZERO};
    if (subtable(c, saliency, "integrated_gradients", ig_keys, &t) || !t) return t ? -1 : 0;
    if ((v = sp_toml_get(t, "steps")) &&
        want_int(c, v, "saliency.integrated_gradients.steps", 1, SP_MAX_STEPS, &ig->steps))
        return -1;
    if ((v = sp_toml_get(t, "rule"))) {
        if (want_choice(c, v, "saliency.integrated_gradients.rule", sp_ig_rule_names, &k))
            return -1;
        ig->rule = (sp_ig_rule)k;
    }
    if ((v = sp_toml_get(t, "baseline"))) {
        if (want_choice(c, v, "saliency.integrated_gradients.baseline", sp_ig_baseline_names,
                        &k))
            return -1;
        ig->baseline = (sp_ig_baseline)k;
    }
    return 0;
}

/* [saliency.gradcam]: layer, checked against the model by the plan. */
static int load_gradcam(sp_cfg_ctx *c, const sp_toml_node *saliency, sp_config *cfg) {
    const sp_toml_node *t, *v;
    if (subtable(c, saliency, "gradcam", gradcam_keys, &t) || !t) return t ? -1 : 0;
    if (!(v = sp_toml_get(t, "layer")))
        return missing(c, t, "saliency.gradcam.layer", "[saliency.gradcam]");
    if (sp_cfg_want_string(c, v, "saliency.gradcam.layer", "a layer name (string) like "
                           "\"conv5\""))
        return -1;
    if (v->len >= SAL_NAME_LEN)
        return sp_cfg_fail(c, v->line, v->col, "key 'saliency.gradcam.layer': layer names "
                           "have at most %d bytes", SAL_NAME_LEN - 1);
    memcpy(cfg->gradcam_layer, v->str, v->len + 1);
    cfg->gradcam_line = v->line;
    cfg->gradcam_col = v->col;
    return 0;
}

static int load_saliency(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    const char *names[SAL_METHOD_COUNT + 1];
    for (int i = 0; i < SAL_METHOD_COUNT; i++) names[i] = sal_method_name((sal_method)i);
    names[SAL_METHOD_COUNT] = NULL;
    const sp_toml_node *t, *m;
    cfg->methods[0] = SAL_METHOD_VANILLA;
    cfg->methods[1] = SAL_METHOD_GUIDED;
    cfg->nmethods = 2;
    if (section(c, root, "saliency", &t)) return -1;
    if (t && check_keys(c, t, "saliency", "[saliency]", "saliency", saliency_keys)) return -1;
    if (load_smoothgrad(c, t, cfg) || load_integrated_gradients(c, t, cfg) ||
        load_gradcam(c, t, cfg))
        return -1;
    if (!t || !(m = sp_toml_get(t, "methods"))) return 0;
    if (m->kind != SP_TOML_ARRAY || m->nitems == 0)
        return sp_cfg_wrong(c, m, "saliency.methods", "a non-empty array of method names like "
                     "[\"vanilla\", \"guided\"]");
    int seen[SAL_METHOD_COUNT] = {0};
    cfg->nmethods = 0;
    for (int i = 0; i < m->nitems; i++) {
        const sp_toml_node *v = &m->items[i];
        char name[48];
        int k;
        snprintf(name, sizeof name, "saliency.methods[%d]", i);
        if (want_choice(c, v, name, names, &k)) return -1;
        sal_method meth = (sal_method)k;
        if (seen[meth])
            return sp_cfg_fail(c, v->line, v->col, "key '%s': method \"%s\" is listed twice",
                               name, v->str);
        if ((meth == SAL_METHOD_GRADCAM || meth == SAL_METHOD_GUIDED_GRADCAM) &&
            !cfg->gradcam_layer[0])
            return sp_cfg_fail(c, v->line, v->col, "key '%s': method \"%s\" needs the layer "
                               "its maps come from: add [saliency.gradcam] with layer = "
                               "\"...\" (a layer with a spatial output, like a last "
                               "convolution)", name, v->str);
        seen[meth] = 1;
        cfg->method_line[cfg->nmethods] = v->line;
        cfg->method_col[cfg->nmethods] = v->col;
        cfg->methods[cfg->nmethods++] = meth;
    }
    return 0;
}

static int load_preprocess(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    static const char *const modes[] = {"stretch", "crop", NULL};
    const sp_toml_node *t, *v;
    int k;
    cfg->resize = SP_RESIZE_MODEL;
    if (section(c, root, "preprocess", &t)) return -1;
    if (!t) return 0;
    if (check_keys(c, t, "preprocess", "[preprocess]", "preprocess", preprocess_keys))
        return -1;
    if (!(v = sp_toml_get(t, "resize"))) return 0;
    if (want_choice(c, v, "preprocess.resize", modes, &k)) return -1;
    cfg->resize = k == 0 ? SP_RESIZE_STRETCH : SP_RESIZE_CROP;
    return 0;
}

static int load_output(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    const sp_toml_node *t, *v;
    cfg->compression = 4;
    if (section(c, root, "output", &t)) return -1;
    if (!t) return sp_cfg_fail(c, 1, 1, "missing required section [output] with "
                               "path = \"OUT.h5\"");
    if (check_keys(c, t, "output", "[output]", "output", output_keys)) return -1;
    if (!(v = sp_toml_get(t, "path"))) return missing(c, t, "output.path", "[output]");
    if (want_path(c, v, "output.path", &cfg->output_path)) return -1;
    if ((v = sp_toml_get(t, "compression")) &&
        want_int(c, v, "output.compression", 0, 9, &cfg->compression))
        return -1;
    if ((v = sp_toml_get(t, "previews")) &&
        want_path(c, v, "output.previews", &cfg->previews_dir))
        return -1;
    static const char *const modes[] = {"rgb", "gray", NULL};
    if ((v = sp_toml_get(t, "preview_mode")) &&
        want_choice(c, v, "output.preview_mode", modes, &cfg->preview_gray))
        return -1;
    if ((v = sp_toml_get(t, "channels")) &&
        want_choice(c, v, "output.channels", sp_channels_names, &cfg->max_abs))
        return -1;
    cfg->writers = 1;
    if ((v = sp_toml_get(t, "writers")) &&
        want_int(c, v, "output.writers", 1, SP_MAX_WRITERS, &cfg->writers))
        return -1;
    if (v) cfg->writers_line = v->line, cfg->writers_col = v->col;
    return 0;
}

static int load_run(sp_cfg_ctx *c, const sp_toml_node *root, sp_config *cfg) {
    static const char *const precisions[] = {"float32", "float64", NULL};
    const sp_toml_node *t, *v;
    int k;
    cfg->batch = 8;
    cfg->threads = 1;
    cfg->precision = SAL_F32;
    cfg->convolution = SAL_CONV_FAST;
    if (section(c, root, "run", &t)) return -1;
    if (!t) return 0;
    if (check_keys(c, t, "run", "[run]", "run", run_keys)) return -1;
    if ((v = sp_toml_get(t, "batch")) &&
        want_int(c, v, "run.batch", 1, SP_MAX_BATCH, &cfg->batch))
        return -1;
    if (v) cfg->batch_line = v->line, cfg->batch_col = v->col;
    if ((v = sp_toml_get(t, "threads")) &&
        want_int(c, v, "run.threads", 1, SP_MAX_THREADS, &cfg->threads))
        return -1;
    if ((v = sp_toml_get(t, "precision"))) {
        if (want_choice(c, v, "run.precision", precisions, &k)) return -1;
        cfg->precision = k == 0 ? SAL_F32 : SAL_F64;
    }
    /* "winograd" names what "fast" does (docs/config.md). */
    static const char *const convolutions[] = {"fast", "direct", "winograd", "fastest", NULL};
    if ((v = sp_toml_get(t, "convolution"))) {
        if (want_choice(c, v, "run.convolution", convolutions, &k)) return -1;
        cfg->convolution = k == 1 ? SAL_CONV_DIRECT : k == 3 ? SAL_CONV_FASTEST : SAL_CONV_FAST;
    }
    return 0;
}

/* ---- entry points -------------------------------------------------------------- */

int sp_config_load(const char *path, sp_config *cfg, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    sp_cfg_ctx c = {.config_path = path, .err = err, .errlen = errlen};
    sp_toml_node *root = NULL;
    size_t len = 0;
    int rc = -1;
    if (err && errlen) err[0] = '\0';
    if (!(cfg->config_path = strdup(path)) || !(c.dir = sp_path_dir(path))) {
        sp_cfg_oom(&c);
        goto done;
    }
    if (sp_read_file(path, SP_MAX_CONFIG_BYTES, &cfg->config_text, &len)) {
        if (err && errlen && errno == EFBIG)
            snprintf(err, errlen, "%s: the config file has more than the %d MiB a config can "
                     "have; put long image lists in a file named by images.list", path,
                     SP_MAX_CONFIG_BYTES >> 20);
        else if (err && errlen)
            snprintf(err, errlen, "%s: cannot read the config file: %s", path, strerror(errno));
        goto done;
    }
    char msg[512];
    int line, col;
    if (sp_toml_parse(cfg->config_text, len, path, &root, msg, sizeof msg, &line, &col)) {
        sp_cfg_fail(&c, line, col, "TOML syntax error: %s", msg);
        goto done;
    }
    const sp_toml_node *src = NULL, *pattern = NULL;
    if (check_root(&c, root) || load_model(&c, root, cfg) ||
        check_images(&c, root, &src, &pattern) || load_targets(&c, root, cfg) ||
        load_saliency(&c, root, cfg) || load_preprocess(&c, root, cfg) ||
        load_output(&c, root, cfg) || load_run(&c, root, cfg) ||
        sp_images_load(&c, src, pattern, cfg))
        goto done;
    rc = 0;
done:
    sp_toml_free(root);
    free(c.dir);
    if (rc) sp_config_free(cfg);
    return rc;
}

void sp_config_free(sp_config *cfg) {
    if (!cfg) return;
    free(cfg->images);
    sp_image_strings_free(cfg->image_strings);
    free(cfg->images_source);
    free(cfg->config_path);
    free(cfg->config_text);
    free(cfg->model_path);
    free(cfg->targets);
    free(cfg->output_path);
    free(cfg->previews_dir);
    memset(cfg, 0, sizeof *cfg);
}
