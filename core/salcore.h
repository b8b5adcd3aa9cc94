/*
 * salcore: gradient saliency maps of convolutional networks (AlexNet, VGG, ResNet,
 * GoogLeNet, Inception-v3) in C.
 *
 * The whole public API of the core library. No MPI, no config parsing, no exit():
 * every function that can fail returns a status (0 = success) and writes a message
 * naming the file and the problem into the caller's `err` buffer.
 *
 * Usage:
 *
 *     char err[SAL_ERR_LEN];
 *     sal_model *m;
 *     if (sal_model_open("alexnet.h5", &m, err, sizeof err)) { puts(err); return 1; }
 *     if (sal_model_load_params(m, SAL_F32, NULL, err, sizeof err)) { ... }
 *     sal_target t = { sal_model_find_layer(m, "fc3"), 539 };   // unit 540, 0-based
 *     sal_method meth[2] = { SAL_METHOD_VANILLA, SAL_METHOD_GUIDED };
 *     sal_engine *e;
 *     if (sal_engine_init(&e, m, SAL_F32, 8, &t, 1, meth, 2, err, sizeof err)) { ... }
 *     // input: float (n, C, H, W), normalized; maps: float (n, T, M, C, H, W)
 *     sal_engine_run(e, input, n, maps, activations, NULL, NULL, err, sizeof err);
 *     sal_engine_free(e);
 *     sal_model_free(m);
 *
 * Shapes are written C-order, batch first: (n, C, H, W). Units and layers are 0-based
 * in this API; the 1-based DNNBrain numbering is the pipeline's business.
 */
#ifndef SALCORE_H
#define SALCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAL_ERR_LEN 1024
#define SAL_NAME_LEN 64

typedef enum { SAL_F32 = 0, SAL_F64 = 1 } sal_precision;

typedef enum {
    SAL_METHOD_VANILLA = 0,   /* g * (x > 0)            */
    SAL_METHOD_GUIDED = 1,    /* g * (x > 0) * (g > 0)  */
    SAL_METHOD_DECONVNET = 2, /* g * (g > 0)            */
    /* The methods built on those: sal_attrib below computes them (sal_engine_init
     * takes only the three ReLU rules above). */
    SAL_METHOD_GRADIENT_X_INPUT = 3,     /* vanilla map * normalized input        */
    SAL_METHOD_SMOOTHGRAD = 4,           /* a statistic of a base map over noise  */
    SAL_METHOD_INTEGRATED_GRADIENTS = 5, /* path integral from a baseline         */
    SAL_METHOD_GRADCAM = 6,              /* ReLU(sum_k alpha_k A_k) at a layer    */
    SAL_METHOD_GUIDED_GRADCAM = 7,       /* guided map * upsampled Grad-CAM       */
    SAL_METHOD_COUNT
} sal_method;

typedef enum {
    SAL_LAYER_CONV = 0,   /* conv2d with bias, stride, padding, groups       */
    SAL_LAYER_BATCHNORM,  /* eval-mode batch norm: x * scale[c] + shift[c]    */
    SAL_LAYER_RELU,
    SAL_LAYER_MAXPOOL,    /* kernel, stride, padding, ceil_mode               */
    SAL_LAYER_AVGPOOL,    /* adaptive average pool to a fixed output size     */
    SAL_LAYER_FLATTEN,
    SAL_LAYER_DROPOUT,    /* identity at inference                            */
    SAL_LAYER_LINEAR,
    SAL_LAYER_ADD,        /* element-wise sum of 2+ inputs of one shape (residual) */
    SAL_LAYER_CONCAT,     /* inputs stacked along channels, in input order          */
    SAL_LAYER_AVGPOOL2D,  /* fixed-kernel average pool: kernel, stride, padding,
                           * ceil_mode, count_include_pad (torch.nn.AvgPool2d)      */
    SAL_LAYER_AFFINE,     /* per channel x * scale[c] + shift[c], two roundings
                           * (GoogLeNet's and Inception's transform_input)         */
    SAL_LAYER_KIND_COUNT
} sal_layer_kind;

/* Most inputs one node may name (concat of inception branches takes 4). */
#define SAL_MAX_INPUTS 16

/* One node of the network graph ("layer"); which fields mean something depends on
 * `kind`. Nodes are stored in an order where every node comes after its inputs
 * (the model file's order, checked at load). A chain network (format 1) is the graph
 * where each node reads the one before it. */
typedef struct {
    sal_layer_kind kind;
    char name[SAL_NAME_LEN];  /* chain networks: DNNBrain's name (conv1, conv1_relu,
                               * fc1 ...); graph networks: the module path of the node
                               * (layer1.0.conv1, inception3a.branch2.0.relu ...)    */
    char alias[SAL_NAME_LEN]; /* DNNBrain's name of the module whose output this node
                               * is (layer1_bottleneck0, inception4c), or ""         */
    int32_t ninputs;                 /* 1.. SAL_MAX_INPUTS                           */
    int32_t inputs[SAL_MAX_INPUTS];  /* node indices, each < this node's; -1 = the
                                      * network input                                */
    int32_t in_c, in_h, in_w;    /* shape of the first input, one image; linear: the
                                  * feature count in in_c (h = w = 1)                */
    int32_t out_c, out_h, out_w; /* output shape; linear layers have h = w = 1       */
    int32_t kh, kw;              /* conv, maxpool kernel                             */
    int32_t sh, sw;              /* conv, maxpool stride                             */
    int32_t ph, pw;              /* conv, maxpool padding                            */
    int32_t groups;              /* conv                                             */
    int32_t ceil_mode;           /* maxpool, avgpool2d                               */
    int32_t count_include_pad;   /* avgpool2d                                        */
    double eps;                  /* batchnorm                                        */
    /* Offsets (in elements) of this layer's parameters in the parameter block, and
     * their counts. -1 / 0 for layers without parameters. */
    int64_t weight_off, weight_count;
    int64_t bias_off, bias_count;
} sal_layer;

/* Preprocessing defaults stored in the model file (SPEC §1). */
typedef struct {
    int32_t channels;          /* 3 (RGB) or 1 (luminance)                       */
    int32_t height, width;     /* network input size, e.g. 224 x 224              */
    double mean[3], std[3];    /* per channel, as decimal constants in float64    */
    int32_t resize_crop;       /* 0 = "stretch", 1 = "crop"                        */
    int32_t resize_size;       /* Resize(resize_size) before CenterCrop, e.g. 256 */
} sal_preprocess;

typedef struct sal_model sal_model;
typedef struct sal_engine sal_engine;

/* ---- model ------------------------------------------------------------------ */

/* Opens an HDF5 model file and reads its header: format name and version, layer
 * sequence, shapes and preprocessing. Checks every dataset's presence, dtype and
 * shape, but does not read weights. On success *out owns the model (sal_model_free);
 * on failure *out is NULL and err names the file, the dataset or layer and what was
 * expected. */
int sal_model_open(const char *path, sal_model **out, char *err, size_t errlen);

/* Bytes the parameters take in the given precision. */
size_t sal_model_params_bytes(const sal_model *m, sal_precision p);

/* Reads every weight into `block` (sal_model_params_bytes bytes, caller-owned, e.g.
 * a shared-memory window) or, when block is NULL, into memory the model allocates
 * and frees. Refuses NaN/Inf weights. Batch norm parameters are stored as the
 * per-channel scale and shift torch computes in eval mode. Can be called once per
 * precision. */
int sal_model_load_params(sal_model *m, sal_precision p, void *block, char *err,
                          size_t errlen);

/* The same for part `part` of `nparts` (block required when nparts > 1): the rows of
 * the weights whose first element falls in that part's share of the block, about
 * 1/nparts of its bytes, so the ranks of a node can read one shared block together.
 * Points m at block as sal_model_load_params does (the other parts are the other
 * callers' business). */
int sal_model_load_params_part(sal_model *m, sal_precision p, void *block, int part,
                               int nparts, char *err, size_t errlen);

/* Points the model at parameters another process already loaded into `block`
 * (same layout as sal_model_load_params fills). Never fails. */
void sal_model_attach_params(sal_model *m, sal_precision p, void *block);

void sal_model_free(sal_model *m);

const char *sal_model_name(const sal_model *m);
const char *sal_model_path(const sal_model *m);
int sal_model_num_layers(const sal_model *m);
const sal_layer *sal_model_layer(const sal_model *m, int i);
/* Index of the layer whose name or alias is `name`, or -1. */
int sal_model_find_layer(const sal_model *m, const char *name);
/* Whether node `top` is node `layer` or reads it, directly or through other nodes:
 * 1 yes, 0 no (its gradient at `layer` is zero by construction), -1 out of memory. */
int sal_model_reads(const sal_model *m, int top, int layer);
const sal_preprocess *sal_model_preprocess(const sal_model *m);
/* The parameter block in the given precision, or NULL when not loaded. */
const void *sal_model_params(const sal_model *m, sal_precision p);

const char *sal_layer_kind_name(sal_layer_kind k);
const char *sal_method_name(sal_method m);
/* SAL_METHOD_COUNT when `name` is not a method. */
sal_method sal_method_from_name(const char *name);

/* ---- engine ----------------------------------------------------------------- */

typedef struct {
    int32_t layer; /* index into the model's layers */
    int32_t unit;  /* 0-based channel (conv-like) or feature (linear) */
} sal_target;

/* Called after each layer of the forward pass with that layer's output for the
 * whole batch, (n, out_c, out_h, out_w) in the engine's precision. For tests and
 * inspection; NULL to skip. */
typedef void (*sal_layer_cb)(void *ctx, int layer, const void *out, int n);

/* Sizes and allocates everything for batches of up to max_batch images, for the
 * given targets and methods, in precision p (the model's parameters must be loaded
 * in p). The forward pass will stop at the deepest target. On success *out owns the
 * engine; the model must outlive it. */
int sal_engine_init(sal_engine **out, const sal_model *m, sal_precision p,
                    int max_batch, const sal_target *targets, int ntargets,
                    const sal_method *methods, int nmethods, char *err,
                    size_t errlen);

/* One forward pass over n <= max_batch images, then every (target, method)
 * backward pass. input: (n, C, H, W) normalized, in the engine's precision.
 * maps: (n, ntargets, nmethods, C, H, W), the gradient of each target scalar with
 * respect to the input. activations: (n, ntargets), the target scalars (may be
 * NULL). Does not allocate. */
int sal_engine_run(sal_engine *e, const void *input, int n, void *maps,
                   void *activations, sal_layer_cb cb, void *cb_ctx, char *err,
                   size_t errlen);

/* Ends every backward pass at node `layer` instead of the input (-1, the default):
 * sal_engine_run and sal_engine_backward then write that node's gradient, maps
 * (n, ntargets, nmethods, out_c, out_h, out_w) of the node, and compute nothing
 * below it (Grad-CAM's dF/dA). Fails with a message, leaving the engine as it was,
 * when the node is outside 0..the deepest target or some target does not depend on
 * it. */
int sal_engine_stop_at(sal_engine *e, int layer, char *err, size_t errlen);

/* The forward pass of sal_engine_run alone: activations (n, ntargets) and the
 * layer callback, no maps. The forward's decisions are kept, so sal_engine_backward
 * may follow. */
int sal_engine_forward(sal_engine *e, const void *input, int n, void *activations,
                       sal_layer_cb cb, void *cb_ctx, char *err, size_t errlen);

/* A parallel loop the caller lends the engine: runs body(arg, i) once for every i in
 * [0, n), in any order, on any of its threads, and returns when all have run. */
typedef void (*sal_parallel_body)(void *arg, int i);
typedef void (*sal_parallel_for)(void *pool, int n, sal_parallel_body body, void *arg);

/* Runs the engine's matrix products on pfor(pool, ...) from now on (NULL: on the
 * calling thread, the default). Each product is cut into parts at column boundaries
 * that depend only on its shape, and every part is one BLAS call, so with BLAS
 * itself single-threaded (openblas_set_num_threads(1)) the maps and activations are
 * bit-identical whatever the number of threads behind pfor. A multi-threaded BLAS
 * still works, but its results may then depend on its thread count. Never fails. */
void sal_engine_set_parallel(sal_engine *e, sal_parallel_for pfor, void *pool);

/* How the passes compute convolutions. SAL_CONV_FAST (the default of every
 * engine): in float32, the backward of each stride-1 3x3 convolution with one group
 * by Winograd's F(2x2, 3x3), whose weights the engine transforms once
 * (docs/performance.md, "Winograd"); its rounding differs from the direct
 * product's, never its value, and the forward is direct, so every ReLU and max-pool
 * decision is the direct path's. SAL_CONV_DIRECT: im2col + GEMM everywhere.
 * SAL_CONV_FASTEST: in float32, Winograd in the forward pass too, and for stride-1
 * 5x5 kernels (F(2x2, 5x5)) as well: fewest operations, a few times the rounding
 * error, and a forward whose rounding may flip ReLU and max-pool decisions at
 * near-ties (docs/performance.md, "Winograd forward"). float64 engines are always
 * direct. */
typedef enum { SAL_CONV_FAST = 0, SAL_CONV_DIRECT = 1, SAL_CONV_FASTEST = 2 } sal_conv_mode;

/* Switches the engine's mode. Going to SAL_CONV_FAST transforms the weights (memory
 * of about alpha^2 / r^2 times the eligible layers' weights) and fails with a
 * message, leaving the engine as it was, when out of memory. */
int sal_engine_set_convolution(sal_engine *e, sal_conv_mode mode, char *err, size_t errlen);

/* ---- Winograd weights shared between processes ---------------------------------
 * A float32 engine in convolution mode "fast" or "fastest" transforms the weights
 * of its Winograd layers when it is created: 16/9 of those layers' weights (VGG16:
 * 105 MB), twice that for "fastest". To hold one copy per node instead of one per
 * process (the pipeline puts it in the node's shared window, next to the weights),
 * a caller sizes a block for the targets its engines will have, has each process
 * fill a part, and attaches it: from then on every engine of that model and mode
 * borrows the block's layers instead of transforming its own. The caller keeps the
 * block until those engines are freed. */

/* Bytes of that block for engines with these targets in this mode; 0 when no layer
 * would use Winograd (SAL_CONV_DIRECT, or no eligible layer below the targets) or
 * the targets are out of range. */
size_t sal_model_wino_bytes(const sal_model *m, sal_conv_mode mode, const sal_target *targets,
                            int ntargets);

/* Fills part `part` of `nparts` (about 1/nparts of its bytes, whole rows of the
 * transformed weights) with the values an engine would compute itself; the float32
 * parameters must be loaded or attached. 0, or -1 with err. */
int sal_model_wino_fill_part(const sal_model *m, sal_conv_mode mode, const sal_target *targets,
                             int ntargets, void *block, int part, int nparts, char *err,
                             size_t errlen);

/* Points engines created from now on in that mode at block (every part filled);
 * block NULL detaches. -1 with err when out of memory (engines then transform their
 * own, as without a block). */
int sal_model_attach_wino(sal_model *m, sal_conv_mode mode, const sal_target *targets,
                          int ntargets, void *block, char *err, size_t errlen);

/* ---- for tests: the forward's discrete decisions ------------------------------
 * A map depends on its forward pass through continuous values and through discrete
 * decisions: each ReLU's mask (x > 0) and each max-pool's argmax. These calls let a
 * test recompute one precision's maps under another precision's decisions (the
 * float32 oracle in tests/test_reference.c), so that a near-tie decided differently
 * in float32 and float64 does not count as an error. */

/* Layer `layer`'s ReLU mask of the last run, (n, out elems), 1 where the input was
 * > 0; NULL when the layer is not a ReLU, lies above the deepest target, or no run
 * happened. Valid until the next run. */
const uint8_t *sal_engine_relu_mask(const sal_engine *e, int layer);
/* Layer `layer`'s max-pool argmax of the last run, (n, C, OH, OW), each the index
 * y*W + x within the input plane; NULL as above. */
const int32_t *sal_engine_argmax(const sal_engine *e, int layer);
/* Copies the decisions of src's last run, first n images, into dst: same model,
 * src's forward reaching at least dst's deepest target. Fails with a message,
 * leaving dst untouched, otherwise. */
int sal_engine_copy_decisions(sal_engine *dst, const sal_engine *src, int n, char *err,
                              size_t errlen);
/* Runs only the backward passes of sal_engine_run for n images, with the decisions
 * the engine holds (its last run's or copied ones); maps as sal_engine_run. */
int sal_engine_backward(sal_engine *e, int n, void *maps, char *err, size_t errlen);

/* Bytes of working memory the engine holds (excluding the model's parameters;
 * including the Winograd weights it owns, not those it shares). */
size_t sal_engine_workspace_bytes(const sal_engine *e);

/* Floating-point operations the last sal_engine_run did in GEMMs and other kernels
 * (multiply and add counted separately). */
double sal_engine_last_flops(const sal_engine *e);

void sal_engine_free(sal_engine *e);

/* ---- attribution methods ---------------------------------------------------------
 * Every method of SPEC's [saliency] on one model: the three ReLU rules, and
 *   gradient_x_input      the vanilla map times the normalized input;
 *   smoothgrad            a statistic over sg_samples maps of sg_base at
 *                         x + sigma z, sigma = sg_noise * (max(x) - min(x)) of that
 *                         image's normalized tensor, z standard normals keyed by
 *                         (sg_seed, image index, sample, element); the noisy copy is
 *                         x + sigma z computed in the precision (sigma and z rounded
 *                         to it, as PyTorch code would);
 *   integrated_gradients  (x - b) times sum_k w_k grad F(b + alpha_k (x - b)), with
 *                         Captum's nodes and weights for ig_rule, b the baseline;
 *   gradcam               ReLU(sum_c alpha_c A_c), alpha_c the spatial mean of dF/dA_c
 *                         at node cam_layer, upsampled bilinearly (align_corners
 *                         false) to the input size; one channel, raw;
 *   guided_gradcam        the guided map times the upsampled Grad-CAM map.
 * docs/saliency.md defines each and says where it differs from DNNBrain, Captum and
 * pytorch-grad-cam. */
/* The name and version of smoothgrad's noise definition (core/noise.c; docs/saliency.md
 * "### Noise"): change it whenever a build would draw other bits, so an output file
 * records which noise its maps saw and a resume with other noise is refused. */
#define SAL_NOISE_GENERATOR "philox4x32-10 box-muller salpipe-math-1"

typedef enum { SAL_SG_MEAN = 0, SAL_SG_MEAN_SQUARE = 1, SAL_SG_VARIANCE = 2 } sal_sg_statistic;
typedef enum { SAL_IG_GAUSS_LEGENDRE = 0, SAL_IG_RIEMANN_TRAPEZOID = 1 } sal_ig_rule;
typedef enum { SAL_IG_BASELINE_ZERO = 0, SAL_IG_BASELINE_BLACK = 1 } sal_ig_baseline;

typedef struct {
    int32_t sg_samples;          /* >= 1                                          */
    double sg_noise;             /* >= 0                                          */
    sal_method sg_base;          /* vanilla, guided or deconvnet                  */
    sal_sg_statistic sg_statistic;
    uint64_t sg_seed;
    int32_t sg_columns;          /* copies per engine run, 0..65536; 0 (default):
                                  * automatic (sal_attrib_init). float32 maps do
                                  * not depend on it; float64 maps may in their
                                  * last bits (dgemm), as on max_batch.           */
    int32_t ig_steps;            /* >= 1                                          */
    sal_ig_rule ig_rule;
    sal_ig_baseline ig_baseline;
    int32_t cam_layer;           /* node index; needed by gradcam, guided_gradcam */
    sal_conv_mode convolution;   /* every engine's (sal_engine_set_convolution)   */
} sal_method_params;

/* The defaults of SPEC's config keys: 50 samples, noise 0.15, base vanilla, mean,
 * seed 0, automatic columns; 50 steps, gausslegendre, zero baseline; cam_layer -1 (none);
 * convolution SAL_CONV_FAST. */
void sal_method_params_default(sal_method_params *p);

typedef struct sal_attrib sal_attrib;

/* Sets up every engine the methods need for batches of up to max_batch images, the
 * path points in runs of up to max_batch, and SmoothGrad's copies in runs of
 * sg_columns, or when that is 0 of all of an image's samples (as many as fit in 1 GiB
 * of workspace, at most 4096, at least max_batch). Fails with a message for a method
 * the parameters do not allow (e.g. gradcam without a node, or a node with no spatial
 * map or that some target does not read). */
int sal_attrib_init(sal_attrib **out, const sal_model *m, sal_precision p, int max_batch,
                    const sal_target *targets, int ntargets, const sal_method *methods,
                    int nmethods, const sal_method_params *par, char *err, size_t errlen);

/* Maps per image and target: the asked methods but gradcam, in their order. */
int sal_attrib_num_maps(const sal_attrib *a);

/* n <= max_batch images, input (n, C, H, W) normalized, in the precision; image[k]
 * the index of input image k in the job, 0..2^32-2 (SmoothGrad's noise key: a map
 * depends on the image's index, never on the batch or rank that computes it).
 * Writes
 *   maps         (n, ntargets, num_maps, C, H, W)
 *   activations  (n, ntargets) the target scalars, or NULL
 *   cams         (n, ntargets, H, W) Grad-CAM maps when gradcam is asked, or NULL
 *   ig_gap       (n, ntargets) in double: Integrated Gradients' completeness gap,
 *                sum of the attributions - (F(x) - F(baseline)), when asked, or NULL */
int sal_attrib_run(sal_attrib *a, const void *input, int n, const int64_t *image, void *maps,
                   void *activations, void *cams, double *ig_gap, char *err,
                   size_t errlen);

/* Forward and backward passes one image costs (for --check): of the methods with
 * their parameters and ntargets targets, without a model (sal_method_passes), or of
 * an initialized driver. */
void sal_method_passes(const sal_method *methods, int nmethods, const sal_method_params *par,
                       int ntargets, double *forward, double *backward);
void sal_attrib_passes(const sal_attrib *a, double *forward, double *backward);

void sal_attrib_set_parallel(sal_attrib *a, sal_parallel_for pfor, void *pool);
size_t sal_attrib_workspace_bytes(const sal_attrib *a);
void sal_attrib_free(sal_attrib *a);

#ifdef __cplusplus
}
#endif
#endif
