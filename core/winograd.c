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
 *   M[xi] (C, cols)    = U[xi] x V[xi]                  alpha^2 GEMMs (BLAS)
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
 * (each GEMM one BLAS call over the whole block, the alpha^2 GEMMs spread over the
 * threads; transforms split by channel); like the direct path,
 * the last bits may depend on where a column falls in a GEMM, i.e. on the batch.
 */
#include <math.h>
#include <string.h>

#include "winograd.h"

/* Columns per block (multiple of WINO_LANES): measured on the AlexNet layers. */
#ifndef WINO_BLOCK_COLUMNS
#define WINO_BLOCK_COLUMNS 512
#endif
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
/* convolution = "fastest" (wino_choose_m's `all`) also takes 5x5 kernels by
 * F(2x2, 5x5): conv2's maps then move from about 4e-7 to 1.5e-6 (above), the price
 * of 2.6x fewer multiplications on AlexNet's largest layer. */
#define WINO_ALL_ALPHA_R5 6

#if defined(__GNUC__) && !defined(__clang__)
#define WINO_UNROLL _Pragma("GCC unroll 8")
#else
#define WINO_UNROLL
#endif

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

#define WINO_MIN_IN_C 32

int wino_worth(const sal_layer *L) { return L->in_c >= WINO_MIN_IN_C; }

/* The m with the fewest GEMM multiplications per (c, oc) pair, alpha^2 per tile
 * (partial tiles at the plane's edges count whole), within the alpha allowed for r;
 * on a tie the smaller m, whose error is smaller. 0 when none is allowed. */
int wino_choose_m(const sal_layer *L, int all) {
    const int r = L->kh,
              top = r == 3 ? WINO_MAX_ALPHA_R3 : all ? WINO_ALL_ALPHA_R5 : WINO_MAX_ALPHA_R5;
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

/* U[xi] = G k G^T at position xi for every kernel k of the weights, in double,
 * rounded once: the backward's k is w[oc][c] rotated by 180 degrees, stored at
 * (c, oc); the forward's is w[oc][c] itself, stored at (oc, c). */
static void transform(float *U, const float *weight, const sal_layer *L, const wino_plan *p,
                      int forward, int o0, int o1) {
    const int r = p->r, n = p->alpha, C = L->in_c, OC = L->out_c;
    const size_t mat = (size_t)C * OC;
    /* in the order U is stored, so that each of its alpha^2 matrices is written
     * sequentially (the other order costs a cache miss per element and xi) */
    const int inner = forward ? C : OC;
    for (int o = o0; o < o1; o++)
        for (int i = 0; i < inner; i++) {
            const int oc = forward ? o : i, c = forward ? i : o;
            const float *g = weight + ((size_t)oc * C + c) * r * r;
            double wf[WINO_MAX_ALPHA * WINO_MAX_ALPHA], t[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
            for (int k1 = 0; k1 < r; k1++)
                for (int k2 = 0; k2 < r; k2++)
                    wf[k1 * r + k2] = forward ? g[k1 * r + k2]
                                              : g[(r - 1 - k1) * r + (r - 1 - k2)];
            for (int u = 0; u < n; u++) /* t = G wf */
                for (int k2 = 0; k2 < r; k2++) {
                    double s = 0;
                    for (int k1 = 0; k1 < r; k1++) s += p->G[u * r + k1] * wf[k1 * r + k2];
                    t[u * r + k2] = s;
                }
            const size_t at = forward ? (size_t)oc * C + c : (size_t)c * OC + oc;
            for (int u = 0; u < n; u++) /* U = t G^T */
                for (int v = 0; v < n; v++) {
                    double s = 0;
                    for (int k2 = 0; k2 < r; k2++) s += t[u * r + k2] * p->G[v * r + k2];
                    U[(size_t)(u * n + v) * mat + at] = (float)s;
                }
        }
}

void wino_transform_weights(float *U, const float *weight, const sal_layer *L,
                            const wino_plan *p) {
    transform(U, weight, L, p, 0, 0, L->in_c);
}

void wino_transform_weights_forward(float *Uf, const float *weight, const sal_layer *L,
                                    const wino_plan *p) {
    transform(Uf, weight, L, p, 1, 0, L->out_c);
}

void wino_transform_weights_rows(float *U, const float *weight, const sal_layer *L,
                                 const wino_plan *p, int forward, int o0, int o1) {
    transform(U, weight, L, p, forward, o0, o1);
}

/* ---- the passes ------------------------------------------------------------- */

/* Per part (a range of channels on one thread), the staging the transforms use: Q
 * holds one sample's src patches of a run of tiles, R one run's dst tiles (below). */
#define WINO_MAX_PARTS 32

/* Q's and R's elements for tiles TX wide (the larger of the two directions' dst). */
static size_t wino_part_elems(const wino_plan *p, int TX) {
    const size_t m = p->m, QA = (p->alpha + m - 1) / m;
    const size_t q = m * m * QA * (WINO_BLOCK_COLUMNS + (2 + QA) * (size_t)TX) + WINO_LANES;
    const size_t r = m * m * (WINO_BLOCK_COLUMNS + WINO_LANES);
    return q + r;
}

static int wino_max_tx(const sal_layer *L, const wino_plan *p) {
    const int w = L->in_w > L->out_w ? L->in_w : L->out_w;
    return (w + p->m - 1) / p->m;
}

size_t wino_scratch_elems(const sal_layer *L, const wino_plan *p) {
    const size_t cols = WINO_BLOCK_COLUMNS;
    return (size_t)p->alpha * p->alpha * (L->in_c + L->out_c) * cols +
           WINO_LANES + WINO_MAX_PARTS * wino_part_elems(p, wino_max_tx(L, p)) + 16;
}

/* The correlation a job computes: dst (D, DH, DW) per sample from src (S, SH, SW)
 * per sample, a dst tile at (y, x) reading the src patch at (y - pt, x - pl). The
 * backward: src = dout, dst = din; the forward: src = in, dst = out. */
typedef struct {
    int S, SH, SW, D, DH, DW, pt, pl;
} wino_geom;

typedef struct {
    const wino_plan *p;
    wino_geom g;
    const float *src;   /* input transform: (n, S, SH, SW)     */
    float *dst;         /* output transform: (n, D, DH, DW)    */
    const float *bias;  /* (D) added by the output transform, or NULL */
    float *V, *M;       /* (alpha^2, S, nb), (alpha^2, D, nb)  */
    float *stage;       /* WINO_MAX_PARTS x wino_part_elems     */
    size_t part_elems;
    long long b0;       /* the block's first column (sample-major, tiles row-major) */
    int T, TX;          /* tiles per sample and per row of dst */
    int nb, parts, rows; /* block columns; channels split into parts of rows */
} wino_job;

/* The block's columns fall into runs of one sample's consecutive tiles; fn(j, ch,
 * img, t0, t1, k0, ...) handles the run of tiles [t0, t1) of sample img, columns
 * k0... of the block. */
#define WINO_RUNS(fn, ...)                                                               \
    for (int k0 = 0; k0 < j->nb;) {                                                      \
        const long long q = j->b0 + k0;                                                  \
        const int img = (int)(q / j->T), t0 = (int)(q % j->T);                           \
        const int t1 = j->T - t0 < j->nb - k0 ? j->T : t0 + (j->nb - k0);                \
        fn(j, ch, img, t0, t1, k0, __VA_ARGS__);                                         \
        k0 += t1 - t0;                                                                   \
    }

/* V[.][ch][k0 + ...] = B^T d B for the patches d of src plane ch of tiles [t0, t1) of
 * sample img. The patches' element (a, b) of consecutive tiles is made contiguous
 * first: with a = m qa + ra, b = m qb + rb, the element of tile (ty, tx) is
 *   src(m (ty + qa) + ra - pt, m (tx + qb) + rb - pl) = Q[ra][rb][qb][ty + qa][tx],
 * so it sits qa rows of TX after tile t's own position in the plane Q[ra][rb][qb].
 * A and m are constants in each caller (wino_rows), so the small loops unroll and
 * the lanes become vectors. */
static inline __attribute__((always_inline)) void wino_in_run(const wino_job *j, int ch,
                                                              int img, int t0, int t1,
                                                              int k0, float *Q, const int A,
                                                              const int m, const float *BT) {
    const wino_geom *g = &j->g;
    const int TX = j->TX, QA = (A + m - 1) / m, ty0 = t0 / TX, ty1 = (t1 - 1) / TX;
    const int rows = ty1 - ty0 + QA;
    const size_t qplane = (size_t)rows * TX;
    const float *src = j->src + ((size_t)img * g->S + ch) * g->SH * g->SW;
    /* Row by row of src (Y, then ra), so that it is read in order. */
    for (int Y = 0; Y < rows; Y++)
        for (int ra = 0; ra < m; ra++) {
            const int y = m * (ty0 + Y) + ra - g->pt;
            for (int rb = 0; rb < m; rb++)
                for (int qb = 0; qb < QA; qb++) {
                    float *q = Q + (size_t)((ra * m + rb) * QA + qb) * qplane + (size_t)Y * TX;
                    if (y < 0 || y >= g->SH) {
                        memset(q, 0, sizeof(float) * TX);
                        continue;
                    }
                    /* q[X] = src(y, m X + o) where 0 <= m X + o < SW, else 0 */
                    const int o = m * qb + rb - g->pl;
                    const int lo = o >= 0 ? 0 : (-o + m - 1) / m;
                    int hi = g->SW - o <= 0 ? 0 : (g->SW - o + m - 1) / m;
                    if (hi > TX) hi = TX;
                    if (hi < lo) hi = lo;
                    const float *sr = src + (size_t)y * g->SW + o;
                    for (int X = 0; X < lo; X++) q[X] = 0;
                    for (int X = lo; X < hi; X++) q[X] = sr[m * X];
                    for (int X = hi; X < TX; X++) q[X] = 0;
                }
        }
    memset(Q + (size_t)m * m * QA * qplane, 0, sizeof(float) * WINO_LANES);
    const size_t stride = (size_t)g->S * j->nb;
    for (int t = t0; t < t1; t += WINO_LANES) {
        const int nl = t1 - t < WINO_LANES ? t1 - t : WINO_LANES;
        const size_t off = (size_t)(t - ty0 * TX);
        const float *d[WINO_MAX_ALPHA][WINO_MAX_ALPHA]; /* d[a][b][lane] */
        float tt[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
        WINO_UNROLL
        for (int a = 0; a < A; a++)
            WINO_UNROLL
            for (int b = 0; b < A; b++)
                d[a][b] = Q + (size_t)(((a % m) * m + b % m) * QA + b / m) * qplane + off +
                          (size_t)(a / m) * TX;
        WINO_UNROLL
        for (int a = 0; a < A; a++) /* tt = d B */
            WINO_UNROLL
            for (int v = 0; v < A; v++) {
                float s[WINO_LANES] = {0};
                WINO_UNROLL
                for (int b = 0; b < A; b++) {
                    const float k = BT[v * A + b];
                    if (k == 0) continue;
                    for (int l = 0; l < WINO_LANES; l++) s[l] += k * d[a][b][l];
                }
                for (int l = 0; l < WINO_LANES; l++) tt[a][v][l] = s[l];
            }
        float *dst = j->V + (size_t)ch * j->nb + k0 + (t - t0);
        WINO_UNROLL
        for (int u = 0; u < A; u++) /* V = B^T tt */
            WINO_UNROLL
            for (int v = 0; v < A; v++) {
                float s[WINO_LANES] = {0};
                WINO_UNROLL
                for (int a = 0; a < A; a++) {
                    const float k = BT[u * A + a];
                    if (k == 0) continue;
                    for (int l = 0; l < WINO_LANES; l++) s[l] += k * tt[a][v][l];
                }
                /* A full group's store is a fixed-size copy (vector moves); with a
                 * variable count the compiler emitted `rep movsq`, whose start-up
                 * was ~3 % of VGG16's engine time (one per element per group). */
                float *o = dst + (size_t)(u * A + v) * stride;
                if (nl == WINO_LANES)
                    for (int l = 0; l < WINO_LANES; l++) o[l] = s[l];
                else
                    for (int l = 0; l < nl; l++) o[l] = s[l];
            }
    }
}

/* dst tiles = A^T M A (+ bias) of channel ch for tiles [t0, t1) of sample img: into
 * R[i][jj][tile] with the lanes as vectors, then each tile's m x m values to dst. */
static inline __attribute__((always_inline)) void wino_out_run(const wino_job *j, int ch,
                                                               int img, int t0, int t1,
                                                               int k0, float *R, const int A,
                                                               const int m, const float *AT) {
    const wino_geom *g = &j->g;
    const int H = g->DH, W = g->DW, TX = j->TX, nb = j->nb;
    const size_t stride = (size_t)g->D * nb, rl = WINO_BLOCK_COLUMNS + WINO_LANES;
    const float *src = j->M + (size_t)ch * nb + k0;
    for (int t = t0; t < t1; t += WINO_LANES) {
        /* mm[u][v][lane]: every lane is read, those past t1 (within the scratch:
         * the block's M or the padding after it) only into tiles never written. */
        const float *mm[WINO_MAX_ALPHA][WINO_MAX_ALPHA];
        float tt[WINO_MAX_ALPHA][WINO_MAX_ALPHA][WINO_LANES];
        WINO_UNROLL
        for (int u = 0; u < A; u++)
            WINO_UNROLL
            for (int v = 0; v < A; v++) mm[u][v] = src + (size_t)(u * A + v) * stride + (t - t0);
        WINO_UNROLL
        for (int i = 0; i < m; i++) /* tt = A^T mm */
            WINO_UNROLL
            for (int v = 0; v < A; v++) {
                float s[WINO_LANES] = {0};
                WINO_UNROLL
                for (int u = 0; u < A; u++) {
                    const float k = AT[i * A + u];
                    if (k == 0) continue;
                    for (int l = 0; l < WINO_LANES; l++) s[l] += k * mm[u][v][l];
                }
                for (int l = 0; l < WINO_LANES; l++) tt[i][v][l] = s[l];
            }
        WINO_UNROLL
        for (int i = 0; i < m; i++) /* y = tt A */
            WINO_UNROLL
            for (int jj = 0; jj < m; jj++) {
                float s[WINO_LANES] = {0};
                WINO_UNROLL
                for (int v = 0; v < A; v++) {
                    const float k = AT[jj * A + v];
                    if (k == 0) continue;
                    for (int l = 0; l < WINO_LANES; l++) s[l] += k * tt[i][v][l];
                }
                float *r = R + (size_t)(i * m + jj) * rl + (t - t0);
                for (int l = 0; l < WINO_LANES; l++) r[l] = s[l];
            }
    }
    float *out = j->dst + ((size_t)img * g->D + ch) * H * W;
    const float b = j->bias ? j->bias[ch] : 0;
    for (int t = t0; t < t1;) { /* a tile row at a time: tiles [t, te) of row ty */
        const int ty = t / TX, tx0 = t % TX, te = t1 - t < TX - tx0 ? t1 : t + (TX - tx0);
        const int full = W / m; /* tiles whose m columns are all inside the plane */
        const int txe = tx0 + (te - t), txf = txe < full ? txe : full;
        for (int i = 0; i < m && ty * m + i < H; i++) {
            float *o = out + (size_t)(ty * m + i) * W;
            const float *r = R + (size_t)(i * m) * rl + (t - t0) - tx0;
            for (int tx = tx0; tx < txf; tx++)
                for (int jj = 0; jj < m; jj++)
                    o[tx * m + jj] = j->bias ? r[(size_t)jj * rl + tx] + b : r[(size_t)jj * rl + tx];
            for (int tx = txf > tx0 ? txf : tx0; tx < txe; tx++)
                for (int jj = 0; jj < m && tx * m + jj < W; jj++)
                    o[tx * m + jj] = j->bias ? r[(size_t)jj * rl + tx] + b : r[(size_t)jj * rl + tx];
        }
        t = te;
    }
}

/* The matrices wino_plan_init builds for F(2x2, 3x3) and F(2x2, 5x5), as constants:
 * with them the compiler drops the zero terms and the multiplications by +-1 (the
 * same operations on the same values otherwise: the results are the generic
 * code's). wino_rows checks them against the plan's before using them. */
static const float wino_bt23[16] = {-1, 0, 1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, -1, 0, 1};
static const float wino_at23[8] = {1, 1, 1, 0, 0, 1, -1, 1};
static const float wino_bt25[36] = {4, 0, -5, 0, 1, 0, 0, -4, -4, 1,  1,  0,
                                    0, 4, -4, -1, 1, 0, 0, -2, -1, 2, 1, 0,
                                    0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1};
static const float wino_at25[12] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 1};
static const float wino_at43[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2,  -2, 0,
                                    0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};

static int same_matrix(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Channels [part*rows, ...) of the input (forward = 1) or output transform. */
#define WINO_ROWS_BODY(A, m, BT, AT)                                                     \
    for (int ch = c0; ch < c1; ch++) {                                                   \
        if (forward) {                                                                   \
            WINO_RUNS(wino_in_run, Q, A, m, BT)                                          \
        } else {                                                                         \
            WINO_RUNS(wino_out_run, R, A, m, AT)                                         \
        }                                                                                \
    }

WINO_CLONES
static void wino_rows(const wino_job *j, int part, int forward) {
    const wino_plan *p = j->p;
    const int total = forward ? j->g.S : j->g.D;
    const int c0 = part * j->rows, c1 = c0 + j->rows < total ? c0 + j->rows : total;
    const int A = p->alpha, m = p->m;
    float *Q = j->stage + (size_t)part * j->part_elems;
    float *R = Q; /* a part runs one direction at a time */
    if (m == 2 && A == 4 && same_matrix(p->BT, wino_bt23, 16) && same_matrix(p->AT, wino_at23, 8)) {
        WINO_ROWS_BODY(4, 2, wino_bt23, wino_at23)
    } else if (m == 2 && A == 6 && same_matrix(p->BT, wino_bt25, 36) &&
               same_matrix(p->AT, wino_at25, 12)) {
        WINO_ROWS_BODY(6, 2, wino_bt25, wino_at25)
    } else if (m == 4 && A == 6 && same_matrix(p->BT, wino_bt25, 36) &&
               same_matrix(p->AT, wino_at43, 24)) {
        WINO_ROWS_BODY(6, 4, wino_bt25, wino_at43)
    } else {
        WINO_ROWS_BODY(A, m, p->BT, p->AT)
    }
}

static void wino_in_part(void *arg, int part) { wino_rows(arg, part, 1); }
static void wino_out_part(void *arg, int part) { wino_rows(arg, part, 0); }

/* Runs body over `total` channels, in parts of at least 8 channels, on par->pfor. */
static void wino_for(wino_job *j, const sal_par *par, int total, void (*body)(void *, int)) {
    j->parts = total / 8 < WINO_MAX_PARTS ? (total + 7) / 8 : WINO_MAX_PARTS;
    j->rows = (total + j->parts - 1) / j->parts;
    j->parts = (total + j->rows - 1) / j->rows;
    if (par && par->pfor && j->parts > 1)
        par->pfor(par->pool, j->parts, body, j);
    else
        for (int i = 0; i < j->parts; i++) body(j, i);
}

/* The element-wise stage of one block: M[xi] = U[xi] x V[xi] for xi in [0, alpha^2),
 * each product one single-threaded BLAS call over the block's nb columns, the
 * products spread over the threads. Whole-width calls pack each U[xi] once per block
 * (gemm_f32 cut the block into parts and packed it once per part), which took the
 * engine's CPU time on VGG16 down 5-9 % with one thread and ~20 % with two, whose
 * threads now share 16 products instead of splitting each into narrow parts
 * (docs/performance.md, "Fewer repacks of the weights"). Every element is still
 * computed by the same call whatever the thread count. */
typedef struct {
    const float *U, *V;
    float *M;
    int D, S, nb;
} wino_gemms;

static void wino_gemm_one(void *arg, int xi) {
    const wino_gemms *g = arg;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->D, g->nb, g->S, 1,
                g->U + (size_t)xi * g->D * g->S, g->S, g->V + (size_t)xi * g->S * g->nb, g->nb,
                0, g->M + (size_t)xi * g->D * g->nb, g->nb);
}

/* dst = the correlation of src with the transformed weights U (alpha^2 matrices
 * (D, S)), block by block of columns. */
static void wino_run(float *dst, const float *src, const float *bias, int n, const float *U,
                     const wino_plan *p, wino_geom g, int tx_max, float *scratch,
                     const sal_par *par) {
    const int m = p->m, A = p->alpha;
    const int TY = (g.DH + m - 1) / m, TX = (g.DW + m - 1) / m, T = TY * TX;
    const long long total = (long long)n * T;
    float *V = scratch, *M = V + (size_t)A * A * g.S * WINO_BLOCK_COLUMNS;
    float *stage = M + (size_t)A * A * g.D * WINO_BLOCK_COLUMNS + WINO_LANES;
    for (long long b0 = 0; b0 < total; b0 += WINO_BLOCK_COLUMNS) {
        const int nb = total - b0 < WINO_BLOCK_COLUMNS ? (int)(total - b0) : WINO_BLOCK_COLUMNS;
        wino_job j = {p, g, src, dst, bias, V, M, stage, wino_part_elems(p, tx_max), b0, T,
                      TX, nb, 0, 0};
        wino_for(&j, par, g.S, wino_in_part);
        wino_gemms gm = {U, V, M, g.D, g.S, nb};
        if (par && par->pfor)
            par->pfor(par->pool, A * A, wino_gemm_one, &gm);
        else
            for (int xi = 0; xi < A * A; xi++) wino_gemm_one(&gm, xi);
        wino_for(&j, par, g.D, wino_out_part);
    }
}

void wino_conv_backward(float *din, const float *dout, int n, const float *U,
                        const wino_plan *p, const sal_layer *L, float *scratch,
                        const sal_par *par) {
    const wino_geom g = {L->out_c, L->out_h, L->out_w, L->in_c, L->in_h, L->in_w,
                         p->r - 1 - L->ph, p->r - 1 - L->pw};
    wino_run(din, dout, NULL, n, U, p, g, wino_max_tx(L, p), scratch, par);
}

void wino_conv_forward(float *out, const float *in, int n, const float *Uf, const float *bias,
                       const wino_plan *p, const sal_layer *L, float *scratch,
                       const sal_par *par) {
    const wino_geom g = {L->in_c, L->in_h, L->in_w, L->out_c, L->out_h, L->out_w, L->ph, L->pw};
    wino_run(out, in, bias, n, Uf, p, g, wino_max_tx(L, p), scratch, par);
}
