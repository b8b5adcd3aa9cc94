/*
 * The attribution driver's state (salcore.h, "attribution methods"), shared by
 * attribution_api.c (set-up, compiled once) and attribution.c (the runs, compiled
 * once per precision).
 *
 * A driver owns up to four engines over one model, each for one kind of pass:
 *   rules  vanilla, guided, deconvnet seeds on the batch's images: the maps of those
 *          methods, gradient_x_input's gradient, guided_gradcam's guided map, and
 *          the activations;
 *   cam    vanilla seeds stopped at the Grad-CAM node (sal_engine_stop_at), the
 *          node's value captured from the forward through the layer callback;
 *   sg     SmoothGrad's base-method seeds on an image's noisy copies, up to `sg_cols`
 *          copies per engine run (all of an image's copies when they fit, see
 *          sg_columns in attribution_api.c);
 *   ig     vanilla seeds on an image's path points, up to `ig_cols` per run.
 * Copies and path points are batch columns of their engine, so one image's samples
 * share every GEMM; their order, and so every sum over them, does not depend on the
 * batch split or the number of ranks.
 *
 * The fold: when the network input has one consumer and it is a convolution (every
 * network salpipe serves starts so), the gradient at the input is that convolution's
 * backward, which is linear and the same for every sample. So a sum over samples of
 * input gradients (SmoothGrad's mean, Integrated Gradients' weighted sum) equals the
 * convolution's backward of the sum of its output gradients: the sg and ig engines
 * stop at the convolution (sal_engine_stop_at), the driver sums there and runs the
 * convolution's backward once per image and target instead of once per sample.
 */
#ifndef SAL_ATTRIBUTION_INTERNAL_H
#define SAL_ATTRIBUTION_INTERNAL_H

#include "salcore.h"

struct sal_attrib {
    const sal_model *m;
    sal_precision prec;
    int max_batch, ntargets, nmethods;
    sal_target *targets;
    sal_method *methods;
    sal_method_params par;
    size_t in_elems;                 /* C*H*W of one input image                  */
    int nmaps;                       /* methods with a map (all but gradcam)       */
    int map_slot[SAL_METHOD_COUNT];  /* method -> its index among the maps, or -1  */
    int want[SAL_METHOD_COUNT];      /* 1 when the method was asked for            */

    sal_engine *rules;               /* or NULL                                   */
    int nrules;
    int rule_slot[3];                /* vanilla, guided, deconvnet -> rules' method
                                      * index, or -1                              */
    sal_engine *cam, *sg, *ig;       /* or NULL                                   */
    int fold;                        /* the fold's convolution node, or -1 (above) */
    int sg_fold, ig_fold;            /* 1 when that engine stops at the fold      */
    size_t fold_elems;               /* the node's C*H*W                          */
    void *fold_sum;                  /* (fold_elems) one sum, rounded             */
    void *fold_col;                  /* the node's conv scratch for one image     */
    sal_parallel_for pfor;           /* the caller's threads (NULL: this one) for  */
    void *pool;                      /* the engines and SmoothGrad's noisy copies  */
    int sg_cols, ig_cols;            /* copies per sg run, path points per ig run  */
    int chunk;                       /* the larger: columns of cols and col_maps   */
    size_t cam_elems, cam_plane;     /* the cam node's C*H*W and H*W               */
    int cam_c;

    double *alphas, *weights;        /* ig: steps path points and their weights   */
    double *baseline_f;              /* ig: F(baseline) per target, once known     */
    int baseline_known;

    /* Workspace, in the driver's precision unless double: */
    void *rule_maps;                 /* (max_batch, T, nrules, in_elems)           */
    void *cam_grad;                  /* (max_batch, T, 1, cam_elems)               */
    void *cam_value;                 /* (max_batch, cam_elems)                     */
    void *cam_up;                    /* (max_batch, T, H*W): upsampled maps        */
    double *cam_sum;                 /* (node's H*W) one map's channel sum         */
    void *cam_low;                   /* (node's H*W) that map after the ReLU       */
    void *cols;                      /* (chunk, in_elems): copies or path points   */
    void *col_maps;                  /* (chunk, T, 1, sample_elems)                */
    void *acts;                      /* (max(max_batch, chunk), T)                 */
    size_t sample_elems;             /* per column and target in col_maps, acc and
                                      * acc2: in_elems, or fold_elems if larger    */
    double *acc, *acc2;              /* (T, sample_elems) sums over samples        */
    double *noise;                   /* (in_elems) scratch: ig's baseline          */
};

int sal_attrib_run_f32(sal_attrib *a, const void *input, int n, const int64_t *image, void *maps,
                       void *activations, void *cams, double *ig_gap, char *err,
                       size_t errlen);
int sal_attrib_run_f64(sal_attrib *a, const void *input, int n, const int64_t *image, void *maps,
                       void *activations, void *cams, double *ig_gap, char *err,
                       size_t errlen);

#endif
