/*
 * The counts scripts/bench.sh needs from the core, as key=value lines:
 *   bench_counts MODEL.h5 [batch]
 * params_bytes     sal_model_params_bytes in float32 (the weights a rank holds)
 * workspace_bytes  the engine's working memory for that batch size
 * flops            sal_engine_last_flops after one run of a full batch for fc3 units
 *                  540 and 23 with vanilla and guided (the W1/W2 workload)
 */
#include <stdio.h>
#include <stdlib.h>

#include "salcore.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_counts MODEL.h5 [batch]\n");
        return 2;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 8;
    char err[SAL_ERR_LEN];
    sal_model *m;
    sal_engine *e;
    if (batch < 1 || sal_model_open(argv[1], &m, err, sizeof err) ||
        sal_model_load_params(m, SAL_F32, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_counts: %s\n", batch < 1 ? "batch must be >= 1" : err);
        return 2;
    }
    int fc3 = sal_model_find_layer(m, "fc3");
    sal_target t[2] = {{fc3, 539}, {fc3, 22}};
    sal_method meth[2] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED};
    if (fc3 < 0 || sal_engine_init(&e, m, SAL_F32, batch, t, 2, meth, 2, err, sizeof err)) {
        fprintf(stderr, "bench_counts: %s\n", fc3 < 0 ? "model has no fc3" : err);
        return 2;
    }
    const sal_preprocess *pre = sal_model_preprocess(m);
    size_t in = (size_t)pre->channels * pre->height * pre->width * batch;
    float *input = malloc(sizeof(float) * in), *maps = malloc(sizeof(float) * in * 4);
    if (!input || !maps) {
        fprintf(stderr, "bench_counts: out of memory\n");
        return 2;
    }
    srand(1);
    for (size_t i = 0; i < in; i++) input[i] = rand() / (float)RAND_MAX * 4 - 2;
    if (sal_engine_run(e, input, batch, maps, NULL, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_counts: %s\n", err);
        return 1;
    }
    printf("params_bytes=%zu\nworkspace_bytes=%zu\nflops=%.0f\n",
           sal_model_params_bytes(m, SAL_F32), sal_engine_workspace_bytes(e),
           sal_engine_last_flops(e));
    sal_engine_free(e);
    sal_model_free(m);
    free(input);
    free(maps);
    return 0;
}
