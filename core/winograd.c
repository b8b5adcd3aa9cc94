/*
 * Winograd F(m x m, r x r) for the input gradient of stride-1 convolutions, float32
 * (issue 13, lever 1; winograd.h for the interface).
 *
 * The input gradient of a stride-1 convolution is a correlation of the output
 * gradient, zero-padded by r - 1 - pad on each side, with the kernel rotated by 180
 * degrees and its channel axes swapped:
 *   din[c][y][x] = sum_oc sum_k1,k2 wf[c][oc][k1][k2] dout[oc][y - pt + k1][x - pl + k2]
 * with wf[c][oc][k1][k2] = w[oc][c][r-1-k1][r-1-k2], pt = r-1-ph, pl = r-1-pw.
 * Cut din into m x m tiles; tile (ty, tx) reads the alpha x alpha patch d of each
 * dout plane at (ty*m - pt, tx*m - pl), alpha = m + r - 1, and Winograd's identity
 *   din tile = A^T [ sum_oc (G wf G^T) .* (B^T d B) ] A
 * turns the sum over oc into alpha^2 independent matrix products:
 *   U[xi] (C, OC)      = G wf G^T at xi, per (c, oc)    once per engine, in double
 *   V[xi] (OC, cols)   = B^T d B at xi, per (oc, tile)  per block of columns
 *   M[xi] (C, cols)    = U[xi] x V[xi]                  alpha^2 GEMMs (gemm_f32)
 *   din tile           = A^T M A                        per (c, tile)
 * where a column is one (sample, tile). That is alpha^2 / m^2 multiplications per
 * output element and (c, oc) pair instead of r^2: 2.25 instead of 9 for F(4x4, 3x3).
 *
 * The matrices come from Cook-Toom: for the 1-D linear convolution s = g * h, with
 * E_g, E_h the evaluation of g and h at the points (and the leading coefficient for
 * the point at infinity) and C the interpolation back to coefficients, s = C
 * [(E_g g) .* (E_h h)]; correlation is its transpose (y = T(g)^T d), so
 * A = E_h, G = E_g and B = C. The Lagrange denominators are moved from C into G, so
 * that B^T and A^T hold small integers (and powers of two), exact in float32; G's
 * fractions only touch the weights, in double.
 *
 * Blocks: the columns (all samples' tiles, sample-major, tiles row-major) are cut
 * into blocks of WINO_BLOCK_COLUMNS, so V and M of a block stay a few MB while each
 * GEMM is wide enough to run near sgemm's speed. The transforms work on WINO_LANES
 * columns at once, lane by lane, in loops the compiler vectorizes.
 *
 * Each element of din is computed by the same operations whatever the thread count
 * (the GEMMs through gemm_f32, transforms split by channel); like the direct path,
 * the last bits may depend on where a column falls in a GEMM, i.e. on the batch.
 */
#include <math.h>
#include <string.h>

#include "winograd.h"

/* Columns per block (multiple of WINO_LANES): measured on the AlexNet layers. */
#define WINO_BLOCK_COLUMNS 512
#define WINO_LANES 16
/* Largest alpha wino_choose_m picks per r (0: none, the layer stays direct). The
 * error grows fast with alpha. Per layer (test_winograd --bench on AlexNet, max
 * error over the largest sum of |terms| in a plane): direct 3e-8, F(2x2, 3x3)
 * 4e-8, F(3x3, 3x3) 3e-7, F(4x4, 3x3) 1e-6, F(6x6, 3x3) 1.4e-6, F(2x2, 5x5) 4e-7,
 * F(4x4, 5x5) 5e-7. In AlexNet's reference maps (relative L2 against float64 under
 * the same decisions, fc3:540 vanilla; PyTorch float32 3.8e-7, direct 4.0e-7):
 * F(2x2, 3x3) 5.8e-7, adding F(2x2, 5x5) for conv2 1.5e-6, F(3x3, 3x3) 2.1e-6,
 * F(4x4, 3x3) with F(2x2, 5x5) 4.1e-6. Only F(2x2, 3x3) keeps the maps within a
 * factor 1.5 of the direct path's error (docs/performance.md, "Winograd"). */
#define WINO_MAX_ALPHA_R3 4
#define WINO_MAX_ALPHA_R5 0

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WINO_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WINO_CLONES
#endif

/* ---- the matrices ------------------------------------------------------------------ */

static const double wino_points[WINO_MAX_ALPHA - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};

/* coef[0..deg] of prod over the first np points except `skip` (-1: none) of (x - p). */
static int poly_from_roots(double *coef, int np, int skip) {
    int deg = 0;
    coef[0] = 1;
    for (int j = 0; j < np; j++) {
        if (j == skip) continue;
        coef[deg + 1] = 0;
        for (int k = deg + 1; k >= 1; k--) coef[k] = coef[k - 1] - wino_points[j] * coef[k];
        coef[0] *= -wino_points[j];
        deg++;
    }
    return deg;
}

int wino_plan_init(wino_plan *p, int m, int r) {
    const int n = m + r - 1, np = n - 1;
    if (m < 1 || r < 2 || n > WINO_MAX_ALPHA) return -1;
    memset(p, 0, sizeof *p);
    p->m = m, p->r = r, p->alpha = n;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < np; j++) p->AT[i * n + j] = (float)pow(wino_points[j], i);
        p->AT[i * n + np] = i == m - 1;
    }
    for (int j = 0; j < np; j++) {
        double f = 1;
        for (int l = 0; l < np; l++)
            if (l != j) f *= wino_points[j] - wino_points[l];
        for (int k = 0; k < r; k++) p->G[j * r + k] = pow(wino_points[j], k) / f;
    }
    for (int k = 0; k < r; k++) p->G[np * r + k] = k == r - 1;
    double coef[WINO_MAX_ALPHA + 1];
    for (int j = 0; j <= np; j++) {
        int deg = poly_from_roots(coef, np, j < np ? j : -1);
        for (int l = 0; l <= deg; l++) p->BT[j * n + l] = (float)coef[l];
    }
    return 0;
}

double wino_plan_identity_error(const wino_plan *p) {
    const int n = p->alpha;
    double worst = 0;
    for (int i = 0; i < p->m; i++)
        for (int k = 0; k < p->r; k++)
            for (int l = 0; l < n; l++) {
                double s = 0;
                for (int j = 0; j < n; j++)
                    s += (double)p->AT[i * n + j] * p->G[j * p->r + k] * p->BT[j * n + l];
                s -= l == i + k;
                if (fabs(s) > worst) worst = fabs(s);
            }
    return worst;
}

/* ---- layer geometry ---------------------------------------------------------------- */

int wino_eligible(const sal_layer *L) {
    const int r = L->kh;
    return L->kind == SAL_LAYER_CONV && (r == 3 || r == 5) && L->kw == r && L->sh == 1 &&
           L->sw == 1 && L->groups == 1 && L->ph >= 0 && L->ph <= r - 1 && L->pw >= 0 &&
           L->pw <= r - 1 && L->in_h == L->out_h + r - 1 - 2 * L->ph &&
           L->in_w == L->out_w + r - 1 - 2 * L->pw;
}

/* The m with the fewest GEMM multiplications per (c, oc) pair, alpha^2 per tile
 * (partial tiles at the plane's edges count whole), within the alpha allowed for r;
 * on a tie the smaller m, whose error is smaller. 0 when none is allowed. */
int wino_choose_m(const sal_layer *L) {
    const int r = L->kh, top = r == 3 ? WINO_MAX_ALPHA_R3 : WINO_MAX_ALPHA_R5;
    int best = 0;
    double best_cost = 0;
    for (int m = 2; m + r - 1 <= top; m++) {
        const int a = m + r - 1;
        const double tiles = (double)((L->in_h + m - 1) / m) * ((L->in_w + m - 1) / m);
        const double cost = tiles * a * a;
        if (!best || cost < best_cost) best = m, best_cost = cost;
    }
    return best;
}

size_t wino_weights_elems(const sal_layer *L, const wino_plan *p) {
    return (size_t)p->alpha * p->alpha * L->in_c * L->out_c;
}

void wino_transform_weights(float *U, const float *weight, const sal_layer *L,
                            const wino_plan *p) {
    const int r = p->r, n = p->alpha, C = L->in_c, OC = L->out_c;
    const size_t mat = (size_t)C * OC;
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < C; c++) {
            const float *g = weight + ((size_t)oc * C + c) * r * r;
            double wf[WINO_MAX_ALPHA * WINO_MAX_ALPHA], t[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
            for (int k1 = 0; k1 < r; k1++)
                for (int k2 = 0; k2 < r; k2++)
                    wf[k1 * r + k2] = g[(r - 1 - k1) * r + (r - 1 - k2)];
            for (int u = 0; u < n; u++) /* t = G wf */
                for (int k2 = 0; k2 < r; k2++) {
                    double s = 0;
                    for (int k1 = 0; k1 < r; k1++) s += p->G[u * r + k1] * wf[k1 * r + k2];
                    t[u * r + k2] = s;
                }
            for (int u = 0; u < n; u++) /* U = t G^T */
                for (int v = 0; v < n; v++) {
                    double s = 0;
                    for (int k2 = 0; k2 < r; k2++) s += t[u * r + k2] * p->G[v * r + k2];
                    U[(size_t)(u * n + v) * mat + (size_t)c * OC + oc] = (float)s;
                }
        }
}

/* ---- the backward pass ------------------------------------------------------------- */

/* A block's columns: sample, and the tile's top-left corner in din. */
typedef struct {
    int img, y, x;
} wino_col;

size_t wino_scratch_elems(const sal_layer *L, const wino_plan *p) {
    const size_t cols = WINO_BLOCK_COLUMNS;
    const size_t info = (sizeof(wino_col) * cols + sizeof(float) - 1) / sizeof(float);
    return (size_t)p->alpha * p->alpha * (L->in_c + L->out_c) * cols + info + 16;
}

typedef struct {
    const wino_plan *p;
    const sal_layer *L;
    const float *dout;  /* input transform: (n, OC, OH, OW)   */
    float *din;         /* output transform: (n, C, H, W)      */
    float *V, *M;       /* (alpha^2, OC, nb), (alpha^2, C, nb) */
    const wino_col *col;
    int nb, parts, rows; /* block columns; channels split into parts of rows */
} wino_job;

/* V[.][oc][g0 + l] = B^T d B for the lanes' patches d of plane oc. A is alpha, a
 * constant in each caller (wino_in_rows), so the small loops unroll. */
static inline __attribute__((always_inline)) void wino_in_lanes(const wino_job *j, int oc,
                                                                int g0, int nl, const int A) {
    const wino_plan *p = j->p;
    const sal_layer *L = j->L;
    const int OH = L->out_h, OW = L->out_w, nb = j->nb;
    const int pt = p->r - 1 - L->ph, pl = p->r - 1 - L->pw;
    const size_t plane = (size_t)OH * OW, per = (size_t)L->out_c * plane;
    float d[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
    float t[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
    for (int l = 0; l < WINO_LANES; l++) {
        if (l >= nl) {
            for (int a = 0; a < A; a++)
                for (int b = 0; b < A; b++) d[a][b][l] = 0;
            continue;
        }
        const wino_col *c = &j->col[g0 + l];
        const int y0 = c->y - pt, x0 = c->x - pl;
        const float *src = j->dout + c->img * per + oc * plane;
        if (y0 >= 0 && x0 >= 0 && y0 + A <= OH && x0 + A <= OW) {
            for (int a = 0; a < A; a++)
                for (int b = 0; b < A; b++) d[a][b][l] = src[(size_t)(y0 + a) * OW + x0 + b];
        } else {
            for (int a = 0; a < A; a++)
                for (int b = 0; b < A; b++) {
                    const int y = y0 + a, x = x0 + b;
                    d[a][b][l] =
                        y >= 0 && y < OH && x >= 0 && x < OW ? src[(size_t)y * OW + x] : 0;
                }
        }
    }
    for (int a = 0; a < A; a++) /* t = d B */
        for (int v = 0; v < A; v++) {
            float s[WINO_LANES] = {0};
            for (int b = 0; b < A; b++) {
                const float k = p->BT[v * A + b];
                if (k == 0) continue;
                for (int l = 0; l < WINO_LANES; l++) s[l] += k * d[a][b][l];
            }
            for (int l = 0; l < WINO_LANES; l++) t[a][v][l] = s[l];
        }
    const size_t stride = (size_t)L->out_c * nb;
    float *dst = j->V + (size_t)oc * nb + g0;
    for (int u = 0; u < A; u++) /* V = B^T t */
        for (int v = 0; v < A; v++) {
            float s[WINO_LANES] = {0};
            for (int a = 0; a < A; a++) {
                const float k = p->BT[u * A + a];
                if (k == 0) continue;
                for (int l = 0; l < WINO_LANES; l++) s[l] += k * t[a][v][l];
            }
            float *o = dst + (size_t)(u * A + v) * stride;
            for (int l = 0; l < nl; l++) o[l] = s[l];
        }
}

/* din tiles = A^T M A for the lanes' columns of channel c. */
static inline __attribute__((always_inline)) void wino_out_lanes(const wino_job *j, int c,
                                                                 int g0, int nl, const int A) {
    const wino_plan *p = j->p;
    const sal_layer *L = j->L;
    const int H = L->in_h, W = L->in_w, m = p->m, nb = j->nb;
    const size_t plane = (size_t)H * W, per = (size_t)L->in_c * plane;
    const size_t stride = (size_t)L->in_c * nb;
    const float *src = j->M + (size_t)c * nb + g0;
    float mm[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
    float t[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
    for (int u = 0; u < A; u++)
        for (int v = 0; v < A; v++) {
            const float *s = src + (size_t)(u * A + v) * stride;
            for (int l = 0; l < WINO_LANES; l++) mm[u][v][l] = l < nl ? s[l] : 0;
        }
    for (int i = 0; i < m; i++) /* t = A^T mm */
        for (int v = 0; v < A; v++) {
            float s[WINO_LANES] = {0};
            for (int u = 0; u < A; u++) {
                const float k = p->AT[i * A + u];
                if (k == 0) continue;
                for (int l = 0; l < WINO_LANES; l++) s[l] += k * mm[u][v][l];
            }
            for (int l = 0; l < WINO_LANES; l++) t[i][v][l] = s[l];
        }
    for (int i = 0; i < m; i++) /* y = t A, written straight to din */
        for (int jj = 0; jj < m; jj++) {
            float s[WINO_LANES] = {0};
            for (int v = 0; v < A; v++) {
                const float k = p->AT[jj * A + v];
                if (k == 0) continue;
                for (int l = 0; l < WINO_LANES; l++) s[l] += k * t[i][v][l];
            }
            for (int l = 0; l < nl; l++) {
                const wino_col *cl = &j->col[g0 + l];
                const int y = cl->y + i, x = cl->x + jj;
                if (y < H && x < W) j->din[cl->img * per + c * plane + (size_t)y * W + x] = s[l];
            }
        }
}

/* Rows (channels) [part*rows, ...) of the input (forward = 1) or output transform. */
#define WINO_ROWS_BODY(A)                                                                \
    for (int ch = c0; ch < c1; ch++)                                                     \
        for (int g0 = 0; g0 < j->nb; g0 += WINO_LANES) {                                 \
            const int nl = j->nb - g0 < WINO_LANES ? j->nb - g0 : WINO_LANES;            \
            if (forward)                                                                 \
                wino_in_lanes(j, ch, g0, nl, A);                                         \
            else                                                                         \
                wino_out_lanes(j, ch, g0, nl, A);                                        \
        }

WINO_CLONES
static void wino_rows(const wino_job *j, int part, int forward) {
    const int total = forward ? j->L->out_c : j->L->in_c;
    const int c0 = part * j->rows, c1 = c0 + j->rows < total ? c0 + j->rows : total;
    switch (j->p->alpha) {
    case 4: WINO_ROWS_BODY(4) break;
    case 5: WINO_ROWS_BODY(5) break;
    case 6: WINO_ROWS_BODY(6) break;
    case 7: WINO_ROWS_BODY(7) break;
    default: WINO_ROWS_BODY(8) break;
    }
}

static void wino_in_part(void *arg, int part) { wino_rows(arg, part, 1); }
static void wino_out_part(void *arg, int part) { wino_rows(arg, part, 0); }

/* Runs body over `total` channels, in parts of at least 8 channels, on par->pfor. */
static void wino_for(wino_job *j, const sal_par *par, int total, void (*body)(void *, int)) {
    j->parts = total / 8 < 32 ? (total + 7) / 8 : 32;
    j->rows = (total + j->parts - 1) / j->parts;
    j->parts = (total + j->rows - 1) / j->rows;
    if (par && par->pfor && j->parts > 1)
        par->pfor(par->pool, j->parts, body, j);
    else
        for (int i = 0; i < j->parts; i++) body(j, i);
}

void wino_conv_backward(float *din, const float *dout, int n, const float *U,
                        const wino_plan *p, const sal_layer *L, float *scratch,
                        const sal_par *par) {
    const int m = p->m, A = p->alpha, C = L->in_c, OC = L->out_c;
    const int TY = (L->in_h + m - 1) / m, TX = (L->in_w + m - 1) / m, T = TY * TX;
    const long long total = (long long)n * T;
    float *V = scratch, *M = V + (size_t)A * A * OC * WINO_BLOCK_COLUMNS;
    wino_col *col = (wino_col *)(((uintptr_t)(M + (size_t)A * A * C * WINO_BLOCK_COLUMNS) +
                                  15) & ~(uintptr_t)15);
    for (long long b0 = 0; b0 < total; b0 += WINO_BLOCK_COLUMNS) {
        const int nb = total - b0 < WINO_BLOCK_COLUMNS ? (int)(total - b0) : WINO_BLOCK_COLUMNS;
        for (int k = 0; k < nb; k++) {
            const long long q = b0 + k;
            const int img = (int)(q / T), t = (int)(q % T);
            col[k].img = img, col[k].y = t / TX * m, col[k].x = t % TX * m;
        }
        wino_job j = {p, L, dout, din, V, M, col, nb, 0, 0};
        wino_for(&j, par, OC, wino_in_part);
        for (int xi = 0; xi < A * A; xi++)
            gemm_f32(par, CblasNoTrans, CblasNoTrans, C, nb, OC, U + (size_t)xi * C * OC, OC,
                     V + (size_t)xi * OC * nb, nb, 0, M + (size_t)xi * C * nb, nb);
        wino_for(&j, par, C, wino_out_part);
    }
}
