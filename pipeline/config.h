/*
 * The job description: a TOML config (SPEC §3) parsed, checked and resolved into
 * plain C data. Paths are resolved against the config file's directory. Nothing
 * here knows about MPI or the model; checks that need the model (layer names, unit
 * ranges) are done by the caller with the line/column kept for each target.
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "salcore.h"

typedef struct {
    char *display;  /* as listed in the config source; stored in /image          */
    char *path;     /* resolved path to open                                     */
} sp_image;         /* both point into sp_config.image_strings                   */

typedef struct {
    char layer[SAL_NAME_LEN];
    int32_t unit;   /* 1-based, as the user wrote it                             */
    int line, col;  /* where the unit (or the units range) is in the config      */
    int layer_line, layer_col; /* where its table's layer name is                */
} sp_target;

typedef enum { SP_RESIZE_MODEL = -1, SP_RESIZE_STRETCH = 0, SP_RESIZE_CROP = 1 } sp_resize;

/* The parameters of issue 12's methods ([saliency.smoothgrad],
 * [saliency.integrated_gradients], [saliency.gradcam]; docs/config.md). Each enum's
 * names, as the config and the output spell them, are in the table of the same name
 * below (config.c), indexed by the value. */
typedef enum { SP_SG_MEAN = 0, SP_SG_MEAN_SQUARE = 1, SP_SG_VARIANCE = 2,
               SP_SG_STATISTIC_COUNT } sp_sg_statistic;
typedef enum { SP_IG_GAUSSLEGENDRE = 0, SP_IG_RIEMANN_TRAPEZOID = 1,
               SP_IG_RULE_COUNT } sp_ig_rule;
typedef enum { SP_IG_BASELINE_ZERO = 0, SP_IG_BASELINE_BLACK = 1,
               SP_IG_BASELINE_COUNT } sp_ig_baseline;
extern const char *const sp_sg_statistic_names[SP_SG_STATISTIC_COUNT + 1];
extern const char *const sp_ig_rule_names[SP_IG_RULE_COUNT + 1];
extern const char *const sp_ig_baseline_names[SP_IG_BASELINE_COUNT + 1];
extern const char *const sp_channels_names[3]; /* [output] channels: "all", "max_abs" */

#define SP_MAX_SAMPLES 100000 /* samples and steps: 1..this (a typo must not mean */
#define SP_MAX_STEPS 100000   /* years of work)                                   */

typedef struct {
    int32_t samples;          /* noisy copies per image, 1..SP_MAX_SAMPLES [50]  */
    double noise;             /* sigma / (max(x) - min(x)), finite, >= 0 [0.15]  */
    sal_method base;          /* VANILLA [default], GUIDED or DECONVNET          */
    sp_sg_statistic statistic;/* [mean]                                          */
    uint64_t seed;            /* 0..INT64_MAX (what TOML can write) [0]          */
} sp_smoothgrad;

typedef struct {
    int32_t steps;            /* 1..SP_MAX_STEPS [50]                            */
    sp_ig_rule rule;          /* [gausslegendre]                                 */
    sp_ig_baseline baseline;  /* [zero]                                          */
} sp_integrated_gradients;

typedef struct {
    char *config_path;   /* as given on the command line                         */
    char *config_text;   /* the whole file, for provenance                       */
    char *model_path;    /* resolved [model] path                                */
    int model_line, model_col;
    sp_image *images;    /* in source order; nimages >= 1                        */
    int nimages;
    char *images_source; /* "files", "list", "dir" or "stim_csv"                 */
    int images_line, images_col; /* where that key is in the config              */
    void *image_strings; /* owns the images' strings (sources.c)                 */
    sp_target *targets;  /* flattened in file order (SPEC §3)                    */
    int ntargets;
    sal_method methods[SAL_METHOD_COUNT];
    int nmethods;        /* default: vanilla, guided                             */
    int method_line[SAL_METHOD_COUNT], method_col[SAL_METHOD_COUNT]; /* where each
                          * of methods[] is written; 0 for the default list     */
    sp_smoothgrad smoothgrad;             /* defaults when the table is absent  */
    sp_integrated_gradients integrated_gradients;
    char gradcam_layer[SAL_NAME_LEN];     /* [saliency.gradcam] layer, "" unset  */
    int gradcam_line, gradcam_col;        /* where that layer name is written    */
    sp_resize resize;    /* [preprocess] resize, or SP_RESIZE_MODEL              */
    char *output_path;   /* resolved [output] path                               */
    int compression;     /* 0..9, default 4                                      */
    char *previews_dir;  /* resolved, or NULL                                    */
    int preview_gray;    /* preview_mode: 0 "rgb" (default), 1 "gray"            */
    int max_abs;         /* [output] channels: 0 "all" (default), 1 "max_abs":
                          * each map stored as max |map| over the input channels */
    int writers;         /* [output] writers: ranks that write, default 1        */
    int writers_line, writers_col; /* where it is written, 0 when not set        */
    int batch;           /* default 8                                            */
    int batch_line, batch_col; /* where [run] batch is, 0 when not set           */
    int threads;         /* default 1                                            */
    sal_precision precision; /* default float32                                  */
    sal_conv_mode convolution; /* [run] convolution, default "fast"                */
} sp_config;

/* Reads and checks `path`. On failure returns -1 and err says
 * "CONFIG:LINE:COL: key 'images.files': expected an array of strings" (or the
 * parse error with its position); *cfg is then empty and needs no free. Image
 * sources that are files (list, stim_csv) or directories (dir) are read here, so
 * their errors name those files. Image files themselves are not opened. */
int sp_config_load(const char *path, sp_config *cfg, char *err, size_t errlen);

void sp_config_free(sp_config *cfg);

/* The candidate of the NULL-terminated list `cands` nearest to `word` when it is
 * plausibly a typo of it (at most 2 edits), else NULL: the "did you mean". */
const char *sp_config_closest(const char *word, const char *const *cands);

#endif
