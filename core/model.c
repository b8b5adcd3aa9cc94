/*
 * The model loader: reads a salpipe model file (HDF5, docs/model-format.md),
 * checks everything it can before any weight is read (names, kinds, attributes,
 * dataset types and shapes, the shape chain from the input to the last layer), and
 * later reads the weights into one parameter block per precision.
 *
 * Every refusal is a message naming the file, the layer group or attribute and
 * what was expected; HDF5's own error printing is kept off while we work.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_h5.h"
#include "model_internal.h"

#define SAL_FORMAT_NAME "salpipe-model"
#define SAL_FORMAT_VERSION 2
#define SAL_MAX_DIM ((int64_t)1 << 20)     /* any one size, channel or feature count */
#define SAL_MAX_LAYERS 4096
#define SAL_MAX_ACT ((int64_t)1 << 30)     /* elements of one image's activation     */
#define SAL_MAX_PARAMS ((int64_t)1 << 32)  /* elements of the whole parameter block  */

static const char *const kind_names[SAL_LAYER_KIND_COUNT] = {
    [SAL_LAYER_CONV] = "conv2d",       [SAL_LAYER_BATCHNORM] = "batchnorm2d",
    [SAL_LAYER_RELU] = "relu",         [SAL_LAYER_MAXPOOL] = "maxpool2d",
    [SAL_LAYER_AVGPOOL] = "adaptive_avgpool2d", [SAL_LAYER_FLATTEN] = "flatten",
    [SAL_LAYER_DROPOUT] = "dropout",   [SAL_LAYER_LINEAR] = "linear",
    [SAL_LAYER_ADD] = "add",           [SAL_LAYER_CONCAT] = "concat",
    [SAL_LAYER_AVGPOOL2D] = "avgpool2d", [SAL_LAYER_AFFINE] = "channel_affine",
};

static const char *const method_names[SAL_METHOD_COUNT] = {
    [SAL_METHOD_VANILLA] = "vanilla",
    [SAL_METHOD_GUIDED] = "guided",
    [SAL_METHOD_DECONVNET] = "deconvnet",
    [SAL_METHOD_GRADIENT_X_INPUT] = "gradient_x_input",
    [SAL_METHOD_SMOOTHGRAD] = "smoothgrad",
    [SAL_METHOD_INTEGRATED_GRADIENTS] = "integrated_gradients",
    [SAL_METHOD_GRADCAM] = "gradcam",
    [SAL_METHOD_GUIDED_GRADCAM] = "guided_gradcam",
};

/* State while walking the layer sequence: the shape flowing out of the previous
 * layer and the parameter elements laid out so far. */
typedef struct {
    mh5 c;
    sal_model *m;
    int64_t ch, h, w;
    int64_t params;
    int64_t net_c, net_h, net_w;  /* the network input */
} walk;

/* The output shape of node j (-1: the network input). */
static void input_shape(const walk *W, int j, int64_t *c, int64_t *h, int64_t *w) {
    if (j < 0) {
        *c = W->net_c, *h = W->net_h, *w = W->net_w;
        return;
    }
    const sal_layer *L = &W->m->layers[j];
    *c = L->out_c, *h = L->out_h, *w = L->out_w;
}

static const char *input_name(const sal_layer *nodes, int j) {
    return j < 0 ? SAL_INPUT_NAME : nodes[j].name;
}

/* *r = a * b when both are non-negative and the product is at most limit. */
static int mul_le(int64_t a, int64_t b, int64_t limit, int64_t *r) {
    if (a < 0 || b < 0 || (a != 0 && b > limit / a)) return -1;
    *r = a * b;
    return *r <= limit ? 0 : -1;
}

/* Element count of a dataset of the given dims, bounded by SAL_MAX_PARAMS. */
static int count_elems(walk *W, const char *ds, int rank, const int64_t *dims,
                       int64_t *n) {
    *n = 1;
    for (int i = 0; i < rank; i++)
        if (mul_le(*n, dims[i], SAL_MAX_PARAMS, n))
            return mh5_fail(&W->c, "dataset '%s' would hold more than %lld elements",
                            ds, (long long)SAL_MAX_PARAMS);
    return 0;
}

/* Sets the layer's output shape and makes it the next layer's input. */
static int set_out(walk *W, sal_layer *L, int64_t c, int64_t h, int64_t w) {
    int64_t n;
    if (c < 1 || h < 1 || w < 1)
        return mh5_fail(&W->c, "output shape %lldx%lldx%lld is empty", (long long)c,
                        (long long)h, (long long)w);
    if (mul_le(c, h, SAL_MAX_ACT, &n) || mul_le(n, w, SAL_MAX_ACT, &n))
        return mh5_fail(&W->c, "output shape %lldx%lldx%lld exceeds %lld elements per "
                        "image", (long long)c, (long long)h, (long long)w,
                        (long long)SAL_MAX_ACT);
    L->out_c = (int32_t)c;
    L->out_h = (int32_t)h;
    L->out_w = (int32_t)w;
    W->ch = c;
    W->h = h;
    W->w = w;
    return 0;
}

/* Checks the layer's weight and bias datasets and reserves their slots. */
static int add_params(walk *W, hid_t g, sal_layer *L, const char *const *names,
                      int nds, int wrank, const int64_t *wdims, int64_t bdim) {
    int64_t wn, bn = bdim;
    if (count_elems(W, names[0], wrank, wdims, &wn)) return -1;
    for (int i = 0; i < nds; i++)
        if (mh5_check_dataset(&W->c, g, names[i], i ? 1 : wrank, i ? &bdim : wdims))
            return -1;
    if (W->params + wn + bn > SAL_MAX_PARAMS) /* each term is at most 2^32 */
        return mh5_fail(&W->c, "the model would hold more than %lld parameters",
                        (long long)SAL_MAX_PARAMS);
    L->weight_off = W->params;
    L->weight_count = wn;
    L->bias_off = W->params + wn;
    L->bias_count = bn;
    W->params += wn + bn;
    return 0;
}

static const char *const wb_names[] = {"weight", "bias"};
static const char *const bn_names[] = {"weight", "bias", "running_mean", "running_var"};

/* Optional `dilation` attribute: only 1 is supported (torchvision's networks). */
static int check_dilation(walk *W, hid_t g) {
    int64_t d[2];
    int r = mh5_attr_ints(&W->c, g, "dilation", d, 2, 0, SAL_MAX_DIM, 0);
    if (r < 0) return -1;
    if (r == 0 && (d[0] != 1 || d[1] != 1))
        return mh5_fail(&W->c, "dilation (%lld, %lld) is not supported, expected (1, 1)",
                        (long long)d[0], (long long)d[1]);
    return 0;
}

static int parse_conv(walk *W, hid_t g, sal_layer *L) {
    mh5 *c = &W->c;
    int64_t in, out, k[2], s[2], p[2], groups;
    if (mh5_attr_ints(c, g, "in_channels", &in, 1, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "out_channels", &out, 1, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "kernel_size", k, 2, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "stride", s, 2, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "padding", p, 2, 0, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "groups", &groups, 1, 1, SAL_MAX_DIM, 1) || check_dilation(W, g))
        return -1;
    if (in != W->ch)
        return mh5_fail(c, "in_channels = %lld but its input gives %lld channels "
                        "(%lldx%lldx%lld)", (long long)in, (long long)W->ch,
                        (long long)W->ch, (long long)W->h, (long long)W->w);
    if (in % groups || out % groups)
        return mh5_fail(c, "in_channels = %lld and out_channels = %lld must both be "
                        "divisible by groups = %lld", (long long)in, (long long)out,
                        (long long)groups);
    if (W->h + 2 * p[0] < k[0] || W->w + 2 * p[1] < k[1])
        return mh5_fail(c, "kernel %lldx%lld is larger than the padded input %lldx%lld",
                        (long long)k[0], (long long)k[1], (long long)(W->h + 2 * p[0]),
                        (long long)(W->w + 2 * p[1]));
    L->kh = (int32_t)k[0], L->kw = (int32_t)k[1];
    L->sh = (int32_t)s[0], L->sw = (int32_t)s[1];
    L->ph = (int32_t)p[0], L->pw = (int32_t)p[1];
    L->groups = (int32_t)groups;
    int64_t wd[4] = {out, in / groups, k[0], k[1]};
    if (add_params(W, g, L, wb_names, 2, 4, wd, out)) return -1;
    return set_out(W, L, out, (W->h + 2 * p[0] - k[0]) / s[0] + 1,
                   (W->w + 2 * p[1] - k[1]) / s[1] + 1);
}

static int parse_batchnorm(walk *W, hid_t g, sal_layer *L) {
    double eps;
    if (mh5_attr_doubles(&W->c, g, "eps", &eps, 1, 1)) return -1;
    if (eps < 0) return mh5_fail(&W->c, "eps = %g, expected >= 0", eps);
    L->eps = eps;
    int64_t wd[1] = {W->ch};
    if (add_params(W, g, L, bn_names, 4, 1, wd, W->ch)) return -1;
    return set_out(W, L, W->ch, W->h, W->w);
}

/* PyTorch's pooling output size (pooling_shape.h), dilation 1. */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode) {
    int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
    int64_t out = num / s + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

/* maxpool2d (avg = 0) or avgpool2d (avg = 1, which has count_include_pad). */
static int parse_pool(walk *W, hid_t g, sal_layer *L, int avg) {
    mh5 *c = &W->c;
    int64_t k[2], s[2], p[2], ceil_mode, cip = 1;
    if (mh5_attr_ints(c, g, "kernel_size", k, 2, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "stride", s, 2, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "padding", p, 2, 0, SAL_MAX_DIM, 1) ||
        mh5_attr_ints(c, g, "ceil_mode", &ceil_mode, 1, 0, 1, 1) ||
        (avg ? mh5_attr_ints(c, g, "count_include_pad", &cip, 1, 0, 1, 1)
             : check_dilation(W, g)))
        return -1;
    L->count_include_pad = (int32_t)cip;
    if (2 * p[0] > k[0] || 2 * p[1] > k[1])
        return mh5_fail(c, "padding (%lld, %lld) is more than half the kernel %lldx%lld",
                        (long long)p[0], (long long)p[1], (long long)k[0], (long long)k[1]);
    if (W->h + 2 * p[0] < k[0] || W->w + 2 * p[1] < k[1])
        return mh5_fail(c, "kernel %lldx%lld is larger than the padded input %lldx%lld",
                        (long long)k[0], (long long)k[1], (long long)(W->h + 2 * p[0]),
                        (long long)(W->w + 2 * p[1]));
    L->kh = (int32_t)k[0], L->kw = (int32_t)k[1];
    L->sh = (int32_t)s[0], L->sw = (int32_t)s[1];
    L->ph = (int32_t)p[0], L->pw = (int32_t)p[1];
    L->ceil_mode = (int32_t)ceil_mode;
    return set_out(W, L, W->ch, pool_out(W->h, k[0], s[0], p[0], (int)ceil_mode),
                   pool_out(W->w, k[1], s[1], p[1], (int)ceil_mode));
}

static int parse_avgpool(walk *W, hid_t g, sal_layer *L) {
    int64_t o[2];
    if (mh5_attr_ints(&W->c, g, "output_size", o, 2, 1, SAL_MAX_DIM, 1)) return -1;
    return set_out(W, L, W->ch, o[0], o[1]);
}

static int parse_linear(walk *W, hid_t g, sal_layer *L) {
    mh5 *c = &W->c;
    int64_t in, out;
    if (mh5_attr_ints(c, g, "in_features", &in, 1, 1, SAL_MAX_ACT, 1) ||
        mh5_attr_ints(c, g, "out_features", &out, 1, 1, SAL_MAX_DIM, 1))
        return -1;
    int64_t flat = W->ch * W->h * W->w; /* bounded by set_out */
    if (in != flat)
        return mh5_fail(c, "in_features = %lld but its input gives %lldx%lldx%lld "
                        "= %lld values", (long long)in, (long long)W->ch, (long long)W->h,
                        (long long)W->w, (long long)flat);
    L->in_c = (int32_t)in;
    L->in_h = L->in_w = 1;
    int64_t wd[2] = {out, in};
    if (add_params(W, g, L, wb_names, 2, 2, wd, out)) return -1;
    return set_out(W, L, out, 1, 1);
}

/* add: 2..16 inputs of one shape. */
static int parse_add(walk *W, sal_layer *L) {
    const sal_layer *nodes = W->m->layers;
    for (int k = 1; k < L->ninputs; k++) {
        int64_t c, h, w;
        input_shape(W, L->inputs[k], &c, &h, &w);
        if (c != W->ch || h != W->h || w != W->w)
            return mh5_fail(&W->c, "add inputs differ in shape: '%s' is %lldx%lldx%lld, "
                            "'%s' is %lldx%lldx%lld", input_name(nodes, L->inputs[0]),
                            (long long)W->ch, (long long)W->h, (long long)W->w,
                            input_name(nodes, L->inputs[k]), (long long)c, (long long)h,
                            (long long)w);
    }
    return set_out(W, L, W->ch, W->h, W->w);
}

/* concat: 1..16 inputs of one height and width, stacked along channels. */
static int parse_concat(walk *W, hid_t g, sal_layer *L) {
    const sal_layer *nodes = W->m->layers;
    int64_t dim, total = W->ch;
    int r = mh5_attr_ints(&W->c, g, "dim", &dim, 1, INT32_MIN, INT32_MAX, 0);
    if (r < 0) return -1;
    if (r == 0 && dim != 1)
        return mh5_fail(&W->c, "concat along dim %lld is not supported, only 1 (channels)",
                        (long long)dim);
    for (int k = 1; k < L->ninputs; k++) {
        int64_t c, h, w;
        input_shape(W, L->inputs[k], &c, &h, &w);
        if (h != W->h || w != W->w)
            return mh5_fail(&W->c, "concat inputs differ in height or width: '%s' is "
                            "%lldx%lldx%lld, '%s' is %lldx%lldx%lld",
                            input_name(nodes, L->inputs[0]), (long long)W->ch,
                            (long long)W->h, (long long)W->w, input_name(nodes, L->inputs[k]),
                            (long long)c, (long long)h, (long long)w);
        total += c; /* each at most 2^30: no overflow */
    }
    return set_out(W, L, total, W->h, W->w);
}

static const char *const affine_names[] = {"scale", "shift"};

static int parse_affine(walk *W, hid_t g, sal_layer *L) {
    int64_t wd[1] = {W->ch};
    if (add_params(W, g, L, affine_names, 2, 1, wd, W->ch)) return -1;
    return set_out(W, L, W->ch, W->h, W->w);
}

/* How many inputs each kind takes: [lo, hi]. */
static void arity(sal_layer_kind k, int *lo, int *hi) {
    *lo = *hi = 1;
    if (k == SAL_LAYER_ADD) *lo = 2, *hi = SAL_MAX_INPUTS;
    if (k == SAL_LAYER_CONCAT) *hi = SAL_MAX_INPUTS;
}

/* First pass over node group /layers/NNN (index i): name, alias, kind and the input
 * names (into in, SAL_MAX_INPUTS slots; absent: the previous node). */
static int read_node_header(walk *W, hid_t layers, int i, char (*in)[SAL_NAME_LEN],
                            int *nin) {
    mh5 *c = &W->c;
    sal_layer *L = &W->m->layers[i];
    char gname[16], kind[64], msg[512];
    snprintf(gname, sizeof gname, "%03d", i);
    snprintf(c->where, sizeof c->where, "layer group /layers/%s", gname);
    if (H5Lexists(layers, gname, H5P_DEFAULT) <= 0)
        return mh5_fail(c, "missing (the file declares %d layers in /layers attribute "
                        "'count', numbered 000..%03d)", W->m->nlayers, W->m->nlayers - 1);
    hid_t g = H5Gopen2(layers, gname, H5P_DEFAULT);
    if (g < 0) return mh5_fail(c, "is not a group");
    int r = mh5_attr_str(c, g, "name", L->name, sizeof L->name, 1);
    if (!r) r = mh5_attr_str(c, g, "alias", L->alias, sizeof L->alias, 0) < 0 ? -1 : 0;
    if (!r && graph_check_names(W->m->layers, i, msg, sizeof msg)) r = mh5_fail(c, "%s", msg);
    if (!r)
        snprintf(c->where, sizeof c->where, "layer group /layers/%s ('%s')", gname, L->name);
    if (!r) r = mh5_attr_str(c, g, "kind", kind, sizeof kind, 1);
    if (!r) {
        int k = 0;
        while (k < SAL_LAYER_KIND_COUNT && strcmp(kind, kind_names[k])) k++;
        if (k == SAL_LAYER_KIND_COUNT)
            r = mh5_fail(c, "unknown layer kind '%s' (expected one of conv2d, batchnorm2d, "
                         "relu, maxpool2d, avgpool2d, adaptive_avgpool2d, flatten, dropout, "
                         "linear, add, concat, channel_affine)", kind);
        L->kind = (sal_layer_kind)k;
    }
    if (!r) {
        int q = mh5_attr_str_array(c, g, "inputs", in[0], SAL_NAME_LEN, SAL_MAX_INPUTS, nin, 0);
        if (q < 0) r = -1;
        if (q == 1) {
            *nin = 1;
            snprintf(in[0], SAL_NAME_LEN, "%s", i ? W->m->layers[i - 1].name : SAL_INPUT_NAME);
        }
    }
    int lo, hi;
    arity(L->kind, &lo, &hi);
    if (!r && (*nin < lo || *nin > hi)) {
        if (lo == hi)
            r = mh5_fail(c, "%s takes 1 input, the node names %d", kind, *nin);
        else
            r = mh5_fail(c, "%s takes %d to %d inputs, the node names %d", kind, lo, hi, *nin);
    }
    H5Gclose(g);
    return r;
}

/* Second pass over node i: resolves its inputs and reads its kind's attributes and
 * datasets, with its first input's shape in W. */
static int parse_node(walk *W, hid_t layers, int i, const graph_names *names,
                      unsigned char *seen, int *path) {
    mh5 *c = &W->c;
    sal_layer *L = &W->m->layers[i];
    char gname[16], msg[768];
    snprintf(gname, sizeof gname, "%03d", i);
    snprintf(c->where, sizeof c->where, "layer group /layers/%s ('%s')", gname, L->name);
    L->ninputs = names->nin[i];
    if (graph_resolve(names, i, L->inputs, seen, path, msg, sizeof msg))
        return mh5_fail(c, "%s", msg);
    input_shape(W, L->inputs[0], &W->ch, &W->h, &W->w);
    hid_t g = H5Gopen2(layers, gname, H5P_DEFAULT);
    if (g < 0) return mh5_fail(c, "is not a group");
    L->in_c = (int32_t)W->ch, L->in_h = (int32_t)W->h, L->in_w = (int32_t)W->w;
    L->weight_off = L->bias_off = -1;
    int r = 0;
    switch (L->kind) {
    case SAL_LAYER_CONV: r = parse_conv(W, g, L); break;
    case SAL_LAYER_BATCHNORM: r = parse_batchnorm(W, g, L); break;
    case SAL_LAYER_MAXPOOL: r = parse_pool(W, g, L, 0); break;
    case SAL_LAYER_AVGPOOL2D: r = parse_pool(W, g, L, 1); break;
    case SAL_LAYER_AVGPOOL: r = parse_avgpool(W, g, L); break;
    case SAL_LAYER_LINEAR: r = parse_linear(W, g, L); break;
    case SAL_LAYER_FLATTEN: r = set_out(W, L, W->ch * W->h * W->w, 1, 1); break;
    case SAL_LAYER_ADD: r = parse_add(W, L); break;
    case SAL_LAYER_CONCAT: r = parse_concat(W, g, L); break;
    case SAL_LAYER_AFFINE: r = parse_affine(W, g, L); break;
    case SAL_LAYER_RELU:
    case SAL_LAYER_DROPOUT:
    case SAL_LAYER_KIND_COUNT: r = set_out(W, L, W->ch, W->h, W->w); break;
    }
    H5Gclose(g);
    return r;
}

/* Root attributes: format, version, name and preprocessing. */
static int parse_root(walk *W, hid_t f) {
    mh5 *c = &W->c;
    sal_model *m = W->m;
    sal_preprocess *pp = &m->pre;
    char fmt[64], resize[32] = "stretch";
    int64_t v, size[2], rs = 256;
    snprintf(c->where, sizeof c->where, "root group");
    int r = mh5_attr_str(c, f, "format", fmt, sizeof fmt, 0);
    if (r < 0) return -1;
    if (r == 1)
        return mh5_fail(c, "not a salpipe model: attribute 'format' is missing, expected "
                        "'" SAL_FORMAT_NAME "'");
    if (strcmp(fmt, SAL_FORMAT_NAME))
        return mh5_fail(c, "not a salpipe model: attribute 'format' is '%s', expected "
                        "'" SAL_FORMAT_NAME "'", fmt);
    if (mh5_attr_ints(c, f, "format_version", &v, 1, INT32_MIN, INT32_MAX, 1)) return -1;
    if (v < 1 || v > SAL_FORMAT_VERSION)
        return mh5_fail(c, "format_version %lld is not supported: this salpipe reads "
                        "versions 1 to %d", (long long)v, SAL_FORMAT_VERSION);
    if (mh5_attr_str(c, f, "name", m->name, sizeof m->name, 1) ||
        mh5_attr_ints(c, f, "input_channels", &v, 1, 1, 3, 1))
        return -1;
    if (v == 2) return mh5_fail(c, "input_channels is 2, expected 1 or 3");
    pp->channels = (int32_t)v;
    if (mh5_attr_ints(c, f, "input_size", size, 2, 1, SAL_MAX_DIM, 1) ||
        mh5_attr_doubles(c, f, "mean", pp->mean, pp->channels, 1) ||
        mh5_attr_doubles(c, f, "std", pp->std, pp->channels, 1) ||
        mh5_attr_str(c, f, "resize", resize, sizeof resize, 0) < 0 ||
        mh5_attr_ints(c, f, "resize_size", &rs, 1, 1, SAL_MAX_DIM, 0) < 0)
        return -1;
    for (int i = 0; i < pp->channels; i++)
        if (!(pp->std[i] > 0))
            return mh5_fail(c, "attribute 'std' holds %g, expected > 0", pp->std[i]);
    if (strcmp(resize, "stretch") && strcmp(resize, "crop"))
        return mh5_fail(c, "attribute 'resize' is '%s', expected 'stretch' or 'crop'",
                        resize);
    pp->height = (int32_t)size[0];
    pp->width = (int32_t)size[1];
    pp->resize_crop = !strcmp(resize, "crop");
    pp->resize_size = (int32_t)rs;
    int64_t n;
    if (mul_le(pp->channels, size[0], SAL_MAX_ACT, &n) || mul_le(n, size[1], SAL_MAX_ACT, &n))
        return mh5_fail(c, "input %lldx%lld exceeds %lld elements per image",
                        (long long)size[0], (long long)size[1], (long long)SAL_MAX_ACT);
    W->net_c = W->ch = pp->channels;
    W->net_h = W->h = size[0];
    W->net_w = W->w = size[1];
    return 0;
}

static int parse_layers(walk *W, hid_t f) {
    mh5 *c = &W->c;
    int64_t count;
    snprintf(c->where, sizeof c->where, "group /layers");
    if (H5Lexists(f, "layers", H5P_DEFAULT) <= 0) return mh5_fail(c, "missing");
    hid_t layers = H5Gopen2(f, "layers", H5P_DEFAULT);
    if (layers < 0) return mh5_fail(c, "is not a group");
    int r = mh5_attr_ints(c, layers, "count", &count, 1, 1, SAL_MAX_LAYERS, 1);
    H5G_info_t info;
    if (!r && H5Gget_info(layers, &info) < 0) r = mh5_fail(c, "cannot list members");
    if (!r && info.nlinks != (hsize_t)count)
        r = mh5_fail(c, "holds %llu members but attribute 'count' = %lld",
                     (unsigned long long)info.nlinks, (long long)count);
    if (!r && !(W->m->layers = calloc((size_t)count, sizeof(sal_layer))))
        r = mh5_fail(c, "out of memory for %lld layers", (long long)count);
    /* Pass 1: every node's names and input names; pass 2: inputs resolved (which
     * needs every name, to tell a cycle from a node stored too early) and shapes. */
    size_t n = r ? 0 : (size_t)count;
    char (*name)[SAL_NAME_LEN] = calloc(n + 1, SAL_NAME_LEN);
    char (*alias)[SAL_NAME_LEN] = calloc(n + 1, SAL_NAME_LEN);
    char (*in)[SAL_NAME_LEN] = calloc((n + 1) * SAL_MAX_INPUTS, SAL_NAME_LEN);
    int *nin = calloc(n + 1, sizeof *nin), *path = calloc(n + 1, sizeof *path);
    unsigned char *seen = calloc(n + 1, 1);
    if (!r && (!name || !alias || !in || !nin || !path || !seen))
        r = mh5_fail(c, "out of memory for %lld layers", (long long)count);
    if (!r) W->m->nlayers = (int)count;
    for (int i = 0; !r && i < W->m->nlayers; i++) {
        r = read_node_header(W, layers, i, in + (size_t)i * SAL_MAX_INPUTS, &nin[i]);
        memcpy(name[i], W->m->layers[i].name, SAL_NAME_LEN);
        memcpy(alias[i], W->m->layers[i].alias, SAL_NAME_LEN);
    }
    graph_names names = {W->m->nlayers, (const char(*)[SAL_NAME_LEN])name,
                         (const char(*)[SAL_NAME_LEN])alias, (const char(*)[SAL_NAME_LEN])in,
                         nin};
    for (int i = 0; !r && i < W->m->nlayers; i++) r = parse_node(W, layers, i, &names, seen, path);
    free(name);
    free(alias);
    free(in);
    free(nin);
    free(path);
    free(seen);
    H5Gclose(layers);
    if (!r) W->m->param_count = W->params;
    return r;
}

/* Opens the file read-only, telling a missing file, a non-HDF5 file and a damaged
 * one apart. Returns the file id or -1 with c->err filled. */
static hid_t open_file(mh5 *c) {
    FILE *fp = fopen(c->path, "rb");
    if (!fp) {
        if (c->err && c->errlen)
            snprintf(c->err, c->errlen, "%s: cannot open model file: %s", c->path,
                     strerror(errno));
        return -1;
    }
    fclose(fp);
    if (H5Fis_hdf5(c->path) <= 0) {
        if (c->err && c->errlen)
            snprintf(c->err, c->errlen, "%s: not an HDF5 file (a salpipe model is an "
                     "HDF5 file written by scripts/export_torchvision.py)", c->path);
        return -1;
    }
    /* Lock where the file system can, but do not fail where it cannot (common on
     * cluster file systems; we only read). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    if (fapl >= 0) H5Pset_file_locking(fapl, 1, 1);
#endif
    hid_t f = H5Fopen(c->path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        char why[256];
        mh5_last_error(why, sizeof why);
        c->where[0] = '\0';
        mh5_fail(c, "cannot open as HDF5, the file is truncated or damaged (%s)",
                 why[0] ? why : "HDF5 open error");
    }
    return f;
}

int sal_model_open(const char *path, sal_model **out, char *err, size_t errlen) {
    if (out) *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!path || !out) {
        if (err && errlen) snprintf(err, errlen, "sal_model_open: no path or output");
        return -1;
    }
    walk W = {.c = {.path = path, .err = err, .errlen = errlen}};
    mh5_quiet_state q;
    mh5_quiet(&q);
    int r = -1;
    hid_t f = open_file(&W.c);
    if (f >= 0) {
        W.m = calloc(1, sizeof *W.m);
        if (W.m && (W.m->path = mh5_strdup(path)))
            r = parse_root(&W, f) || parse_layers(&W, f) ? -1 : 0;
        else if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        H5Fclose(f);
    }
    mh5_loud(&q);
    if (r) {
        sal_model_free(W.m);
        return -1;
    }
    *out = W.m;
    return 0;
}

size_t sal_model_params_bytes(const sal_model *m, sal_precision p) {
    return (size_t)m->param_count * (p == SAL_F64 ? sizeof(double) : sizeof(float));
}

/* Eval-mode batch norm as torch computes it (batch_norm_kernel.cpp), in float:
 * invstd = 1/sqrt(var + eps), scale = invstd * weight, shift = bias - mean * scale
 * with one rounding (torch's build fuses it into an FMA). */
static void bn_fold_f32(float *scale, float *shift, const float *w, const float *b,
                        const float *mean, const float *var, int64_t n, double eps) {
    for (int64_t i = 0; i < n; i++) {
        float invstd = 1 / sqrtf(var[i] + (float)eps);
        scale[i] = invstd * w[i];
        shift[i] = fmaf(-mean[i], scale[i], b[i]);
    }
}

static void bn_fold_f64(double *scale, double *shift, const double *w, const double *b,
                        const double *mean, const double *var, int64_t n, double eps) {
    for (int64_t i = 0; i < n; i++) {
        double invstd = 1 / sqrt(var[i] + eps);
        scale[i] = invstd * w[i];
        shift[i] = fma(-mean[i], scale[i], b[i]);
    }
}

/* Reads the four batch norm datasets of layer L and stores scale and shift. */
static int load_batchnorm(mh5 *c, hid_t g, const sal_layer *L, int dbl, char *block) {
    const size_t rs = dbl ? sizeof(double) : sizeof(float);
    const int64_t n = L->weight_count;
    char *tmp = malloc(4 * rs * (size_t)n);
    if (!tmp) return mh5_fail(c, "out of memory");
    char *v[4];
    int r = 0;
    for (int k = 0; k < 4 && !r; k++) {
        v[k] = tmp + k * rs * (size_t)n;
        r = mh5_check_dataset(c, g, bn_names[k], 1, &n) ||
            mh5_read_dataset(c, g, bn_names[k], dbl, v[k], n);
    }
    for (int64_t i = 0; i < n && !r; i++) {
        double var = dbl ? ((double *)v[3])[i] : ((float *)v[3])[i];
        if (var < 0)
            r = mh5_fail(c, "dataset 'running_var' element %lld is %g, expected >= 0",
                         (long long)i, var);
    }
    char *scale = block + rs * (size_t)L->weight_off, *shift = block + rs * (size_t)L->bias_off;
    if (!r && dbl)
        bn_fold_f64((double *)scale, (double *)shift, (double *)v[0], (double *)v[1],
                    (double *)v[2], (double *)v[3], n, L->eps);
    else if (!r)
        bn_fold_f32((float *)scale, (float *)shift, (float *)v[0], (float *)v[1],
                    (float *)v[2], (float *)v[3], n, L->eps);
    for (int64_t i = 0; i < n && !r; i++) {
        double a = dbl ? ((double *)scale)[i] : ((float *)scale)[i];
        double b = dbl ? ((double *)shift)[i] : ((float *)shift)[i];
        if (!isfinite(a) || !isfinite(b))
            r = mh5_fail(c, "channel %lld: scale or shift is not finite (running_var + "
                         "eps = 0?)", (long long)i);
    }
    free(tmp);
    return r;
}

/* Which of the dataset's elements [0, count), stored from element `off` of the block in
 * rows of `row` elements, belong to the block's elements [p0, p1): the rows that start
 * there. */
static void own_rows(int64_t off, int64_t count, int64_t row, int64_t p0, int64_t p1,
                     int64_t *lo, int64_t *hi) {
    int64_t a = p0 - off, b = p1 - off;
    a = a <= 0 ? 0 : (a + row - 1) / row * row;
    b = b <= 0 ? 0 : (b + row - 1) / row * row;
    *lo = a < count ? a : count;
    *hi = b < count ? b : count;
}

/* Reads the parameters whose block elements lie in [p0, p1) (whole rows; a batch norm
 * layer goes with its first element) from the open file f into block. */
static int load_range(mh5 *c, hid_t f, const sal_model *m, int dbl, char *block, int64_t p0,
                      int64_t p1) {
    const size_t rs = dbl ? sizeof(double) : sizeof(float);
    for (int i = 0; i < m->nlayers; i++) {
        const sal_layer *L = &m->layers[i];
        if (L->weight_count == 0) continue;
        int64_t wlo, whi, blo, bhi;
        int64_t wrow = 1, wrows = L->kind == SAL_LAYER_AFFINE ? L->weight_count : L->out_c;
        if (wrows > 0 && L->weight_count % wrows == 0) wrow = L->weight_count / wrows;
        own_rows(L->weight_off, L->weight_count, wrow, p0, p1, &wlo, &whi);
        own_rows(L->bias_off, L->bias_count, 1, p0, p1, &blo, &bhi);
        int bn = L->kind == SAL_LAYER_BATCHNORM;
        if (bn ? !(L->weight_off >= p0 && L->weight_off < p1) : wlo >= whi && blo >= bhi)
            continue;
        char gname[32];
        snprintf(gname, sizeof gname, "/layers/%03d", i);
        snprintf(c->where, sizeof c->where, "layer group %s ('%s')", gname, L->name);
        hid_t g = H5Gopen2(f, gname, H5P_DEFAULT);
        if (g < 0) return mh5_fail(c, "cannot open (file changed since it was opened?)");
        int r;
        if (bn) {
            r = load_batchnorm(c, g, L, dbl, block);
        } else {
            /* Shapes were checked at open; re-check counts so a file rewritten since
             * cannot overrun the block. */
            int64_t wd[4] = {L->out_c, L->in_c / (L->groups ? L->groups : 1), L->kh, L->kw};
            int wrank = L->kind == SAL_LAYER_CONV ? 4 : 2;
            if (wrank == 2) wd[1] = L->in_c;
            int64_t bd = L->bias_count;
            const char *const *ds = wb_names;
            if (L->kind == SAL_LAYER_AFFINE) ds = affine_names, wrank = 1, wd[0] = L->in_c;
            r = mh5_check_dataset(c, g, ds[0], wrank, wd) ||
                mh5_check_dataset(c, g, ds[1], 1, &bd) ||
                mh5_read_rows(c, g, ds[0], dbl, block + rs * (size_t)L->weight_off,
                              L->weight_count, wlo, whi) ||
                mh5_read_rows(c, g, ds[1], dbl, block + rs * (size_t)L->bias_off,
                              L->bias_count, blo, bhi);
        }
        H5Gclose(g);
        if (r) return -1;
    }
    return 0;
}

int sal_model_load_params_part(sal_model *m, sal_precision p, void *block, int part,
                               int nparts, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!m || (p != SAL_F32 && p != SAL_F64) || nparts < 1 || part < 0 || part >= nparts ||
        (nparts > 1 && !block)) {
        if (err && errlen) snprintf(err, errlen, "sal_model_load_params: bad arguments");
        return -1;
    }
    size_t bytes = sal_model_params_bytes(m, p);
    const size_t rs = p == SAL_F64 ? sizeof(double) : sizeof(float);
    char *buf = block;
    if (!buf && !(buf = malloc(bytes ? bytes : 1))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory for %zu bytes of parameters",
                     m->path, bytes);
        return -1;
    }
    int64_t total = (int64_t)(bytes / rs);
    int64_t p0 = total / nparts * part + (part < total % nparts ? part : total % nparts);
    int64_t p1 = p0 + total / nparts + (part < total % nparts);
    enum { BOUNCE = 2 << 20 };
    mh5 c = {.path = m->path, .err = err, .errlen = errlen, .bounce = malloc(BOUNCE),
             .bounce_bytes = BOUNCE};
    mh5_quiet_state q;
    mh5_quiet(&q);
    int r = -1;
    hid_t f = open_file(&c);
    if (f >= 0) {
        r = load_range(&c, f, m, p == SAL_F64, buf, p0, p1);
        H5Fclose(f);
    }
    mh5_loud(&q);
    free(c.bounce);
    if (r) {
        if (!block) free(buf);
        return -1;
    }
    if (m->owns_params[p]) free(m->params[p]);
    m->params[p] = buf;
    m->owns_params[p] = block == NULL;
    return 0;
}

int sal_model_load_params(sal_model *m, sal_precision p, void *block, char *err,
                          size_t errlen) {
    return sal_model_load_params_part(m, p, block, 0, 1, err, errlen);
}

void sal_model_attach_params(sal_model *m, sal_precision p, void *block) {
    if (!m || (p != SAL_F32 && p != SAL_F64)) return;
    if (m->owns_params[p]) free(m->params[p]);
    m->params[p] = block;
    m->owns_params[p] = 0;
}

void sal_model_free(sal_model *m) {
    if (!m) return;
    for (int p = 0; p < 2; p++)
        if (m->owns_params[p]) free(m->params[p]);
    free(m->wino_off);
    free(m->layers);
    free(m->path);
    free(m);
}

const char *sal_model_name(const sal_model *m) { return m->name; }
const char *sal_model_path(const sal_model *m) { return m->path; }
int sal_model_num_layers(const sal_model *m) { return m->nlayers; }

int sal_model_reads(const sal_model *m, int top, int layer) {
    if (top < 0 || layer < 0 || top >= m->nlayers || layer > top) return 0;
    uint8_t *feeds = calloc((size_t)m->nlayers, 1);
    if (!feeds) return -1;
    feeds[top] = 1;
    /* Nodes are in topological order, so one pass downwards reaches every ancestor. */
    for (int i = top; i > layer; i--) {
        if (!feeds[i]) continue;
        const sal_layer *L = &m->layers[i];
        for (int k = 0; k < L->ninputs; k++)
            if (L->inputs[k] >= 0) feeds[L->inputs[k]] = 1;
    }
    int r = feeds[layer];
    free(feeds);
    return r;
}

const sal_layer *sal_model_layer(const sal_model *m, int i) {
    return i >= 0 && i < m->nlayers ? &m->layers[i] : NULL;
}

int sal_model_find_layer(const sal_model *m, const char *name) {
    for (int i = 0; name && i < m->nlayers; i++)
        if (!strcmp(m->layers[i].name, name) ||
            (m->layers[i].alias[0] && !strcmp(m->layers[i].alias, name)))
            return i;
    return -1;
}

const sal_preprocess *sal_model_preprocess(const sal_model *m) { return &m->pre; }

const void *sal_model_params(const sal_model *m, sal_precision p) {
    return p == SAL_F32 || p == SAL_F64 ? m->params[p] : NULL;
}

const char *sal_layer_kind_name(sal_layer_kind k) {
    return (int)k >= 0 && k < SAL_LAYER_KIND_COUNT ? kind_names[k] : "unknown";
}

const char *sal_method_name(sal_method m) {
    return (int)m >= 0 && m < SAL_METHOD_COUNT ? method_names[m] : "unknown";
}

sal_method sal_method_from_name(const char *name) {
    for (int i = 0; name && i < SAL_METHOD_COUNT; i++)
        if (!strcmp(name, method_names[i])) return (sal_method)i;
    return SAL_METHOD_COUNT;
}
