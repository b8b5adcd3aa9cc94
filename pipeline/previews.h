/*
 * JPEG previews of saliency maps ([output] previews, preview_mode): see previews.c
 * for the files and how a map becomes a picture. For looking at, not for analysis:
 * the HDF5 file holds the signed maps.
 */
#ifndef SP_PREVIEWS_H
#define SP_PREVIEWS_H

#include <stddef.h>

#include "image.h"
#include "plan.h"

typedef struct sp_previews sp_previews;

/* Sizes the buffers for the plan's maps. The plan and model must outlive it. */
int sp_previews_init(sp_previews **out, const sp_plan *p, const sal_model *m, char *err,
                     size_t errlen);

/* Writes the montage and per-map JPEGs of `image` into plan->previews_dir. pixels:
 * the fitted 8-bit input; maps: (T, M, C, H, W) of the methods but gradcam, cams:
 * (T, H, W) Grad-CAM maps when gradcam is asked (else unused), in the plan's
 * precision. -1 with err naming the file on failure (nothing else is affected). */
int sp_previews_write(sp_previews *pv, int image, const sal_image *pixels,
                      const void *maps, const void *cams, char *err, size_t errlen);

void sp_previews_free(sp_previews *pv);

#endif
