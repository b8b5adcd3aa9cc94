/*
 * Average pooling, both kinds torch has, one image at a time:
 *  - adaptive (nn.AdaptiveAvgPool2d) to a fixed output size with PyTorch's windows:
 *    rows floor(i*H/OH) .. ceil((i+1)*H/OH), likewise for columns. The sum is
 *    divided by the window height, then its width, in that order, as PyTorch does;
 *  - fixed kernel (nn.AvgPool2d, F.avg_pool2d) with stride, padding, ceil_mode and
 *    count_include_pad, below.
 */
#include <string.h>

#include "layers.h"

static int start_index(int i, int out, int in) { return (int)((int64_t)i * in / out); }
static int end_index(int i, int out, int in) {
    return (int)(((int64_t)(i + 1) * in + out - 1) / out);
}

void R(avgpool_forward)(real *out, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < L->in_c; c++) {
        const real *plane = in + (size_t)c * H * W;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = start_index(oy, OH, H), y1 = end_index(oy, OH, H);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = start_index(ox, OW, W), x1 = end_index(ox, OW, W);
                real sum = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) sum += plane[y * W + x];
                out[((size_t)c * OH + oy) * OW + ox] = sum / (y1 - y0) / (x1 - x0);
            }
        }
    }
}

void R(avgpool_backward)(real *din, const real *dout, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    memset(din, 0, sizeof(real) * (size_t)L->in_c * H * W);
    for (int c = 0; c < L->in_c; c++) {
        real *plane = din + (size_t)c * H * W;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = start_index(oy, OH, H), y1 = end_index(oy, OH, H);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = start_index(ox, OW, W), x1 = end_index(ox, OW, W);
                real g = dout[((size_t)c * OH + oy) * OW + ox] / (y1 - y0) / (x1 - x0);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) plane[y * W + x] += g;
            }
        }
    }
}

/* ---- fixed-kernel average pool (torch.nn.AvgPool2d) -------------------------------
 * One window per output element, as torch's CPU kernel computes it: rows
 * [oy*sh - ph, oy*sh - ph + kh) cut at H + ph (a ceil_mode window reaching beyond the
 * padded input stops at its edge), which gives the count with padding; cut again at
 * 0 and H, which gives the elements summed and the count without padding. The sum
 * runs in row-major order in the working precision and is divided once by the
 * count. A window left empty (none can be with padding <= half the kernel and
 * torch's ceil_mode output size, but the kernel does not rely on it) gives 0, as
 * torch's does. */
typedef struct {
    int y0, y1, x0, x1; /* the elements summed: [y0, y1) x [x0, x1)           */
    int count;          /* the divisor, 0 for an empty window                */
} pool_window;

static pool_window window(const sal_layer *L, int oy, int ox) {
    const int H = L->in_h, W = L->in_w;
    int y0 = oy * L->sh - L->ph, x0 = ox * L->sw - L->pw;
    int y1 = y0 + L->kh < H + L->ph ? y0 + L->kh : H + L->ph;
    int x1 = x0 + L->kw < W + L->pw ? x0 + L->kw : W + L->pw;
    int padded = (y1 - y0) * (x1 - x0);
    pool_window w;
    w.y0 = y0 > 0 ? y0 : 0, w.y1 = y1 < H ? y1 : H;
    w.x0 = x0 > 0 ? x0 : 0, w.x1 = x1 < W ? x1 : W;
    if (w.y0 >= w.y1 || w.x0 >= w.x1)
        w.count = 0;
    else
        w.count = L->count_include_pad ? padded : (w.y1 - w.y0) * (w.x1 - w.x0);
    return w;
}

void R(avgpool2d_forward)(real *out, const real *in, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    for (int c = 0; c < L->in_c; c++) {
        const real *plane = in + (size_t)c * H * W;
        real *o = out + (size_t)c * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                pool_window w = window(L, oy, ox);
                real sum = 0;
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) sum += plane[y * W + x];
                o[oy * OW + ox] = w.count ? sum / (real)w.count : 0;
            }
    }
}

/* The adjoint, as torch's backward: each output's gradient divided by its count,
 * added to every element of its window, outputs taken in row-major order. */
void R(avgpool2d_backward)(real *din, const real *dout, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    memset(din, 0, sizeof(real) * (size_t)L->in_c * H * W);
    for (int c = 0; c < L->in_c; c++) {
        real *plane = din + (size_t)c * H * W;
        const real *d = dout + (size_t)c * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                pool_window w = window(L, oy, ox);
                if (!w.count) continue;
                real g = d[oy * OW + ox] / (real)w.count;
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) plane[y * W + x] += g;
            }
    }
}
