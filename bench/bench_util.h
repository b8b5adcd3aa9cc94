/* Helpers shared by the benchmark programs (header-only): timing, and the W1/W2
 * engine they both run. */
#ifndef SAL_BENCH_UTIL_H
#define SAL_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "salcore.h"

/* Seconds on the monotonic clock. */
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process, every thread included. */
static inline double bench_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), sorting v in place. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return v[n / 2];
}

/* The benchmarks' workload on a batch of `batch` images: the model at `path` loaded
 * in precision p, an engine for fc3 (or fc) units 540 and 23, vanilla and guided, a
 * seeded uniform [-2, 2] input and room for the maps. Prints why and returns 2 on
 * failure (the exit status of a usage or setup error). */
static inline int bench_setup(const char *prog, const char *path, sal_precision p, int batch,
                              sal_model **m, sal_engine **e, void **input, void **maps) {
    char err[SAL_ERR_LEN];
    if (batch < 1 || sal_model_open(path, m, err, sizeof err) ||
        sal_model_load_params(*m, p, NULL, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, batch < 1 ? "batch must be >= 1" : err);
        return 2;
    }
    int fc3 = sal_model_find_layer(*m, "fc3");
    if (fc3 < 0) fc3 = sal_model_find_layer(*m, "fc"); /* ResNet, GoogLeNet, Inception */
    sal_target t[2] = {{fc3, 539}, {fc3, 22}};
    sal_method meth[2] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED};
    if (fc3 < 0 || sal_engine_init(e, *m, p, batch, t, 2, meth, 2, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", prog, fc3 < 0 ? "model has no fc3 or fc" : err);
        return 2;
    }
    const sal_preprocess *pre = sal_model_preprocess(*m);
    size_t n = (size_t)pre->channels * pre->height * pre->width * batch;
    size_t rs = p == SAL_F64 ? 8 : 4;
    *input = malloc(rs * n);
    *maps = malloc(rs * n * 4);
    if (!*input || !*maps) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    srand(1);
    for (size_t i = 0; i < n; i++) {
        double v = rand() / (double)RAND_MAX * 4 - 2;
        if (p == SAL_F64) ((double *)*input)[i] = v;
        else ((float *)*input)[i] = (float)v;
    }
    return 0;
}

#endif
