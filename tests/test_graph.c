/*
 * The graph engine on the small format-2 networks of tests/make_graph_models.py:
 *
 *   test_graph DIR
 *
 * For each network (a residual block whose input feeds three consumers and a 3-input
 * add; an inception block with four branches, concat, avgpool2d and ceil_mode
 * pools), an engine holding vanilla targets at several nodes (inside the block or a
 * branch, the add or concat itself, DNNBrain's alias of a block, the pooled
 * features, fc) runs a batch of 2 images in float64, and:
 *   - the maps are checked against central finite differences of the engine's own
 *     target scalars (sal_engine_run's activations) for a handful of input elements.
 *     The networks are piecewise linear, so away from a kink the difference is exact
 *     up to rounding; a step that changes any ReLU mask or max-pool argmax (the
 *     forward's decisions) is skipped and reported, never silently trusted;
 *   - perturbing image 0 leaves image 1's scalars bit for bit unchanged;
 *   - float32 agrees with float64: the scalars directly, the maps with float64's
 *     decisions copied into the float32 engine (sal_engine_copy_decisions), so that
 *     a near-tie decided differently does not count.
 * Then the backward stopped at a node (sal_engine_stop_at, Grad-CAM's dF/dA): the
 * gradient at a node with three consumers, at an inception block's input and at a
 * concat that is itself a target, against finite differences of the target scalars
 * with that node's output nudged in the forward (the layer callback); stopping at the
 * input again equals the full backward bit for bit; a stop node a target does not
 * read, or one past the deepest target, is refused with a message.
 * Prints the max differences; exit status 1 on any failure. Costs well under a
 * second: a few hundred runs of networks of a few thousand multiply-adds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salcore.h"
#define TEST_NAME "test_graph"
#include "test_util.h"

static int failures;

#define NIMG 2
#define NPROBE 24       /* input elements probed per network: 20 of image 0, 4 of 1 */
#define FD_STEP 1e-3    /* piecewise linear: a large step costs nothing but kinks */
#define FD_TOL 1e-8     /* of the largest map element or scalar; rounding is ~1e-13 */
#define F32_TOL 2e-5    /* float32 vs float64, of the largest value compared      */

static uint64_t rng_state = 0x5a17u;
static double uniform(double lo, double hi) { return uniform_from(&rng_state, lo, hi); }

static int report(const char *model, const char *what, double diff, double tol) {
    int ok = diff <= tol;
    printf("  %-16s %-44s max diff %-10.3g (tol %.3g) %s\n", model, what, diff, tol,
           ok ? "OK" : "FAIL");
    if (!ok) failures++;
    return !ok;
}

/* The forward's decisions of the last run (every ReLU mask and max-pool argmax),
 * concatenated, as bytes. */
typedef struct {
    unsigned char *bytes;
    size_t len;
} decisions;

static size_t decisions_size(const sal_engine *e, const sal_model *m, int n,
                             unsigned char *dst) {
    size_t len = 0;
    for (int i = 0; i < sal_model_num_layers(m); i++) {
        const sal_layer *L = sal_model_layer(m, i);
        size_t elems = (size_t)n * L->out_c * L->out_h * L->out_w;
        const uint8_t *mask = sal_engine_relu_mask(e, i);
        const int32_t *arg = sal_engine_argmax(e, i);
        if (mask) {
            if (dst) memcpy(dst + len, mask, elems);
            len += elems;
        }
        if (arg) {
            if (dst) memcpy(dst + len, arg, elems * sizeof *arg);
            len += elems * sizeof *arg;
        }
    }
    return len;
}

static void decisions_take(decisions *d, const sal_engine *e, const sal_model *m, int n) {
    d->len = decisions_size(e, m, n, NULL);
    d->bytes = xcalloc(d->len, 1);
    decisions_size(e, m, n, d->bytes);
}

static int decisions_same(const decisions *d, const sal_engine *e, const sal_model *m,
                          int n) {
    decisions now;
    decisions_take(&now, e, m, n);
    int same = now.len == d->len && !memcmp(now.bytes, d->bytes, d->len);
    free(now.bytes);
    return same;
}

typedef struct {
    const char *file, *label;
    const char *targets[6]; /* node names or aliases, NULL-terminated */
    int units[6];           /* 0-based */
} graph_case;

static int open_model(const char *dir, const char *file, sal_model **m) {
    char path[4096], err[SAL_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (sal_model_open(path, m, err, sizeof err) ||
        sal_model_load_params(*m, SAL_F64, NULL, err, sizeof err) ||
        sal_model_load_params(*m, SAL_F32, NULL, err, sizeof err)) {
        printf("  %s: %s FAIL\n", file, err);
        failures++;
        return -1;
    }
    return 0;
}

static void test_case(const char *dir, const graph_case *gc) {
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    printf("%s\n", gc->file);
    if (open_model(dir, gc->file, &m)) return;
    sal_target t[6];
    int T = 0;
    for (; gc->targets[T]; T++) {
        t[T].layer = sal_model_find_layer(m, gc->targets[T]);
        t[T].unit = gc->units[T];
        if (t[T].layer < 0) {
            printf("  no node '%s' FAIL\n", gc->targets[T]);
            failures++;
            sal_model_free(m);
            return;
        }
    }
    const sal_preprocess *pp = sal_model_preprocess(m);
    const size_t img = (size_t)pp->channels * pp->height * pp->width, nin = NIMG * img;
    const sal_method vanilla = SAL_METHOD_VANILLA;
    sal_engine *e64 = NULL, *e32 = NULL;
    if (sal_engine_init(&e64, m, SAL_F64, NIMG, t, T, &vanilla, 1, err, sizeof err) ||
        sal_engine_init(&e32, m, SAL_F32, NIMG, t, T, &vanilla, 1, err, sizeof err)) {
        printf("  engine: %s FAIL\n", err);
        failures++;
        sal_engine_free(e64);
        sal_model_free(m);
        return;
    }
    double *x = xcalloc(nin, sizeof *x), *maps = xcalloc(nin * T, sizeof *maps);
    double *act = xcalloc(NIMG * T, sizeof *act), *ap = xcalloc(NIMG * T, sizeof *ap);
    double *am = xcalloc(NIMG * T, sizeof *am), *scratch = xcalloc(nin * T, sizeof *scratch);
    for (size_t i = 0; i < nin; i++) x[i] = uniform(-2, 2);
    if (sal_engine_run(e64, x, NIMG, maps, act, NULL, NULL, err, sizeof err)) {
        printf("  run: %s FAIL\n", err);
        failures++;
        goto done;
    }
    decisions base;
    decisions_take(&base, e64, m, NIMG);

    /* Finite differences at NPROBE input elements. */
    /* The differences round the scalars (~1e-16 of them) and divide by the step. */
    double worst = 0, map_scale = 0, act_scale = 0, other = 0;
    for (size_t i = 0; i < nin * T; i++) map_scale = fmax(map_scale, fabs(maps[i]));
    for (int i = 0; i < NIMG * T; i++) act_scale = fmax(act_scale, fabs(act[i]));
    const double scale = fmax(map_scale, act_scale);
    int probed = 0, skipped = 0;
    for (int p = 0; p < NPROBE; p++) {
        int im = p < 20 ? 0 : 1;
        size_t j = im * img + (size_t)uniform(0, (double)img);
        const double xj = x[j];
        x[j] = xj + FD_STEP;
        int ok = !sal_engine_run(e64, x, NIMG, scratch, ap, NULL, NULL, err, sizeof err) &&
                 decisions_same(&base, e64, m, NIMG);
        x[j] = xj - FD_STEP;
        ok = ok && !sal_engine_run(e64, x, NIMG, scratch, am, NULL, NULL, err, sizeof err) &&
             decisions_same(&base, e64, m, NIMG);
        x[j] = xj;
        if (!ok) {
            skipped++;
            continue;
        }
        probed++;
        for (int k = 0; k < T; k++) {
            double fd = (ap[im * T + k] - am[im * T + k]) / (2 * FD_STEP);
            /* maps (n, T, methods = 1, C, H, W): image im, target k, element j. */
            double g = maps[((size_t)im * T + k) * img + (j - im * img)];
            double d = fabs(fd - g);
            if (d > worst) worst = d;
            if (d > FD_TOL * scale)
                printf("    element %zu, target %s unit %d: map %.17g, finite difference "
                       "%.17g\n", j, gc->targets[k], gc->units[k] + 1, g, fd);
            /* The other image's scalars do not move at all. */
            other = fmax(other, fabs(ap[(1 - im) * T + k] - act[(1 - im) * T + k]));
        }
    }
    char what[128];
    printf("  %-16s largest map element %.3g, target scalar %.3g\n", gc->label, map_scale,
           act_scale);
    snprintf(what, sizeof what, "vanilla maps vs finite differences (%d el.)", probed);
    report(gc->label, what, worst, FD_TOL * scale);
    printf("  %-16s %d of %d probes skipped: a step changed a ReLU mask or argmax\n",
           gc->label, skipped, NPROBE);
    if (probed < NPROBE / 2) {
        printf("  %-16s too few probes left FAIL\n", gc->label);
        failures++;
    }
    report(gc->label, "other image's scalars unchanged", other, 0);

    /* float32 against float64. */
    float *x32 = xcalloc(nin, sizeof *x32), *maps32 = xcalloc(nin * T, sizeof *maps32);
    float *act32 = xcalloc(NIMG * T, sizeof *act32);
    for (size_t i = 0; i < nin; i++) x32[i] = (float)x[i];
    if (sal_engine_run(e64, x, NIMG, maps, act, NULL, NULL, err, sizeof err) ||
        sal_engine_run(e32, x32, NIMG, maps32, act32, NULL, NULL, err, sizeof err)) {
        printf("  run: %s FAIL\n", err);
        failures++;
    } else {
        double da = 0;
        for (int i = 0; i < NIMG * T; i++) da = fmax(da, fabs(act32[i] - act[i]));
        report(gc->label, "float32 vs float64 target scalars", da, F32_TOL * act_scale);
        if (sal_engine_copy_decisions(e32, e64, NIMG, err, sizeof err) ||
            sal_engine_backward(e32, NIMG, maps32, err, sizeof err)) {
            printf("  float32 under float64's decisions: %s FAIL\n", err);
            failures++;
        } else {
            double dm = 0;
            for (size_t i = 0; i < nin * T; i++) dm = fmax(dm, fabs(maps32[i] - maps[i]));
            report(gc->label, "float32 vs float64 maps (float64's decisions)", dm,
                   F32_TOL * map_scale);
        }
    }
    free(x32), free(maps32), free(act32);
    free(base.bytes);
done:
    free(x), free(maps), free(act), free(ap), free(am), free(scratch);
    sal_engine_free(e64);
    sal_engine_free(e32);
    sal_model_free(m);
}

/* ---- the backward stopped at a node (sal_engine_stop_at, Grad-CAM's dF/dA) ------
 * The gradient at node `stop` against central finite differences of the target
 * scalars when that node's output is perturbed: the layer callback adds the step to
 * one element of the node's output as the forward passes it, and the forward goes on
 * from the perturbed value. */
typedef struct {
    int layer;
    size_t elem;   /* index into the node's output of the whole batch */
    double delta;
} nudge;

static void nudge_cb(void *ctx, int layer, const void *out, int n) {
    const nudge *u = ctx;
    (void)n;
    if (layer == u->layer) ((double *)(void *)out)[u->elem] += u->delta;
}

typedef struct {
    const char *file, *label, *stop;
    const char *targets[4];
    int units[4];
} stop_case;

static void test_stop(const char *dir, const stop_case *sc) {
    char err[SAL_ERR_LEN];
    sal_model *m = NULL;
    if (open_model(dir, sc->file, &m)) return;
    sal_target t[4];
    int T = 0;
    for (; sc->targets[T]; T++) {
        t[T].layer = sal_model_find_layer(m, sc->targets[T]);
        t[T].unit = sc->units[T];
    }
    const int stop = sal_model_find_layer(m, sc->stop);
    const sal_layer *S = sal_model_layer(m, stop);
    const sal_preprocess *pp = sal_model_preprocess(m);
    const size_t img = (size_t)pp->channels * pp->height * pp->width, nin = NIMG * img;
    const size_t se = (size_t)S->out_c * S->out_h * S->out_w;
    const sal_method vanilla = SAL_METHOD_VANILLA;
    sal_engine *e = NULL, *full = NULL;
    double *x = xcalloc(nin, sizeof *x), *g = xcalloc(NIMG * T * se, sizeof *g);
    /* maps2 takes the stopped runs' gradients too */
    const size_t most = (img > se ? img : se) * NIMG * T;
    double *maps = xcalloc(nin * T, sizeof *maps), *maps2 = xcalloc(most, sizeof *maps2);
    double *act = xcalloc(NIMG * T, sizeof *act), *ap = xcalloc(NIMG * T, sizeof *ap);
    double *am = xcalloc(NIMG * T, sizeof *am);
    for (size_t i = 0; i < nin; i++) x[i] = uniform(-2, 2);
    if (sal_engine_init(&e, m, SAL_F64, NIMG, t, T, &vanilla, 1, err, sizeof err) ||
        sal_engine_init(&full, m, SAL_F64, NIMG, t, T, &vanilla, 1, err, sizeof err) ||
        sal_engine_stop_at(e, stop, err, sizeof err) ||
        sal_engine_run(e, x, NIMG, g, act, NULL, NULL, err, sizeof err)) {
        printf("  %s stopped at %s: %s FAIL\n", sc->label, sc->stop, err);
        failures++;
        goto done;
    }
    decisions base;
    decisions_take(&base, e, m, NIMG);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < NIMG * T * se; i++) scale = fmax(scale, fabs(g[i]));
    int probed = 0, skipped = 0;
    for (int p = 0; p < NPROBE; p++) {
        int im = p < 20 ? 0 : 1;
        nudge u = {stop, im * se + (size_t)uniform(0, (double)se), FD_STEP};
        int ok = !sal_engine_run(e, x, NIMG, maps2, ap, nudge_cb, &u, err, sizeof err) &&
                 decisions_same(&base, e, m, NIMG);
        u.delta = -FD_STEP;
        ok = ok && !sal_engine_run(e, x, NIMG, maps2, am, nudge_cb, &u, err, sizeof err) &&
             decisions_same(&base, e, m, NIMG);
        if (!ok) {
            skipped++;
            continue;
        }
        probed++;
        for (int k = 0; k < T; k++) {
            double fd = (ap[im * T + k] - am[im * T + k]) / (2 * FD_STEP);
            /* A target at the stop node itself: its scalar is recorded before the
             * callback nudges the output, so the derivative is the seed's, 1/(H*W)
             * on the unit's channel. */
            const size_t P = (size_t)S->out_h * S->out_w, el = u.elem - im * se;
            if (t[k].layer == stop) fd = (int)(el / P) == t[k].unit ? 1.0 / (double)P : 0;
            double d = fabs(fd - g[((size_t)im * T + k) * se + el]);
            worst = fmax(worst, d);
        }
    }
    free(base.bytes);
    char what[128];
    snprintf(what, sizeof what, "gradient at %s vs finite differences (%d)", sc->stop,
             probed);
    report(sc->label, what, worst, FD_TOL * fmax(scale, 1e-300));
    if (probed < NPROBE / 2) {
        printf("  %-16s too few probes left (%d skipped) FAIL\n", sc->label, skipped);
        failures++;
    }
    if (scale == 0) {
        printf("  %-16s the gradient at %s is all zero FAIL\n", sc->label, sc->stop);
        failures++;
    }
    /* Stopping at the input (-1) again is the full backward, bit for bit. */
    if (sal_engine_stop_at(e, -1, err, sizeof err) ||
        sal_engine_run(e, x, NIMG, maps, NULL, NULL, NULL, err, sizeof err) ||
        sal_engine_run(full, x, NIMG, maps2, NULL, NULL, NULL, err, sizeof err)) {
        printf("  %s: %s FAIL\n", sc->label, err);
        failures++;
    } else {
        report(sc->label, "stop at the input = the full backward",
               memcmp(maps, maps2, sizeof *maps * nin * T) ? 1 : 0, 0);
    }
done:
    free(x), free(g), free(maps), free(maps2), free(act), free(ap), free(am);
    sal_engine_free(e);
    sal_engine_free(full);
    sal_model_free(m);
}

/* A stop node some target does not read, or above the deepest target: refused with a
 * message, and the engine keeps working as before. */
static void test_stop_refused(const char *dir, const char *file, const char *deep,
                              const char *target, const char *stop_name,
                              const char *expect) {
    char err[SAL_ERR_LEN] = "";
    sal_model *m = NULL;
    if (open_model(dir, file, &m)) return;
    sal_target t[2] = {{sal_model_find_layer(m, deep), 0}, {sal_model_find_layer(m, target), 0}};
    const sal_method vanilla = SAL_METHOD_VANILLA;
    sal_engine *e = NULL;
    int stop = stop_name ? sal_model_find_layer(m, stop_name) : sal_model_num_layers(m);
    if (sal_engine_init(&e, m, SAL_F64, 1, t, 2, &vanilla, 1, err, sizeof err)) {
        printf("  engine: %s FAIL\n", err);
        failures++;
    } else {
        int rc = sal_engine_stop_at(e, stop, err, sizeof err);
        int ok = rc != 0 && strstr(err, expect) != NULL;
        printf("  stop at %s for target %s refused: \"%s\" %s\n", stop >= 0 && stop <
               sal_model_num_layers(m) ? sal_model_layer(m, stop)->name : "(beyond)",
               target, err, ok ? "OK" : "FAIL");
        if (!ok) failures++;
    }
    sal_engine_free(e);
    sal_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_graph DIR (from tests/make_graph_models.py)\n");
        return 2;
    }
    static const graph_case cases[] = {
        {"graph_residual.h5", "residual",
         {"layer1.0.relu", "layer1.0.add", "layer1_bottleneck0", "avgpool", "fc", NULL},
         {1, 2, 3, 0, 4}},
        {"graph_inception.h5", "inception",
         {"inception3a.branch2.1.conv", "inception3a", "inception3a", "maxpool2", "fc",
          NULL},
         {2, 3, 5, 6, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_case(argv[1], &cases[i]);
    /* Stops at a node with three consumers (relu), at an inception block's input and
     * at the concat itself (with a target there too). */
    static const stop_case stops[] = {
        {"graph_residual.h5", "residual", "relu", {"layer1_bottleneck0", "fc", NULL}, {2, 4}},
        {"graph_inception.h5", "inception", "maxpool1", {"inception3a", "fc", NULL}, {3, 1}},
        {"graph_inception.h5", "inception", "inception3a", {"inception3a", "fc", NULL},
         {5, 2}},
    };
    printf("stopped backward (sal_engine_stop_at)\n");
    for (size_t i = 0; i < sizeof stops / sizeof *stops; i++) test_stop(argv[1], &stops[i]);
    test_stop_refused(argv[1], "graph_residual.h5", "fc", "layer1_bottleneck0", "avgpool",
                      "avgpool does not feed target layer1.0.relu_2");
    test_stop_refused(argv[1], "graph_inception.h5", "fc", "inception3a.branch1.relu",
                      "inception3a.branch2.1.conv",
                      "does not feed target inception3a.branch1.relu");
    test_stop_refused(argv[1], "graph_residual.h5", "avgpool", "avgpool", NULL,
                      "cannot stop");
    printf("test_graph: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
