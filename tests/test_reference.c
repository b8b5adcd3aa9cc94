/*
 * Reference test: salpipe's node outputs, target activations and saliency maps
 * against PyTorch's, written by tests/reference/make_reference.py for the same seeded
 * torchvision network that scripts/export_torchvision.py exported: chain networks
 * (AlexNet, VGG) and graph networks (ResNet, GoogLeNet, Inception-v3).
 *
 *     test_reference MODEL.h5 REFERENCE.h5 [--inputs K] [--perturb gray|scale]
 *                    [--expect-f32-fail]
 *
 * float64: every node output, activation and map within 1e-9 of PyTorch float64
 * (max |salpipe - torch64| / max |torch64|).
 *
 * float32, an oracle that holds on every CPU (OpenBLAS picks other kernels on other
 * CPUs, so other near-ties of a ReLU input or a max-pool pair flip there):
 *   1. forward: every node's output and every activation within float32 rounding of
 *      float64 (five times PyTorch float32's own distance, plus a small slack). The
 *      forward is continuous, so flips cannot break this.
 *   2. decisions: the ReLU masks and max-pool argmaxes the engine recorded (and its
 *      backward uses) are exactly those of its own float32 values of the node's
 *      input (inputs[0]): mask = (x > 0), argmax = the first maximum in row-major order.
 *   3. backward: each float32 map is recomputed in float64 under salpipe's float32
 *      decisions (sal_engine_copy_decisions + sal_engine_backward on the float64
 *      engine, itself checked against PyTorch in the float64 part). Given the
 *      decisions the backward is continuous, so the float32 map must match that to
 *      float32 rounding: relative L2 <= F32_MAP_TOL (1e-5). A near-tie flip cannot
 *      fail it; a wrong rule, index or scale does. The maps are computed twice, with
 *      the default backward convolutions (Winograd for 3x3 layers) and with
 *      convolution = "direct", and both must pass; the summary prints both. A third
 *      run with convolution = "fastest" (Winograd forward too) makes its own
 *      decisions; float64 recomputes its maps under them and the same bound holds.
 * Flips against float64's decisions, and each map's distance from PyTorch float64
 * next to PyTorch float32's own, are printed for information.
 *
 * Graph networks also (float64, input 0): each DNNBrain layer name finds the node
 * whose value PyTorch's forward hook on that module saw; DNNBrain's own hook-based
 * vanilla and guided maps equal salpipe's map of the method the reference names, or,
 * where they differ by design (DNNBrain hooks only nn.ReLU modules met before the
 * target module), equal the reference's map with exactly DNNBrain's mix of rules,
 * and the reason is printed.
 *
 * Memory: a node's output is kept (widened to double) only while a ReLU or max-pool
 * that reads it has yet to run, so ResNet-152 never holds all its nodes.
 *
 * --perturb and --expect-f32-fail exist for the mutation checks (tests/reference.cmake):
 * gray moves 1% of the float32 input's pixels by one gray level, scale multiplies the
 * float32 maps by 1.001; --expect-f32-fail exits 0 only when float64 passed and the
 * float32 oracle failed. --inputs K uses the reference's first K inputs only.
 * One line per case, then the worst figures; exit status 1 on any failure, 2 when a
 * file cannot be read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5.h>

#include "reference_file.h"
#include "salcore.h"

#define F64_TOL 1e-9          /* float64: relative to the reference's max |value|    */
#define F32_FACTOR 5.0        /* float32 forward: times PyTorch float32's distance   */
#define F32_SLACK 1e-5        /* float32 activations: relative slack                */
#define F32_LAYER_SLACK 1e-6  /* float32 layer outputs: relative slack              */
#define F32_LAYER_TOL 1e-4    /* float32 layer outputs when torch's figure is absent */
/* float32 maps against float64 under the same decisions, relative L2, for both
 * settings of the backward convolutions. The worst measured with convolution =
 * "direct" over AlexNet, VGG11 and VGG11_bn under every OpenBLAS kernel set of an
 * AVX-512 Xeon is 6e-7 (docs/reliability.md); with the default "fast" (Winograd
 * F(2x2, 3x3) for the 3x3 layers) 5.8e-7 on AlexNet and 8.1e-7 on VGG11, at most 1.6x
 * the direct figure (docs/performance.md, "Winograd backward"): 1e-5 leaves a factor
 * 12 for other CPUs and images. A map scaled by 1.0001 is at 1e-4. */
#define F32_MAP_TOL 1e-5

/* ---- forward decisions ------------------------------------------------------------ */

/* ReLU masks and max-pool argmaxes are discrete. Where salpipe's float32 forward makes
 * one of them differently from float64 (a value within float32 rounding of zero, or of
 * its window's other maximum), its maps may legitimately move by far more than
 * rounding. These flips are counted and printed for information; the oracle itself
 * (see the top of the file) does not depend on them. */
typedef struct {
    int relu, pool;       /* flips, per (image, node)                                 */
    double margin;        /* largest float32 |x| (ReLU) or gap between the two
                           * choices (pool) at a flip, relative to the input's max |x| */
    double err;           /* the input node's float32 max|d|/max|ref| against PyTorch
                           * float64 (NAN: the network input)                          */
} flips;

/* Index (y*W + x) of the first maximum of each window in row-major order (a later
 * element wins only when strictly greater, or NaN), PyTorch's rule; in (C,H,W) as
 * double, one image; idx (C,OH,OW). Windows reaching past the input (padding,
 * ceil_mode) cover only its elements. */
static void pool_argmax(int32_t *idx, const double *in, const sal_layer *L) {
    for (int c = 0; c < L->out_c; c++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                double best = -INFINITY;
                int32_t at = -1;
                for (int ky = 0; ky < L->kh; ky++)
                    for (int kx = 0; kx < L->kw; kx++) {
                        int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
                        if (y < 0 || y >= L->in_h || x < 0 || x >= L->in_w) continue;
                        double v = in[((size_t)c * L->in_h + y) * L->in_w + x];
                        if (v > best || at < 0 || isnan(v)) best = v, at = y * L->in_w + x;
                    }
                idx[((size_t)c * L->out_h + oy) * L->out_w + ox] = at;
            }
}

/* ---- comparisons ------------------------------------------------------------------ */

typedef struct {
    int failures, cases;
    double worst_layer;      /* max over nodes of max|d|/max|ref|                    */
    char worst_layer_name[SAL_NAME_LEN];
    double worst_map;        /* float64: max|d|/max|ref| against PyTorch; float32:
                              * rel L2 against float64 under float32's decisions     */
    double worst_torch;      /* float32: rel L2 against PyTorch float64 (information)*/
    double worst_act;        /* max |d| / scale                                      */
    double worst_dnnbrain;   /* float64: DNNBrain's maps, max|d|/max|ref|            */
    long decision_checks, decision_errors;
} tally;

static double value(const void *p, sal_precision prec, size_t i) {
    return prec == SAL_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* What the node callback needs, for one precision's run. */
typedef struct {
    hid_t file;
    const sal_model *m;
    const reference *r;
    sal_precision prec;
    const sal_engine *e;   /* the engine running: its recorded decisions             */
    const sal_engine *e64; /* float32 run: the float64 engine, its last run's ones   */
    char *seen;            /* per reference layer                                    */
    tally *tl;
    double **held;         /* [1 + node]: the node's output of this run, widened, while
                            * a ReLU or max-pool reading it has yet to run; [0] the
                            * network input                                          */
    int *last_reader;      /* [1 + node]: the last ReLU / max-pool node reading it
                            * (as inputs[0]), or -1                                  */
    double *fig;           /* per node: this run's max|d|/max|ref| against PyTorch   */
    int32_t *arg32;        /* one image's argmaxes                                   */
    flips *fl;             /* (n, nodes), float32 run                                */
} layer_ctx;

static void compare_layer(layer_ctx *c, int layer, const void *out, int n) {
    const sal_layer *L = sal_model_layer(c->m, layer);
    const char *prec = c->prec == SAL_F64 ? "f64" : "f32";
    int k = -1;
    for (int i = 0; i < c->r->nlayers && k < 0; i++)
        if (!strcmp(c->r->layers[i], L->name)) k = i;
    c->tl->cases++;
    if (k < 0) {
        printf("%-8s %s layer %-14s no such layer in PyTorch's network  FAIL\n",
               c->r->arch, prec, L->name);
        c->tl->failures++;
        return;
    }
    c->seen[k] = 1;
    char path[SAL_NAME_LEN + 16];
    snprintf(path, sizeof path, "/layers/%s", L->name);
    hsize_t dims[8];
    int rank;
    double *ref = read_dataset(c->file, path, H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    size_t per = 1, expect = (size_t)L->out_c * L->out_h * L->out_w;
    for (int i = 1; i < rank; i++) per *= dims[i];
    double torch32 = read_dataset_double_attr(c->file, path, "f32_rel_err");
    if (per != expect) {
        printf("%-8s %s layer %-14s salpipe has %zu values per image, PyTorch %zu  FAIL\n",
               c->r->arch, prec, L->name, expect, per);
        c->tl->failures++;
        free(ref);
        return;
    }
    int nimg = (int)dims[0] < n ? (int)dims[0] : n;
    double dmax = 0, rmax = 0;
    for (size_t i = 0; i < (size_t)nimg * per; i++) {
        double dv = fabs(value(out, c->prec, i) - ref[i]);
        if (!(dv <= dmax)) dmax = dv; /* NaN propagates */
        if (fabs(ref[i]) > rmax) rmax = fabs(ref[i]);
    }
    double fig = rmax > 0 ? dmax / rmax : dmax;
    /* float32: float32 rounding, on the scale of PyTorch float32's own figure. The
     * forward is continuous (ReLU and max are), so near-tie flips do not move it. */
    double tol = c->prec == SAL_F64 ? F64_TOL
                 : isnan(torch32)   ? F32_LAYER_TOL
                                    : F32_FACTOR * torch32 + F32_LAYER_SLACK;
    int ok = fig <= tol;
    c->fig[layer] = fig;
    if (!(fig <= c->tl->worst_layer)) {
        c->tl->worst_layer = fig;
        snprintf(c->tl->worst_layer_name, SAL_NAME_LEN, "%s", L->name);
    }
    c->tl->failures += !ok;
    printf("%-8s %s layer %-14s %d img  max|d|/max|ref| %.3e  torch f32 %.3e  tol %.3e  %s\n",
           c->r->arch, prec, L->name, nimg, fig, torch32, tol, ok ? "OK" : "FAIL");
    free(ref);
}

/* The decisions the engine recorded at this ReLU / max-pool node (and its backward
 * will use) must be exactly those of its own forward values: `in` holds this run's
 * output of the node's input. */
static void check_own_decisions(layer_ctx *c, int layer, const double *in, int n) {
    const sal_layer *L = sal_model_layer(c->m, layer);
    const size_t E = (size_t)L->in_c * L->in_h * L->in_w;
    const size_t O = (size_t)L->out_c * L->out_h * L->out_w;
    const char *p = c->prec == SAL_F64 ? "f64" : "f32";
    long wrong = 0, checked = 0;
    if (L->kind == SAL_LAYER_RELU) {
        const uint8_t *mask = sal_engine_relu_mask(c->e, layer);
        if (!mask) wrong = 1;
        for (size_t i = 0; mask && i < (size_t)n * E; i++, checked++)
            wrong += mask[i] != (in[i] > 0);
    } else {
        const int32_t *arg = sal_engine_argmax(c->e, layer);
        if (!arg) wrong = 1;
        for (int img = 0; arg && img < n; img++) {
            pool_argmax(c->arg32, in + img * E, L);
            for (size_t o = 0; o < O; o++, checked++)
                wrong += arg[img * O + o] != c->arg32[o];
        }
    }
    c->tl->cases++;
    c->tl->failures += wrong > 0;
    c->tl->decision_checks += checked;
    c->tl->decision_errors += wrong;
    if (wrong)
        printf("%-8s %s layer %-14s %ld of %ld recorded %s differ from the engine's own "
               "forward values  FAIL\n", c->r->arch, p, L->name, wrong, checked,
               L->kind == SAL_LAYER_RELU ? "ReLU mask bits" : "max-pool argmaxes");
}

/* float32 run, for information: this node's ReLU or max-pool decisions against the
 * float64 engine's (checked against its own float64 values in the float64 run). x32
 * holds the float32 output of the node's input. */
static void compare_decisions(layer_ctx *c, int layer, const double *x32, int n) {
    const sal_layer *L = sal_model_layer(c->m, layer);
    const int nl = sal_model_num_layers(c->m);
    const uint8_t *mask64 = sal_engine_relu_mask(c->e64, layer);
    const int32_t *arg64 = sal_engine_argmax(c->e64, layer);
    const size_t E = (size_t)L->in_c * L->in_h * L->in_w;
    const size_t O = (size_t)L->out_c * L->out_h * L->out_w;
    const size_t plane = (size_t)L->in_h * L->in_w, oplane = (size_t)L->out_h * L->out_w;
    for (int img = 0; img < n; img++) {
        const double *x = x32 + img * E;
        flips *f = &c->fl[(size_t)img * nl + layer];
        double scale = 0;
        for (size_t i = 0; i < E; i++)
            if (fabs(x[i]) > scale) scale = fabs(x[i]);
        if (!(scale > 0)) scale = 1;
        f->err = L->inputs[0] < 0 ? NAN : c->fig[L->inputs[0]];
        if (L->kind == SAL_LAYER_RELU && mask64) {
            for (size_t i = 0; i < E; i++)
                if (mask64[img * E + i] != (x[i] > 0)) {
                    f->relu++;
                    if (fabs(x[i]) / scale > f->margin) f->margin = fabs(x[i]) / scale;
                }
        } else if (L->kind == SAL_LAYER_MAXPOOL && arg64) {
            pool_argmax(c->arg32, x, L);
            for (size_t o = 0; o < O; o++) {
                int32_t a64 = arg64[img * O + o];
                if (a64 == c->arg32[o]) continue;
                size_t base = o / oplane * plane;
                double gap = fabs(x[base + a64] - x[base + c->arg32[o]]);
                f->pool++;
                if (gap / scale > f->margin) f->margin = gap / scale;
            }
        }
    }
}

/* The node callback: compare the output, check the decisions of a ReLU / max-pool
 * against its input's values, keep the output while a later ReLU / max-pool needs
 * it and drop what no later node needs. */
static void on_layer(void *vctx, int layer, const void *out, int n) {
    layer_ctx *c = vctx;
    const sal_layer *L = sal_model_layer(c->m, layer);
    const size_t E = (size_t)L->out_c * L->out_h * L->out_w;
    compare_layer(c, layer, out, n);
    if (L->kind == SAL_LAYER_RELU || L->kind == SAL_LAYER_MAXPOOL) {
        const int in = 1 + L->inputs[0];
        if (!c->held[in]) {
            printf("%-8s layer %-14s its input was not reported before it  FAIL\n",
                   c->r->arch, L->name);
            c->tl->failures++;
        } else {
            check_own_decisions(c, layer, c->held[in], n);
            if (c->prec == SAL_F32) compare_decisions(c, layer, c->held[in], n);
        }
        if (c->last_reader[in] == layer) {
            free(c->held[in]);
            c->held[in] = NULL;
        }
    }
    if (c->last_reader[1 + layer] > layer) {
        double *h = xmalloc(sizeof(double) * n * E);
        for (size_t i = 0; i < (size_t)n * E; i++) h[i] = value(out, c->prec, i);
        c->held[1 + layer] = h;
    }
}

/* Relative L2 distance of s from ref over E elements; with ref all zero, ||s||. */
static double rel_l2(const void *s, sal_precision prec, size_t off, const double *ref,
                     size_t E, int *zero) {
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < E; i++) {
        double d = value(s, prec, off + i) - ref[i];
        d2 += d * d, r2 += ref[i] * ref[i];
    }
    *zero = r2 == 0;
    return *zero ? sqrt(d2) : sqrt(d2 / r2);
}

/* float64: every (input, target, method) map against PyTorch float64. float32:
 * against maps64u, the float64 engine's maps under float32's decisions; the distance
 * from PyTorch float64 and PyTorch float32's own are printed alongside. Then every
 * activation. */
static void compare_maps(const reference *r, sal_precision prec, const char *p,
                         const void *maps, const double *maps64u, const void *acts,
                         tally *tl) {
    const size_t E = r->image_elems;
    for (int n = 0; n < r->n; n++)
        for (int t = 0; t < r->ntargets; t++) {
            char target[2 * SAL_NAME_LEN];
            snprintf(target, sizeof target, "%s:%d", r->tlayer[t], r->tunit[t]);
            for (int m = 0; m < r->nmethods; m++) {
                size_t off = (((size_t)n * r->ntargets + t) * r->nmethods + m) * E;
                const double *r64 = r->maps64 + off;
                int zero, ok;
                tl->cases++;
                if (prec == SAL_F64) {
                    double dmax = 0, rmax = 0;
                    for (size_t i = 0; i < E; i++) {
                        double d = fabs(value(maps, prec, off + i) - r64[i]);
                        if (!(d <= dmax)) dmax = d;
                        if (fabs(r64[i]) > rmax) rmax = fabs(r64[i]);
                    }
                    /* A dead unit's map is exactly zero in any implementation. */
                    zero = rmax == 0;
                    double fig = zero ? dmax : dmax / rmax;
                    ok = zero ? fig == 0 : fig <= F64_TOL;
                    if (!(fig <= tl->worst_map)) tl->worst_map = fig;
                    printf("%-8s %s %-8s %-16s %-9s %s %.3e  tol %.0e  %s\n", r->arch, p,
                           r->inputs[n], target, r->methods[m],
                           zero ? "ref zero, max|s|" : "max|d|/max|ref|", fig,
                           zero ? 0.0 : F64_TOL, ok ? "OK" : "FAIL");
                } else {
                    int z64, z32;
                    double fig = rel_l2(maps, prec, off, maps64u + off, E, &zero);
                    double vs_torch = rel_l2(maps, prec, off, r64, E, &z64);
                    double torch32 = rel_l2(r->maps32, SAL_F64, off, r64, E, &z32);
                    /* Under the same decisions a zero map stays exactly zero. */
                    ok = zero ? fig == 0 : fig <= F32_MAP_TOL;
                    if (!(fig <= tl->worst_map)) tl->worst_map = fig;
                    if (!z64 && !(vs_torch <= tl->worst_torch)) tl->worst_torch = vs_torch;
                    printf("%-8s %s %-8s %-16s %-9s vs f64 under f32 decisions: %s %.3e  "
                           "tol %.0e  %s  (vs torch f64 %.3e, torch f32 %.3e)\n",
                           r->arch, p, r->inputs[n], target, r->methods[m],
                           zero ? "ref zero, ||s||" : "rel L2", fig,
                           zero ? 0.0 : F32_MAP_TOL, ok ? "OK" : "FAIL", vs_torch, torch32);
                }
                tl->failures += !ok;
            }
            if (!acts) continue;
            /* The activation, against the mean |output| of the target channel (of the
             * layer, for a linear unit). */
            size_t k = (size_t)n * r->ntargets + t;
            double s = value(acts, prec, k), d = fabs(s - r->act64[k]);
            double scale = r->act_scale[k];
            double fig = scale > 0 ? d / scale : d;
            double bound = prec == SAL_F64
                               ? (scale > 0 ? F64_TOL : 0)
                               : (scale > 0 ? (F32_FACTOR * fabs(r->act32[k] - r->act64[k])
                                               + F32_SLACK * scale) / scale
                                            : 0);
            int ok = fig <= bound;
            tl->cases++;
            tl->failures += !ok;
            if (!(fig <= tl->worst_act)) tl->worst_act = fig;
            printf("%-8s %s %-8s %-16s %-9s salpipe %.10e torch %.10e |d|/scale %.3e "
                   "bound %.3e  %s\n",
                   r->arch, p, r->inputs[n], target, "act", s, r->act64[k], fig, bound,
                   ok ? "OK" : "FAIL");
        }
}

/* max|a - ref| / max|ref| over E elements; with ref all zero, max|a| (*zero set). */
static double max_rel(const double *a, const double *ref, size_t E, int *zero) {
    double dmax = 0, rmax = 0;
    for (size_t i = 0; i < E; i++) {
        double d = fabs(a[i] - ref[i]);
        if (!(d <= dmax)) dmax = d;
        if (fabs(ref[i]) > rmax) rmax = fabs(ref[i]);
    }
    *zero = rmax == 0;
    return *zero ? dmax : dmax / rmax;
}

static int method_index(const reference *r, const char *name) {
    for (int k = 0; k < r->nmethods; k++)
        if (!strcmp(r->methods[k], name)) return k;
    return -1;
}

/* Graph networks, float64, input 0: DNNBrain's names find the nodes PyTorch's
 * forward hooks found, and DNNBrain's own maps against salpipe's (see the top). */
static void compare_dnnbrain(const reference *r, const sal_model *m, const double *maps64,
                             tally *tl) {
    int named = 0;
    for (int i = 0; i < r->npairs; i++) {
        int a = sal_model_find_layer(m, r->dn_names[i]);
        int b = sal_model_find_layer(m, r->dn_nodes[i]);
        tl->cases++;
        if (a >= 0 && a == b) {
            named++;
            continue;
        }
        tl->failures++;
        printf("%-8s f64 DNNBrain name %s: salpipe finds %s, PyTorch's hook saw node %s  "
               "FAIL\n", r->arch, r->dn_names[i], a >= 0 ? sal_model_layer(m, a)->name : "none",
               r->dn_nodes[i]);
    }
    if (r->npairs)
        printf("%-8s f64 DNNBrain names: %d of %d find the node whose value PyTorch's "
               "forward hook on that module saw  %s\n", r->arch, named, r->npairs,
               named == r->npairs ? "OK" : "FAIL");
    const size_t E = r->image_elems;
    for (int d = 0; d < r->ndn; d++) {
        const int t = r->dn_target[d];
        for (int k = 0; k < r->dn_nmethods; k++) {
            const size_t off = ((size_t)d * r->dn_nmethods + k) * E;
            const double *dn = r->dn_maps + off;
            const char *expect = r->dn_expect[d * r->dn_nmethods + k];
            const char *why = r->dn_why[d * r->dn_nmethods + k];
            const char *as = expect[0] ? expect : r->dn_methods[k];
            const int mi = method_index(r, as);
            char target[2 * SAL_NAME_LEN];
            snprintf(target, sizeof target, "%s:%d", r->tlayer[t], r->tunit[t]);
            int zero, zero_s, ok;
            /* PyTorch against PyTorch: DNNBrain's hooks give exactly the predicted map. */
            double fig_ex = max_rel(dn, r->dn_explained + off, E, &zero);
            double fig_s = NAN;
            if (mi >= 0) fig_s = max_rel(maps64 + ((size_t)t * r->nmethods + mi) * E, dn, E,
                                         &zero_s);
            ok = mi >= 0 && (zero ? fig_ex == 0 : fig_ex <= F64_TOL);
            if (expect[0]) ok = ok && (zero_s ? fig_s == 0 : fig_s <= F64_TOL);
            double worst = expect[0] && fig_s > fig_ex ? fig_s : fig_ex;
            if (!(worst <= tl->worst_dnnbrain)) tl->worst_dnnbrain = worst;
            tl->cases++;
            tl->failures += !ok;
            if (expect[0])
                printf("%-8s f64 %-8s %-16s DNNBrain %-8s = salpipe %-8s max|d|/max|ref| "
                       "%.3e (DNNBrain vs reference %.3e)  tol %.0e  %s  [%s]\n",
                       r->arch, r->inputs[0], target, r->dn_methods[k], expect, fig_s,
                       fig_ex, F64_TOL, ok ? "OK" : "FAIL", why);
            else
                printf("%-8s f64 %-8s %-16s DNNBrain %-8s differs by design from salpipe's "
                       "(max|d|/max|ref| %.3e); it equals the reference under DNNBrain's mix "
                       "of rules: %.3e  tol %.0e  %s  [%s]\n",
                       r->arch, r->inputs[0], target, r->dn_methods[k], fig_s, fig_ex,
                       F64_TOL, ok ? "OK" : "FAIL", why);
        }
    }
}

/* float32: one line per image naming every node where a decision flipped. */
static void print_decisions(const layer_ctx *c, int n) {
    const int nl = sal_model_num_layers(c->m);
    for (int img = 0; img < n; img++) {
        printf("%-8s f32 %-8s decisions vs float64:", c->r->arch, c->r->inputs[img]);
        int any = 0;
        for (int i = 0; i < nl; i++) {
            const flips *f = &c->fl[(size_t)img * nl + i];
            if (!f->relu && !f->pool) continue;
            printf("%s %s %d %s (margin %.1e of the input's max; input's float32 error "
                   "%.1e)", any ? ";" : "", sal_model_layer(c->m, i)->name,
                   f->relu + f->pool, f->relu ? "mask flips" : "argmax flips", f->margin,
                   f->err);
            any = 1;
        }
        printf("%s\n", any ? "" : " none flipped");
    }
}

/* ---- mutations the float32 oracle must catch ---------------------------------------- */

/* Moves every 100th pixel of each float32 input by one gray level (down where the
 * pixel would leave 0..255), in all channels: 1% of the pixels. */
static void perturb_gray(float *x, const reference *r, const sal_model *m) {
    const sal_preprocess *pre = sal_model_preprocess(m);
    const size_t P = (size_t)r->h * r->w;
    for (int n = 0; n < r->n; n++)
        for (size_t p = 37; p < P; p += 100)
            for (int ch = 0; ch < r->c; ch++) {
                float *v = x + ((size_t)n * r->c + ch) * P + p;
                double pixel = ((double)*v * pre->std[ch] + pre->mean[ch]) * 255.0;
                double step = pixel > 254.5 ? -1.0 : 1.0;
                *v = (float)(*v + step / (255.0 * pre->std[ch]));
            }
}

static void scale_maps(float *maps, size_t count) {
    for (size_t i = 0; i < count; i++) maps[i] *= 1.001f;
}

/* ---- one precision --------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Runs the engine in c->prec on every input, comparing nodes on the way. On success
 * returns the engine (the caller frees it) with its maps and activations in *maps and
 * *acts (caller-owned); on failure counts it in tl and returns NULL. */
static sal_engine *run_precision(layer_ctx *c, sal_model *m, const void *input,
                                 tally *tl, void **maps, void **acts) {
    const reference *r = c->r;
    const sal_precision prec = c->prec;
    const char *p = prec == SAL_F64 ? "f64" : "f32";
    const int nl = sal_model_num_layers(m);
    char err[SAL_ERR_LEN];
    sal_target *targets = xmalloc(sizeof *targets * r->ntargets);
    sal_method *methods = xmalloc(sizeof *methods * r->nmethods);
    sal_engine *e = NULL;
    for (int t = 0; t < r->ntargets; t++) {
        targets[t].layer = sal_model_find_layer(m, r->tlayer[t]);
        targets[t].unit = r->tunit[t] - 1; /* DNNBrain's 1-based unit, 0-based here */
        if (targets[t].layer < 0) {
            printf("%-8s %s model has no layer %s  FAIL\n", r->arch, p, r->tlayer[t]);
            tl->failures++;
            goto done;
        }
    }
    for (int k = 0; k < r->nmethods; k++) {
        methods[k] = sal_method_from_name(r->methods[k]);
        if (methods[k] == SAL_METHOD_COUNT) {
            printf("%-8s %s unknown method %s  FAIL\n", r->arch, p, r->methods[k]);
            tl->failures++;
            goto done;
        }
    }
    if (sal_model_load_params(m, prec, NULL, err, sizeof err) ||
        sal_engine_init(&e, m, prec, r->n, targets, r->ntargets, methods, r->nmethods, err,
                        sizeof err)) {
        printf("%-8s %s %s  FAIL\n", r->arch, p, err);
        tl->failures++;
        e = NULL;
        goto done;
    }
    size_t rs = prec == SAL_F64 ? sizeof(double) : sizeof(float);
    *maps = xmalloc(rs * r->n * r->ntargets * r->nmethods * r->image_elems);
    *acts = xmalloc(rs * r->n * r->ntargets);
    c->tl = tl;
    c->e = e;
    memset(c->seen, 0, r->nlayers);
    for (int i = 0; i < nl; i++) c->fig[i] = NAN;
    if (c->last_reader[0] >= 0) {
        c->held[0] = xmalloc(sizeof(double) * r->n * r->image_elems);
        for (size_t i = 0; i < r->n * r->image_elems; i++) c->held[0][i] = value(input, prec, i);
    }
    double t0 = now();
    int rc = sal_engine_run(e, input, r->n, *maps, *acts, on_layer, c, err, sizeof err);
    double t1 = now();
    for (int i = 0; i <= nl; i++) {
        free(c->held[i]);
        c->held[i] = NULL;
    }
    if (rc) {
        printf("%-8s %s sal_engine_run: %s  FAIL\n", r->arch, p, err);
        tl->failures++;
        sal_engine_free(e);
        e = NULL;
        goto done;
    }
    printf("%-8s %s engine run: %d images, %d targets x %d methods, %.2f s "
           "(including the node comparisons)\n",
           r->arch, p, r->n, r->ntargets, r->nmethods, t1 - t0);
    for (int k = 0; k < r->nlayers; k++)
        if (!c->seen[k]) {
            printf("%-8s %s layer %-14s PyTorch has it, salpipe's forward did not "
                   "report it  FAIL\n", r->arch, p, r->layers[k]);
            tl->failures++;
        }
done:
    free(targets);
    free(methods);
    return e;
}

int main(int argc, char **argv) {
    const char *perturb = NULL;
    int expect_fail = 0, nfiles = 0, inputs = 0;
    const char *files[2];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perturb") && i + 1 < argc &&
            (!strcmp(argv[i + 1], "gray") || !strcmp(argv[i + 1], "scale")))
            perturb = argv[++i];
        else if (!strcmp(argv[i], "--inputs") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            inputs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--expect-f32-fail"))
            expect_fail = 1;
        else if (argv[i][0] != '-' && nfiles < 2)
            files[nfiles++] = argv[i];
        else
            nfiles = 3;
    }
    if (nfiles != 2) {
        fprintf(stderr, "usage: %s MODEL.h5 REFERENCE.h5 [--inputs K] "
                        "[--perturb gray|scale] [--expect-f32-fail]\n", argv[0]);
        return 2;
    }
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(files[0], &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    hid_t file = H5Fopen(files[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "%s: cannot open the reference file\n", files[1]);
        return 2;
    }
    static reference r;
    reference_read(&r, file);
    /* Images are the outermost axis of every dataset: the first K stay in place. */
    if (inputs > 0 && inputs < r.n) r.n = inputs;
    printf("%s: %s vs %s; %d inputs, %d targets, %d methods%s%s\n", r.arch, files[0],
           files[1], r.n, r.ntargets, r.nmethods, perturb ? "; mutation: " : "",
           perturb ? perturb : "");

    /* Which node outputs a ReLU or max-pool reads, and until when; scratch for one
     * image's argmaxes, sized by the largest node. */
    const int nl = sal_model_num_layers(m);
    layer_ctx c = {.file = file, .m = m, .r = &r};
    c.last_reader = xmalloc(sizeof(int) * (nl + 1));
    for (int i = 0; i <= nl; i++) c.last_reader[i] = -1;
    size_t maxe = 0;
    for (int i = 0; i < nl; i++) {
        const sal_layer *L = sal_model_layer(m, i);
        size_t e = (size_t)L->out_c * L->out_h * L->out_w;
        if (e > maxe) maxe = e;
        if (L->kind == SAL_LAYER_RELU || L->kind == SAL_LAYER_MAXPOOL)
            c.last_reader[1 + L->inputs[0]] = i;
    }
    c.held = calloc(nl + 1, sizeof *c.held);
    c.fl = calloc((size_t)r.n * nl, sizeof *c.fl);
    c.seen = xmalloc(r.nlayers);
    c.fig = xmalloc(sizeof(double) * nl);
    c.arg32 = xmalloc(sizeof(int32_t) * maxe);
    if (!c.held || !c.fl) return 2;

    tally tl[4] = {{0}, {0}, {0}, {0}};
    void *maps64 = NULL, *acts64 = NULL, *maps32 = NULL, *acts32 = NULL;
    /* float64 first: float32's decisions are compared with its recorded ones, and its
     * engine recomputes the float32 maps under float32's decisions. */
    c.prec = SAL_F64;
    sal_engine *e64 = run_precision(&c, m, r.input64, &tl[0], &maps64, &acts64);
    if (e64) {
        compare_maps(&r, SAL_F64, "f64", maps64, NULL, acts64, &tl[0]);
        compare_dnnbrain(&r, m, maps64, &tl[0]);
    }

    if (perturb && !strcmp(perturb, "gray")) perturb_gray(r.input32, &r, m);
    c.prec = SAL_F32;
    c.e64 = e64;
    sal_engine *e32 = e64 ? run_precision(&c, m, r.input32, &tl[1], &maps32, &acts32) : NULL;
    if (e32) {
        const size_t count = (size_t)r.n * r.ntargets * r.nmethods * r.image_elems;
        if (perturb && !strcmp(perturb, "scale")) scale_maps(maps32, count);
        print_decisions(&c, r.n);
        if (sal_engine_copy_decisions(e64, e32, r.n, err, sizeof err) ||
            sal_engine_backward(e64, r.n, maps64, err, sizeof err)) {
            printf("%-8s f64 backward under f32 decisions: %s  FAIL\n", r.arch, err);
            tl[1].failures++;
        } else {
            compare_maps(&r, SAL_F32, "f32", maps32, maps64, acts32, &tl[1]);
            /* The same decisions, backward convolutions direct (issue 13): both modes
             * must pass the oracle, and the summary shows what Winograd adds. */
            const size_t bytes = sizeof(float) * count;
            void *maps32d = xmalloc(bytes);
            if (sal_engine_set_convolution(e32, SAL_CONV_DIRECT, err, sizeof err) ||
                sal_engine_backward(e32, r.n, maps32d, err, sizeof err)) {
                printf("%-8s f32 direct backward: %s  FAIL\n", r.arch, err);
                tl[2].failures++;
            } else {
                if (perturb && !strcmp(perturb, "scale")) scale_maps(maps32d, count);
                compare_maps(&r, SAL_F32, "f32-dir", maps32d, maps64, NULL, &tl[2]);
            }
            free(maps32d);
            /* convolution = "fastest": Winograd in the forward too (and F(2x2, 5x5)),
             * so its own forward decides; float64 recomputes the maps under those
             * decisions and the same oracle applies (docs/performance.md, "Winograd
             * forward"). */
            void *maps32w = xmalloc(bytes);
            void *acts32w = xmalloc(sizeof(float) * r.n * r.ntargets);
            if (sal_engine_set_convolution(e32, SAL_CONV_FASTEST, err, sizeof err) ||
                sal_engine_run(e32, r.input32, r.n, maps32w, acts32w, NULL, NULL, err,
                               sizeof err) ||
                sal_engine_copy_decisions(e64, e32, r.n, err, sizeof err) ||
                sal_engine_backward(e64, r.n, maps64, err, sizeof err)) {
                printf("%-8s f32 fastest: %s  FAIL\n", r.arch, err);
                tl[3].failures++;
            } else {
                if (perturb && !strcmp(perturb, "scale")) scale_maps(maps32w, count);
                compare_maps(&r, SAL_F32, "f32-fst", maps32w, maps64, NULL, &tl[3]);
            }
            free(maps32w);
            free(acts32w);
        }
    }

    printf("\n%s summary (max over cases)\n", r.arch);
    printf("  f64: %d cases, %d failed; nodes max|d|/max|ref| %.3e (%s), maps %.3e, "
           "activations |d|/scale %.3e (tol %.0e)",
           tl[0].cases, tl[0].failures, tl[0].worst_layer, tl[0].worst_layer_name,
           tl[0].worst_map, tl[0].worst_act, F64_TOL);
    if (r.ndn) printf("; DNNBrain's maps %.3e", tl[0].worst_dnnbrain);
    printf("\n  f32: %d cases, %d failed; nodes max|d|/max|ref| %.3e (%s), activations "
           "|d|/scale %.3e; %ld recorded decisions, %ld unlike the forward values; maps "
           "against float64 under float32's decisions rel L2 %.3e (tol %.0e); for "
           "information, against PyTorch float64 %.3e\n",
           tl[1].cases, tl[1].failures, tl[1].worst_layer, tl[1].worst_layer_name,
           tl[1].worst_act, tl[1].decision_checks, tl[1].decision_errors, tl[1].worst_map,
           F32_MAP_TOL, tl[1].worst_torch);
    printf("  f32 with convolution = \"direct\": %d cases, %d failed; maps rel L2 %.3e "
           "(the default \"fast\" above: %.3e, %.2fx)\n",
           tl[2].cases, tl[2].failures, tl[2].worst_map, tl[1].worst_map,
           tl[2].worst_map > 0 ? tl[1].worst_map / tl[2].worst_map : 0.0);
    printf("  f32 with convolution = \"fastest\" (its own decisions): %d cases, %d failed; "
           "maps rel L2 %.3e (%.2fx the direct)\n",
           tl[3].cases, tl[3].failures, tl[3].worst_map,
           tl[2].worst_map > 0 ? tl[3].worst_map / tl[2].worst_map : 0.0);
    int failed = tl[0].failures || tl[1].failures || tl[2].failures || tl[3].failures;
    int status = failed;
    if (expect_fail) {
        status = !(tl[0].failures == 0 && tl[1].failures > 0);
        printf("%s\n", status ? "FAIL: the float32 oracle did not catch the mutation"
                              : "OK: the float32 oracle caught the mutation");
    } else {
        printf("%s\n", failed ? "FAIL" : "OK");
    }
    free(c.held);
    free(c.last_reader);
    free(c.fl);
    free(c.seen);
    free(c.fig);
    free(c.arg32);
    free(maps64);
    free(acts64);
    free(maps32);
    free(acts32);
    sal_engine_free(e32);
    sal_engine_free(e64);
    reference_free(&r);
    H5Fclose(file);
    sal_model_free(m);
    return status;
}
