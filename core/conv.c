/*
 * 2-D convolution with bias, stride, padding and groups, as im2col + GEMM over
 * groups of g images at a time; 1x1 convolutions with stride 1 and no padding skip
 * im2col (below, "1x1 kernel"). With K = C/groups*kh*kw, P = OH*OW and, per
 * convolution group, W_G (OC/groups, K):
 *
 *   forward   col (K, g*P) = im2col of g images side by side
 *             y (OCg, g*P) = W_G x col, then y + bias scattered to out (g, OC, P)
 *   backward  y (OCg, g*P) = dout of g samples gathered side by side
 *             dcol (K, g*P) = W_G^T x y, then col2im into din (g, C, H, W)
 *
 * The backward GEMM and col2im run block by block: dcol as a whole is tens of MB,
 * and col2im re-reading it from L3 or memory cost more than the GEMM takes. Each
 * block, whole channels by whole images (or, when one image's plane is wider than a
 * block, by whole output rows of one image), fits in L2 and is scattered while
 * there. OpenBLAS repacks both operands on every call, y per channel block and W
 * per column block, so the blocks stay a few hundred rows and columns each: a block
 * of a 224x224 VGG plane cut down to one channel instead of to some output rows
 * had OpenBLAS repack all of y for every channel, a quarter of VGG16's time.
 *
 * Each output element is the same K-long dot product whatever g is, but OpenBLAS
 * may choose another kernel for another GEMM width, so the last bits can depend on
 * g, the blocks and the batch. Results are deterministic for a given batch, which is what
 * salpipe's bit-for-bit promise relies on (fixed batches, see pipeline/run.h). The
 * GEMMs go through R(gemm) (gemm.c), whose parts are fixed by the GEMM's shape, so
 * the number of threads does not change them.
 */
#include <string.h>

#include "layers.h"

/* Backward blocks (see above): dcol bytes per block, about an L2 less OpenBLAS's
 * packed panels, and columns per block (rounded to whole images); the rows fill
 * the rest. Measured on Zen 4 with AlexNet. */
#define SAL_DCOL_BLOCK_BYTES ((size_t)1 << 20)
#define SAL_DCOL_BLOCK_COLUMNS 1024

/* The output columns ox whose input column x = ox*sw - pw + kx lies inside 0..W-1:
 * [*lo, *hi). Computing them once per kernel column keeps the inner loops free of
 * branches, so they vectorize. */
static void valid_columns(const sal_layer *L, int kx, int *lo, int *hi) {
    int first = L->pw - kx, last = L->in_w - 1 + L->pw - kx; /* bounds on ox*sw */
    int a = first <= 0 ? 0 : (first + L->sw - 1) / L->sw;
    int b = last < 0 ? 0 : last / L->sw + 1;
    *lo = a;
    *hi = b < L->out_w ? b : L->out_w;
    if (*hi < *lo) *hi = *lo;
}

/* Rows of col (K, ld) at column offset 0 from one group's channels of in
 * (Cg, H, W); zero padding. */
static void im2col(real *col, size_t ld, const real *in, int Cg, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, sw = L->sw;
    for (int c = 0; c < Cg; c++)
        for (int ky = 0; ky < L->kh; ky++)
            for (int kx = 0; kx < L->kw; kx++) {
                real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * ld;
                const real *plane = in + (size_t)c * H * W;
                int lo, hi;
                valid_columns(L, kx, &lo, &hi);
                for (int oy = 0; oy < OH; oy++) {
                    int y = oy * L->sh - L->ph + ky;
                    real *dst = row + (size_t)oy * OW;
                    if (y < 0 || y >= H) {
                        memset(dst, 0, sizeof(real) * OW);
                        continue;
                    }
                    const real *src = plane + (size_t)y * W;
                    const int off = kx - L->pw;
                    for (int ox = 0; ox < lo; ox++) dst[ox] = 0;
                    for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox * sw + off];
                    for (int ox = hi; ox < OW; ox++) dst[ox] = 0;
                }
            }
}

/* din (Cg, H, W) += scatter of col (K, ld) holding output rows [oy0, oy1) (column
 * (oy - oy0)*OW + ox); the adjoint of im2col. The scatter of rows from 0 zeroes each
 * plane first, when it is about to be in cache anyway; later row ranges add to it. */
static void col2im(real *din, const real *col, size_t ld, int Cg, const sal_layer *L,
                   int oy0, int oy1) {
    const int H = L->in_h, W = L->in_w, OW = L->out_w, sw = L->sw;
    for (int c = 0; c < Cg; c++) {
        if (oy0 == 0) memset(din + (size_t)c * H * W, 0, sizeof(real) * H * W);
        for (int ky = 0; ky < L->kh; ky++)
            for (int kx = 0; kx < L->kw; kx++) {
                const real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * ld;
                real *plane = din + (size_t)c * H * W;
                int lo, hi;
                valid_columns(L, kx, &lo, &hi);
                for (int oy = oy0; oy < oy1; oy++) {
                    int y = oy * L->sh - L->ph + ky;
                    if (y < 0 || y >= H) continue;
                    const real *src = row + (size_t)(oy - oy0) * OW;
                    real *dst = plane + (size_t)y * W;
                    const int off = kx - L->pw;
                    if (sw == 1)
                        for (int ox = lo; ox < hi; ox++) dst[ox + off] += src[ox];
                    else
                        for (int ox = lo; ox < hi; ox++) dst[ox * sw + off] += src[ox];
                }
            }
    }
}

/* ---- 1x1 kernel, stride 1, no padding -------------------------------------------
 * Image i's input planes (C, P) already are the GEMM operand, and its output planes
 * (OC, P) the GEMM's result: per image and convolution group,
 *   forward   out_i (OCg, P) = W_G x in_i (Cg, P), then + bias in place
 *   backward  din_i (Cg, P) = W_G^T x dout_i (OCg, P)
 * with no im2col, col2im or gather, and no scratch. Each image is its own product of
 * width P, so its result does not depend on the batch, g or the thread count.
 * R(gemm) keeps a product narrower than about two of its parts (256 columns each)
 * whole, which would leave the other threads idle: planes narrower than this many
 * columns (ResNet's 14x14 and 7x7 stages) run whole images in parallel instead, each
 * product serial. Either way every element comes from the same BLAS call with the
 * same operands. */
#define SAL_CONV1X1_IMAGE_PARALLEL_COLUMNS 512

typedef struct {
    real *dst;           /* out or din                                    */
    const real *src;     /* in or dout                                    */
    const real *weight, *bias;
    int forward;         /* 1: out = W x in + bias; 0: din = W^T x dout   */
    const sal_layer *L;
    const sal_par *par;  /* where one image's GEMM parts run (NULL: serial) */
} conv1x1_job;

static void conv1x1_image(void *arg, int i) {
    const conv1x1_job *j = arg;
    const sal_layer *L = j->L;
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const size_t P = (size_t)L->out_h * L->out_w;
    const int fwd = j->forward;
    const size_t src_elems = (fwd ? L->in_c : L->out_c) * P;
    const size_t dst_elems = (fwd ? L->out_c : L->in_c) * P;
    for (int grp = 0; grp < G; grp++) {
        const real *W = j->weight + (size_t)grp * OCg * Cg;
        if (fwd) {
            real *out = j->dst + i * dst_elems + (size_t)grp * OCg * P;
            R(gemm)(j->par, CblasNoTrans, CblasNoTrans, OCg, (int)P, Cg, W, Cg,
                    j->src + i * src_elems + (size_t)grp * Cg * P, (int)P, 0, out, (int)P);
            for (int oc = 0; oc < OCg; oc++) {
                const real b = j->bias[grp * OCg + oc];
                real *row = out + oc * P;
                for (size_t p = 0; p < P; p++) row[p] += b;
            }
        } else {
            R(gemm)(j->par, CblasTrans, CblasNoTrans, Cg, (int)P, OCg, W, Cg,
                    j->src + i * src_elems + (size_t)grp * OCg * P, (int)P, 0,
                    j->dst + i * dst_elems + (size_t)grp * Cg * P, (int)P);
        }
    }
}

static void conv1x1(real *dst, const real *src, int n, const real *weight,
                    const real *bias, int forward, const sal_layer *L, const sal_par *par) {
    conv1x1_job j = {dst, src, weight, bias, forward, L, par};
    const size_t P = (size_t)L->out_h * L->out_w;
    if (par && par->pfor && n > 1 && P < SAL_CONV1X1_IMAGE_PARALLEL_COLUMNS) {
        j.par = NULL;
        par->pfor(par->pool, n, conv1x1_image, &j);
    } else {
        for (int i = 0; i < n; i++) conv1x1_image(&j, i);
    }
}

void R(conv_forward)(real *out, const real *in, int n, const real *weight,
                     const real *bias, const sal_layer *L, real *scratch, int g,
                     const sal_par *par) {
    if (conv_is_1x1(L)) {
        conv1x1(out, in, n, weight, bias, 1, L, par);
        return;
    }
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const size_t K = (size_t)Cg * L->kh * L->kw, P = (size_t)L->out_h * L->out_w;
    const size_t in_elems = (size_t)L->in_c * L->in_h * L->in_w, out_elems = L->out_c * P;
    for (int i0 = 0; i0 < n; i0 += g) {
        const int gn = n - i0 < g ? n - i0 : g;
        const size_t ld = gn * P;
        real *col = scratch, *y = scratch + K * ld;
        for (int grp = 0; grp < G; grp++) {
            for (int j = 0; j < gn; j++)
                im2col(col + j * P, ld, in + (i0 + j) * in_elems + (size_t)grp * Cg * L->in_h * L->in_w,
                       Cg, L);
            R(gemm)(par, CblasNoTrans, CblasNoTrans, OCg, (int)ld, (int)K,
                    weight + (size_t)grp * OCg * K, (int)K, col, (int)ld, 0, y, (int)ld);
            for (int j = 0; j < gn; j++)
                for (int oc = 0; oc < OCg; oc++) {
                    real *dst = out + (i0 + j) * out_elems + ((size_t)grp * OCg + oc) * P;
                    const real *src = y + oc * ld + j * P, b = bias[grp * OCg + oc];
                    for (size_t p = 0; p < P; p++) dst[p] = src[p] + b;
                }
        }
    }
}

void R(conv_backward)(real *din, const real *dout, int n, const real *weight,
                      const sal_layer *L, real *scratch, int g, const sal_par *par) {
    if (conv_is_1x1(L)) {
        conv1x1(din, dout, n, weight, NULL, 0, L, par);
        return;
    }
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const size_t K = (size_t)Cg * L->kh * L->kw, P = (size_t)L->out_h * L->out_w;
    const size_t in_elems = (size_t)L->in_c * L->in_h * L->in_w, out_elems = L->out_c * P;
    const size_t kk = (size_t)L->kh * L->kw, plane = (size_t)L->in_h * L->in_w;
    /* Block shape: columns of ib whole images, or of rb output rows of one image
     * when a plane alone is wider than a block; rows of cb channels (cb*kk). */
    const int OH = L->out_h, OW = L->out_w;
    int rb = OH, ib = (int)((SAL_DCOL_BLOCK_COLUMNS + P / 2) / P);
    if (ib < 1) {
        ib = 1;
        rb = SAL_DCOL_BLOCK_COLUMNS / OW > 1 ? SAL_DCOL_BLOCK_COLUMNS / OW : 1;
    }
    int cb = (int)(SAL_DCOL_BLOCK_BYTES / (sizeof(real) * kk * ib * rb * OW));
    if (cb < 1) cb = 1;
    for (int i0 = 0; i0 < n; i0 += g) {
        const int gn = n - i0 < g ? n - i0 : g;
        const size_t ld = gn * P;
        real *dcol = scratch, *y = scratch + K * ld;
        for (int grp = 0; grp < G; grp++) {
            for (int j = 0; j < gn; j++)
                for (int oc = 0; oc < OCg; oc++)
                    memcpy(y + oc * ld + j * P,
                           dout + (i0 + j) * out_elems + ((size_t)grp * OCg + oc) * P,
                           sizeof(real) * P);
            for (int j0 = 0; j0 < gn; j0 += ib) {
                const int jn = gn - j0 < ib ? gn - j0 : ib;
                for (int c0 = 0; c0 < Cg; c0 += cb) {
                    const int cn = Cg - c0 < cb ? Cg - c0 : cb;
                    for (int r0 = 0; r0 < OH; r0 += rb) {
                        const int r1 = OH - r0 < rb ? OH : r0 + rb;
                        const size_t span = (size_t)(r1 - r0) * OW, cols = jn * span;
                        R(gemm)(par, CblasTrans, CblasNoTrans, (int)(cn * kk), (int)cols, OCg,
                                weight + (size_t)grp * OCg * K + c0 * kk, (int)K,
                                y + j0 * P + (size_t)r0 * OW, (int)ld, 0, dcol, (int)cols);
                        for (int j = 0; j < jn; j++)
                            col2im(din + (i0 + j0 + j) * in_elems +
                                       ((size_t)grp * Cg + c0) * plane,
                                   dcol + j * span, cols, cn, L, r0, r1);
                    }
                }
            }
        }
    }
}
