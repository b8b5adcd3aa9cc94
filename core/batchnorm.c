/*
 * Batch norm in eval mode, as torch computes it on the CPU: out = in * scale + shift
 * per channel, with scale = weight / sqrt(var + eps) and shift = bias - mean * scale
 * precomputed by the model loader. torch evaluates it as one fused multiply-add
 * (fma(x, scale, shift)), and so do we, to agree to the bit. Its input gradient is
 * dout * scale.
 *
 * The per-channel affine map of GoogLeNet's and Inception-v3's transform_input is
 * the same map rounded twice: torch computes it as two tensor operations,
 * x * (std / 0.5) and then + (mean - 0.5) / 0.5. Its input gradient is
 * batchnorm_backward's. This file is compiled with -ffp-contract=off
 * (core/CMakeLists.txt) so that no compiler fuses those two roundings into one
 * fused multiply-add; the explicit real_fma above is unaffected by that flag.
 */
#include "layers.h"

/* fma() without -mfma is a call into libm per element (3% of ResNet-50's time).
 * Where the compiler and the C library allow it, the loop is built twice, with and
 * without the FMA instruction, and the loader picks by CPU; fma is exact either
 * way, so the results are the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SAL_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define SAL_FMA_CLONES
#endif

SAL_FMA_CLONES
void R(batchnorm_forward)(real *out, const real *in, const real *scale,
                          const real *shift, const sal_layer *L, int n) {
    const size_t P = (size_t)L->in_h * L->in_w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < L->in_c; c++) {
            size_t o = ((size_t)i * L->in_c + c) * P;
            for (size_t p = 0; p < P; p++)
                out[o + p] = real_fma(in[o + p], scale[c], shift[c]);
        }
}

void R(batchnorm_backward)(real *din, const real *dout, const real *scale,
                           const sal_layer *L, int n) {
    const size_t P = (size_t)L->in_h * L->in_w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < L->in_c; c++) {
            size_t o = ((size_t)i * L->in_c + c) * P;
            for (size_t p = 0; p < P; p++) din[o + p] = dout[o + p] * scale[c];
        }
}

void R(affine_forward)(real *out, const real *in, const real *scale, const real *shift,
                       const sal_layer *L, int n) {
    const size_t P = (size_t)L->in_h * L->in_w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < L->in_c; c++) {
            size_t o = ((size_t)i * L->in_c + c) * P;
            for (size_t p = 0; p < P; p++) {
                real product = in[o + p] * scale[c];
                out[o + p] = product + shift[c];
            }
        }
}
