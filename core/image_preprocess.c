/*
 * SPEC §1 preprocessing after decoding: the two resize modes (torchvision 0.14's
 * Resize((H, W)), or Resize(S) + CenterCrop((H, W)) with its exact size and offset
 * rules), ToTensor + Normalize in float32 as torch computes them or in float64, and
 * the one call that takes a file to a normalized (C, H, W) tensor.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int check_preprocess(const sal_preprocess *pp, char *err, size_t errlen) {
    if (!pp) return fail(err, errlen, "no preprocessing parameters");
    if (pp->channels != 1 && pp->channels != 3)
        return fail(err, errlen, "preprocessing: channels must be 1 or 3, not %d",
                    (int)pp->channels);
    if (pp->height < 1 || pp->width < 1)
        return fail(err, errlen, "preprocessing: input size %d x %d is not positive",
                    (int)pp->width, (int)pp->height);
    if (pp->resize_crop != 0 && pp->resize_crop != 1)
        return fail(err, errlen, "preprocessing: resize mode %d is neither 0 (stretch) "
                    "nor 1 (crop)", (int)pp->resize_crop);
    if (pp->resize_crop && pp->resize_size < 1)
        return fail(err, errlen, "preprocessing: crop mode needs a positive resize size, "
                    "not %d", (int)pp->resize_size);
    for (int c = 0; c < pp->channels; c++)
        if (!(pp->std[c] != 0.0))
            return fail(err, errlen, "preprocessing: std[%d] is %g", c, pp->std[c]);
    return 0;
}

/* torchvision 0.14 _compute_resized_output_size for an int size: the shorter side
 * (the width on ties) becomes `size`, the other int(size * long / short), the
 * division in double as Python's int / int (exact here: the product is below 2^53). */
static int crop_resize_size(int32_t w, int32_t h, int32_t size, int32_t *rw, int32_t *rh,
                            char *err, size_t errlen) {
    int32_t s = w <= h ? w : h, l = w <= h ? h : w;
    double nl = (double)((int64_t)size * l) / (double)s;
    if (!(nl < 2147483648.0) || (int64_t)size * l >= ((int64_t)1 << 53))
        return fail(err, errlen, "crop mode: resizing %d x %d so its shorter side is %d "
                    "makes the other side too long", (int)w, (int)h, (int)size);
    int32_t n = (int32_t)nl;
    if (n < 1) n = 1; /* cannot happen: long >= short */
    *rw = w <= h ? size : n;
    *rh = w <= h ? n : size;
    return 0;
}

/* torchvision's center_crop along one axis: where the crop is larger than the image
 * it pads with zeros, floor half before; else the offset is int(round(d / 2.0)) with
 * Python's round half to even. Returns where the crop starts in image coordinates
 * (negative: inside the padding). */
static int32_t crop_offset(int32_t size, int32_t crop) {
    if (crop > size) return -((crop - size) / 2);
    int32_t d = size - crop, q = d / 2;
    if (d % 2 == 1 && q % 2 == 1) q++;
    return q;
}

int sal_image_fit(sal_image *out, const sal_image *in, const sal_preprocess *pp,
                  char *err, size_t errlen) {
    if (!out) return fail(err, errlen, "sal_image_fit: no output image");
    memset(out, 0, sizeof *out);
    if (check_preprocess(pp, err, errlen)) return -1;
    if (!in || !in->pixels || in->width < 1 || in->height < 1 ||
        (in->channels != 1 && in->channels != 3))
        return fail(err, errlen, "sal_image_fit: empty or invalid input image");
    if (!pp->resize_crop)
        return sal_image_resize(out, in, pp->width, pp->height, err, errlen);

    int32_t rw = 0, rh = 0;
    if (crop_resize_size(in->width, in->height, pp->resize_size, &rw, &rh, err, errlen))
        return -1;
    const int32_t W = pp->width, H = pp->height, ch = in->channels;
    int32_t left = crop_offset(rw, W), top = crop_offset(rh, H);
    /* The part of the crop that lies on the resized image; the rest is padding. */
    int32_t x0 = left > 0 ? left : 0, y0 = top > 0 ? top : 0;
    int32_t x1 = left + W < rw ? left + W : rw, y1 = top + H < rh ? top + H : rh;
    int32_t ww = x1 - x0, wh = y1 - y0;

    out->pixels = calloc((size_t)W * (size_t)H, (size_t)ch);
    if (!out->pixels) return fail(err, errlen, "out of memory for a %d x %d image", W, H);
    out->width = W;
    out->height = H;
    out->channels = ch;
    uint8_t *win = out->pixels;
    if (ww != W || wh != H) {
        win = malloc((size_t)ww * (size_t)wh * (size_t)ch);
        if (!win) {
            sal_image_free(out);
            return fail(err, errlen, "out of memory for the crop window");
        }
    }
    if (image_resample_window(win, in, rw, rh, x0, y0, ww, wh, err, errlen)) {
        if (win != out->pixels) free(win);
        sal_image_free(out);
        return -1;
    }
    if (win != out->pixels) {
        size_t row = (size_t)ww * (size_t)ch;
        for (int32_t y = 0; y < wh; y++)
            memcpy(out->pixels +
                       ((size_t)(y0 - top + y) * (size_t)W + (size_t)(x0 - left)) *
                           (size_t)ch,
                   win + (size_t)y * row, row);
        free(win);
    }
    return 0;
}

void sal_image_to_tensor_f32(float *out, const sal_image *img, const double *mean,
                             const double *std) {
    const size_t hw = (size_t)img->width * (size_t)img->height;
    const int ch = img->channels;
    for (int c = 0; c < ch; c++) {
        /* torch: to(float32).div(255), then sub_(mean_f32).div_(std_f32). */
        const float m = (float)mean[c], s = (float)std[c];
        float lut[256];
        for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - m) / s;
        float *o = out + (size_t)c * hw;
        const uint8_t *p = img->pixels + c;
        for (size_t i = 0; i < hw; i++) o[i] = lut[p[i * (size_t)ch]];
    }
}

void sal_image_to_tensor_f64(double *out, const sal_image *img, const double *mean,
                             const double *std) {
    const size_t hw = (size_t)img->width * (size_t)img->height;
    const int ch = img->channels;
    for (int c = 0; c < ch; c++) {
        double lut[256];
        for (int v = 0; v < 256; v++) lut[v] = ((double)v / 255.0 - mean[c]) / std[c];
        double *o = out + (size_t)c * hw;
        const uint8_t *p = img->pixels + c;
        for (size_t i = 0; i < hw; i++) o[i] = lut[p[i * (size_t)ch]];
    }
}

int sal_image_preprocess(void *tensor, sal_image *pixels, const char *path,
                         const sal_preprocess *pp, sal_precision prec,
                         int64_t max_pixels, char *err, size_t errlen) {
    if (pixels) memset(pixels, 0, sizeof *pixels);
    const char *name = path ? path : "(null)";
    char why[SAL_ERR_LEN];
    if (!tensor) return fail(err, errlen, "%s: sal_image_preprocess: no tensor", name);
    if (prec != SAL_F32 && prec != SAL_F64)
        return fail(err, errlen, "%s: unknown precision %d", name, (int)prec);
    if (check_preprocess(pp, why, sizeof why))
        return fail(err, errlen, "%s: %s", name, why);

    sal_image img, fit;
    if (sal_image_load(&img, path, pp->channels, max_pixels, err, errlen)) return -1;
    int rc = sal_image_fit(&fit, &img, pp, why, sizeof why);
    sal_image_free(&img);
    if (rc) return fail(err, errlen, "%s: %s", name, why);
    if (prec == SAL_F32)
        sal_image_to_tensor_f32(tensor, &fit, pp->mean, pp->std);
    else
        sal_image_to_tensor_f64(tensor, &fit, pp->mean, pp->std);
    if (pixels)
        *pixels = fit;
    else
        sal_image_free(&fit);
    return 0;
}
