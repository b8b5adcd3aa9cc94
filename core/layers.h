/*
 * Forward/backward kernels, one file per layer kind, private to core/. Every file
 * that includes this header is compiled twice (see real.h), so each function exists
 * as name_f32 and name_f64. Backward functions compute only the gradient with
 * respect to the layer's input: no weight gradients.
 *
 * Legend: C,H,W = layer input shape (L->in_*), OC,OH,OW = output shape (L->out_*),
 * n = images (forward) or backward samples. All tensors are dense, C-order.
 * None of these functions allocate or fail; scratch buffers come from the caller.
 * Those with a `par` argument run their GEMMs through R(gemm) on it (NULL: serial).
 */
#ifndef SAL_LAYERS_H
#define SAL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "real.h"
#include "salcore.h"

/* Where the GEMMs' parts run: pfor(pool, n, body, arg) (sal_engine_set_parallel),
 * or one after another when par or pfor is NULL. */
typedef struct {
    sal_parallel_for pfor;
    void *pool;
} sal_par;

/* C (M, N) = op(A) op(B) + beta C, row-major, as cblas_gemm with alpha 1, but cut
 * into parts of whole columns at boundaries that depend on N alone, each part one
 * BLAS call, run on par (gemm.c). With a single-threaded BLAS every element is
 * therefore the same whatever par's thread count. */
void R(gemm)(const sal_par *par, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
             int K, const real *A, int lda, const real *B, int ldb, real beta, real *C,
             int ldc);

/* A 1x1 convolution with stride 1 and no padding: its input planes are the GEMM
 * operand as they are, so it runs one GEMM per image and needs no scratch (conv.c). */
static inline int conv_is_1x1(const sal_layer *L) {
    return L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->ph == 0 &&
           L->pw == 0;
}

/* Convolutions run on groups of up to g images (or backward samples) at once, so
 * that each weight matrix takes part in one wide GEMM per group instead of one
 * small GEMM per image. Scratch elements for groups of g: the im2col matrix
 * (C/groups*kh*kw, g*OH*OW) plus the GEMM's output (OC/groups, g*OH*OW); none for a
 * conv_is_1x1 layer. */
static inline size_t conv_scratch_elems(const sal_layer *L, int g) {
    if (conv_is_1x1(L)) return 0;
    size_t K = (size_t)(L->in_c / L->groups) * L->kh * L->kw;
    return (K + (size_t)(L->out_c / L->groups)) * g * L->out_h * L->out_w;
}

/* Identical patches, identical outputs (samepatch.c): after a forward convolution of
 * one image, by any algorithm, every output whose input patch equals an earlier
 * output's bit for bit takes that output's values, so exact ties stay exact ties
 * for ReLU and max-pool as in exact arithmetic. Scratch: same_scratch_bytes(L),
 * 8-byte aligned, for the whole layer (all groups). */
static inline size_t same_table_slots(const sal_layer *L) {
    const size_t HW = (size_t)L->in_h * L->in_w, P = (size_t)L->out_h * L->out_w;
    const size_t most = HW > P ? HW : P;
    size_t cap = 16;
    while (cap < 2 * most) cap *= 2;
    return cap;
}
static inline size_t same_scratch_bytes(const sal_layer *L) {
    const size_t HW = (size_t)L->in_h * L->in_w, P = (size_t)L->out_h * L->out_w;
    const size_t most = HW > P ? HW : P;
    return 8 * most + 4 * (HW + P + most + same_table_slots(L));
}
/* out (OC,OH,OW) computed from in (C,H,W), one image: outputs of equal patches made
 * equal. Returns how many outputs (per channel, summed over groups) were copied. */
long R(same_outputs)(real *out, const real *in, const sal_layer *L, void *scratch);

/* out (n,OC,OH,OW) = conv(in (n,C,H,W)) + bias, g images per GEMM. */
void R(conv_forward)(real *out, const real *in, int n, const real *weight,
                     const real *bias, const sal_layer *L, real *scratch, int g,
                     const sal_par *par);
/* din (n,C,H,W) = input gradient of n samples given dout (n,OC,OH,OW). */
void R(conv_backward)(real *din, const real *dout, int n, const real *weight,
                      const sal_layer *L, real *scratch, int g, const sal_par *par);

/* out (n,C,H,W) = in * scale[c] + shift[c] (eval-mode batch norm). */
void R(batchnorm_forward)(real *out, const real *in, const real *scale,
                          const real *shift, const sal_layer *L, int n);
/* din (n,C,H,W) = dout * scale[c]. */
void R(batchnorm_backward)(real *din, const real *dout, const real *scale,
                           const sal_layer *L, int n);

/* out = max(in, 0) and mask = (in > 0), `count` elements. */
void R(relu_forward)(real *out, uint8_t *mask, const real *in, size_t count);
/* din = the method's ReLU backward rule (SPEC §1) applied to dout, with mask the
 * forward's (x > 0). din may alias dout. */
void R(relu_backward)(real *din, const real *dout, const uint8_t *mask, size_t count,
                      sal_method rule);

/* out (C,OH,OW) = max over each window of in (C,H,W), one image. argmax (C,OH,OW)
 * records the index within the input plane (y*W + x) of the first maximum in
 * row-major window order (PyTorch's rule). */
void R(maxpool_forward)(real *out, int32_t *argmax, const real *in, const sal_layer *L);
/* din (C,H,W) = sum of dout routed to the recorded maxima, one sample. */
void R(maxpool_backward)(real *din, const real *dout, const int32_t *argmax,
                         const sal_layer *L);

/* Adaptive average pool (PyTorch's window rule: start = floor(i*H/OH),
 * end = ceil((i+1)*H/OH)), one image. */
void R(avgpool_forward)(real *out, const real *in, const sal_layer *L);
void R(avgpool_backward)(real *din, const real *dout, const sal_layer *L);

/* Fixed-kernel average pool (torch.nn.AvgPool2d without divisor_override), one
 * image: each window's sum divided by its element count, counting the zero padding
 * inside the padded input when L->count_include_pad (never the part of a ceil_mode
 * window beyond it). */
void R(avgpool2d_forward)(real *out, const real *in, const sal_layer *L);
void R(avgpool2d_backward)(real *din, const real *dout, const sal_layer *L);

/* out = in * scale[c] + shift[c] rounded twice (product, then sum), n images. */
void R(affine_forward)(real *out, const real *in, const real *scale, const real *shift,
                       const sal_layer *L, int n);

/* out (n,OC) = in (n,C) * weight^T + bias, with C = L->in_c (features). */
void R(linear_forward)(real *out, const real *in, const real *weight, const real *bias,
                       const sal_layer *L, int n, const sal_par *par);
/* din (n,C) = dout (n,OC) * weight. */
void R(linear_backward)(real *din, const real *dout, const real *weight,
                        const sal_layer *L, int n, const sal_par *par);

/* One-hot rows (onehot.c, issue 13 lever 2). R(hot_channel): the only channel of g
 * (C, P) holding nonzeros (NaN counts as one), -1 when g is all zero, -2 when two or
 * more channels hold some; it stops at the second. The two backwards compute one
 * sample's conv_backward / linear_backward when dout's nonzeros all lie in channel
 * (feature) u, u = -1 for a zero dout: din = that channel's weights times it. */
int R(hot_channel)(const real *g, int C, size_t P);
void R(conv_backward_onehot)(real *din, const real *dout, int u, const real *weight,
                             const sal_layer *L);
void R(linear_backward_onehot)(real *din, const real *dout, int u, const real *weight,
                               const sal_layer *L);

#endif
