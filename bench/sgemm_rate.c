/*
 * OpenBLAS sgemm rate on large square matrices: the roofline the benchmark compares
 * salpipe's GEMM work against. Threads come from OPENBLAS_NUM_THREADS.
 *   sgemm_rate [n] [reps]   prints the median GFLOP/s
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "bench_util.h"
#include "blas_note.h"

int main(int argc, char **argv) {
    sp_blas_choose(argv); /* the kernels salpipe would run (blas_note.h) */
    int n = argc > 1 ? atoi(argv[1]) : 2048, reps = argc > 2 ? atoi(argv[2]) : 5;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    double *rate = malloc(sizeof(double) * reps);
    if (!a || !b || !c || !rate || reps < 1) return 1;
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.2f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        rate[r] = 2.0 * n * n * n / (bench_now() - t) * 1e-9;
    }
    double median = bench_median(rate, reps);
    char blas[512];
    sp_blas_note(blas, sizeof blas);
    printf("sgemm %dx%d: median %.1f GFLOP/s over %d runs (%.40s)\n", n, n, median, reps,
           blas);
    free(a);
    free(b);
    free(c);
    free(rate);
    return 0;
}
