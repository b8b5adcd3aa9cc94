/*
 * Times the 1x1 convolutions (stride 1, no padding) of a ResNet-50 at 224x224: each
 * distinct layer shape's forward over a batch of images and backward over the
 * backward samples of that batch (W3: 2 targets x 2 methods = 4 per image), with the
 * images per GEMM the engine would choose (engine.c: up to 2048 columns), weighted
 * by how often the shape occurs in the network.
 *   bench_conv1x1 [images] [reps] [threads]        (float32; built with SAL_DOUBLE=0)
 * Prints per shape and in total the median wall time and process CPU time. With
 * threads > 1 the GEMM parts run on a team (pipeline/team.c) over single-threaded
 * OpenBLAS, as in salpipe. Used to decide whether conv.c's 1x1 path without im2col
 * pays (docs/performance.md); it links against whichever salcore it is built with.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench_util.h"
#include "layers.h"
#include "team.h"
#include "blas_note.h"

#define PREC_NAME (SAL_DOUBLE ? "float64" : "float32")

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ResNet-50's stride-1 1x1 convolutions: (C, OC, H = W), occurrences. */
static const struct {
    int C, OC, HW, count;
} shapes[] = {
    {64, 64, 56, 1},    {64, 256, 56, 4},   {256, 64, 56, 2},  {256, 128, 56, 1},
    {128, 512, 28, 4},  {512, 128, 28, 3},  {512, 256, 28, 1}, {256, 1024, 14, 6},
    {1024, 256, 14, 5}, {1024, 512, 14, 1}, {512, 2048, 7, 3}, {2048, 512, 7, 2},
};

int main(int argc, char **argv) {
    sp_blas_choose(argv); /* the kernels salpipe would run (blas_note.h) */
    int n = argc > 1 ? atoi(argv[1]) : 16, reps = argc > 2 ? atoi(argv[2]) : 5;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (n < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_conv1x1 [images] [reps] [threads]\n");
        return 2;
    }
    const int nb = 4 * n; /* backward samples */
    openblas_set_num_threads(1);
    sp_team *team = threads > 1 ? sp_team_init(threads) : NULL;
    sal_par par = {team ? sp_team_for : NULL, team};
    double tot_wall = 0, tot_cpu = 0;
    printf("ResNet-50 1x1 convolutions, %d images forward, %d samples backward, %d thread%s, "
           "%s\n", n, nb, threads, threads > 1 ? "s" : "", PREC_NAME);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        sal_layer L;
        memset(&L, 0, sizeof L);
        L.kind = SAL_LAYER_CONV;
        L.in_c = shapes[k].C, L.out_c = shapes[k].OC;
        L.in_h = L.in_w = L.out_h = L.out_w = shapes[k].HW;
        L.kh = L.kw = L.sh = L.sw = 1, L.groups = 1;
        const int P = shapes[k].HW * shapes[k].HW, gw = (2048 + P - 1) / P;
        const int g = gw < nb ? gw : nb;
        /* The im2col scratch of the general path, whichever salcore runs. */
        size_t scratch = (size_t)(L.in_c + L.out_c) * g * P;
        size_t big = (size_t)nb * (L.in_c > L.out_c ? L.in_c : L.out_c) * P;
        real *x = malloc(sizeof(real) * big), *y = malloc(sizeof(real) * big);
        real *w = malloc(sizeof(real) * L.in_c * L.out_c), *b = malloc(sizeof(real) * L.out_c);
        real *col = malloc(sizeof(real) * scratch);
        if (!x || !y || !w || !b || !col) return 2;
        for (size_t i = 0; i < big; i++) x[i] = (real)((i * 7919 % 1000) * 1e-3 - 0.5);
        for (size_t i = 0; i < (size_t)L.in_c * L.out_c; i++)
            w[i] = (real)((i * 104729 % 1000) * 1e-3 - 0.5);
        for (int i = 0; i < L.out_c; i++) b[i] = (real)(i * 1e-3);
        double *wall = malloc(sizeof(double) * reps), *cpu = malloc(sizeof(double) * reps);
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now(), c0 = cpu_now();
            R(conv_forward)(y, x, n, w, b, &L, col, g, &par);
            R(conv_backward)(x, y, nb, w, &L, col, g, &par);
            wall[r] = bench_now() - t0, cpu[r] = cpu_now() - c0;
        }
        double mw = bench_median(wall, reps), mc = bench_median(cpu, reps);
        printf("  %4d -> %4d  %2dx%-2d  x%d   %8.2f ms wall  %8.2f ms cpu\n", L.in_c, L.out_c,
               shapes[k].HW, shapes[k].HW, shapes[k].count, mw * 1e3, mc * 1e3);
        tot_wall += mw * shapes[k].count, tot_cpu += mc * shapes[k].count;
        free(x), free(y), free(w), free(b), free(col), free(wall), free(cpu);
    }
    printf("total (weighted by occurrences): %.1f ms wall, %.1f ms cpu\n", tot_wall * 1e3,
           tot_cpu * 1e3);
    sp_team_free(team);
    return 0;
}
