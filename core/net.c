/*
 * The network passes, compiled once per precision (real.h). The forward runs the
 * batch through layers 0..last_layer, saving only what backward needs (ReLU masks,
 * max-pool argmax) and the target scalars. The backward then pushes every
 * (image, target, method) sample from its target's layer down to the input, in
 * chunks of e->bwd_chunk samples; see engine_internal.h for the sample order.
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
    layer_view v = {&m->layers[i], NULL, NULL, engine_layer_elems(m, i - 1),
                    engine_layer_elems(m, i)};
    if (v.L->weight_count > 0) v.w = P + v.L->weight_off;
    if (v.L->bias_count > 0) v.b = P + v.L->bias_off;
    return v;
}

/* The target scalars of layer i: mean over the spatial map of the unit's channel. */
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

/* Runs the forward pass over layers 0..last_layer, recording target scalars. */
static void forward(sal_engine *e, const real *input, int n, real *act, sal_layer_cb cb,
                    void *cb_ctx) {
    real *buf[2] = {e->act[0], e->act[1]};
    int cur = 0;
    memcpy(buf[0], input, sizeof(real) * n * engine_layer_elems(e->m, -1));
    for (int i = 0; i <= e->last_layer; i++) {
        layer_view v = view(e, i);
        real *in = buf[cur], *out = buf[cur ^ 1];
        int swap = 1;
        switch (v.L->kind) {
        case SAL_LAYER_CONV:
            R(conv_forward)(out, in, n, v.w, v.b, v.L, e->col, e->conv_g[i], &e->par);
            e->flops += 2.0 * n * v.out_elems * (v.L->in_c / v.L->groups) * v.L->kh * v.L->kw;
            break;
        case SAL_LAYER_BATCHNORM:
            R(batchnorm_forward)(in, in, v.w, v.b, v.L, n);
            e->flops += 2.0 * n * v.out_elems;
            swap = 0;
            break;
        case SAL_LAYER_RELU:
            R(relu_forward)(in, e->relu_mask[i], in, n * v.out_elems);
            swap = 0;
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
        case SAL_LAYER_LINEAR:
            R(linear_forward)(out, in, v.w, v.b, v.L, n, &e->par);
            e->flops += 2.0 * n * v.in_elems * v.out_elems;
            break;
        case SAL_LAYER_FLATTEN:
        case SAL_LAYER_DROPOUT:
        case SAL_LAYER_KIND_COUNT:
            swap = 0;
            break;
        }
        cur ^= swap;
        if (act) record_activations(e, i, buf[cur], n, act);
        if (cb) cb(cb_ctx, i, buf[cur], n);
    }
}

/* Sets sample row g (one image's output of layer i) to the seed of unit `unit`:
 * d(mean of the channel)/d(out) = 1/(H*W) on the channel, 0 elsewhere. */
static void seed(real *g, const sal_layer *L, int unit) {
    const size_t P = (size_t)L->out_h * L->out_w;
    memset(g, 0, sizeof(real) * L->out_c * P);
    real v = (real)1 / (real)P;
    for (size_t p = 0; p < P; p++) g[(size_t)unit * P + p] = v;
}

/* Backward of samples [s0, s0 + count) of a batch of n images; leaves the input
 * gradients in the returned buffer, (count, C, H, W). */
static real *backward_chunk(sal_engine *e, int n, int s0, int count) {
    real *buf[2] = {e->grad[0], e->grad[1]};
    int cur = 0, active = 0;
    int top = e->targets[e->seed_target[s0 / n]].layer;
    for (int i = top; i >= 0; i--) {
        layer_view v = view(e, i);
        /* Samples whose target is this layer join, seeded at its output. */
        while (active < count) {
            int s = s0 + active;
            const sal_target *t = &e->targets[e->seed_target[s / n]];
            if (t->layer != i) break;
            seed(buf[cur] + active * v.out_elems, v.L, t->unit);
            active++;
        }
        real *dout = buf[cur], *din = buf[cur ^ 1];
        int swap = 1;
        switch (v.L->kind) {
        case SAL_LAYER_CONV:
            R(conv_backward)(din, dout, active, v.w, v.L, e->col, e->conv_g[i], &e->par);
            e->flops += 2.0 * active * v.out_elems * (v.L->in_c / v.L->groups) * v.L->kh * v.L->kw;
            break;
        case SAL_LAYER_BATCHNORM:
            R(batchnorm_backward)(dout, dout, v.w, v.L, active);
            e->flops += (double)active * v.out_elems;
            swap = 0;
            break;
        case SAL_LAYER_RELU:
            for (int k = 0; k < active; k++) {
                int s = s0 + k;
                sal_method rule = e->methods[e->seed_method[s / n]];
                R(relu_backward)(dout + k * v.out_elems, dout + k * v.out_elems,
                                 e->relu_mask[i] + (s % n) * v.out_elems, v.out_elems, rule);
            }
            swap = 0;
            break;
        case SAL_LAYER_MAXPOOL:
            for (int k = 0; k < active; k++) {
                int s = s0 + k;
                R(maxpool_backward)(din + k * v.in_elems, dout + k * v.out_elems,
                                    e->argmax[i] + (s % n) * v.out_elems, v.L);
            }
            break;
        case SAL_LAYER_AVGPOOL:
            for (int k = 0; k < active; k++)
                R(avgpool_backward)(din + k * v.in_elems, dout + k * v.out_elems, v.L);
            e->flops += (double)active * v.in_elems;
            break;
        case SAL_LAYER_LINEAR:
            R(linear_backward)(din, dout, v.w, v.L, active, &e->par);
            e->flops += 2.0 * active * v.in_elems * v.out_elems;
            break;
        case SAL_LAYER_FLATTEN:
        case SAL_LAYER_DROPOUT:
        case SAL_LAYER_KIND_COUNT:
            swap = 0;
            break;
        }
        cur ^= swap;
    }
    return buf[cur];
}

/* Every (image, target, method) backward pass of a batch of n images whose forward
 * decisions (ReLU masks, max-pool argmaxes) are in e; maps as sal_engine_run. */
static void backward_all(sal_engine *e, int n, real *maps) {
    const size_t in_elems = engine_layer_elems(e->m, -1);
    const int total = n * e->nseeds;
    for (int s0 = 0; s0 < total; s0 += e->bwd_chunk) {
        int count = total - s0 < e->bwd_chunk ? total - s0 : e->bwd_chunk;
        const real *g = backward_chunk(e, n, s0, count);
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
    forward(e, input, n, activations, cb, cb_ctx);
    backward_all(e, n, maps);
    return 0;
}

int R(sal_engine_backward)(sal_engine *e, int n, void *maps) {
    e->flops = 0;
    backward_all(e, n, maps);
    return 0;
}
