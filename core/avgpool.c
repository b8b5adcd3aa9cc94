/*
 * Adaptive average pooling to a fixed output size with PyTorch's windows:
 * rows floor(i*H/OH) .. ceil((i+1)*H/OH), likewise for columns. The sum is divided
 * by the window height, then its width, in that order, as PyTorch does.
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
