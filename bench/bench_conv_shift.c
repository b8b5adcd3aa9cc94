/*
 * Times conv_shift.c's shifted GEMMs against conv.c's im2col + GEMM path on AlexNet's
 * stride-1 "same" convolutions (conv2's 5x5 at 27x27, conv3-5's 3x3 at 13x13):
 * forward of `images` images and backward of `samples` samples, with the images per
 * product the engine would choose (engine.c: about 2048 columns), A and B alternating
 * in one process, and the relative L2 distance of each path's float32 result from
 * a double loop on the first image and sample.
 *   bench_conv_shift [images] [samples] [reps] [threads] [conv2]   (float32)
 * Prints per layer the median process CPU time and wall time of each path. Used to
 * decide which path net.c takes (docs/performance.md, "5x5 convolutions").
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench_util.h"
#include "layers.h"
#include "team.h"
#include "blas_note.h"


static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* AlexNet's stride-1 "same" convolutions (conv3-5 for comparison: the engine keeps
 * them on im2col, conv_shift_used): C, OC, H = W, k, pad. */
static const struct {
    const char *name;
    int C, OC, HW, k, p;
} shapes[] = {
    {"conv2", 64, 192, 27, 5, 2},
    {"conv3", 192, 384, 13, 3, 1},
    {"conv4", 384, 256, 13, 3, 1},
    {"conv5", 256, 256, 13, 3, 1},
};

/* Relative L2 distance of got from the double loop, image 0: forward (fwd = 1,
 * out from x) or backward (din from dout). */
static double rel_err(const real *got, const real *src, const real *w, const real *b,
                      const sal_layer *L, int fwd) {
    const int C = L->in_c, OC = L->out_c, H = L->in_h, W = L->in_w, k = L->kh, p = L->ph;
    const int M = fwd ? OC : C;
    double num = 0, den = 0;
    for (int m = 0; m < M; m++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = fwd ? b[m] : 0;
                for (int q = 0; q < (fwd ? C : OC); q++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int yy = fwd ? y + ky - p : y + p - ky, xx = fwd ? x + kx - p : x + p - kx;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                            double wt = fwd ? w[((m * C + q) * k + ky) * k + kx]
                                            : w[((q * C + m) * k + ky) * k + kx];
                            s += wt * src[((size_t)q * H + yy) * W + xx];
                        }
                double d = got[((size_t)m * H + y) * W + x] - s;
                num += d * d, den += s * s;
            }
    return sqrt(num / den);
}

int main(int argc, char **argv) {
    sp_blas_choose(argv);
    int n = argc > 1 ? atoi(argv[1]) : 16, nb = argc > 2 ? atoi(argv[2]) : 100;
    int reps = argc > 3 ? atoi(argv[3]) : 5, threads = argc > 4 ? atoi(argv[4]) : 1;
    const int only_conv2 = argc > 5 && !strcmp(argv[5], "conv2");
    if (n < 1 || nb < 1 || reps < 1 || reps > 64 || threads < 1) {
        fprintf(stderr, "usage: bench_conv_shift [images] [samples] [reps <= 64] [threads] [conv2]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    sp_team *team = threads > 1 ? sp_team_init(threads) : NULL;
    sal_par par = {team ? sp_team_for : NULL, team};
    printf("AlexNet stride-1 convolutions, forward %d images, backward %d samples, %d "
           "thread(s), float32; CPU ms (wall ms), medians of %d, A/B alternating\n",
           n, nb, threads, reps);
    printf("%-6s %-4s %18s %18s %6s   %-9s %-9s\n", "layer", "pass", "im2col", "shifted", "ratio",
           "err im2col", "err shifted");
    const size_t nshapes = only_conv2 ? 1 : sizeof shapes / sizeof *shapes;
    for (size_t k = 0; k < nshapes; k++) {
        sal_layer L;
        memset(&L, 0, sizeof L);
        L.kind = SAL_LAYER_CONV;
        L.in_c = shapes[k].C, L.out_c = shapes[k].OC;
        L.in_h = L.in_w = L.out_h = L.out_w = shapes[k].HW;
        L.kh = L.kw = shapes[k].k, L.ph = L.pw = shapes[k].p, L.sh = L.sw = 1, L.groups = 1;
        const int P = shapes[k].HW * shapes[k].HW, gw = (2048 + P - 1) / P;
        const int most = n > nb ? n : nb, g = gw < most ? gw : most;
        size_t s1 = conv_scratch_elems(&L, g), s2 = conv_shift_scratch_elems(&L, g);
        size_t big = (size_t)(n > nb ? n : nb) * (L.in_c > L.out_c ? L.in_c : L.out_c) * P;
        size_t nw = (size_t)L.in_c * L.out_c * L.kh * L.kw;
        real *x = malloc(sizeof(real) * big), *y = malloc(sizeof(real) * big);
        real *w = malloc(sizeof(real) * nw), *b = malloc(sizeof(real) * L.out_c);
        real *col = malloc(sizeof(real) * (s1 > s2 ? s1 : s2));
        if (!x || !y || !w || !b || !col) return 2;
        srand(1);
        for (size_t i = 0; i < big; i++) x[i] = (real)(rand() / (double)RAND_MAX - 0.5);
        for (size_t i = 0; i < nw; i++) w[i] = (real)((rand() / (double)RAND_MAX - 0.5) * 0.05);
        for (int i = 0; i < L.out_c; i++) b[i] = (real)(i * 1e-3);
        double t[2][2][64], c[2][2][64], err[2][2];
        for (int r = 0; r < reps; r++)
            for (int a = 0; a < 2; a++) {
                double t0 = bench_now(), c0 = cpu_now();
                if (a) R(conv_shift_forward)(y, x, n, w, b, &L, col, g, &par);
                else R(conv_forward)(y, x, n, w, b, &L, col, g, &par);
                t[a][0][r] = bench_now() - t0, c[a][0][r] = cpu_now() - c0;
                if (r == 0) err[a][0] = rel_err(y, x, w, b, &L, 1);
                t0 = bench_now(), c0 = cpu_now();
                if (a) R(conv_shift_backward)(y, x, nb, w, &L, col, g, &par);
                else R(conv_backward)(y, x, nb, w, &L, col, g, &par);
                t[a][1][r] = bench_now() - t0, c[a][1][r] = cpu_now() - c0;
                if (r == 0) err[a][1] = rel_err(y, x, w, b, &L, 0);
            }
        for (int pass = 0; pass < 2; pass++) {
            double ca = bench_median(c[0][pass], reps), cb = bench_median(c[1][pass], reps);
            double wa = bench_median(t[0][pass], reps), wb = bench_median(t[1][pass], reps);
            printf("%-6s %-4s %8.1f (%7.1f) %8.1f (%7.1f) %6.3f   %.2e  %.2e\n", shapes[k].name,
                   pass ? "bwd" : "fwd", ca * 1e3, wa * 1e3, cb * 1e3, wb * 1e3, cb / ca,
                   err[0][pass], err[1][pass]);
        }
        fflush(stdout);
        free(x), free(y), free(w), free(b), free(col);
    }
    sp_team_free(team);
    return 0;
}
