/*
 * Max pooling with kernel, stride, padding and ceil_mode. The gradient goes to the
 * first maximum of each window in row-major order, as PyTorch's CPU kernel decides
 * (a later element wins only when strictly greater, or NaN), so exact ties resolve
 * the same way in both. Overlapping windows (AlexNet's k3 s2) accumulate.
 */
#include <math.h>
#include <string.h>

#include "layers.h"

void R(maxpool_forward)(real *out, int32_t *argmax, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < L->in_c; c++) {
        const real *plane = in + (size_t)c * H * W;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * L->sh - L->ph, y1 = y0 + L->kh;
            if (y0 < 0) y0 = 0;
            if (y1 > H) y1 = H;
            for (int ox = 0; ox < OW; ox++) {
                int x0 = ox * L->sw - L->pw, x1 = x0 + L->kw;
                if (x0 < 0) x0 = 0;
                if (x1 > W) x1 = W;
                int best = y0 * W + x0;
                real bestv = -INFINITY;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        if (plane[y * W + x] > bestv || isnan(plane[y * W + x])) {
                            bestv = plane[y * W + x];
                            best = y * W + x;
                        }
                size_t o = ((size_t)c * OH + oy) * OW + ox;
                out[o] = bestv;
                argmax[o] = best;
            }
        }
    }
}

void R(maxpool_backward)(real *din, const real *dout, const int32_t *argmax,
                         const sal_layer *L) {
    const size_t in_plane = (size_t)L->in_h * L->in_w;
    const size_t out_plane = (size_t)L->out_h * L->out_w;
    memset(din, 0, sizeof(real) * L->in_c * in_plane);
    for (int c = 0; c < L->in_c; c++) {
        real *d = din + c * in_plane;
        const real *g = dout + c * out_plane;
        const int32_t *a = argmax + c * out_plane;
        for (size_t o = 0; o < out_plane; o++) d[a[o]] += g[o];
    }
}
