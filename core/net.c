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
    const real *a = value_of(e, L->inputs[0]), *b = value_of(e, L->inputs[1]);
    for (size_t p = 0; p < count; p++) out[p] = a[p] + b[p];
    for (int k = 2; k < L->ninputs; k++) {
        const real *c = value_of(e, L->inputs[k]);
        for (size_t p = 0; p < count; p++) out[p] += c[p];
    }
}

/* out (n, sum C_k, H, W) = the inputs stacked along channels. */
static void concat_forward(const sal_engine *e, const sal_layer *L, real *out, int n) {
    const size_t oe = engine_layer_elems(e->m, (int)(L - e->m->layers));
    size_t off = 0;
    for (int k = 0; k < L->ninputs; k++) {
        const size_t ek = engine_layer_elems(e->m, L->inputs[k]);
        const real *in = value_of(e, L->inputs[k]);
        for (int img = 0; img < n; img++)
            memcpy(out + img * oe + off, in + img * ek, sizeof(real) * ek);
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
            R(conv_forward)(out, in, n, v.w, v.b, v.L, e->col, e->conv_g[i], &e->par);
            e->flops += 2.0 * n * v.out_elems * (v.L->in_c / v.L->groups) * v.L->kh * v.L->kw;
            break;
        case SAL_LAYER_BATCHNORM:
            R(batchnorm_forward)(out, in, v.w, v.b, v.L, n);
            e->flops += 2.0 * n * v.out_elems;
            break;
        case SAL_LAYER_AFFINE:
            R(affine_forward)(out, in, v.w, v.b, v.L, n);
            e->flops += 2.0 * n * v.out_elems;
            break;
        case SAL_LAYER_RELU:
            R(relu_forward)(out, e->relu_mask[i], in, n * v.out_elems);
            break;
        case SAL_LAYER_MAXPOOL:
            for (int k = 0; k < n; k++)
                R(maxpool_forward)(out + k * v.out_elems, e->argmax[i] + k * v.out_elems,
                                   in + k * v.in_elems, v.L);
            break;
        case SAL_LAYER_AVGPOOL:
            for (int k = 0; k < n; k++)
                R(avgpool_forward)(out + k * v.out_elems, in + k * v.in_elems, v.L);
            e->flops += (double)n * v.in_elems;
            break;
        case SAL_LAYER_AVGPOOL2D:
            for (int k = 0; k < n; k++)
                R(avgpool2d_forward)(out + k * v.out_elems, in + k * v.in_elems, v.L);
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
            if (out != in) memcpy(out, in, sizeof(real) * n * v.out_elems);
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
        for (size_t p = 0; p < (size_t)rows * E; p++) g[p] += dst[p];
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

/* Backward of a conv or linear node: rows whose gradient lies in one channel (a
 * target's seed, through ReLU rules, max-pool or dropout: onehot.c) take that
 * channel's weights alone, the runs of other rows the full product. The rows are
 * told apart by their values, so this holds on any graph: a row is one-hot exactly
 * when the full product's other terms are all products with zero. */
static void product_backward(sal_engine *e, int i, const layer_view *v, real *din,
                             const real *dout, int rows) {
    const sal_layer *L = v->L;
    const int linear = L->kind == SAL_LAYER_LINEAR;
    const size_t P = linear ? 1 : (size_t)L->out_h * L->out_w;
    if (!e->one_hot) {
        full_backward(e, i, v, din, dout, 0, rows);
        return;
    }
    int hot = R(hot_channel)(dout, L->out_c, P);
    for (int k = 0; k < rows;) {
        if (hot != -2) {
            real *d = din + (size_t)k * v->in_elems;
            const real *g = dout + (size_t)k * v->out_elems;
            if (linear)
                R(linear_backward_onehot)(d, g, hot, v->w, L);
            else
                R(conv_backward_onehot)(d, g, hot, v->w, L);
            k++;
            e->onehot_rows++;
            if (k < rows) hot = R(hot_channel)(dout + (size_t)k * v->out_elems, L->out_c, P);
            continue;
        }
        int k1 = k + 1;
        while (k1 < rows &&
               (hot = R(hot_channel)(dout + (size_t)k1 * v->out_elems, L->out_c, P)) == -2)
            k1++;
        full_backward(e, i, v, din, dout, k, k1 - k);
        k = k1;
    }
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
                memcpy(din, dout, sizeof(real) * rows * ek);
            else
                for (int r = 0; r < rows; r++)
                    memcpy(din + r * ek, dout + r * v.out_elems + off, sizeof(real) * ek);
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
        R(batchnorm_backward)(din, dout, v.w, L, rows);
        e->flops += (double)rows * v.out_elems;
        break;
    case SAL_LAYER_RELU:
        for (int k = 0; k < rows; k++) {
            int s = s0 + k;
            sal_method rule = e->methods[e->seed_method[s / n]];
            R(relu_backward)(din + k * v.out_elems, dout + k * v.out_elems,
                             e->relu_mask[i] + (s % n) * v.out_elems, v.out_elems, rule);
        }
        break;
    case SAL_LAYER_MAXPOOL:
        for (int k = 0; k < rows; k++) {
            int s = s0 + k;
            R(maxpool_backward)(din + k * v.in_elems, dout + k * v.out_elems,
                                e->argmax[i] + (s % n) * v.out_elems, L);
        }
        break;
    case SAL_LAYER_AVGPOOL:
        for (int k = 0; k < rows; k++)
            R(avgpool_backward)(din + k * v.in_elems, dout + k * v.out_elems, L);
        e->flops += (double)rows * v.in_elems;
        break;
    case SAL_LAYER_AVGPOOL2D:
        for (int k = 0; k < rows; k++)
            R(avgpool2d_backward)(din + k * v.in_elems, dout + k * v.out_elems, L);
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
        if (din != dout) memcpy(din, dout, sizeof(real) * rows * v.out_elems);
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
