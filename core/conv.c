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
#include <stdlib.h>
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

/* im2col writes col (K, ld) at column offset 0 from one group's channels of in
 * (Cg, H, W), zero padding, by one of three copies that all write the same values:
 *   - stride 1 with OW == W ("same" padding: AlexNet conv2-5, VGG): row (c, ky, kx)
 *     is the plane shifted by (ky-ph)*W + (kx-pw), one contiguous copy of the valid
 *     output rows; the shift wraps up to pw elements per row across the row edge,
 *     which are then zeroed, as are the output rows outside the plane;
 *   - otherwise, when a padded input row fits SAL_IM2COL_BUF elements: each input
 *     row is laid out, zero-padded, as its sw phases (the elements of the padded
 *     row at r, r + sw, r + 2sw, ... for r = 0..sw-1, side by side), so that the OW
 *     elements of a (ky, kx, oy) piece are one contiguous run of phase kx mod sw
 *     from kx / sw on: a strided gather (AlexNet conv1's 11x11 kernel at stride 4)
 *     becomes one short copy per piece;
 *   - otherwise the element loops below.
 * Rows of 13 or 27 elements, or a stride the compiler cannot see, paid per element
 * or per row for loop overhead in the element loops. The copies are bound by
 * writing col to memory (15 MB for AlexNet conv3-5 in groups of 13); running
 * im2col per GEMM part instead (R(gemm)'s column parts, each filled just before
 * its BLAS call so that it is still in L2) measured slower on W4: 19.3 s of CPU
 * against 16.4 s for this, one rank, same minute. */
#define SAL_IM2COL_BUF 4096

/* The general case: per (c, ky, kx, oy), a gather of the valid columns. */
static void im2col_rows(real *col, size_t ld, const real *in, int Cg, const sal_layer *L) {
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

/* The output rows oy whose input row y = oy*sh - ph + ky lies inside 0..H-1:
 * [*lo, *hi), empty when none does. */
static void valid_rows(const sal_layer *L, int ky, int *lo, int *hi) {
    int first = L->ph - ky, last = L->in_h - 1 + L->ph - ky; /* bounds on oy*sh */
    int a = first <= 0 ? 0 : (first + L->sh - 1) / L->sh;
    int b = last < 0 ? 0 : last / L->sh + 1;
    *lo = a < L->out_h ? a : L->out_h;
    *hi = b < L->out_h ? b : L->out_h;
    if (*hi < *lo) *hi = *lo;
}

/* Stride 1, OW == W: row (c, ky, kx) = plane shifted, see above. */
static void im2col_same(real *col, size_t ld, const real *in, int Cg, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h;
    for (int c = 0; c < Cg; c++) {
        const real *plane = in + (size_t)c * H * W;
        for (int ky = 0; ky < L->kh; ky++) {
            int a, b;
            valid_rows(L, ky, &a, &b);
            for (int kx = 0; kx < L->kw; kx++) {
                real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * ld;
                int lo, hi;
                valid_columns(L, kx, &lo, &hi);
                const int b1 = lo < hi ? b : a; /* no valid column: all zero */
                if (a > 0) memset(row, 0, sizeof(real) * a * W);
                if (b1 < OH) memset(row + (size_t)b1 * W, 0, sizeof(real) * (OH - b1) * W);
                if (a >= b1) continue;
                /* Elements a*W + lo .. (b-1)*W + hi - 1 of the row, whose source
                 * (y, x) = (oy + ky - ph, ox + kx - pw) stays inside the plane. */
                const ptrdiff_t shift = (ptrdiff_t)(ky - L->ph) * W + (kx - L->pw);
                const size_t e0 = (size_t)a * W + lo, e1 = (size_t)(b1 - 1) * W + hi;
                memcpy(row + e0, plane + e0 + shift, sizeof(real) * (e1 - e0));
                /* The wrapped elements of each copied row, and the first row's
                 * left and the last row's right margin: column by column, as
                 * strided stores (as loops over a row's one or two elements, the
                 * compiler made each a call to memset). */
                for (int ox = 0; ox < lo; ox++)
                    for (int oy = a; oy < b1; oy++) row[(size_t)oy * W + ox] = 0;
                for (int ox = hi; ox < W; ox++)
                    for (int oy = a; oy < b1; oy++) row[(size_t)oy * W + ox] = 0;
            }
        }
    }
}

/* A padded row's sw phases: prow[r*plen + j] = src[x] for x = r + j*sw - pw inside
 * 0..W-1 (to_row 0), or back (to_row 1). Inlined with sw a constant where the caller
 * knows it, so the strided moves vectorize as shuffles. */
static inline __attribute__((always_inline)) void
phase_move(real *prow, real *src, int W, int sw, int pw, int plen, int to_row) {
    for (int r = 0; r < sw; r++) {
        const int j0 = pw - r <= 0 ? 0 : (pw - r + sw - 1) / sw;
        const int j1 = W - 1 + pw - r < 0 ? 0 : (W - 1 + pw - r) / sw + 1;
        real *phase = prow + (size_t)r * plen;
        if (to_row)
            for (int j = j0; j < j1; j++) src[r + j * sw - pw] = phase[j];
        else
            for (int j = j0; j < j1; j++) phase[j] = src[r + j * sw - pw];
    }
}

static void phases_of_row(real *prow, const real *src, int W, int sw, int pw, int plen) {
    if (sw == 4)
        phase_move(prow, (real *)src, W, 4, pw, plen, 0);
    else if (sw == 2)
        phase_move(prow, (real *)src, W, 2, pw, plen, 0);
    else
        phase_move(prow, (real *)src, W, sw, pw, plen, 0);
}

static void row_of_phases(real *dst, const real *prow, int W, int sw, int pw, int plen) {
    if (sw == 4)
        phase_move((real *)prow, dst, W, 4, pw, plen, 1);
    else if (sw == 2)
        phase_move((real *)prow, dst, W, 2, pw, plen, 1);
    else
        phase_move((real *)prow, dst, W, sw, pw, plen, 1);
}

/* Any stride, padded rows of at most SAL_IM2COL_BUF elements: row phases (above),
 * a block of output rows at a time, so that each col row is written in runs of
 * several output rows: writing a piece of each of the kw col rows per input row
 * instead, conv1's im2col ran at half the speed of the element loops. */
static void im2col_phases(real *col, size_t ld, const real *in, int Cg, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w;
    const int sh = L->sh, sw = L->sw, kh = L->kh, kw = L->kw, ph = L->ph, pw = L->pw;
    const int plen = (W + 2 * pw + sw - 1) / sw; /* phase r holds x = r - pw + j*sw */
    const int rowlen = sw * plen, block = SAL_IM2COL_BUF / rowlen;
    real buf[SAL_IM2COL_BUF];
    /* The padding's places in the phases are never written: zero them once. */
    for (int i = 0; i < block * rowlen; i++) buf[i] = 0;
    for (int c = 0; c < Cg; c++) {
        const real *plane = in + (size_t)c * H * W;
        for (int ky = 0; ky < kh; ky++)
            for (int o0 = 0; o0 < OH; o0 += block) {
                const int o1 = OH - o0 < block ? OH : o0 + block;
                for (int oy = o0; oy < o1; oy++) {
                    const int y = oy * sh - ph + ky;
                    if (y >= 0 && y < H)
                        phases_of_row(buf + (size_t)(oy - o0) * rowlen,
                                      plane + (size_t)y * W, W, sw, pw, plen);
                }
                for (int kx = 0; kx < kw; kx++) {
                    real *row = col + (((size_t)c * kh + ky) * kw + kx) * ld;
                    const real *run = buf + (kx % sw) * plen + kx / sw;
                    for (int oy = o0; oy < o1; oy++) {
                        const int y = oy * sh - ph + ky;
                        if (y >= 0 && y < H)
                            memcpy(row + (size_t)oy * OW, run + (size_t)(oy - o0) * rowlen,
                                   sizeof(real) * OW);
                        else
                            memset(row + (size_t)oy * OW, 0, sizeof(real) * OW);
                    }
                }
            }
    }
}

static void im2col(real *col, size_t ld, const real *in, int Cg, const sal_layer *L) {
    const int Wp = L->in_w + 2 * L->pw;
    if (L->sh == 1 && L->sw == 1 && L->out_w == L->in_w)
        im2col_same(col, ld, in, Cg, L);
    else if (Wp + L->sw <= SAL_IM2COL_BUF)
        im2col_phases(col, ld, in, Cg, L);
    else
        im2col_rows(col, ld, in, Cg, L);
}

/* din (Cg, H, W) += scatter of col (K, ld) holding output rows [oy0, oy1) (column
 * (oy - oy0)*OW + ox); the adjoint of im2col. The scatter of rows from 0 zeroes each
 * plane first, when it is about to be in cache anyway; later row ranges add to it.
 * Each element of din receives its terms in the same order, (ky, kx) lexicographic,
 * on every path below, so the sums are the same bits. */
static void col2im_rows(real *din, const real *col, size_t ld, int Cg, const sal_layer *L,
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

/* Stride 1, OW == W: im2col_same's adjoint, one contiguous add per (c, ky, kx) of the
 * row onto the shifted plane. The row's wrapped elements (columns outside [lo, hi),
 * which belong to no term) are first set to +0 in col, which is scratch: adding +0
 * leaves every sum's bits as they are, because no element of din is ever -0 (it
 * starts at +0, and x + y is -0 only when both are). */
static void col2im_same(real *din, real *col, size_t ld, int Cg, const sal_layer *L,
                        int oy0, int oy1) {
    const int H = L->in_h, W = L->in_w;
    for (int c = 0; c < Cg; c++) {
        real *plane = din + (size_t)c * H * W;
        if (oy0 == 0) memset(plane, 0, sizeof(real) * H * W);
        for (int ky = 0; ky < L->kh; ky++) {
            int a, b;
            valid_rows(L, ky, &a, &b);
            if (a < oy0) a = oy0;
            if (b > oy1) b = oy1;
            for (int kx = 0; kx < L->kw; kx++) {
                int lo, hi;
                valid_columns(L, kx, &lo, &hi);
                if (a >= b || lo >= hi) continue;
                /* Element (oy, ox) of this block is row[(oy - oy0)*W + ox]. */
                real *row = col + (((size_t)c * L->kh + ky) * L->kw + kx) * ld;
                for (int ox = 0; ox < lo; ox++)
                    for (int oy = a; oy < b; oy++) row[(size_t)(oy - oy0) * W + ox] = 0;
                for (int ox = hi; ox < W; ox++)
                    for (int oy = a; oy < b; oy++) row[(size_t)(oy - oy0) * W + ox] = 0;
                const size_t e0 = (size_t)(a - oy0) * W + lo, e1 = (size_t)(b - 1 - oy0) * W + hi;
                /* Element e of the block adds to plane element e + oy0*W + shift. */
                const ptrdiff_t shift = (ptrdiff_t)(oy0 + ky - L->ph) * W + (kx - L->pw);
                real *restrict dst = plane + ((ptrdiff_t)e0 + shift);
                const real *restrict src = row + e0;
                for (size_t e = 0; e < e1 - e0; e++) dst[e] += src[e];
            }
        }
    }
}

/* Any stride, padded rows of at most SAL_IM2COL_BUF elements: im2col_phases'
 * adjoint. For each ky and block of output rows, the din rows they touch are laid
 * out as phases, every kx's run is added there (contiguous adds), and the rows go
 * back: each din element still receives its terms one by one in (ky, kx) order, on
 * top of what it held, so the bits are those of the element loops. */
static void col2im_phases(real *din, const real *col, size_t ld, int Cg, const sal_layer *L,
                          int oy0, int oy1) {
    const int H = L->in_h, W = L->in_w, OW = L->out_w;
    const int sh = L->sh, sw = L->sw, kh = L->kh, kw = L->kw, ph = L->ph, pw = L->pw;
    const int plen = (W + 2 * pw + sw - 1) / sw;
    const int rowlen = sw * plen, block = SAL_IM2COL_BUF / rowlen;
    real buf[SAL_IM2COL_BUF];
    for (int c = 0; c < Cg; c++) {
        real *plane = din + (size_t)c * H * W;
        if (oy0 == 0) memset(plane, 0, sizeof(real) * H * W);
        for (int ky = 0; ky < kh; ky++) {
            int a, b;
            valid_rows(L, ky, &a, &b);
            if (a < oy0) a = oy0;
            if (b > oy1) b = oy1;
            for (int o0 = a; o0 < b; o0 += block) {
                const int o1 = b - o0 < block ? b : o0 + block;
                for (int oy = o0; oy < o1; oy++) {
                    phases_of_row(buf + (size_t)(oy - o0) * rowlen,
                                  plane + (size_t)(oy * sh - ph + ky) * W, W, sw, pw, plen);
                }
                for (int kx = 0; kx < kw; kx++) {
                    const real *row = col + (((size_t)c * kh + ky) * kw + kx) * ld;
                    for (int oy = o0; oy < o1; oy++) {
                        real *restrict run = buf + (size_t)(oy - o0) * rowlen +
                                             (kx % sw) * plen + kx / sw;
                        const real *restrict t = row + (size_t)(oy - oy0) * OW;
                        for (int ox = 0; ox < OW; ox++) run[ox] += t[ox];
                    }
                }
                for (int oy = o0; oy < o1; oy++) {
                    row_of_phases(plane + (size_t)(oy * sh - ph + ky) * W,
                                  buf + (size_t)(oy - o0) * rowlen, W, sw, pw, plen);
                }
            }
        }
    }
}

static void col2im(real *din, real *col, size_t ld, int Cg, const sal_layer *L, int oy0,
                   int oy1) {
    if (L->sh == 1 && L->sw == 1 && L->out_w == L->in_w)
        col2im_same(din, col, ld, Cg, L, oy0, oy1);
    else if (L->in_w + 2 * L->pw + L->sw <= SAL_IM2COL_BUF)
        col2im_phases(din, col, ld, Cg, L, oy0, oy1);
    else
        col2im_rows(din, col, ld, Cg, L, oy0, oy1);
}

/* ---- im2col and col2im on the rank's threads (issue 13, lever 4) -----------------
 * The copies of g images run as tasks of (image, chunk of channels) on par's loop:
 * each task writes its own rows of col (im2col) or its own planes of din (col2im),
 * and every element of din receives its terms in the same order within one task,
 * so the results are the same bits whatever the number of threads. */
#define SAL_COPY_TASKS 8 /* at least this many tasks per call, when channels allow */

typedef struct {
    real *col;        /* image j's block of columns at col + j*col_step        */
    size_t ld, col_step;
    real *din;        /* col2im: image j's planes at din + j*x_step            */
    const real *in;   /* im2col: image j's planes at in + j*x_step             */
    size_t x_step;
    int Cg, chunk, chunks;
    int oy0, oy1;     /* col2im: the output rows the block holds               */
    const sal_layer *L;
} copy_job;

static void copy_task(void *arg, int t) {
    const copy_job *k = arg;
    const sal_layer *L = k->L;
    const int j = t / k->chunks, c0 = t % k->chunks * k->chunk;
    const int cn = k->Cg - c0 < k->chunk ? k->Cg - c0 : k->chunk;
    const size_t kk = (size_t)L->kh * L->kw, plane = (size_t)L->in_h * L->in_w;
    real *col = k->col + j * k->col_step + c0 * kk * k->ld;
    if (k->in)
        im2col(col, k->ld, k->in + j * k->x_step + c0 * plane, cn, L);
    else
        col2im(k->din + j * k->x_step + c0 * plane, col, k->ld, cn, L, k->oy0, k->oy1);
}

/* Runs k's copies of gn images: on par as tasks when it has a loop, else whole
 * images one after another. */
static void copy_run(copy_job *k, int gn, const sal_par *par) {
    int chunks = 1;
    if (par && par->pfor) {
        chunks = (SAL_COPY_TASKS + gn - 1) / gn;
        if (chunks > k->Cg) chunks = k->Cg;
    }
    k->chunk = (k->Cg + chunks - 1) / chunks;
    k->chunks = (k->Cg + k->chunk - 1) / k->chunk;
    if (par && par->pfor && gn * k->chunks > 1)
        par->pfor(par->pool, gn * k->chunks, copy_task, k);
    else
        for (int t = 0; t < gn * k->chunks; t++) copy_task(k, t);
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
            const real *in = j->src + i * src_elems + (size_t)grp * Cg * P;
            R(gemm)(j->par, CblasNoTrans, CblasNoTrans, OCg, (int)P, Cg, W, Cg, in, (int)P,
                    0, out, (int)P);
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
            copy_job cj = {col, ld, P, NULL, in + i0 * in_elems + (size_t)grp * Cg * L->in_h * L->in_w,
                           in_elems, Cg, 0, 0, 0, 0, L};
            copy_run(&cj, gn, par);
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
                        copy_job cj = {dcol, cols, span,
                                       din + (i0 + j0) * in_elems + ((size_t)grp * Cg + c0) * plane,
                                       NULL, in_elems, cn, 0, 0, r0, r1, L};
                        copy_run(&cj, jn, par);
                    }
                }
            }
        }
    }
}
