/*
 * The plan every rank works from: what rank 0 resolved from the config and the model
 * header, packed and broadcast so that all ranks see the same image list even if the
 * file system changes under them.
 */
#ifndef SP_PLAN_H
#define SP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "salcore.h"

typedef struct {
    char *model_path;
    sal_preprocess pre;       /* model defaults with the config's resize mode      */
    sal_precision precision;
    int batch, threads, compression;
    int nimages;
    char **image_paths;       /* resolved paths to open                            */
    int ntargets;
    sal_target *targets;      /* layer index, 0-based unit                         */
    int nmethods;
    sal_method methods[SAL_METHOD_COUNT];
    char *previews_dir;       /* or NULL                                           */
    int preview_gray;         /* 1: max |map| over channels with a colormap        */
    char **image_labels;      /* display paths, for preview file names             */
    /* Who owns the strings of image_paths and image_labels: rank 0's config when
     * borrowed (the config outlives the plan), else the one block `strings`
     * (sp_plan_unpack), or one malloc each when both are unset. */
    int borrowed;
    char *strings;
} sp_plan;

/* Packs the plan into a malloc'ed buffer; *bytes receives its size. */
char *sp_plan_pack(const sp_plan *p, size_t *bytes);
/* Fills p from a packed buffer (p owns copies, its image strings in one block);
 * -1 on a malformed buffer. */
int sp_plan_unpack(sp_plan *p, const char *buf, size_t bytes);
void sp_plan_free(sp_plan *p);

#endif
