/*
 * The input gradient of a stride-1 r x r convolution by Winograd's minimal filtering
 * F(m x m, r x r), float32 only (winograd.c explains the algorithm). Private to
 * core/: the engine transforms a layer's weights once (wino_transform_weights) and
 * net.c calls wino_conv_backward instead of conv_backward_f32 for the layers that
 * have them. Nothing here allocates; only wino_plan_init can fail.
 *
 * Legend as layers.h: C,H,W the layer's input, OC,OH,OW its output; alpha = m + r - 1
 * the transformed tile's side; T = ceil(H/m) * ceil(W/m) tiles per sample.
 */
#ifndef SAL_WINOGRAD_H
#define SAL_WINOGRAD_H

#include "layers.h"

#define WINO_MAX_ALPHA 8

/* The three matrices of F(m x m, r x r) (Lavin & Gray 2016's A, B, G), built by
 * Cook-Toom from the interpolation points 0, 1, -1, 2, -2, 1/2, -1/2 (the first
 * alpha - 1 of them) and infinity. */
typedef struct {
    int m, r, alpha;
    float AT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];  /* (m, alpha): output transform  */
    float BT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];  /* (alpha, alpha): data transform */
    double G[WINO_MAX_ALPHA * WINO_MAX_ALPHA];  /* (alpha, r): kernel transform   */
} wino_plan;

/* Builds F(m x m, r x r); 0, or -1 when m < 1, r < 2 or m + r - 1 > WINO_MAX_ALPHA. */
int wino_plan_init(wino_plan *p, int m, int r);

/* max |sum_j AT[i][j] G[j][k] BT[j][l] - [l == i + k]| over i, k, l: 0 up to
 * rounding for a correct 1-D F(m, r) (a check for tests). */
double wino_plan_identity_error(const wino_plan *p);

/* Whether wino_conv_backward computes layer L's input gradient: stride 1, a square
 * 3x3 or 5x5 kernel, one group, padding at most r - 1 on each side. */
int wino_eligible(const sal_layer *L);

/* Whether the engine runs an eligible layer by Winograd at all: only with at least
 * WINO_MIN_IN_C (32) input channels. With fewer, the transforms of the other side's
 * planes cost more than the element-wise products save: VGG's first layer (3 -> 64,
 * 224x224, 4 samples, one thread) takes 53 ms by F(2x2, 3x3) against 20 ms direct
 * in the backward, 45 against 21 ms in the forward; 16 -> 64 channels 0.9x direct,
 * 32 -> 32 1.5x faster (docs/performance.md, "Small layers stay direct"). */
int wino_worth(const sal_layer *L);

/* The output tile side the engine uses for an eligible layer, or 0 when it keeps
 * the layer direct: m = 2 for 3x3 kernels (F(2x2, 3x3)), and for 5x5 kernels 0
 * (direct), or 2 (F(2x2, 5x5)) when `all` (convolution = "fastest"); larger tiles
 * add too much rounding error (winograd.c, WINO_MAX_ALPHA_R3; docs/performance.md,
 * "Winograd"). */
int wino_choose_m(const sal_layer *L, int all);

/* Elements of the transformed weights U: alpha^2 matrices (C, OC). */
size_t wino_weights_elems(const sal_layer *L, const wino_plan *p);

/* U[xi] (C, OC) = G wf G^T at position xi of every (c, oc), wf[c][oc] the kernel
 * w[oc][c] rotated by 180 degrees; computed in double, rounded once to float32.
 * weight (OC, C, r, r). */
void wino_transform_weights(float *U, const float *weight, const sal_layer *L,
                            const wino_plan *p);

/* Uf[xi] (OC, C) = G w G^T at position xi of every (oc, c): the forward's weights,
 * computed as wino_transform_weights'. */
void wino_transform_weights_forward(float *Uf, const float *weight, const sal_layer *L,
                                    const wino_plan *p);

/* Rows [o0, o1) of wino_transform_weights (forward 0: rows are input channels c)
 * or of wino_transform_weights_forward (forward 1: rows are output channels oc):
 * of each of the alpha^2 matrices, the row's elements and no others, with the
 * same values the whole transform writes. Lets several processes fill one shared
 * copy (sal_model_wino_fill_part). */
void wino_transform_weights_rows(float *U, const float *weight, const sal_layer *L,
                                 const wino_plan *p, int forward, int o0, int o1);

/* Scratch elements wino_conv_backward and wino_conv_forward need for any n (their
 * blocks have a fixed number of columns). */
size_t wino_scratch_elems(const sal_layer *L, const wino_plan *p);

/* din (n,C,H,W) = input gradient of n samples given dout (n,OC,OH,OW), the same
 * value as conv_backward_f32 up to Winograd's rounding. U from
 * wino_transform_weights; the alpha^2 GEMMs of a block and the transforms (split
 * over channels) run on par->pfor, so results do not depend on the thread count. */
void wino_conv_backward(float *din, const float *dout, int n, const float *U,
                        const wino_plan *p, const sal_layer *L, float *scratch,
                        const sal_par *par);

/* out (n,OC,OH,OW) = the convolution of in (n,C,H,W) plus bias (OC), the same value
 * as conv_forward_f32 up to Winograd's rounding (convolution = "fastest" only: its
 * rounding moves the forward's ReLU and max-pool decisions at near-ties). Uf from
 * wino_transform_weights_forward; parallel as wino_conv_backward. */
void wino_conv_forward(float *out, const float *in, int n, const float *Uf, const float *bias,
                       const wino_plan *p, const sal_layer *L, float *scratch,
                       const sal_par *par);

#endif
