/*
 * One-hot backward rows (issue 13, lever 2). A target's seed is one channel of
 * 1/(H*W) and zeros; ReLU rules, max-pool routing, dropout and per-channel scaling
 * keep it inside that channel. The first convolution or linear layer below then
 * needs that channel's weights only: the full product's other terms are products
 * with exact zeros, which leave any sum as it is, so the one-channel product has the
 * same value (K = 1 instead of K = OC). net.c finds such rows by their values, so
 * the shortcut holds on any graph and for any method without tracing paths.
 *
 * Compiled with -ffp-contract=off (core/CMakeLists.txt): each term is rounded as a
 * product and then added, as the GEMM's dcol element (one exact-zero-padded dot
 * product) and col2im's addition round it. col2im adds a din element's terms in
 * (ky, kx) order, and so does this loop, so the two agree bit for bit when conv.c
 * scatters a plane in one block (planes up to about 2048 outputs: AlexNet conv2-5,
 * VGG conv4-5); on wider planes conv.c scatters by blocks of output rows, which adds
 * the same terms in another order, so the last bits may differ there.
 */
#include <string.h>

#include "layers.h"

int R(hot_channel)(const real *g, int C, size_t P) {
    int hot = -1;
    for (int c = 0; c < C; c++) {
        const real *x = g + (size_t)c * P;
        for (size_t p = 0; p < P; p++)
            if (x[p] != 0) { /* NaN too: it is a nonzero for the product */
                if (hot >= 0) return -2;
                hot = c;
                break;
            }
    }
    return hot;
}

void R(conv_backward_onehot)(real *din, const real *dout, int u, const real *weight,
                             const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, sw = L->sw;
    const int Cg = L->in_c / L->groups;
    const size_t plane = (size_t)H * W;
    memset(din, 0, sizeof(real) * L->in_c * plane);
    if (u < 0) return;
    const int grp = u / (L->out_c / L->groups);
    const real *w = weight + (size_t)u * Cg * L->kh * L->kw; /* (Cg, kh, kw) */
    const real *g = dout + (size_t)u * OH * OW;              /* (OH, OW)     */
    for (int c = 0; c < Cg; c++) {
        real *d = din + ((size_t)grp * Cg + c) * plane;
        for (int ky = 0; ky < L->kh; ky++)
            for (int kx = 0; kx < L->kw; kx++) {
                const real wk = w[((size_t)c * L->kh + ky) * L->kw + kx];
                /* Output columns whose input column ox*sw - pw + kx is inside. */
                int lo = L->pw - kx <= 0 ? 0 : (L->pw - kx + sw - 1) / sw;
                int hi = W - 1 + L->pw - kx < 0 ? 0 : (W - 1 + L->pw - kx) / sw + 1;
                if (hi > OW) hi = OW;
                const int off = kx - L->pw;
                for (int oy = 0; oy < OH; oy++) {
                    const int y = oy * L->sh - L->ph + ky;
                    if (y < 0 || y >= H) continue;
                    real *restrict dst = d + (size_t)y * W;
                    const real *restrict src = g + (size_t)oy * OW;
                    if (sw == 1)
                        for (int ox = lo; ox < hi; ox++) dst[ox + off] += wk * src[ox];
                    else
                        for (int ox = lo; ox < hi; ox++) dst[ox * sw + off] += wk * src[ox];
                }
            }
    }
}

void R(linear_backward_onehot)(real *din, const real *dout, int u, const real *weight,
                               const sal_layer *L) {
    const int C = L->in_c;
    if (u < 0) {
        memset(din, 0, sizeof(real) * C);
        return;
    }
    const real g = dout[u], *w = weight + (size_t)u * C;
    /* 0 + product turns a -0 product into +0, as the GEMM's sum with +0 terms
     * does; either way the values compare equal. */
    for (int c = 0; c < C; c++) din[c] = (real)0 + g * w[c];
}
