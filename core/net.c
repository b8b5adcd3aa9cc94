/*
 * The network passes, compiled once per precision (real.h). The forward runs the
 * batch through the needed nodes in order, saving only what the backward needs (ReLU
 * masks, max-pool argmax) and the target scalars. The backward then pushes every
 * (image, target, method) sample from its target's node down to the input, in chunks
 * of e->bwd_chunk samples, visiting nodes in reverse order; a node feeding several
 * others gets the sum of their gradients. See engine_internal.h for the sample
 * order and the slots values and gradients live in.
 */
#include <string.h>

#include "engine_internal.h"
#include "layers.h"

typedef struct {
    const sal_layer *L;
    const real *w, *b;   /* parameters or NULL */
    size_t in_elems, out_elems;
} layer_view;

static layer_view view(const sal_engine *e, int i) {
    const sal_model *m = e->m;
    const real *P = (const real *)m->params[SAL_PREC];
    const sal_layer *L = &m->layers[i];
    layer_view v = {L, NULL, NULL, engine_layer_elems(m, L->inputs[0]),
                    engine_layer_elems(m, i)};
    if (L->weight_count > 0) v.w = P + L->weight_off;
    if (L->bias_count > 0) v.b = P + L->bias_off;
    return v;
}

/* Node j's value (forward) and gradient (backward) slots; j = -1 is the input. */
static real *value_of(const sal_engine *e, int j) {
    return (real *)e->fwd + e->slot[IX(j)] * e->max_batch;
}
static real *grad_of(const sal_engine *e, int j) {
    return (real *)e->bwd + e->slot[IX(j)] * e->bwd_chunk;
}

/* ---- Per-sample loops on the rank's threads (issue 13, lever 4) ------------------
 * ReLU, pooling, batch norm, the adds and copies run as tasks on e->par: each task
 * is a fixed piece (a range of one row's elements, or one image's or sample's range of
 * channels) computed by the same serial kernel, so every element gets the same
 * operations in the same order whatever the number of threads. Loops smaller than
 * two pieces stay on the calling thread, where a wake-up would cost more. */
#define SAL_PAR_ELEMS 16384 /* elements per piece */

static void par_run(const sal_engine *e, size_t elems, int tasks, sal_parallel_body body,
                    void *arg) {
    if (e->par.pfor && tasks > 1 && elems >= 2 * SAL_PAR_ELEMS)
        e->par.pfor(e->par.pool, tasks, body, arg);
    else
        for (int t = 0; t < tasks; t++) body(arg, t);
}

typedef enum { EW_RELU_FWD, EW_RELU_BWD, EW_ADD, EW_COPY } ew_kind;

/* rows rows of `count` elements, each cut into `pieces` ranges. */
typedef struct {
    const sal_engine *e;
    ew_kind kind;
    real *dst;
    const real *src;       /* EW_ADD: dst += src; EW_COPY: dst = src            */
    size_t count, dst_ld, src_ld;
    int pieces;
    int i, n, s0;          /* EW_RELU_*: node i, rows are samples s0.. of n images */
} ew_job;

static void ew_task(void *arg, int t) {
    const ew_job *j = arg;
    const int k = t / j->pieces;
    const size_t a = (size_t)(t % j->pieces) * SAL_PAR_ELEMS;
    const size_t len = j->count - a < SAL_PAR_ELEMS ? j->count - a : SAL_PAR_ELEMS;
    real *dst = j->dst + k * j->dst_ld + a;
    const real *src = j->src + k * j->src_ld + a;
    const sal_engine *e = j->e;
    switch (j->kind) {
    case EW_RELU_FWD:
        R(relu_forward)(dst, e->relu_mask[j->i] + a, src, len);
        break;
    case EW_RELU_BWD: {
        const int s = j->s0 + k;
        sal_method rule = e->methods[e->seed_method[s / j->n]];
        R(relu_backward)(dst, src, e->relu_mask[j->i] + (size_t)(s % j->n) * j->count + a,
                         len, rule);
        break;
    }
    case EW_ADD:
        for (size_t p = 0; p < len; p++) dst[p] += src[p];
        break;
    case EW_COPY:
        memcpy(dst, src, sizeof(real) * len);
        break;
    }
}

/* kind over rows x count elements; dst and src rows dst_ld and src_ld apart. */
static void ew_run(const sal_engine *e, ew_kind kind, real *dst, const real *src,
                   int rows, size_t count, size_t dst_ld, size_t src_ld, int i, int n,
                   int s0) {
    if (rows < 1 || count < 1) return;
    const int pieces = (int)((count + SAL_PAR_ELEMS - 1) / SAL_PAR_ELEMS);
    ew_job j = {e, kind, dst, src, count, dst_ld, src_ld, pieces, i, n, s0};
    par_run(e, (size_t)rows * count, rows * pieces, ew_task, &j);
}

/* Per-channel layers, a range of channels of one image (forward) or one backward
 * sample at a time: the kernel runs on a copy of the layer with in_c = out_c = the
 * range's channels, planes and per-channel parameters offset to its first. */
typedef struct {
    const sal_engine *e;
    const layer_view *v;
    int i, backward, n, s0;
    real *dst;
    const real *src;
    int chunk, chunks;     /* channels per task, tasks per image or sample */
} plane_job;

static void plane_task(void *arg, int t) {
    const plane_job *j = arg;
    const layer_view *v = j->v;
    const int k = t / j->chunks, c0 = t % j->chunks * j->chunk;
    sal_layer L = *v->L;
    L.in_c = L.out_c = L.in_c - c0 < j->chunk ? L.in_c - c0 : j->chunk;
    const size_t ip = (size_t)L.in_h * L.in_w, op = (size_t)L.out_h * L.out_w;
    const real *in = j->src + k * (j->backward ? v->out_elems : v->in_elems) +
                     c0 * (j->backward ? op : ip);
    real *out = j->dst + k * (j->backward ? v->in_elems : v->out_elems) +
                c0 * (j->backward ? ip : op);
    const int img = j->backward ? (j->s0 + k) % j->n : k;
    int32_t *argmax = j->e->argmax[j->i] ? j->e->argmax[j->i] + img * v->out_elems + c0 * op
                                         : NULL;
    switch (L.kind) {
    case SAL_LAYER_MAXPOOL:
        if (j->backward) R(maxpool_backward)(out, in, argmax, &L);
        else R(maxpool_forward)(out, argmax, in, &L);
        break;
    case SAL_LAYER_AVGPOOL:
        if (j->backward) R(avgpool_backward)(out, in, &L);
        else R(avgpool_forward)(out, in, &L);
        break;
    case SAL_LAYER_AVGPOOL2D:
        if (j->backward) R(avgpool2d_backward)(out, in, &L);
        else R(avgpool2d_forward)(out, in, &L);
        break;
    case SAL_LAYER_BATCHNORM:
        if (j->backward) R(batchnorm_backward)(out, in, v->w + c0, &L, 1);
        else R(batchnorm_forward)(out, in, v->w + c0, v->b + c0, &L, 1);
        break;
    case SAL_LAYER_AFFINE:
        if (j->backward) R(batchnorm_backward)(out, in, v->w + c0, &L, 1);
        else R(affine_forward)(out, in, v->w + c0, v->b + c0, &L, 1);
        break;
    default:
        break;
    }
}

/* Node i's per-channel kernel over `rows` images (forward) or samples s0.. of a batch
 * of n (backward). */
static void plane_run(const sal_engine *e, int i, const layer_view *v, int backward,
                      real *dst, const real *src, int rows, int n, int s0) {
    const sal_layer *L = v->L;
    const size_t ip = (size_t)L->in_h * L->in_w;
    int chunk = ip >= SAL_PAR_ELEMS ? 1 : (int)(SAL_PAR_ELEMS / ip);
    if (chunk > L->in_c) chunk = L->in_c;
    plane_job j = {e, v, i, backward, n, s0, dst, src, chunk,
                   (L->in_c + chunk - 1) / chunk};
    par_run(e, (size_t)rows * v->in_elems, rows * j.chunks, plane_task, &j);
}


/* The target scalars of node i: mean over the spatial map of the unit's channel. */
static void record_activations(const sal_engine *e, int i, const real *out, int n,
                               real *act) {
    const sal_layer *L = &e->m->layers[i];
    const size_t P = (size_t)L->out_h * L->out_w, elems = (size_t)L->out_c * P;
    for (int t = 0; t < e->ntargets; t++) {
        if (e->targets[t].layer != i) continue;
        for (int k = 0; k < n; k++) {
            const real *x = out + k * elems + (size_t)e->targets[t].unit * P;
            real sum = 0;
            for (size_t p = 0; p < P; p++) sum += x[p];
            act[(size_t)k * e->ntargets + t] = sum / (real)P;
        }
    }
}

/* out = in0 + in1 (+ in2 ...), summed in input order as torch's `a + b` chain. */
static void add_forward(const sal_engine *e, const sal_layer *L, real *out, size_t count) {
    const real *a = value_of(e, L->inputs[0]);
    if (out != a) ew_run(e, EW_COPY, out, a, 1, count, 0, 0, 0, 0, 0);
    for (int k = 1; k < L->ninputs; k++)
        ew_run(e, EW_ADD, out, value_of(e, L->inputs[k]), 1, count, 0, 0, 0, 0, 0);
}

/* out (n, sum C_k, H, W) = the inputs stacked along channels. */
static void concat_forward(const sal_engine *e, const sal_layer *L, real *out, int n) {
    const size_t oe = engine_layer_elems(e->m, (int)(L - e->m->layers));
    size_t off = 0;
    for (int k = 0; k < L->ninputs; k++) {
        const size_t ek = engine_layer_elems(e->m, L->inputs[k]);
        const real *in = value_of(e, L->inputs[k]);
        ew_run(e, EW_COPY, out + off, in, n, ek, oe, ek, 0, 0, 0);
        off += ek;
    }
}

/* Runs the forward pass over the needed nodes 0..last_layer, recording target
 * scalars. */
static void forward(sal_engine *e, const real *input, int n, real *act, sal_layer_cb cb,
                    void *cb_ctx) {
    memcpy(value_of(e, -1), input, sizeof(real) * n * engine_layer_elems(e->m, -1));
    for (int i = 0; i <= e->last_layer; i++) {
        if (!e->need[IX(i)]) continue;
        layer_view v = view(e, i);
        const real *in = value_of(e, v.L->inputs[0]);
        real *out = value_of(e, i);
        switch (v.L->kind) {
        case SAL_LAYER_CONV:
#if !SAL_DOUBLE
            if (e->wino[i].Uf) /* convolution "fastest" (sal_engine_set_convolution) */
                wino_conv_forward(out, in, n, e->wino[i].Uf, v.b, &e->wino[i].plan, v.L,
                                  e->col, &e->par);
            else
#endif
                R(conv_forward)(out, in, n, v.w, v.b, v.L, e->col, e->conv_g[i], &e->par);
            for (int j = 0; j < n; j++) /* identical patches, identical outputs */
                R(same_outputs)(out + j * v.out_elems, in + j * v.in_elems, v.L, e->same);
            e->flops += 2.0 * n * v.out_elems * (v.L->in_c / v.L->groups) * v.L->kh * v.L->kw;
            break;
        case SAL_LAYER_BATCHNORM:
        case SAL_LAYER_AFFINE:
            plane_run(e, i, &v, 0, out, in, n, n, 0);
            e->flops += 2.0 * n * v.out_elems;
            break;
        case SAL_LAYER_RELU:
            ew_run(e, EW_RELU_FWD, out, in, 1, n * v.out_elems, 0, 0, i, n, 0);
            break;
        case SAL_LAYER_MAXPOOL:
            plane_run(e, i, &v, 0, out, in, n, n, 0);
            break;
        case SAL_LAYER_AVGPOOL:
            plane_run(e, i, &v, 0, out, in, n, n, 0);
            e->flops += (double)n * v.in_elems;
            break;
        case SAL_LAYER_AVGPOOL2D:
            plane_run(e, i, &v, 0, out, in, n, n, 0);
            e->flops += (double)n * v.out_elems * v.L->kh * v.L->kw;
            break;
        case SAL_LAYER_LINEAR:
            R(linear_forward)(out, in, v.w, v.b, v.L, n, &e->par);
            e->flops += 2.0 * n * v.in_elems * v.out_elems;
            break;
        case SAL_LAYER_ADD:
            add_forward(e, v.L, out, n * v.out_elems);
            e->flops += (double)n * v.out_elems * (v.L->ninputs - 1);
            break;
        case SAL_LAYER_CONCAT:
            concat_forward(e, v.L, out, n);
            break;
        case SAL_LAYER_FLATTEN:
        case SAL_LAYER_DROPOUT:
        case SAL_LAYER_KIND_COUNT:
            if (out != in) ew_run(e, EW_COPY, out, in, 1, n * v.out_elems, 0, 0, i, n, 0);
            break;
        }
        if (act) record_activations(e, i, out, n, act);
        if (cb) cb(cb_ctx, i, out, n);
    }
}

/* Sets one sample row (one image's output of a node) to the seed of unit `unit`:
 * d(mean of the channel)/d(out) = 1/(H*W) on the channel, 0 elsewhere. */
static void seed(real *g, const sal_layer *L, int unit) {
    const size_t P = (size_t)L->out_h * L->out_w;
    memset(g, 0, sizeof(real) * L->out_c * P);
    real v = (real)1 / (real)P;
    for (size_t p = 0; p < P; p++) g[(size_t)unit * P + p] = v;
}

/* A node's contribution to input j's gradient, `rows` rows: written straight into
 * j's gradient when it is the first (the consumers run from the last, which has the
 * fewest rows), else into e->tmp and added. */
static real *contrib_begin(const sal_engine *e, int j) {
    return e->gstate[IX(j)] ? (real *)e->tmp : grad_of(e, j);
}

static void contrib_end(sal_engine *e, int j, int rows, const real *dst) {
    const size_t E = engine_layer_elems(e->m, j);
    real *g = grad_of(e, j);
    if (dst == (const real *)e->tmp) {
        ew_run(e, EW_ADD, g, dst, 1, (size_t)rows * E, 0, 0, 0, 0, 0);
        e->flops += (double)rows * E;
        return;
    }
    /* Rows of samples whose targets lie below this consumer start at zero. */
    memset(g + (size_t)rows * E, 0, sizeof(real) * (e->rows[IX(j)] - rows) * E);
    e->gstate[IX(j)] = 1;
}

/* The full backward of a conv or linear node i over rows [k0, k0 + count). */
static void full_backward(sal_engine *e, int i, const layer_view *v, real *din,
                          const real *dout, int k0, int count) {
    const sal_layer *L = v->L;
    din += (size_t)k0 * v->in_elems;
    dout += (size_t)k0 * v->out_elems;
    if (L->kind == SAL_LAYER_LINEAR) {
        R(linear_backward)(din, dout, v->w, L, count, &e->par);
        return;
    }
#if !SAL_DOUBLE
    if (e->wino[i].U) { /* Winograd (winograd.h; sal_engine_set_convolution) */
        wino_conv_backward(din, dout, count, e->wino[i].U, &e->wino[i].plan, L, e->col,
                           &e->par);
        return;
    }
#endif
    R(conv_backward)(din, dout, count, v->w, L, e->col, e->conv_g[i], &e->par);
}

/* One one-hot row per task, on the rank's threads (a row's result does not depend on
 * where it runs). */
typedef struct {
    const layer_view *v;
    real *din;
    const real *dout;
    size_t P;
} onehot_job;

static void onehot_task(void *arg, int k) {
    const onehot_job *j = arg;
    const sal_layer *L = j->v->L;
    real *d = j->din + (size_t)k * j->v->in_elems;
    const real *g = j->dout + (size_t)k * j->v->out_elems;
    const int hot = R(hot_channel)(g, L->out_c, j->P);
    if (L->kind == SAL_LAYER_LINEAR)
        R(linear_backward_onehot)(d, g, hot, j->v->w, L);
    else
        R(conv_backward_onehot)(d, g, hot, j->v->w, L);
}

/* Backward of a conv or linear node. When every row's gradient lies in one channel
 * (a target's seed, through ReLU rules, max-pool, dropout, batch norm, an add or a
 * concat: onehot.c), each row takes that channel's weights alone; otherwise all rows
 * take the full product, as before. The rows are told apart by their values, so
 * this holds on any graph: a row is one-hot exactly when the full product's other
 * terms are all products with zero. A chunk mixing both kinds keeps the full product
 * so that the dense rows' GEMMs keep their width, and with it their last bits
 * (OpenBLAS may sum a narrower product in another order). */
static void product_backward(sal_engine *e, int i, const layer_view *v, real *din,
                             const real *dout, int rows) {
    const sal_layer *L = v->L;
    const size_t P = L->kind == SAL_LAYER_LINEAR ? 1 : (size_t)L->out_h * L->out_w;
    int k = 0;
    if (e->one_hot)
        while (k < rows && R(hot_channel)(dout + (size_t)k * v->out_elems, L->out_c, P) != -2)
            k++;
    if (k < rows) {
        full_backward(e, i, v, din, dout, 0, rows);
        return;
    }
    onehot_job j = {v, din, dout, P};
    par_run(e, (size_t)rows * v->in_elems, rows, onehot_task, &j);
    e->onehot_rows += rows;
}

/* Pushes node i's gradient (rows rows of dout) to its inputs. */
static void backward_node(sal_engine *e, int i, int rows, int n, int s0) {
    layer_view v = view(e, i);
    const sal_layer *L = v.L;
    const int j = L->inputs[0];
    const real *dout = grad_of(e, i);
    if (L->kind == SAL_LAYER_ADD || L->kind == SAL_LAYER_CONCAT) {
        size_t off = 0;
        for (int k = 0; k < L->ninputs; k++) {
            const int jk = L->inputs[k];
            const size_t ek = engine_layer_elems(e->m, jk);
            real *din = contrib_begin(e, jk);
            if (L->kind == SAL_LAYER_ADD)
                ew_run(e, EW_COPY, din, dout, 1, (size_t)rows * ek, 0, 0, 0, 0, 0);
            else
                ew_run(e, EW_COPY, din, dout + off, rows, ek, ek, v.out_elems, 0, 0, 0);
            off += ek;
            contrib_end(e, jk, rows, din);
        }
        return;
    }
    real *din = contrib_begin(e, j);
    switch (L->kind) {
    case SAL_LAYER_CONV:
        product_backward(e, i, &v, din, dout, rows);
        e->flops += 2.0 * rows * v.out_elems * (L->in_c / L->groups) * L->kh * L->kw;
        break;
    case SAL_LAYER_BATCHNORM:
    case SAL_LAYER_AFFINE:
        plane_run(e, i, &v, 1, din, dout, rows, n, s0);
        e->flops += (double)rows * v.out_elems;
        break;
    case SAL_LAYER_RELU:
        ew_run(e, EW_RELU_BWD, din, dout, rows, v.out_elems, v.out_elems, v.out_elems, i,
               n, s0);
        break;
    case SAL_LAYER_MAXPOOL:
        plane_run(e, i, &v, 1, din, dout, rows, n, s0);
        break;
    case SAL_LAYER_AVGPOOL:
        plane_run(e, i, &v, 1, din, dout, rows, n, s0);
        e->flops += (double)rows * v.in_elems;
        break;
    case SAL_LAYER_AVGPOOL2D:
        plane_run(e, i, &v, 1, din, dout, rows, n, s0);
        e->flops += (double)rows * v.out_elems * L->kh * L->kw;
        break;
    case SAL_LAYER_LINEAR:
        product_backward(e, i, &v, din, dout, rows);
        e->flops += 2.0 * rows * v.in_elems * v.out_elems;
        break;
    case SAL_LAYER_ADD:
    case SAL_LAYER_CONCAT:
    case SAL_LAYER_FLATTEN:
    case SAL_LAYER_DROPOUT:
    case SAL_LAYER_KIND_COUNT:
        if (din != dout) ew_run(e, EW_COPY, din, dout, 1, (size_t)rows * v.out_elems, 0, 0, 0, 0, 0);
        break;
    }
    contrib_end(e, j, rows, din);
}

/* Backward of samples [s0, s0 + count) of a batch of n images; leaves the input
 * gradients in the input's gradient slot, (count, C, H, W). */
static void backward_chunk(sal_engine *e, int n, int s0, int count) {
    const sal_model *m = e->m;
    /* rows[j]: the samples whose target is node j or above it (a prefix). */
    int top = e->targets[e->seed_target[s0 / n]].layer, above = 0;
    for (int j = e->last_layer; j >= -1; j--) {
        while (above < count && e->targets[e->seed_target[(s0 + above) / n]].layer >= j &&
               j >= 0)
            above++;
        e->rows[IX(j)] = j < 0 ? count : above;
        e->gstate[IX(j)] = 0;
    }
    const int stop = e->stop_layer;
    for (int i = top; i >= 0 && i >= stop; i--) {
        if (!e->need[IX(i)] || !e->rows[IX(i)]) continue;
        const sal_layer *L = &m->layers[i];
        const size_t E = engine_layer_elems(m, i);
        /* Samples whose target is this node start here: rows [first, rows[i]). */
        int first = i < e->last_layer ? e->rows[IX(i + 1)] : 0;
        for (int k = first; k < e->rows[IX(i)]; k++) {
            if (!e->gstate[IX(i)]) {
                memset(grad_of(e, i), 0, sizeof(real) * first * E);
                e->gstate[IX(i)] = 1;
            }
            seed(grad_of(e, i) + k * E, L, e->targets[e->seed_target[(s0 + k) / n]].unit);
        }
        /* No consumer and no seed: the gradient is zero, and so is what it gives. */
        if (e->gstate[IX(i)] && i > stop) backward_node(e, i, e->rows[IX(i)], n, s0);
    }
    if (!e->gstate[IX(stop)])
        memset(grad_of(e, stop), 0, sizeof(real) * count * engine_layer_elems(m, stop));
}

/* Every (image, target, method) backward pass of a batch of n images whose forward
 * decisions (ReLU masks, max-pool argmaxes) are in e; maps as sal_engine_run: the
 * gradients at the stop node (the input unless sal_engine_stop_at moved it). */
static void backward_all(sal_engine *e, int n, real *maps) {
    const size_t in_elems = engine_layer_elems(e->m, e->stop_layer);
    const int total = n * e->nseeds;
    for (int s0 = 0; s0 < total; s0 += e->bwd_chunk) {
        int count = total - s0 < e->bwd_chunk ? total - s0 : e->bwd_chunk;
        backward_chunk(e, n, s0, count);
        const real *g = grad_of(e, e->stop_layer);
        for (int k = 0; k < count; k++) {
            int s = s0 + k, img = s % n, seed_i = s / n;
            size_t slot = ((size_t)img * e->ntargets + e->seed_target[seed_i]) * e->nmethods +
                          e->seed_method[seed_i];
            memcpy(maps + slot * in_elems, g + k * in_elems, sizeof(real) * in_elems);
        }
    }
}

int R(sal_engine_run)(sal_engine *e, const void *input, int n, void *maps,
                      void *activations, sal_layer_cb cb, void *cb_ctx) {
    e->flops = 0;
    e->onehot_rows = 0;
    forward(e, input, n, activations, cb, cb_ctx);
    backward_all(e, n, maps);
    return 0;
}

int R(sal_engine_forward)(sal_engine *e, const void *input, int n, void *activations,
                          sal_layer_cb cb, void *cb_ctx) {
    e->flops = 0;
    e->onehot_rows = 0;
    forward(e, input, n, activations, cb, cb_ctx);
    return 0;
}

int R(sal_engine_backward)(sal_engine *e, int n, void *maps) {
    e->flops = 0;
    e->onehot_rows = 0;
    backward_all(e, n, maps);
    return 0;
}
