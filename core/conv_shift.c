/*
 * Stride-1 "same" convolutions (kh = 2ph+1, kw = 2pw+1, so OH = H, OW = W) with the
 * kernel's rows as shifts instead of im2col rows (issue 13, lever 3): kh GEMMs, one
 * per kernel row ky, on views of vertically padded planes shifted by ky rows, so
 * that the copies are kw per element instead of kh*kw. Per convolution group, with
 * V = g*H*W columns (g images side by side):
 *
 *   forward   buf (Cg*kw, .): row (c, kx) = plane c shifted by kx - pw columns
 *             y (OCg, V) = sum_ky Wf[ky] (OCg, Cg*kw) x buf shifted by ky rows
 *   backward  buf (OCg, .)  = the dout planes
 *             z (Cg*kw, V) = sum_ky Wb[ky] (Cg*kw, OCg) x buf shifted by 2ph - ky rows
 *             din (c) = sum_kx of z's row (c, kx) shifted by pw - kx columns
 *
 * The buffer's planes are padded vertically only, and share their zero rows: ph
 * zero rows, image 0's H rows, ph zero rows, image 1's, ..., ph zero rows (a
 * plane's bottom padding is the next one's top padding). Image j's row y is buffer
 * row ph + j*(H + ph) + y; the product for ky reads, for output row oy of image j,
 * buffer row j*(H + ph) + oy + ky, one contiguous view per image of H*W columns.
 *
 * Measured against conv.c's im2col + GEMM on AlexNet (docs/performance.md, "5x5
 * convolutions"): conv2 (5x5) 7% less CPU forward and 3% less backward; the 3x3
 * layers at parity, so only kernels of 5 or more rows take this path (net.c). The
 * form with every (ky, kx) as a shift of horizontally padded planes (no copies at
 * all, kh*kw GEMMs with K = Cg) was 10-17% slower: it computes the padding's columns
 * too, 15% more work on 27x27 planes.
 *
 * The GEMMs run over fixed blocks of the V columns, every ky's product of one block
 * before the next block, so that block of y or z stays in cache while its kh terms
 * are added (beta = 1). A block crossing an image boundary is one call per image.
 * The blocks' boundaries depend on V only and each is a sequence of single-threaded
 * BLAS calls, so results do not depend on the thread count (par runs whole blocks).
 * Each output element is a sum over ky, in order, of K = Cg*kw (or OCg) long
 * products: another rounding order than im2col's one K = Cg*kh*kw product, of
 * the same size (measured: the same error against double).
 */
#include <string.h>

#include "layers.h"

/* Columns per block: a block of y or z (at most ~320 rows for AlexNet conv2) stays
 * in L2 across the kh products; 256, 512 and 1024 measured within noise. */
#define SAL_SHIFT_BLOCK_COLUMNS 512
/* The number of blocks, when more than one, is a multiple of this (as gemm.c). */
#define SAL_SHIFT_BLOCK_MULTIPLE 4
#define SAL_SHIFT_BLOCK_ALIGN 16

/* buf (ch*nk, frame) for gn images' planes (H, W), image j's plane c at src + j*step
 * + c*H*W: row (c, k) is the padded layout above of the plane shifted by s0 + k
 * columns (element x holds x + s0 + k, zero where outside). Writes every element. */
static void fill_rows(real *buf, size_t frame, const real *src, size_t step, int ch, int nk,
                      int s0, int gn, const sal_layer *L) {
    const int H = L->in_h, W = L->in_w, ph = L->ph;
    for (int c = 0; c < ch; c++)
        for (int k = 0; k < nk; k++) {
            real *row = buf + ((size_t)c * nk + k) * frame;
            const int s = s0 + k, lo = s < 0 ? -s : 0, hi = s > 0 ? W - s : W;
            memset(row, 0, sizeof(real) * ph * W);
            row += (size_t)ph * W;
            for (int j = 0; j < gn; j++) {
                const real *plane = src + j * step + (size_t)c * H * W;
                for (int y = 0; y < H; y++, row += W) {
                    if (hi <= lo) {
                        memset(row, 0, sizeof(real) * W);
                        continue;
                    }
                    for (int x = 0; x < lo; x++) row[x] = 0;
                    memcpy(row + lo, plane + (size_t)y * W + lo + s, sizeof(real) * (hi - lo));
                    for (int x = hi; x < W; x++) row[x] = 0;
                }
                memset(row, 0, sizeof(real) * ph * W);
                row += (size_t)ph * W;
            }
        }
}

typedef struct {
    real *y;          /* (M, V)                                              */
    const real *buf;  /* (K, frame)                                          */
    const real *Wt;   /* (kh, M, K)                                          */
    int M, K, forward, blocks;
    size_t P, S, frame, V; /* P = H*W, S = (H + ph)*W buffer columns per image */
    const sal_layer *L;
} shift_job;

static size_t block_start(const shift_job *j, int i) {
    if (i >= j->blocks) return j->V;
    size_t c = (size_t)i * j->V / j->blocks;
    return c / SAL_SHIFT_BLOCK_ALIGN * SAL_SHIFT_BLOCK_ALIGN;
}

static void shift_block(void *arg, int i) {
    const shift_job *j = arg;
    const sal_layer *L = j->L;
    const size_t v0 = block_start(j, i), v1 = block_start(j, i + 1);
    for (int ky = 0; ky < L->kh; ky++) {
        const size_t off = (size_t)(j->forward ? ky : 2 * L->ph - ky) * L->in_w;
        const real *A = j->Wt + (size_t)ky * j->M * j->K;
        for (size_t v = v0; v < v1;) {
            const size_t img = v / j->P, e = (img + 1) * j->P < v1 ? (img + 1) * j->P : v1;
            cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->M, (int)(e - v), j->K, 1,
                       A, j->K, j->buf + img * j->S + (v - img * j->P) + off, (int)j->frame,
                       ky ? 1 : 0, j->y + v, (int)j->V);
            v = e;
        }
    }
}

static void shift_products(shift_job *j, const sal_par *par) {
    int blocks = (int)((j->V + SAL_SHIFT_BLOCK_COLUMNS / 2) / SAL_SHIFT_BLOCK_COLUMNS);
    if (blocks > 1)
        blocks = (blocks + SAL_SHIFT_BLOCK_MULTIPLE - 1) / SAL_SHIFT_BLOCK_MULTIPLE *
                 SAL_SHIFT_BLOCK_MULTIPLE;
    else
        blocks = 1;
    j->blocks = blocks;
    if (par && par->pfor && blocks > 1)
        par->pfor(par->pool, blocks, shift_block, j);
    else
        for (int i = 0; i < blocks; i++) shift_block(j, i);
}

void R(conv_shift_forward)(real *out, const real *in, int n, const real *weight,
                           const real *bias, const sal_layer *L, real *scratch, int g,
                           const sal_par *par) {
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G, kh = L->kh, kw = L->kw;
    const int H = L->in_h, W = L->in_w, ph = L->ph;
    const size_t P = (size_t)H * W, in_elems = (size_t)L->in_c * P, out_elems = L->out_c * P;
    for (int i0 = 0; i0 < n; i0 += g) {
        const int gn = n - i0 < g ? n - i0 : g;
        const size_t frame = (size_t)(ph + gn * (H + ph)) * W;
        real *Wt = scratch, *buf = Wt + (size_t)kh * kw * Cg * OCg;
        real *y = buf + (size_t)Cg * kw * frame;
        for (int grp = 0; grp < G; grp++) {
            const real *w = weight + (size_t)grp * OCg * Cg * kh * kw;
            /* Wf (kh, OCg, Cg*kw) */
            for (int ky = 0; ky < kh; ky++)
                for (int oc = 0; oc < OCg; oc++)
                    for (int c = 0; c < Cg; c++)
                        for (int kx = 0; kx < kw; kx++)
                            Wt[(((size_t)ky * OCg + oc) * Cg + c) * kw + kx] =
                                w[(((size_t)oc * Cg + c) * kh + ky) * kw + kx];
            fill_rows(buf, frame, in + i0 * in_elems + (size_t)grp * Cg * P, in_elems, Cg, kw,
                      -L->pw, gn, L);
            shift_job j = {y, buf, Wt, OCg, Cg * kw, 1, 0, P, (size_t)(H + ph) * W, frame,
                           gn * P, L};
            shift_products(&j, par);
            for (int k = 0; k < gn; k++)
                for (int oc = 0; oc < OCg; oc++) {
                    real *dst = out + (i0 + k) * out_elems + ((size_t)grp * OCg + oc) * P;
                    const real *src = y + oc * j.V + k * P, b = bias[grp * OCg + oc];
                    for (size_t p = 0; p < P; p++) dst[p] = src[p] + b;
                }
        }
    }
}

void R(conv_shift_backward)(real *din, const real *dout, int n, const real *weight,
                            const sal_layer *L, real *scratch, int g, const sal_par *par) {
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G, kh = L->kh, kw = L->kw;
    const int H = L->in_h, W = L->in_w, ph = L->ph, pw = L->pw;
    const size_t P = (size_t)H * W, in_elems = (size_t)L->in_c * P, out_elems = L->out_c * P;
    for (int i0 = 0; i0 < n; i0 += g) {
        const int gn = n - i0 < g ? n - i0 : g;
        const size_t frame = (size_t)(ph + gn * (H + ph)) * W;
        real *Wt = scratch, *buf = Wt + (size_t)kh * kw * Cg * OCg;
        real *z = buf + (size_t)OCg * frame;
        for (int grp = 0; grp < G; grp++) {
            const real *w = weight + (size_t)grp * OCg * Cg * kh * kw;
            /* Wb (kh, Cg*kw, OCg) */
            for (int ky = 0; ky < kh; ky++)
                for (int c = 0; c < Cg; c++)
                    for (int kx = 0; kx < kw; kx++)
                        for (int oc = 0; oc < OCg; oc++)
                            Wt[(((size_t)ky * Cg + c) * kw + kx) * OCg + oc] =
                                w[(((size_t)oc * Cg + c) * kh + ky) * kw + kx];
            fill_rows(buf, frame, dout + i0 * out_elems + (size_t)grp * OCg * P, out_elems, OCg,
                      1, 0, gn, L);
            shift_job j = {z, buf, Wt, Cg * kw, OCg, 0, 0, P, (size_t)(H + ph) * W, frame,
                           gn * P, L};
            shift_products(&j, par);
            /* din (y, x) = sum over kx of z (c, kx) at (y, x + pw - kx), kx in order. */
            for (int k = 0; k < gn; k++)
                for (int c = 0; c < Cg; c++) {
                    real *dst = din + (i0 + k) * in_elems + ((size_t)grp * Cg + c) * P;
                    memset(dst, 0, sizeof(real) * P);
                    for (int kx = 0; kx < kw; kx++) {
                        const int s = pw - kx, lo = s < 0 ? -s : 0, hi = s > 0 ? W - s : W;
                        const real *zr = z + ((size_t)c * kw + kx) * j.V + k * P;
                        for (int yy = 0; yy < H; yy++) {
                            real *restrict d = dst + (size_t)yy * W;
                            const real *restrict zz = zr + (size_t)yy * W + s;
                            for (int x = lo; x < hi; x++) d[x] += zz[x];
                        }
                    }
                }
        }
    }
}
