/*
 * The engine's state, shared by engine.c (planning, allocation, dispatch; compiled
 * once) and net.c (the forward and backward passes; compiled once per precision).
 *
 * The network is a graph of nodes in an order where every node follows its inputs
 * (model.c checks it). Only the nodes a target depends on are computed ("needed").
 *
 * Backward samples: every image of a batch gets one backward sample per
 * (target, method) "seed". Seeds are sorted by target node, deepest (highest index)
 * first, and samples are numbered seed-major (sample = sorted_seed * n + image), so at
 * any node the samples whose target lies at or above it form a prefix of a chunk:
 * node i's gradient has rows[i] rows, and backward work starts at each target.
 *
 * Memory: every needed node's output (forward) and gradient (backward) lives in a
 * slot of one region, from the node's step to its last consumer's step (the same
 * interval, walked forward for values and backward for gradients). engine.c places
 * the slots so that slots alive at the same step never overlap, in units of one
 * image; the forward region repeats that plan max_batch times, the backward region
 * bwd_chunk times. A ReLU, batch norm, channel affine, flatten or dropout whose
 * input has no other consumer works in its input's slot.
 */
#ifndef SAL_ENGINE_INTERNAL_H
#define SAL_ENGINE_INTERNAL_H

#include "layers.h"
#include "model_internal.h"
#include "winograd.h"

/* Per-node arrays are indexed IX(node) so that the network input (-1) is entry 0. */
#define IX(j) ((j) + 1)

/* A layer's Winograd passes (winograd.h): its plan and transformed weights for the
 * backward (U) and, with convolution "fastest", the forward (Uf), owned, or
 * borrowed from another engine of the same model and mode (engine_init). */
typedef struct {
    wino_plan plan;
    float *U, *Uf;
    int owned;
} engine_wino;

struct sal_engine {
    const sal_model *m;
    sal_precision prec;
    int max_batch;
    int ntargets, nmethods, nseeds;  /* nseeds = ntargets * nmethods            */
    sal_target *targets;
    sal_method *methods;
    int last_layer;                  /* deepest target node: forward stops here  */
    int stop_layer;                  /* backward ends with this node's gradient
                                      * (-1: the input; sal_engine_stop_at)       */
    int *seed_target;                /* per sorted seed: target index           */
    int *seed_method;                /* per sorted seed: method index           */
    size_t max_elems;                /* largest per-image tensor, input included */
    int bwd_chunk;                   /* backward samples processed together      */

    /* The plan, per IX(node): */
    uint8_t *need;                   /* computed: a target or one of its inputs, ...*/
    int *consumers;                  /* needed nodes reading it (edges)          */
    size_t *slot;                    /* its slot, in elements per image           */
    size_t plan_elems;               /* elements per image of all slots           */
    int *rows;                       /* backward: rows of the current chunk       */
    uint8_t *gstate;                 /* backward: 1 once its gradient is written  */

    /* Workspace, one allocation carved into: */
    void *arena;
    size_t arena_bytes;
    void *fwd;                       /* (max_batch, plan_elems)                  */
    void *bwd;                       /* (bwd_chunk, plan_elems)                  */
    void *tmp;                       /* (bwd_chunk, max_elems): contributions to a
                                      * gradient that already has some           */
    void *col;                       /* conv scratch, largest conv_scratch_elems */
    void *same;                      /* same_outputs' scratch, largest
                                      * same_scratch_bytes                      */
    int *conv_g;                     /* per layer: images per conv GEMM          */
    sal_conv_mode conv_mode;         /* sal_engine_set_convolution               */
    engine_wino *wino;               /* per layer: Winograd backward (U NULL: direct) */
    uint8_t **relu_mask;             /* per layer: (max_batch, out elems) or NULL*/
    int32_t **argmax;                /* per layer: (max_batch, out elems) or NULL*/

    int decided;                     /* images whose masks/argmaxes are set: the
                                      * last run's n, or what a copy brought     */
    int one_hot;                     /* 1: one-hot rows skip the full product at a
                                      * conv/linear (onehot.c); 0 only in tests and
                                      * benchmarks (engine_set_one_hot)          */
    sal_par par;                     /* where GEMM parts run (sal_engine_set_parallel) */
    double flops;                    /* counted by the last run                  */
    long onehot_rows;                /* rows the last run took through onehot.c */
};

/* sal_engine_init with the convolution mode; a float32 SAL_CONV_FAST engine borrows
 * the transformed weights of `share` (same model, may be NULL), which must then
 * outlive it and keep them (no sal_engine_set_convolution on it; sal_attrib's
 * engines are freed together and never switched). */
int engine_init(sal_engine **out, const sal_model *m, sal_precision p, int max_batch,
                const sal_target *targets, int ntargets, const sal_method *methods,
                int nmethods, sal_conv_mode conv, const sal_engine *share, char *err,
                size_t errlen);

/* Turns the one-hot rows' shortcut (onehot.c) on (the default) or off, so that tests
 * and benchmarks can compare it with the full product. */
void engine_set_one_hot(sal_engine *e, int on);

/* The number of elements of one image's output of layer i (-1: the input). */
size_t engine_layer_elems(const sal_model *m, int i);

int sal_engine_run_f32(sal_engine *e, const void *input, int n, void *maps,
                       void *activations, sal_layer_cb cb, void *cb_ctx);
int sal_engine_run_f64(sal_engine *e, const void *input, int n, void *maps,
                       void *activations, sal_layer_cb cb, void *cb_ctx);
int sal_engine_forward_f32(sal_engine *e, const void *input, int n, void *activations,
                           sal_layer_cb cb, void *cb_ctx);
int sal_engine_forward_f64(sal_engine *e, const void *input, int n, void *activations,
                           sal_layer_cb cb, void *cb_ctx);
int sal_engine_backward_f32(sal_engine *e, int n, void *maps);
int sal_engine_backward_f64(sal_engine *e, int n, void *maps);

#endif
