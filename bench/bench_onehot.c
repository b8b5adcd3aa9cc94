/*
 * The one-hot rows' shortcut (core/onehot.c, issue 13 lever 2) A/B in one process:
 *   bench_onehot MODEL.h5 LAYER UNITS [batch] [reps]
 * An engine with targets LAYER units 1..UNITS, vanilla and guided, float32 with the
 * default convolutions, runs a batch of seeded random images with the shortcut on
 * and off, alternating, `reps` times each (single-threaded: run it with
 * OPENBLAS_NUM_THREADS=1). Prints the median CPU seconds per run of each and the
 * maps' largest difference relative to the largest element.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "engine_internal.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_onehot MODEL.h5 LAYER UNITS [batch] [reps]\n");
        return 2;
    }
    const int units = atoi(argv[3]), batch = argc > 4 ? atoi(argv[4]) : 4;
    const int reps = argc > 5 ? atoi(argv[5]) : 5;
    char err[SAL_ERR_LEN];
    sal_model *m;
    sal_engine *e;
    if (sal_model_open(argv[1], &m, err, sizeof err) ||
        sal_model_load_params(m, SAL_F32, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_onehot: %s\n", err);
        return 2;
    }
    const int layer = sal_model_find_layer(m, argv[2]);
    if (layer < 0 || units < 1) {
        fprintf(stderr, "bench_onehot: no layer %s, or UNITS < 1\n", argv[2]);
        return 2;
    }
    sal_target *t = malloc(sizeof *t * units);
    for (int u = 0; u < units; u++) t[u] = (sal_target){layer, u};
    const sal_method meth[2] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED};
    if (sal_engine_init(&e, m, SAL_F32, batch, t, units, meth, 2, err, sizeof err)) {
        fprintf(stderr, "bench_onehot: %s\n", err);
        return 2;
    }
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t in = (size_t)pre->channels * pre->height * pre->width;
    float *x = malloc(sizeof *x * in * batch);
    float *maps[2] = {malloc(sizeof(float) * in * batch * units * 2),
                      malloc(sizeof(float) * in * batch * units * 2)};
    srand(1);
    for (size_t i = 0; i < in * batch; i++) x[i] = rand() / (float)RAND_MAX * 4 - 2;
    double *cpu[2] = {malloc(sizeof(double) * reps), malloc(sizeof(double) * reps)};
    for (int r = 0; r < reps; r++)
        for (int on = 1; on >= 0; on--) {
            engine_set_one_hot(e, on);
            double c0 = bench_cpu();
            sal_engine_run(e, x, batch, maps[on], NULL, NULL, NULL, err, sizeof err);
            cpu[on][r] = bench_cpu() - c0;
        }
    double big = 0, d = 0;
    for (size_t i = 0; i < in * batch * units * 2; i++) {
        if (fabs(maps[0][i]) > big) big = fabs(maps[0][i]);
        if (fabs(maps[1][i] - maps[0][i]) > d) d = fabs(maps[1][i] - maps[0][i]);
    }
    double on = bench_median(cpu[1], reps), off = bench_median(cpu[0], reps);
    printf("%s %s units 1..%d, %d images, %d backward rows: one-hot %.3f s, full %.3f s "
           "CPU (medians of %d), %.2fx; maps differ by %.2g of the largest\n",
           sal_model_name(m), argv[2], units, batch, batch * units * 2, on, off, reps,
           off / on, big > 0 ? d / big : d);
    return 0;
}
