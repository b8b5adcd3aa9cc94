/*
 * Times the core alone: one forward pass of a batch plus its backward passes for
 * fc3 units 540 and 23 with vanilla and guided (4 backward samples per image).
 *   bench_core MODEL.h5 [batch] [reps] [f32|f64] [threads] [fast|direct|fastest]
 * Prints the median wall time per run over `reps` runs, and the median CPU time of
 * the process per run (all its threads; steadier than wall time on a busy machine). With `threads`, the engine's
 * GEMM parts run on a team of that many threads over single-threaded OpenBLAS, as in
 * salpipe; without (or with 0), BLAS threads come from OPENBLAS_NUM_THREADS. The last
 * argument is the engine's convolution mode (default fast, as salpipe's).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench_util.h"
#include "team.h"
#include "blas_note.h"

int main(int argc, char **argv) {
    sp_blas_choose(argv); /* the kernels salpipe would run (blas_note.h) */
    if (argc < 2) {
        fprintf(stderr, "usage: bench_core MODEL.h5 [batch] [reps] [f32|f64] [threads] "
                        "[fast|direct|fastest]\n");
        return 2;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 5;
    sal_precision p = argc > 4 && !strcmp(argv[4], "f64") ? SAL_F64 : SAL_F32;
    char err[SAL_ERR_LEN];
    sal_model *m;
    sal_engine *e;
    void *input, *maps;
    if (bench_setup("bench_core", argv[1], p, batch, &m, &e, &input, &maps)) return 2;
    if (argc > 6) {
        const char *name = argv[6];
        const sal_conv_mode mode = !strcmp(name, "direct")    ? SAL_CONV_DIRECT
                                   : !strcmp(name, "fastest") ? SAL_CONV_FASTEST
                                                              : SAL_CONV_FAST;
        if (mode == SAL_CONV_FAST && strcmp(name, "fast")) {
            fprintf(stderr, "bench_core: convolution mode '%s' is not fast, direct or "
                            "fastest\n", name);
            return 2;
        }
        if (sal_engine_set_convolution(e, mode, err, sizeof err)) {
            fprintf(stderr, "bench_core: %s\n", err);
            return 2;
        }
    }
    sp_team *team = NULL;
    if (argc > 5 && atoi(argv[5]) > 0) {
        openblas_set_num_threads(1);
        team = sp_team_init(atoi(argv[5]));
        sal_engine_set_parallel(e, sp_team_for, team);
    }
    double *times = malloc(sizeof(double) * reps), *cpu = malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now(), c0 = bench_cpu();
        if (sal_engine_run(e, input, batch, maps, NULL, NULL, NULL, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        times[r] = bench_now() - t0;
        cpu[r] = bench_cpu() - c0;
    }
    double median = bench_median(times, reps), cpu_median = bench_median(cpu, reps);
    printf("salpipe core: batch %d, 1 forward + %d backward per image: median %.1f ms "
           "(%.1f ms per image), %.2f GFLOP per run\n",
           batch, 4, median * 1e3, median * 1e3 / batch,
           sal_engine_last_flops(e) * 1e-9);
    printf("process CPU time per run: %.1f ms (median)\n", cpu_median * 1e3);
    sal_engine_free(e);
    sp_team_free(team);
    sal_model_free(m);
    free(input);
    free(maps);
    free(times);
    free(cpu);
    return 0;
}
