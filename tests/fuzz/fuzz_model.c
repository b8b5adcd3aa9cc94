/*
 * Harness: the model file, as salpipe reads it. The input describes a small model
 * (model_gen.h: a valid template network, then changes to the network and to the
 * written HDF5 objects); the file is written with HDF5 and then opened with
 * sal_model_open and loaded with sal_model_load_params exactly as salpipe does,
 * and a model that loads is run through the engine (three targets: the last node,
 * the middle node and one the input picks, so that in a graph targets sit inside
 * branches and some nodes are not needed; all three methods, a batch of 2) to show
 * that whatever the loader accepts can be computed without reading or writing out
 * of bounds; sal_engine_backward then recomputes the maps from the run's decisions,
 * which must give them bit for bit.
 *
 * Harness limits (not salpipe's): models whose parameters exceed 16 MiB are opened
 * but not loaded, and the engine runs only when every layer's output is at most
 * 2^16 values per image and the convolutions, linear layers and pooling windows do
 * at most 2^24 multiply-adds in all.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "fuzz_common.h"
#include "model_gen.h"
#include "salcore.h"

#define MAX_PARAM_BYTES ((size_t)16 << 20)
#define MAX_LAYER_ELEMS ((int64_t)1 << 16)
#define MAX_CONV_MACS ((int64_t)1 << 24)

/* Whether the engine is cheap enough to run on this model here. */
static int small_enough(const sal_model *m) {
    int64_t macs = 0;
    for (int i = 0; i < sal_model_num_layers(m); i++) {
        const sal_layer *L = sal_model_layer(m, i);
        if ((int64_t)L->out_c * L->out_h * L->out_w > MAX_LAYER_ELEMS) return 0;
        const int64_t out = (int64_t)L->out_c * L->out_h * L->out_w;
        if (L->kind == SAL_LAYER_CONV || L->kind == SAL_LAYER_LINEAR)
            macs += out * (L->weight_count / (L->out_c ? L->out_c : 1));
        if (L->kind == SAL_LAYER_MAXPOOL || L->kind == SAL_LAYER_AVGPOOL2D)
            macs += out * L->kh * L->kw;
        if (L->kind == SAL_LAYER_AVGPOOL) /* adaptive: windows up to the input plane */
            macs += (int64_t)L->out_c * L->in_h * L->in_w + out;
        if (macs > MAX_CONV_MACS) return 0;
    }
    const sal_preprocess *pp = sal_model_preprocess(m);
    return (int64_t)pp->channels * pp->height * pp->width <= MAX_LAYER_ELEMS;
}

/* What the engine relies on in a model the loader accepted: every input an earlier
 * node (or the network input), as many as the kind takes, shapes that agree (add:
 * equal; concat: equal height and width, channels summed), every name and alias
 * finding its own node. */
static void check_graph(const sal_model *m) {
    const sal_preprocess *pp = sal_model_preprocess(m);
    for (int i = 0; i < sal_model_num_layers(m); i++) {
        const sal_layer *L = sal_model_layer(m, i);
        const int multi = L->kind == SAL_LAYER_ADD || L->kind == SAL_LAYER_CONCAT;
        if (L->ninputs < 1 + (L->kind == SAL_LAYER_ADD) || L->ninputs > SAL_MAX_INPUTS ||
            (!multi && L->ninputs != 1))
            fz_die("node %d ('%s', %s) accepted with %d inputs", i, L->name,
                   sal_layer_kind_name(L->kind), L->ninputs);
        int64_t csum = 0;
        for (int k = 0; k < L->ninputs; k++) {
            const int j = L->inputs[k];
            if (j < -1 || j >= i) fz_die("node %d ('%s') reads node %d", i, L->name, j);
            const sal_layer *J = j >= 0 ? sal_model_layer(m, j) : NULL;
            const int c = J ? J->out_c : pp->channels, h = J ? J->out_h : pp->height;
            const int w = J ? J->out_w : pp->width;
            csum += c;
            if (k == 0 && L->kind != SAL_LAYER_LINEAR &&
                (L->in_c != c || L->in_h != h || L->in_w != w))
                fz_die("node %d ('%s'): input shape %dx%dx%d recorded, %dx%dx%d read", i,
                       L->name, L->in_c, L->in_h, L->in_w, c, h, w);
            if (L->kind == SAL_LAYER_ADD &&
                (c != L->out_c || h != L->out_h || w != L->out_w))
                fz_die("add node %d ('%s') accepted inputs of different shapes", i, L->name);
            if (L->kind == SAL_LAYER_CONCAT && (h != L->out_h || w != L->out_w))
                fz_die("concat node %d ('%s') accepted inputs of different sizes", i, L->name);
        }
        if (L->kind == SAL_LAYER_CONCAT && csum != L->out_c)
            fz_die("concat node %d ('%s'): %d channels out of %lld in", i, L->name,
                   L->out_c, (long long)csum);
        if (sal_model_find_layer(m, L->name) != i ||
            (L->alias[0] && sal_model_find_layer(m, L->alias) != i))
            fz_die("node %d ('%s', alias '%s') is not found by its names", i, L->name,
                   L->alias);
    }
}

/* Targets: the last node's last unit, the middle node's first, and the node and
 * unit `pick` names (in the graph templates: inside a branch, the concat, ...). */
static void run_engine(const sal_model *m, sal_precision prec, uint8_t pick) {
    char err[SAL_ERR_LEN];
    const int n = sal_model_num_layers(m), last = n - 1, mid = last / 2, p = pick % n;
    const sal_layer *L = sal_model_layer(m, last), *P = sal_model_layer(m, p);
    sal_target t[3] = {{last, L->out_c - 1}, {mid, 0}, {p, (pick / 8) % P->out_c}};
    sal_method meth[3] = {SAL_METHOD_VANILLA, SAL_METHOD_GUIDED, SAL_METHOD_DECONVNET};
    sal_engine *e;
    if (sal_engine_init(&e, m, prec, 2, t, 3, meth, 3, err, sizeof err)) {
        fz_note("engine refused: %s", err);
        return;
    }
    const sal_preprocess *pp = sal_model_preprocess(m);
    const size_t rs = prec == SAL_F64 ? 8 : 4;
    const size_t in = (size_t)pp->channels * pp->height * pp->width;
    char *input = malloc(2 * in * rs), *maps = malloc(2 * 3 * 3 * in * rs);
    char *acts = malloc(2 * 3 * rs), *again = malloc(2 * 3 * 3 * in * rs);
    if (input && maps && acts) {
        for (size_t i = 0; i < 2 * in; i++) {
            double v = (double)((i * 2654435761u) % 512) / 256.0 - 1.0;
            if (prec == SAL_F64) ((double *)input)[i] = v;
            else ((float *)input)[i] = (float)v;
        }
        if (sal_engine_run(e, input, 2, maps, acts, NULL, NULL, err, sizeof err))
            fz_die("sal_engine_run failed on a model that loaded: %s", err);
        /* The backward alone, from the decisions the run recorded, gives the same
         * maps bit for bit: nothing of the run's state leaks into the next. */
        if (again && sal_engine_backward(e, 2, again, err, sizeof err))
            fz_die("sal_engine_backward failed after a run: %s", err);
        if (again && memcmp(maps, again, 2 * 3 * 3 * in * rs))
            fz_die("sal_engine_backward's maps differ from sal_engine_run's");
    }
    free(again);
    free(input);
    free(maps);
    free(acts);
    sal_engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[4096];
    if (!path[0]) {
        fz_path(path, "model.h5");
        openblas_set_num_threads(1);
    }
    if (size > 4096) return 0; /* a few hundred operations are plenty */
    if (mg_write(data, size, path)) return 0;
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err)) {
        fz_note("refused: %s", err);
        if (!err[0] || strlen(err) >= sizeof err) fz_die("a refusal without a message");
        return 0;
    }
    check_graph(m);
    const sal_precision prec = size && (data[0] / 3) & 1 ? SAL_F64 : SAL_F32;
    if (sal_model_params_bytes(m, prec) <= MAX_PARAM_BYTES) {
        if (sal_model_load_params(m, prec, NULL, err, sizeof err) == 0) {
            fz_note("loaded %d layers in %s%s", sal_model_num_layers(m),
                    prec == SAL_F64 ? "float64" : "float32",
                    small_enough(m) ? ", running the engine" : "");
            if (small_enough(m)) run_engine(m, prec, size > 1 ? data[size - 1] : 0);
        } else if (fz_note("load refused: %s", err), !err[0]) {
            fz_die("a load refusal without a message");
        }
    }
    sal_model_free(m);
    return 0;
}
