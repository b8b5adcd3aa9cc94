/*
 * The engine's per-sample loops on the rank's threads (issue 13, lever 4; core/net.c
 * "Per-sample loops"): ReLU forward and rules, max-pool, adaptive average pool, batch
 * norm, the copies of dropout and flatten, split into pieces on e->par. The maps and
 * target scalars must be the same bits as a serial run:
 *
 *   test_net_par ALEXNET.h5 VGG11_BN.h5
 *
 * Each network, float32 (default convolutions) and float64, 2 images, targets at a
 * conv ReLU or batch norm, a max-pool and (AlexNet) fc3, vanilla, guided and
 * deconvnet, runs serially, then
 * on a loop that runs the pieces last to first on the calling thread (a schedule
 * unlike the serial one), then on a team of 3 threads (pipeline/team.c, as salpipe).
 * The pieces and channel ranges cross these networks' planes (AlexNet's conv1 ReLU
 * is 12 pieces per image, VGG's 224x224 planes one channel per piece). The graph
 * nodes (add, concat, average pool 2d) run the same two piece loops; their networks
 * are only in the reference suite. About 15 s of CPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"
#include "team.h"
#define TEST_NAME "test_net_par"
#include "test_util.h"

#define NIMG 2

static int failures;

static void reverse_for(void *pool, int n, sal_parallel_body body, void *arg) {
    (void)pool;
    for (int i = n - 1; i >= 0; i--) body(arg, i);
}

static void check(const char *path, const char *const *names, const int *units, int T) {
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err)) {
        fprintf(stderr, TEST_NAME ": %s\n", err);
        exit(2);
    }
    sal_target t[8];
    for (int k = 0; k < T; k++) {
        t[k] = (sal_target){sal_model_find_layer(m, names[k]), units[k]};
        if (t[k].layer < 0) {
            fprintf(stderr, TEST_NAME ": %s has no node %s\n", path, names[k]);
            exit(2);
        }
    }
    const sal_method meth[3] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED,
                                SAL_METHOD_DECONVNET};
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t in = (size_t)pre->channels * pre->height * pre->width;
    sp_team *team = sp_team_init(3);
    for (int prec = 0; prec < 2; prec++) {
        const sal_precision p = prec ? SAL_F64 : SAL_F32;
        const size_t rs = p == SAL_F64 ? 8 : 4, nmaps = in * NIMG * T * 3;
        if (sal_model_load_params(m, p, NULL, err, sizeof err)) {
            fprintf(stderr, TEST_NAME ": %s\n", err);
            exit(2);
        }
        unsigned char *x = xcalloc(in * NIMG, rs), *maps[3], *act[3];
        uint64_t st = 0x9a7u;
        for (size_t i = 0; i < in * NIMG; i++) {
            double v = uniform_from(&st, -2, 2);
            if (p == SAL_F64) ((double *)x)[i] = v;
            else ((float *)x)[i] = (float)v;
        }
        sal_engine *e;
        if (sal_engine_init(&e, m, p, NIMG, t, T, meth, 3, err, sizeof err)) {
            fprintf(stderr, TEST_NAME ": %s\n", err);
            exit(2);
        }
        for (int run = 0; run < 3; run++) {
            maps[run] = xcalloc(nmaps, rs);
            act[run] = xcalloc((size_t)NIMG * T, rs);
            if (run == 1) sal_engine_set_parallel(e, reverse_for, NULL);
            if (run == 2) sal_engine_set_parallel(e, sp_team_for, team);
            if (sal_engine_run(e, x, NIMG, maps[run], act[run], NULL, NULL, err, sizeof err)) {
                fprintf(stderr, TEST_NAME ": %s\n", err);
                exit(2);
            }
        }
        for (int run = 1; run < 3; run++) {
            size_t differ = 0;
            for (size_t i = 0; i < nmaps * rs; i++) differ += maps[run][i] != maps[0][i];
            for (size_t i = 0; i < (size_t)NIMG * T * rs; i++) differ += act[run][i] != act[0][i];
            int ok = differ == 0;
            printf("  %-16s %s %-22s %zu bytes differ from serial (0 expected)  %s\n",
                   sal_model_name(m), prec ? "float64" : "float32",
                   run == 1 ? "pieces last to first" : "team of 3 threads", differ,
                   ok ? "OK" : "FAIL");
            if (!ok) failures++;
        }
        for (int run = 0; run < 3; run++) free(maps[run]), free(act[run]);
        free(x);
        sal_engine_free(e);
    }
    sp_team_free(team);
    sal_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_net_par ALEXNET.h5 VGG11_BN.h5\n");
        return 2;
    }
    const char *alex[] = {"conv1_relu", "conv2_maxpool", "fc3"};
    const int alex_units[] = {5, 40, 539};
    check(argv[1], alex, alex_units, 3);
    /* VGG's first layers only (the forward stops at the deepest target): its batch
     * norms on the widest planes, at a fraction of the whole network's cost. */
    const char *vgg[] = {"conv2_bn", "conv2_maxpool"};
    const int vgg_units[] = {9, 60};
    check(argv[2], vgg, vgg_units, 2);
    if (failures) printf("%d comparison(s) FAILED\n", failures);
    return failures ? 1 : 0;
}
