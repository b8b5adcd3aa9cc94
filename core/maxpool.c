/*
 * Max pooling with kernel, stride, padding and ceil_mode. The gradient goes to the
 * first maximum of each window in row-major order, as PyTorch's CPU kernel decides
 * (a later element wins only when strictly greater, or NaN), so exact ties resolve
 * the same way in both. Overlapping windows (AlexNet's k3 s2) accumulate.
 *
 * The forward visits each window's elements in that order and applies that rule
 * per element, as PyTorch's loop does, but for many output columns at once: the
 * columns whose windows lie inside the row (all but the padded or ceil_mode edges)
 * are lanes of branch-free compare-and-select loops that the compiler vectorizes,
 * with the stride a constant for the common strides 1 and 2. The edge columns take
 * the same rule one window at a time. A lane's value and index come out as the
 * element-by-element loop gives them: same order, same comparisons.
 */
#include <math.h>
#include <string.h>

#include "layers.h"

/* Lanes per block of output columns (the arrays below live on the stack). */
#define SAL_POOL_LANES 64

/* The index lanes have the width of real, so values and indices vectorize alike. */
#if SAL_DOUBLE
typedef int64_t pool_index;
#else
typedef int32_t pool_index;
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SAL_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SAL_AVX2_CLONES
#endif

/* One window at a time: output column ox of row (y0..y1 clipped), plane row-major. */
static void pool_window(real *out, int32_t *argmax, const real *plane, int W, int y0,
                        int y1, int x0, int x1) {
    int best = y0 * W + x0;
    real bestv = -INFINITY;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (plane[y * W + x] > bestv || isnan(plane[y * W + x])) {
                bestv = plane[y * W + x];
                best = y * W + x;
            }
    *out = bestv;
    *argmax = best;
}

/* Output columns [oxa, oxa + n), n <= SAL_POOL_LANES, whose windows start at
 * x = ox*sw - pw >= 0 and end inside the row, over rows y0..y1-1: each lane runs
 * pool_window's loop. Inlined with sw a constant where the caller knows it. */
static inline __attribute__((always_inline)) void
pool_lanes(real *out, int32_t *argmax, const real *plane, int W, int y0, int y1, int kw,
           int sw, int pw, int oxa, int n) {
    real best[SAL_POOL_LANES];
    pool_index at[SAL_POOL_LANES];
    const int x0 = oxa * sw - pw;
    for (int l = 0; l < n; l++) {
        best[l] = -INFINITY;
        at[l] = (pool_index)y0 * W + x0 + l * sw;
    }
    for (int y = y0; y < y1; y++)
        for (int kx = 0; kx < kw; kx++) {
            const real *src = plane + (size_t)y * W + x0 + kx;
            const pool_index base = (pool_index)y * W + x0 + kx;
            for (int l = 0; l < n; l++) {
                const real v = src[l * sw];
                const int take = (v > best[l]) | (v != v);
                best[l] = take ? v : best[l];
                at[l] = take ? base + (pool_index)l * sw : at[l];
            }
        }
    for (int l = 0; l < n; l++) {
        out[l] = best[l];
        argmax[l] = (int32_t)at[l];
    }
}

SAL_AVX2_CLONES
void R(maxpool_forward)(real *out, int32_t *argmax, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    const int kw = L->kw, sw = L->sw, pw = L->pw;
    /* Interior columns [oxa, oxb): ox*sw - pw >= 0 and ox*sw - pw + kw <= W. */
    int oxa = (pw + sw - 1) / sw, oxb = W - kw + pw < 0 ? 0 : (W - kw + pw) / sw + 1;
    if (oxb > OW) oxb = OW;
    if (oxa > oxb) oxa = oxb;
    for (int c = 0; c < L->in_c; c++) {
        const real *plane = in + (size_t)c * H * W;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * L->sh - L->ph, y1 = y0 + L->kh;
            if (y0 < 0) y0 = 0;
            if (y1 > H) y1 = H;
            real *o = out + ((size_t)c * OH + oy) * OW;
            int32_t *a = argmax + ((size_t)c * OH + oy) * OW;
            for (int ox = 0; ox < OW; ox++) {
                if (ox == oxa) { /* the interior, in blocks of lanes */
                    for (; ox < oxb; ox += SAL_POOL_LANES) {
                        const int n = oxb - ox < SAL_POOL_LANES ? oxb - ox : SAL_POOL_LANES;
                        if (sw == 2)
                            pool_lanes(o + ox, a + ox, plane, W, y0, y1, kw, 2, pw, ox, n);
                        else if (sw == 1)
                            pool_lanes(o + ox, a + ox, plane, W, y0, y1, kw, 1, pw, ox, n);
                        else
                            pool_lanes(o + ox, a + ox, plane, W, y0, y1, kw, sw, pw, ox, n);
                    }
                    ox = oxb;
                    if (ox >= OW) break;
                }
                int x0 = ox * sw - pw, x1 = x0 + kw;
                if (x0 < 0) x0 = 0;
                if (x1 > W) x1 = W;
                pool_window(o + ox, a + ox, plane, W, y0, y1, x0, x1);
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
