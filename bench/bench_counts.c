/*
 * The counts scripts/bench.sh needs from the core, as key=value lines:
 *   bench_counts MODEL.h5 [batch]
 * params_bytes     sal_model_params_bytes in float32 (the weights a rank holds)
 * workspace_bytes  the engine's working memory for that batch size, in the default
 *                  (fast) convolution mode
 * flops            sal_engine_last_flops after one run of a full batch for fc3 units
 *                  540 and 23 with vanilla and guided (the W1/W2 workload), with
 *                  direct convolutions: the operations a direct convolution does, the
 *                  count issue 13's "effective rate" divides by the time of the fast mode
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_counts MODEL.h5 [batch]\n");
        return 2;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 8;
    char err[SAL_ERR_LEN];
    sal_model *m;
    sal_engine *e;
    void *input, *maps;
    if (bench_setup("bench_counts", argv[1], SAL_F32, batch, &m, &e, &input, &maps)) return 2;
    size_t workspace = sal_engine_workspace_bytes(e); /* with its Winograd weights */
    if (sal_engine_set_convolution(e, SAL_CONV_DIRECT, err, sizeof err)) {
        fprintf(stderr, "bench_counts: %s\n", err);
        return 1;
    }
    if (sal_engine_run(e, input, batch, maps, NULL, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_counts: %s\n", err);
        return 1;
    }
    printf("params_bytes=%zu\nworkspace_bytes=%zu\nflops=%.0f\n",
           sal_model_params_bytes(m, SAL_F32), workspace,
           sal_engine_last_flops(e));
    sal_engine_free(e);
    sal_model_free(m);
    free(input);
    free(maps);
    return 0;
}
