/*
 * The engine's state, shared by engine.c (sizing, allocation, dispatch; compiled
 * once) and net.c (the forward and backward passes; compiled once per precision).
 *
 * Backward samples: every image of a batch gets one backward sample per
 * (target, method) "seed". Seeds are sorted by target layer, deepest first, and
 * samples are numbered seed-major (sample = sorted_seed * n + image), so at any
 * layer the samples whose gradient is not yet known to be zero form a prefix:
 * backward work starts at each target's own layer, never above it.
 */
#ifndef SAL_ENGINE_INTERNAL_H
#define SAL_ENGINE_INTERNAL_H

#include "layers.h"
#include "model_internal.h"

struct sal_engine {
    const sal_model *m;
    sal_precision prec;
    int max_batch;
    int ntargets, nmethods, nseeds;  /* nseeds = ntargets * nmethods            */
    sal_target *targets;
    sal_method *methods;
    int last_layer;                  /* deepest target layer: forward stops here */
    int *seed_target;                /* per sorted seed: target index           */
    int *seed_method;                /* per sorted seed: method index           */
    size_t max_elems;                /* largest per-image tensor, input included */
    int bwd_chunk;                   /* backward samples processed together      */

    /* Workspace, one allocation carved into: */
    void *arena;
    size_t arena_bytes;
    void *act[2];                    /* forward ping-pong (max_batch, max_elems) */
    void *grad[2];                   /* backward ping-pong (bwd_chunk, max_elems)*/
    void *col;                       /* conv scratch, largest conv_scratch_elems */
    int *conv_g;                     /* per layer: images per conv GEMM          */
    uint8_t **relu_mask;             /* per layer: (max_batch, out elems) or NULL*/
    int32_t **argmax;                /* per layer: (max_batch, out elems) or NULL*/

    int decided;                     /* images whose masks/argmaxes are set: the
                                      * last run's n, or what a copy brought     */
    sal_par par;                     /* where GEMM parts run (sal_engine_set_parallel) */
    double flops;                    /* counted by the last run                  */
};

/* The number of elements of one image's output of layer i (-1: the input). */
size_t engine_layer_elems(const sal_model *m, int i);

int sal_engine_run_f32(sal_engine *e, const void *input, int n, void *maps,
                       void *activations, sal_layer_cb cb, void *cb_ctx);
int sal_engine_run_f64(sal_engine *e, const void *input, int n, void *maps,
                       void *activations, sal_layer_cb cb, void *cb_ctx);
int sal_engine_backward_f32(sal_engine *e, int n, void *maps);
int sal_engine_backward_f64(sal_engine *e, int n, void *maps);

#endif
