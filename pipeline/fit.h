/*
 * Whether a job fits, decided on rank 0 before any work (docs/reliability.md, "Plans
 * that cannot fit"): the sizes the plan implies (maps per image, a rank's batch
 * buffers, one batch's MPI message, the whole /saliency dataset) against the limits
 * of the code, MPI and the node, and the output file's estimated size against the
 * free space of its file system. Also the plan that --check prints.
 */
#ifndef SP_FIT_H
#define SP_FIT_H

#include <stddef.h>

#include "config.h"
#include "plan.h"

/* Most maps one image may have (targets x methods): rank 0 keeps one pointer and
 * size per map of a batch on its stack, and far beyond this the job is weeks per
 * image anyway. */
#define SP_FIT_MAX_MAPS_PER_IMAGE 65536

/* Shuffle + deflate keep about this share of a float gradient map's bytes
 * (measured: 0.859 on AlexNet, 0.865 on the demo model; docs/performance.md). */
#define SP_FIT_DEFLATE_KEEPS 0.86

/* Checks the sizes the plan implies for a job on `ranks` ranks. Returns 0, or -1
 * with err saying "CONFIG:LINE:COL: key '...': ..." which limit is passed and
 * what to change (exit 2). */
int sp_fit_sizes(const sp_config *c, const sp_plan *p, int ranks, char *err, size_t errlen);

typedef struct {
    double maps;         /* images x targets x methods                           */
    double todo_maps;    /* of those, maps of images not done in an existing file */
    int done_images;     /* images with status 1 in an existing output (resume)  */
    int resuming;        /* the output exists and would be resumed               */
    double raw_bytes;    /* what the run writes if nothing compressed            */
    double need_bytes;   /* what it is expected to write (deflate ratio)         */
    double free_bytes;   /* space it may use on the output's file system; -1 unknown */
    char fs_dir[4096];   /* the existing directory whose file system that is     */
} sp_fit_disk;

/* Estimates what the run writes to the output (only the images not done yet when
 * it resumes an existing file; the whole file with `overwrite`, which frees the
 * old one) and the free space (statvfs) of the file system it goes to. Never fails:
 * what cannot be known is estimated from above or left at -1. */
void sp_fit_disk_estimate(const sp_config *c, const sp_plan *p, int overwrite,
                          sp_fit_disk *d);

/* 0 when the estimate fits in the free space (or the free space is unknown), else
 * -1 with err holding both numbers (exit 3). */
int sp_fit_disk_check(const sp_config *c, const sp_fit_disk *d, char *err, size_t errlen);

/* The resize rule of `pp` in torchvision's terms into buf, e.g. "stretch:
 * Resize((299, 299))" or "crop: Resize(256) + CenterCrop(224)"; returns buf. */
const char *sp_fit_resize_rule(const sal_preprocess *pp, char *buf, size_t len);

/* --check: prints the plan (images, targets, methods, maps, output and disk) to
 * stdout. */
void sp_fit_print_plan(const sp_config *c, const sal_model *m, const sp_plan *p,
                       const sp_fit_disk *d);

#endif
