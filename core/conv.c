/*
 * 2-D convolution with bias, stride, padding and groups, as im2col + GEMM.
 *
 * Forward, per image and group g:  out_g (OCg, OH*OW) = W_g (OCg, K) x col (K, OH*OW)
 * Backward (input gradient only):  dcol (K, OH*OW) = W_g^T (K, OCg) x dout_g, then
 * col2im scatters dcol back onto din. K = Cg*kh*kw with Cg = C/groups.
 */
#include <string.h>

#include "layers.h"

/* col (Cg*kh*kw, OH*OW) from one group's channels of in (Cg, H, W); zero padding. */
static void im2col(real *col, const real *in, int Cg, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < Cg; c++)
        for (int ky = 0; ky < L->kh; ky++)
            for (int kx = 0; kx < L->kw; kx++) {
                real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * OH * OW;
                const real *plane = in + (size_t)c * H * W;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * L->sh - L->ph + ky;
                    real *dst = row + (size_t)oy * OW;
                    if (y < 0 || y >= H) {
                        memset(dst, 0, sizeof(real) * OW);
                        continue;
                    }
                    const real *src = plane + (size_t)y * W;
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * L->sw - L->pw + kx;
                        dst[ox] = (x >= 0 && x < W) ? src[x] : 0;
                    }
                }
            }
}

/* din (Cg, H, W) += scatter of col (Cg*kh*kw, OH*OW); the adjoint of im2col. */
static void col2im(real *din, const real *col, int Cg, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < Cg; c++)
        for (int ky = 0; ky < L->kh; ky++)
            for (int kx = 0; kx < L->kw; kx++) {
                const real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * OH * OW;
                real *plane = din + (size_t)c * H * W;
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * L->sh - L->ph + ky;
                    if (y < 0 || y >= H) continue;
                    const real *src = row + (size_t)oy * OW;
                    real *dst = plane + (size_t)y * W;
                    for (int ox = 0; ox < OW; ox++) {
                        int x = ox * L->sw - L->pw + kx;
                        if (x >= 0 && x < W) dst[x] += src[ox];
                    }
                }
            }
}

void R(conv_forward)(real *out, const real *in, const real *weight, const real *bias,
                     const sal_layer *L, real *col) {
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const int K = Cg * L->kh * L->kw, P = L->out_h * L->out_w;
    for (int g = 0; g < G; g++) {
        real *outg = out + (size_t)g * OCg * P;
        for (int oc = 0; oc < OCg; oc++)
            for (int p = 0; p < P; p++) outg[(size_t)oc * P + p] = bias[g * OCg + oc];
        im2col(col, in + (size_t)g * Cg * L->in_h * L->in_w, Cg, L);
        cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OCg, P, K, 1,
                   weight + (size_t)g * OCg * K, K, col, P, 1, outg, P);
    }
}

void R(conv_backward)(real *din, const real *dout, const real *weight,
                      const sal_layer *L, real *dcol) {
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const int K = Cg * L->kh * L->kw, P = L->out_h * L->out_w;
    memset(din, 0, sizeof(real) * (size_t)L->in_c * L->in_h * L->in_w);
    for (int g = 0; g < G; g++) {
        cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, OCg, 1,
                   weight + (size_t)g * OCg * K, K, dout + (size_t)g * OCg * P, P, 0,
                   dcol, P);
        col2im(din + (size_t)g * Cg * L->in_h * L->in_w, dcol, Cg, L);
    }
}
