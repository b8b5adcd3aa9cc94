/*
 * The plan every rank works from: built by rank 0 from the config and the model
 * header (sp_plan_build), packed and broadcast so that all ranks see the same image
 * list even if the file system changes under them, and unpacked on the other ranks
 * by a reader that trusts nothing in the bytes (sp_plan_unpack).
 */
#ifndef SP_PLAN_H
#define SP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "output.h"
#include "salcore.h"

typedef struct {
    char *model_path;
    sal_preprocess pre;       /* model defaults with the config's resize mode      */
    sal_precision precision;
    sal_conv_mode convolution; /* [run] convolution                                */
    int batch, threads, compression;
    int nimages;
    char **image_paths;       /* resolved paths to open                            */
    int ntargets;
    sal_target *targets;      /* layer index, 0-based unit                         */
    char (*target_names)[SAL_NAME_LEN]; /* each target's layer as the config names it
                               * (a node's name or its alias)                      */
    int nmethods;
    sal_method methods[SAL_METHOD_COUNT];
    /* The methods' parameters, from the config (its defaults when a table is
     * absent); carried whether or not a method uses them. */
    sp_smoothgrad smoothgrad;
    sp_integrated_gradients integrated_gradients;
    int gradcam_layer;        /* layer index, or -1 when [saliency.gradcam] is unset */
    char gradcam_name[SAL_NAME_LEN]; /* that layer as the config names it, or ""  */
    char *previews_dir;       /* or NULL                                           */
    int preview_gray;         /* 1: max |map| over channels with a colormap        */
    int max_abs;              /* [output] channels = "max_abs": maps are stored as
                               * max |map| over the input channels (one channel)   */
    int writers;              /* [output] writers: K part files behind the output
                               * (parts.h); 1: one plain file                      */
    char **image_labels;      /* display paths: the output's /image labels and the
                               * previews' file names; sent to the other ranks when
                               * they write previews or part files               */
    /* Who owns the strings of image_paths and image_labels: rank 0's config when
     * borrowed (the config outlives the plan), else the one block `strings`
     * (sp_plan_unpack), or one malloc each when both are unset. */
    int borrowed;
    char *strings;
} sp_plan;

/* Builds the plan from a checked config and the opened model (header only):
 * preprocessing from the model with the config's resize mode, targets resolved to
 * layer indices and 0-based units, the methods with their parameters, the Grad-CAM
 * layer resolved and checked for a spatial output. On failure returns -1 with err
 * naming the config line ("job.toml:7:9: unit 0 of layer fc3 is out of range: ...")
 * and *p empty. */
int sp_plan_build(sp_plan *p, const sp_config *c, const sal_model *m, char *err,
                  size_t errlen);

/* What the output records besides the plan: where the job came from. */
typedef struct {
    const char *salpipe_version;
    const char *config_path, *config_text;
    const char *model_sha256, *model_name;
    sp_output_lock *lock;     /* see sp_output_layout.lock                         */
} sp_provenance;

/* The output's layout (datasets, labels, attributes: docs/output-format.md), made
 * from a plan built by sp_plan_build (rank 0's, with its image labels) and the
 * provenance alone. *lay points into p, prov and *store; free *store after
 * sp_output_open. Returns 0, or -1 (out of memory) with *store NULL. */
int sp_plan_output_layout(const sp_plan *p, const sp_provenance *prov, sp_output_layout *lay,
                          void **store);

/* Channels of a stored map: 1 with [output] channels = "max_abs", else the input's. */
static inline int sp_plan_map_channels(const sp_plan *p) {
    return p->max_abs ? 1 : p->pre.channels;
}

/* The core's parameters of the plan's methods (sal_attrib_init). */
void sp_plan_method_params(const sp_plan *p, sal_method_params *par);

/* What a batch message of this plan holds (batch.h), for its writer and reader, and
 * what the output stores per image: maps of every method but gradcam, Grad-CAM's
 * (H, W) maps, Integrated Gradients' gaps. */
sp_batch_shape sp_plan_batch_shape(const sp_plan *p);

/* One method with its parameters for people ("smoothgrad (samples 50, noise 0.15, base
 * vanilla, statistic mean, seed 0)", "vanilla") into buf; returns buf. */
const char *sp_plan_method_text(const sp_plan *p, sal_method m, char *buf, size_t len);

/* Packs the plan into a malloc'ed buffer; *bytes receives its size. NULL when out
 * of memory. */
char *sp_plan_pack(const sp_plan *p, size_t *bytes);

/* Fills p from a packed buffer (p owns copies). Every length, count, enum and size
 * is checked against the buffer and the limits a plan built by sp_plan_build
 * respects, so no buffer can make a rank read out of bounds or allocate more than
 * a small multiple of `bytes`. Returns 0, or -1 with *p empty and err saying what
 * is wrong. */
int sp_plan_unpack(sp_plan *p, const char *buf, size_t bytes, char *err, size_t errlen);

void sp_plan_free(sp_plan *p);

#endif
