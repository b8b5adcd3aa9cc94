/*
 * The engine's life cycle: validate targets and methods against the model, plan
 * which nodes to compute and where their values and gradients live, size every
 * buffer once from the model and the batch size, allocate them in one block, and
 * dispatch runs to the float32 or float64 copy of net.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "layers.h"

/* Per-sample backward memory above which samples are processed in chunks. */
#define SAL_BWD_BUDGET_BYTES ((size_t)512 << 20)
/* Columns a conv GEMM should have: images are grouped until OH*OW*g reaches it. */
#define SAL_CONV_COLUMNS 2048

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

size_t engine_layer_elems(const sal_model *m, int i) {
    if (i < 0) return (size_t)m->pre.channels * m->pre.height * m->pre.width;
    const sal_layer *L = &m->layers[i];
    return (size_t)L->out_c * L->out_h * L->out_w;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Marks the needed nodes (targets and, transitively, their inputs) and counts each
 * node's needed consumers. */
static void mark_needed(sal_engine *e) {
    const sal_model *m = e->m;
    for (int t = 0; t < e->ntargets; t++) e->need[IX(e->targets[t].layer)] = 1;
    for (int i = e->last_layer; i >= 0; i--) {
        if (!e->need[IX(i)]) continue;
        const sal_layer *L = &m->layers[i];
        for (int k = 0; k < L->ninputs; k++) {
            e->need[IX(L->inputs[k])] = 1;
            e->consumers[IX(L->inputs[k])]++;
        }
    }
    e->need[IX(-1)] = 1;
}

/* Whether node i may work in its input's slot: an element-wise or identity node
 * whose input nobody else reads (so the input's value is dead after it, and in the
 * backward its gradient is the input's first and only contribution). */
static int in_place(const sal_engine *e, const sal_layer *L) {
    switch (L->kind) {
    case SAL_LAYER_RELU:
    case SAL_LAYER_BATCHNORM:
    case SAL_LAYER_AFFINE:
    case SAL_LAYER_FLATTEN:
    case SAL_LAYER_DROPOUT: return e->consumers[IX(L->inputs[0])] == 1;
    default: return 0;
    }
}

typedef struct {
    size_t size, off;  /* elements per image, rounded up to 16 (64 bytes)            */
    int born, die;     /* steps (node indices; -1 the input) it must survive          */
} slot_buf;

static int by_size(const void *a, const void *b) {
    const slot_buf *x = *(slot_buf *const *)a, *y = *(slot_buf *const *)b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x < y ? -1 : x > y;
}

/* Plans the slots (see engine_internal.h): one buffer per node that does not work
 * in place, alive from its node's step to its last reader's; buffers are placed
 * largest first, each at the lowest offset clear of every placed buffer alive at
 * an overlapping step. Returns -1 when out of memory. */
static int plan_slots(sal_engine *e) {
    const sal_model *m = e->m;
    const int N = e->last_layer + 2;
    int *owner = malloc(sizeof(int) * N);
    slot_buf *bufs = calloc(N, sizeof *bufs);
    slot_buf **order = malloc(sizeof *order * N);
    if (!owner || !bufs || !order) {
        free(owner), free(bufs), free(order);
        return -1;
    }
    int nb = 0;
    for (int i = -1; i <= e->last_layer; i++) {
        if (!e->need[IX(i)]) continue;
        const sal_layer *L = i >= 0 ? &m->layers[i] : NULL;
        if (L && in_place(e, L)) {
            owner[IX(i)] = owner[IX(L->inputs[0])];
        } else {
            owner[IX(i)] = nb;
            bufs[nb].size = (engine_layer_elems(m, i) + 15) & ~(size_t)15;
            bufs[nb].born = bufs[nb].die = i;
            nb++;
        }
        if (L)
            for (int k = 0; k < L->ninputs; k++) {
                slot_buf *b = &bufs[owner[IX(L->inputs[k])]];
                if (b->die < i) b->die = i;
            }
    }
    for (int b = 0; b < nb; b++) order[b] = &bufs[b];
    qsort(order, nb, sizeof *order, by_size);
    e->plan_elems = 0;
    for (int b = 0; b < nb; b++) {
        slot_buf *x = order[b];
        size_t off = 0;
        for (int moved = 1; moved;) { /* first fit: slide past every clash */
            moved = 0;
            for (int k = 0; k < b; k++) {
                const slot_buf *y = order[k];
                if (y->die < x->born || x->die < y->born) continue;
                if (off < y->off + y->size && y->off < off + x->size) {
                    off = y->off + y->size;
                    moved = 1;
                }
            }
        }
        x->off = off;
        if (off + x->size > e->plan_elems) e->plan_elems = off + x->size;
    }
    for (int i = -1; i <= e->last_layer; i++)
        if (e->need[IX(i)]) e->slot[IX(i)] = bufs[owner[IX(i)]].off;
    free(owner), free(bufs), free(order);
    return 0;
}

/* Lays out (or, with base NULL, only measures) the arena; returns its size. */
static size_t carve(sal_engine *e, char *base) {
    const sal_model *m = e->m;
    const size_t rs = e->prec == SAL_F64 ? sizeof(double) : sizeof(float);
    size_t off = 0, col = 0, same = 0;
    if (base) e->fwd = base + off;
    off = align64(off + rs * e->max_batch * e->plan_elems);
    if (base) e->bwd = base + off;
    off = align64(off + rs * e->bwd_chunk * e->plan_elems);
    if (base) e->tmp = base + off;
    off = align64(off + rs * e->bwd_chunk * e->max_elems);
    for (int i = 0; i <= e->last_layer; i++) {
        const sal_layer *L = &m->layers[i];
        if (!e->need[IX(i)] || L->kind != SAL_LAYER_CONV) continue;
        if (conv_scratch_elems(L, e->conv_g[i]) > col) col = conv_scratch_elems(L, e->conv_g[i]);
        if (same_scratch_bytes(L) > same) same = same_scratch_bytes(L);
        /* Winograd's blocks, whatever the mode, so that any can be switched to. */
        wino_plan wp;
        if (e->prec == SAL_F32 && wino_eligible(L) && wino_worth(L) &&
            !wino_plan_init(&wp, wino_choose_m(L, 1), L->kh) &&
            wino_scratch_elems(L, &wp) > col)
            col = wino_scratch_elems(L, &wp);
    }
    if (base) e->col = base + off;
    off = align64(off + rs * col);
    if (base) e->same = base + off;
    off = align64(off + same);
    for (int i = 0; i <= e->last_layer; i++) {
        if (!e->need[IX(i)]) continue;
        size_t elems = e->max_batch * engine_layer_elems(m, i);
        if (m->layers[i].kind == SAL_LAYER_RELU) {
            if (base) e->relu_mask[i] = (uint8_t *)(base + off);
            off = align64(off + elems);
        } else if (m->layers[i].kind == SAL_LAYER_MAXPOOL) {
            if (base) e->argmax[i] = (int32_t *)(base + off);
            off = align64(off + sizeof(int32_t) * elems);
        }
    }
    return off;
}

/* Sorts seeds by their target's layer, deepest first; ties keep config order. */
static void order_seeds(sal_engine *e) {
    int k = 0;
    for (int layer = e->last_layer; layer >= 0; layer--)
        for (int t = 0; t < e->ntargets; t++)
            if (e->targets[t].layer == layer)
                for (int mi = 0; mi < e->nmethods; mi++, k++) {
                    e->seed_target[k] = t;
                    e->seed_method[k] = mi;
                }
}

/* Drops the Winograd weights: every layer is direct again. */
static void wino_drop(sal_engine *e) {
    for (int i = 0; e->wino && i < e->m->nlayers; i++) {
        if (e->wino[i].owned) {
            free(e->wino[i].U);
            free(e->wino[i].Uf);
        }
        e->wino[i].U = e->wino[i].Uf = NULL;
        e->wino[i].owned = 0;
    }
}

/* Plans and transforms (or borrows from share, when it runs the same mode) the
 * weights of every needed layer wino_eligible and wino_worth accept, for the
 * backward and, when mode is SAL_CONV_FASTEST, the forward too; -1 when out of
 * memory, with every layer direct. The engine holds no Winograd weights when called. */
static int wino_setup(sal_engine *e, const sal_engine *share, sal_conv_mode mode) {
    const sal_model *m = e->m;
    const float *P = (const float *)m->params[SAL_F32];
    const int all = mode == SAL_CONV_FASTEST;
    for (int i = 0; i <= e->last_layer; i++) {
        const sal_layer *L = &m->layers[i];
        engine_wino *w = &e->wino[i];
        if (!e->need[IX(i)] || !wino_eligible(L) || !wino_worth(L)) continue;
        if (m->wino_block && m->wino_mode == mode && m->wino_off[i] >= 0 &&
            !wino_plan_init(&w->plan, wino_choose_m(L, all), L->kh)) {
            w->U = (float *)((char *)m->wino_block + m->wino_off[i]);
            w->Uf = all ? w->U + wino_weights_elems(L, &w->plan) : NULL;
            w->owned = 0;
            continue;
        }
        if (share && share->m == m && share->conv_mode == mode && i <= share->last_layer &&
            share->wino[i].U) {
            *w = share->wino[i];
            w->owned = 0;
            continue;
        }
        if (wino_plan_init(&w->plan, wino_choose_m(L, all), L->kh)) continue; /* direct */
        const size_t bytes = sizeof(float) * wino_weights_elems(L, &w->plan);
        w->owned = 1;
        if (!(w->U = malloc(bytes)) || (all && !(w->Uf = malloc(bytes)))) {
            wino_drop(e);
            return -1;
        }
        wino_transform_weights(w->U, P + L->weight_off, L, &w->plan);
        if (all) wino_transform_weights_forward(w->Uf, P + L->weight_off, L, &w->plan);
    }
    return 0;
}

/* ---- Winograd weights in a caller's block (salcore.h) --------------------------- */

/* The layout of the block sal_model_wino_bytes sizes: for each layer, in model
 * order, that an engine for these targets in this mode would transform (needed by a
 * target, Winograd-eligible, wino_worth, with a plan), its U and, for "fastest",
 * its Uf right after, at a 64-byte boundary. off[i] (when off is given, nlayers
 * entries): the layer's offset, -1 when it is not in the block. Returns the block's
 * bytes; 0 when no layer is in it, the targets are invalid or out of memory. */
static size_t wino_layout(const sal_model *m, sal_conv_mode mode, const sal_target *targets,
                          int ntargets, int64_t *off) {
    if (off)
        for (int i = 0; i < m->nlayers; i++) off[i] = -1;
    if (mode == SAL_CONV_DIRECT || ntargets < 1) return 0;
    unsigned char *need = calloc((size_t)m->nlayers, 1);
    if (!need) return 0;
    int last = -1;
    for (int t = 0; t < ntargets; t++) {
        if (targets[t].layer < 0 || targets[t].layer >= m->nlayers) {
            free(need);
            return 0;
        }
        need[targets[t].layer] = 1;
        if (targets[t].layer > last) last = targets[t].layer;
    }
    for (int i = last; i >= 0; i--)
        for (int k = 0; need[i] && k < m->layers[i].ninputs; k++)
            if (m->layers[i].inputs[k] >= 0) need[m->layers[i].inputs[k]] = 1;
    const int all = mode == SAL_CONV_FASTEST;
    size_t bytes = 0;
    for (int i = 0; i <= last; i++) {
        const sal_layer *L = &m->layers[i];
        wino_plan p;
        if (!need[i] || !wino_eligible(L) || !wino_worth(L) ||
            wino_plan_init(&p, wino_choose_m(L, all), L->kh))
            continue;
        if (off) off[i] = (int64_t)bytes;
        bytes += align64(sizeof(float) * wino_weights_elems(L, &p) * (all ? 2 : 1));
    }
    free(need);
    return bytes;
}

size_t sal_model_wino_bytes(const sal_model *m, sal_conv_mode mode, const sal_target *targets,
                            int ntargets) {
    return wino_layout(m, mode, targets, ntargets, NULL);
}

int sal_model_wino_fill_part(const sal_model *m, sal_conv_mode mode, const sal_target *targets,
                             int ntargets, void *block, int part, int nparts, char *err,
                             size_t errlen) {
    const float *P = (const float *)m->params[SAL_F32];
    if (!P) return fail(err, errlen, "%s: parameters not loaded in float32", m->path);
    if (nparts < 1 || part < 0 || part >= nparts)
        return fail(err, errlen, "engine: part %d of %d", part, nparts);
    int64_t *off = malloc(sizeof *off * (size_t)m->nlayers);
    if (!off) return fail(err, errlen, "engine: out of memory");
    const size_t total = wino_layout(m, mode, targets, ntargets, off);
    /* Rows (one input channel of U, one output channel of Uf: that row of each of
     * the alpha^2 matrices) go to the part whose share of the block's bytes holds
     * their first byte, a row counted at its layer's offset plus its rank times
     * its bytes. */
    const int all = mode == SAL_CONV_FASTEST;
    const double lo = (double)total * part / nparts, hi = (double)total * (part + 1) / nparts;
    for (int i = 0; i < m->nlayers && total; i++) {
        if (off[i] < 0) continue;
        const sal_layer *L = &m->layers[i];
        wino_plan p;
        wino_plan_init(&p, wino_choose_m(L, all), L->kh);
        float *U = (float *)((char *)block + off[i]);
        const size_t elems = wino_weights_elems(L, &p);
        for (int fwd = 0; fwd <= all; fwd++) {
            const int rows = fwd ? L->out_c : L->in_c;
            const double at = (double)off[i] + (fwd ? sizeof(float) * elems : 0),
                         row_bytes = (double)sizeof(float) * elems / rows;
            /* rows [o0, o1) start in [lo, hi) */
            int o0 = at >= lo ? 0 : (int)ceil((lo - at) / row_bytes);
            int o1 = at >= hi ? 0 : (int)ceil((hi - at) / row_bytes);
            if (o0 > rows) o0 = rows;
            if (o1 > rows || part == nparts - 1) o1 = rows;
            if (o0 < o1)
                wino_transform_weights_rows(U + (fwd ? elems : 0), P + L->weight_off, L, &p, fwd,
                                            o0, o1);
        }
    }
    free(off);
    return 0;
}

int sal_model_attach_wino(sal_model *m, sal_conv_mode mode, const sal_target *targets,
                          int ntargets, void *block, char *err, size_t errlen) {
    free(m->wino_off);
    m->wino_off = NULL;
    m->wino_block = NULL;
    if (!block) return 0;
    if (!(m->wino_off = malloc(sizeof *m->wino_off * (size_t)m->nlayers)))
        return fail(err, errlen, "engine: out of memory");
    wino_layout(m, mode, targets, ntargets, m->wino_off);
    m->wino_block = block;
    m->wino_mode = mode;
    return 0;
}

int sal_engine_set_convolution(sal_engine *e, sal_conv_mode mode, char *err, size_t errlen) {
    if (mode != SAL_CONV_FAST && mode != SAL_CONV_DIRECT && mode != SAL_CONV_FASTEST)
        return fail(err, errlen, "engine: unknown convolution mode %d", (int)mode);
    if (mode == e->conv_mode) return 0;
    wino_drop(e);
    if (mode != SAL_CONV_DIRECT && e->prec == SAL_F32 && wino_setup(e, NULL, mode)) {
        if (e->conv_mode != SAL_CONV_DIRECT && wino_setup(e, NULL, e->conv_mode))
            e->conv_mode = SAL_CONV_DIRECT; /* not even the old mode's weights fit */
        return fail(err, errlen, "engine: out of memory for the Winograd weights "
                    "(try [run] convolution = \"direct\")");
    }
    e->conv_mode = mode;
    return 0;
}

int sal_engine_init(sal_engine **out, const sal_model *m, sal_precision p,
                    int max_batch, const sal_target *targets, int ntargets,
                    const sal_method *methods, int nmethods, char *err,
                    size_t errlen) {
    return engine_init(out, m, p, max_batch, targets, ntargets, methods, nmethods,
                       SAL_CONV_FAST, NULL, err, errlen);
}

int engine_init(sal_engine **out, const sal_model *m, sal_precision p, int max_batch,
                const sal_target *targets, int ntargets, const sal_method *methods,
                int nmethods, sal_conv_mode conv, const sal_engine *share, char *err,
                size_t errlen) {
    *out = NULL;
    if (conv != SAL_CONV_FAST && conv != SAL_CONV_DIRECT && conv != SAL_CONV_FASTEST)
        return fail(err, errlen, "engine: unknown convolution mode %d", (int)conv);
    if (p != SAL_F32 && p != SAL_F64)
        return fail(err, errlen, "engine: unknown precision %d", (int)p);
    if (!sal_model_params(m, p))
        return fail(err, errlen, "%s: parameters not loaded in %s", m->path,
                    p == SAL_F64 ? "float64" : "float32");
    if (max_batch < 1 || max_batch > 65536)
        return fail(err, errlen, "engine: batch size %d out of range 1..65536", max_batch);
    if (ntargets < 1) return fail(err, errlen, "engine: no targets");
    if (nmethods < 1) return fail(err, errlen, "engine: no saliency methods");
    int last = -1;
    for (int t = 0; t < ntargets; t++) {
        const sal_target *tg = &targets[t];
        if (tg->layer < 0 || tg->layer >= m->nlayers)
            return fail(err, errlen, "%s: target %d names layer index %d, model has %d layers",
                        m->path, t, tg->layer, m->nlayers);
        const sal_layer *L = &m->layers[tg->layer];
        if (tg->unit < 0 || tg->unit >= L->out_c)
            return fail(err, errlen, "%s: layer %s has %d units, target unit %d (1-based) "
                        "is out of range", m->path, L->name, L->out_c, tg->unit + 1);
        if (tg->layer > last) last = tg->layer;
    }
    for (int i = 0; i < nmethods; i++)
        if ((int)methods[i] < 0 || methods[i] > SAL_METHOD_DECONVNET)
            return fail(err, errlen, "engine: method %d (%s) is not a ReLU rule; the "
                        "methods built on the rules run through sal_attrib",
                        (int)methods[i], sal_method_name(methods[i]));

    sal_engine *e = calloc(1, sizeof *e);
    if (!e) return fail(err, errlen, "engine: out of memory");
    e->m = m;
    e->prec = p;
    e->max_batch = max_batch;
    e->ntargets = ntargets;
    e->nmethods = nmethods;
    e->nseeds = ntargets * nmethods;
    e->last_layer = last;
    e->stop_layer = -1;
    e->targets = malloc(sizeof *targets * ntargets);
    e->methods = malloc(sizeof *methods * nmethods);
    e->seed_target = malloc(sizeof(int) * e->nseeds);
    e->seed_method = malloc(sizeof(int) * e->nseeds);
    e->relu_mask = calloc(m->nlayers, sizeof *e->relu_mask);
    e->conv_g = calloc(m->nlayers, sizeof *e->conv_g);
    e->wino = calloc(m->nlayers, sizeof *e->wino);
    e->argmax = calloc(m->nlayers, sizeof *e->argmax);
    e->need = calloc(m->nlayers + 1, 1);
    e->gstate = calloc(m->nlayers + 1, 1);
    e->consumers = calloc(m->nlayers + 1, sizeof *e->consumers);
    e->rows = calloc(m->nlayers + 1, sizeof *e->rows);
    e->slot = calloc(m->nlayers + 1, sizeof *e->slot);
    if (!e->targets || !e->methods || !e->seed_target || !e->seed_method ||
        !e->relu_mask || !e->argmax || !e->conv_g || !e->wino || !e->need || !e->gstate ||
        !e->consumers || !e->rows || !e->slot) {
        sal_engine_free(e);
        return fail(err, errlen, "engine: out of memory");
    }
    memcpy(e->targets, targets, sizeof *targets * ntargets);
    memcpy(e->methods, methods, sizeof *methods * nmethods);
    order_seeds(e);
    mark_needed(e);
    if (plan_slots(e)) {
        sal_engine_free(e);
        return fail(err, errlen, "engine: out of memory");
    }

    e->max_elems = engine_layer_elems(m, -1);
    for (int i = 0; i <= last; i++)
        if (e->need[IX(i)] && engine_layer_elems(m, i) > e->max_elems)
            e->max_elems = engine_layer_elems(m, i);
    const size_t rs = p == SAL_F64 ? sizeof(double) : sizeof(float);
    size_t per_sample = rs * (e->plan_elems + e->max_elems);
    size_t chunk = SAL_BWD_BUDGET_BYTES / per_sample;
    size_t samples = (size_t)max_batch * e->nseeds;
    e->bwd_chunk = (int)(chunk < 1 ? 1 : chunk > samples ? samples : chunk);

    int most = max_batch > e->bwd_chunk ? max_batch : e->bwd_chunk;
    for (int i = 0; i <= last; i++) {
        const sal_layer *L = &m->layers[i];
        int P = L->out_h * L->out_w, g = (SAL_CONV_COLUMNS + P - 1) / P;
        e->conv_g[i] = g < most ? g : most;
    }
    e->arena_bytes = carve(e, NULL);
    e->arena = aligned_alloc(64, e->arena_bytes);
    if (!e->arena) {
        size_t mib = e->arena_bytes >> 20;
        sal_engine_free(e);
        return fail(err, errlen, "engine: cannot allocate %zu MiB of workspace for batch %d "
                    "(try a smaller batch)", mib, max_batch);
    }
    carve(e, e->arena);
    e->conv_mode = conv;
    e->one_hot = 1;
    if (p == SAL_F32 && conv != SAL_CONV_DIRECT && wino_setup(e, share, conv)) {
        sal_engine_free(e);
        return fail(err, errlen, "engine: out of memory for the Winograd weights (try "
                    "[run] convolution = \"direct\")");
    }
    *out = e;
    return 0;
}

int sal_engine_run(sal_engine *e, const void *input, int n, void *maps,
                   void *activations, sal_layer_cb cb, void *cb_ctx, char *err,
                   size_t errlen) {
    if (n < 1 || n > e->max_batch)
        return fail(err, errlen, "engine: batch of %d images, engine sized for 1..%d", n,
                    e->max_batch);
    e->decided = n;
    if (e->prec == SAL_F64)
        return sal_engine_run_f64(e, input, n, maps, activations, cb, cb_ctx);
    return sal_engine_run_f32(e, input, n, maps, activations, cb, cb_ctx);
}

int sal_engine_forward(sal_engine *e, const void *input, int n, void *activations,
                       sal_layer_cb cb, void *cb_ctx, char *err, size_t errlen) {
    if (n < 1 || n > e->max_batch)
        return fail(err, errlen, "engine: batch of %d images, engine sized for 1..%d", n,
                    e->max_batch);
    e->decided = n;
    if (e->prec == SAL_F64) return sal_engine_forward_f64(e, input, n, activations, cb, cb_ctx);
    return sal_engine_forward_f32(e, input, n, activations, cb, cb_ctx);
}

const uint8_t *sal_engine_relu_mask(const sal_engine *e, int layer) {
    return layer >= 0 && layer <= e->last_layer && e->decided ? e->relu_mask[layer] : NULL;
}

const int32_t *sal_engine_argmax(const sal_engine *e, int layer) {
    return layer >= 0 && layer <= e->last_layer && e->decided ? e->argmax[layer] : NULL;
}

int sal_engine_copy_decisions(sal_engine *dst, const sal_engine *src, int n, char *err,
                              size_t errlen) {
    if (dst->m != src->m)
        return fail(err, errlen, "engine: decisions can only be copied between engines of "
                    "one model");
    if (n < 1 || n > src->decided || n > dst->max_batch)
        return fail(err, errlen, "engine: %d images of decisions asked, source has %d, "
                    "destination takes up to %d", n, src->decided, dst->max_batch);
    if (src->last_layer < dst->last_layer)
        return fail(err, errlen, "engine: source forward stopped at layer %d, destination "
                    "needs decisions up to layer %d", src->last_layer, dst->last_layer);
    for (int i = 0; i <= dst->last_layer; i++)
        if ((dst->relu_mask[i] && !src->relu_mask[i]) || (dst->argmax[i] && !src->argmax[i]))
            return fail(err, errlen, "engine: the source's forward did not compute node %s, "
                        "which the destination needs", dst->m->layers[i].name);
    for (int i = 0; i <= dst->last_layer; i++) {
        size_t elems = (size_t)n * engine_layer_elems(dst->m, i);
        if (dst->relu_mask[i]) memcpy(dst->relu_mask[i], src->relu_mask[i], elems);
        if (dst->argmax[i])
            memcpy(dst->argmax[i], src->argmax[i], sizeof(int32_t) * elems);
    }
    dst->decided = n;
    return 0;
}

int sal_engine_backward(sal_engine *e, int n, void *maps, char *err, size_t errlen) {
    if (n < 1 || n > e->decided)
        return fail(err, errlen, "engine: backward of %d images, forward decisions exist "
                    "for %d", n, e->decided);
    if (e->prec == SAL_F64) return sal_engine_backward_f64(e, n, maps);
    return sal_engine_backward_f32(e, n, maps);
}

int sal_engine_stop_at(sal_engine *e, int layer, char *err, size_t errlen) {
    const sal_model *m = e->m;
    if (layer < -1 || layer > e->last_layer)
        return fail(err, errlen, "engine: cannot stop the backward at node %d: the "
                    "targets' forward covers nodes 0..%d", layer, e->last_layer);
    if (layer >= 0) {
        /* Every target must be the node or read it, directly or not: otherwise its
         * gradient there would be zero by construction, which is never meant. */
        for (int t = 0; t < e->ntargets; t++) {
            const int top = e->targets[t].layer;
            int r = sal_model_reads(m, top, layer);
            if (r < 0) return fail(err, errlen, "engine: out of memory");
            if (!r)
                return fail(err, errlen, "engine: node %s does not feed target %s "
                            "(unit %d): no gradient reaches it", m->layers[layer].name,
                            m->layers[top].name, e->targets[t].unit + 1);
        }
    }
    e->stop_layer = layer;
    return 0;
}

void sal_engine_set_parallel(sal_engine *e, sal_parallel_for pfor, void *pool) {
    e->par.pfor = pfor;
    e->par.pool = pfor ? pool : NULL;
}

size_t sal_engine_workspace_bytes(const sal_engine *e) {
    size_t bytes = e->arena_bytes;
    for (int i = 0; i < e->m->nlayers; i++)
        if (e->wino[i].owned)
            bytes += sizeof(float) * wino_weights_elems(&e->m->layers[i], &e->wino[i].plan) *
                     (e->wino[i].Uf ? 2 : 1);
    return bytes;
}

double sal_engine_last_flops(const sal_engine *e) { return e->flops; }

void engine_set_one_hot(sal_engine *e, int on) { e->one_hot = on != 0; }

void sal_engine_free(sal_engine *e) {
    if (!e) return;
    free(e->arena);
    free(e->targets);
    free(e->methods);
    free(e->seed_target);
    free(e->seed_method);
    free(e->relu_mask);
    free(e->argmax);
    wino_drop(e);
    free(e->wino);
    free(e->conv_g);
    free(e->need);
    free(e->gstate);
    free(e->consumers);
    free(e->rows);
    free(e->slot);
    free(e);
}
