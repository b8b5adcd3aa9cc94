/*
 * salimage: image files to network input tensors, identical to DNNBrain's Pillow +
 * torchvision preprocessing (SPEC §1). A saliency map is a gradient with respect to
 * the input tensor, so every step here reproduces its Python counterpart bit for bit:
 *
 *   Image.open(p).convert('RGB')                 sal_image_load       (JPEG, PNG)
 *   Image.resize((W, H), Image.BILINEAR)         sal_image_resize
 *   Resize((H, W))  or  Resize(S) + CenterCrop   sal_image_fit
 *   ToTensor() + Normalize(mean, std)            sal_image_to_tensor_f32 / _f64
 *
 * Usage:
 *
 *     const sal_preprocess *pp = sal_model_preprocess(m);
 *     float *x = malloc(sizeof(float) * pp->channels * pp->height * pp->width);
 *     char err[SAL_ERR_LEN];
 *     sal_image px;                              // the fitted 8-bit pixels, (H, W, C)
 *     if (sal_image_preprocess(x, &px, "a.jpg", pp, SAL_F32, 0, err, sizeof err))
 *         { puts(err); continue; }               // next image: nothing leaked
 *     ...                                        // x is (C, H, W), normalized
 *     sal_image_free(&px);
 *
 * Like the rest of core/, nothing here prints or exits: a failing call returns -1,
 * writes "<file>: <reason>" into err and frees whatever it allocated. What salpipe
 * refuses although Pillow would decode it, and why, is in docs/image-input.md.
 * Pixels are 8-bit, row-major, channels interleaved: (H, W, C).
 */
#ifndef SAL_IMAGE_H
#define SAL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "salcore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default decoded-pixel limit: Pillow's Image.MAX_IMAGE_PIXELS. */
#define SAL_IMAGE_MAX_PIXELS 89478485
/* Files larger than this are refused before they are read (no image within the pixel
 * limit needs it). */
#define SAL_IMAGE_MAX_FILE_BYTES ((int64_t)1 << 30)

typedef struct {
    int32_t width, height;
    int32_t channels;  /* 3 = RGB, 1 = L (Pillow's luminance)                   */
    uint8_t *pixels;   /* (height, width, channels), owned; NULL when empty     */
} sal_image;

/* Decodes a JPEG or PNG file (recognised by its first bytes, not its name) into
 * 8-bit pixels equal to Pillow 9.4's Image.open(path).convert('RGB') when channels is
 * 3, or .convert('L') when channels is 1. Refuses, before allocating the pixels, an
 * image with more than max_pixels pixels (0 selects SAL_IMAGE_MAX_PIXELS). Refuses
 * truncated or corrupt data rather than returning a partly gray image.
 * Returns 0 and fills *out (free with sal_image_free), or -1 with *out zeroed and err
 * holding "path: reason". */
int sal_image_load(sal_image *out, const char *path, int32_t channels,
                   int64_t max_pixels, char *err, size_t errlen);

/* Frees the pixels and zeroes *img. Safe on a zeroed or already freed image. */
void sal_image_free(sal_image *img);

/* Pillow's Image.resize((width, height), BILINEAR) on 8-bit RGB or L: antialiased
 * (the filter widens with the downscale factor), separable, fixed-point, horizontal
 * pass first and rounded to 8 bits; a pass runs only when the size changes in its
 * direction (same size: a copy). Upscaling works the same way.
 * Returns 0 and fills *out (caller frees), or -1 with *out zeroed and err set (bad
 * sizes, out of memory). `in` is untouched. */
int sal_image_resize(sal_image *out, const sal_image *in, int32_t width,
                     int32_t height, char *err, size_t errlen);

/* The geometric part of SPEC §1 preprocessing, to pp->height x pp->width:
 *   pp->resize_crop == 0 ("stretch"): Resize((height, width));
 *   pp->resize_crop == 1 ("crop"): torchvision 0.14 Resize(pp->resize_size) (shorter
 *   side to resize_size, longer side int(resize_size * long / short)), then
 *   CenterCrop((height, width)) with offsets int(round((h - ch) / 2.0)) (round half
 *   to even), zero padding where the resized image is smaller than the crop.
 * In crop mode only the pixels inside the crop are computed; they are identical to
 * those of the full resize. Returns 0 and fills *out (caller frees), or -1 with
 * *out zeroed and err set. */
int sal_image_fit(sal_image *out, const sal_image *in, const sal_preprocess *pp,
                  char *err, size_t errlen);

/* ToTensor + Normalize as torch does them in float32: per element
 * ((float)x / 255.0f - (float)mean[c]) / (float)std[c], each operation rounded to
 * float32. out is (C, H, W); mean and std have img->channels entries. */
void sal_image_to_tensor_f32(float *out, const sal_image *img, const double *mean,
                             const double *std);

/* The float64 preprocessing of SPEC §1: (x / 255.0 - mean[c]) / std[c] in double. */
void sal_image_to_tensor_f64(double *out, const sal_image *img, const double *mean,
                             const double *std);

/* File to network input in one call: sal_image_load with pp->channels, sal_image_fit,
 * then the tensor in precision prec into `tensor` (caller-owned, pp->channels *
 * pp->height * pp->width floats or doubles). When pixels is not NULL it receives the
 * fitted 8-bit image (for previews; caller frees), else nothing is kept.
 * Returns 0, or -1 with err = "path: reason", *pixels zeroed and tensor unspecified. */
int sal_image_preprocess(void *tensor, sal_image *pixels, const char *path,
                         const sal_preprocess *pp, sal_precision prec,
                         int64_t max_pixels, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
