/*
 * Pillow 9.4's Image.resize(size, BILINEAR) for 8-bit images (Resample.c), re-derived
 * so the bytes are identical: triangle filter whose support widens with the downscale
 * factor (antialiasing), weights computed in double, normalized to sum 1, rounded to
 * 22-bit fixed point; a horizontal pass rounded and clipped to 8 bits, then a
 * vertical pass over its result. Each pass runs only when the size changes in its
 * direction. Any rectangular window of the output can be computed alone; its pixels
 * are those of the full resize (crop mode uses this to skip what it would discard).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define PRECISION_BITS (32 - 8 - 2)

/* Per output position: the first input index, how many inputs, and `ksize` weights in
 * fixed point (only the first `count` are used). */
typedef struct {
    int32_t ksize;
    int32_t *bounds; /* (n, 2): first, count */
    int32_t *k;      /* (n, ksize)           */
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
    memset(c, 0, sizeof *c);
}

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static int32_t to_fixed(double w) {
    return w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                 : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the output positions
 * [o0, o0 + n) of a resize from in_size to out_size. The operations and their order
 * are Pillow's, down to the box edge being a C float. Returns 0 or -1 (memory). */
static int make_coeffs(coeffs *c, int32_t in_size, int32_t out_size, int32_t o0,
                       int32_t n) {
    memset(c, 0, sizeof *c);
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* BILINEAR's support is 1 */
    double ceil_support = ceil(support);
    if (ceil_support > (double)(INT32_MAX / 4)) return -1;
    int32_t ksize = (int32_t)ceil_support * 2 + 1;
    if ((size_t)n > SIZE_MAX / sizeof(int32_t) / (size_t)ksize) return -1;
    c->ksize = ksize;
    c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)n * (size_t)ksize * sizeof *c->k);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!c->bounds || !c->k || !w) {
        free(w);
        coeffs_free(c);
        return -1;
    }
    double ss = 1.0 / filterscale;
    for (int32_t i = 0; i < n; i++) {
        int32_t xx = o0 + i;
        double center = in0 + (xx + 0.5) * scale;
        int32_t xmin = (int32_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int32_t xmax = (int32_t)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax < 0) xmax = 0;
        double ww = 0.0;
        for (int32_t x = 0; x < xmax; x++) {
            double v = bilinear_filter((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = c->k + (size_t)i * (size_t)ksize;
        for (int32_t x = 0; x < ksize; x++) {
            if (x < xmax && ww != 0.0) w[x] /= ww;
            k[x] = x < xmax ? to_fixed(w[x]) : 0;
        }
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    free(w);
    return 0;
}

static uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Horizontal pass. out is (nrows, nx, ch), rows r0 .. r0 + nrows of in (in_w wide). */
static void pass_h(uint8_t *out, const uint8_t *in, int32_t in_w, int ch, int32_t r0,
                   int32_t nrows, const coeffs *cx, int32_t nx) {
    for (int32_t y = 0; y < nrows; y++) {
        const uint8_t *src = in + (size_t)(r0 + y) * (size_t)in_w * (size_t)ch;
        uint8_t *dst = out + (size_t)y * (size_t)nx * (size_t)ch;
        for (int32_t i = 0; i < nx; i++) {
            int32_t xmin = cx->bounds[2 * i], cnt = cx->bounds[2 * i + 1];
            const int32_t *k = cx->k + (size_t)i * (size_t)cx->ksize;
            const uint8_t *p = src + (size_t)xmin * (size_t)ch;
            if (ch == 3) {
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int32_t x = 0; x < cnt; x++, p += 3) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                dst[3 * i] = clip8(s0);
                dst[3 * i + 1] = clip8(s1);
                dst[3 * i + 2] = clip8(s2);
            } else {
                int32_t s0 = 1 << (PRECISION_BITS - 1);
                for (int32_t x = 0; x < cnt; x++) s0 += p[x] * k[x];
                dst[i] = clip8(s0);
            }
        }
    }
}

/* Vertical pass. in holds input rows row0 .. (stride elements each); the output
 * (ny, nelem) takes elements col .. col + nelem of each. acc: nelem ints of scratch.
 * Integer sums, so accumulating row by row gives Pillow's per-pixel result. */
static void pass_v(uint8_t *out, const uint8_t *in, size_t stride, int32_t row0,
                   size_t col, size_t nelem, const coeffs *cy, int32_t ny, int32_t *acc) {
    for (int32_t j = 0; j < ny; j++) {
        int32_t ymin = cy->bounds[2 * j] - row0, cnt = cy->bounds[2 * j + 1];
        const int32_t *k = cy->k + (size_t)j * (size_t)cy->ksize;
        for (size_t e = 0; e < nelem; e++) acc[e] = 1 << (PRECISION_BITS - 1);
        for (int32_t y = 0; y < cnt; y++) {
            const uint8_t *src = in + (size_t)(ymin + y) * stride + col;
            int32_t ky = k[y];
            for (size_t e = 0; e < nelem; e++) acc[e] += src[e] * ky;
        }
        uint8_t *dst = out + (size_t)j * nelem;
        for (size_t e = 0; e < nelem; e++) dst[e] = clip8(acc[e]);
    }
}

static int fail(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -1;
}

int image_resample_window(uint8_t *out, const sal_image *in, int32_t full_w,
                          int32_t full_h, int32_t x0, int32_t y0, int32_t w,
                          int32_t h, char *err, size_t errlen) {
    const int ch = in->channels;
    const size_t in_stride = (size_t)in->width * (size_t)ch;
    const size_t row = (size_t)w * (size_t)ch;
    int need_h = full_w != in->width, need_v = full_h != in->height;
    coeffs cx = {0}, cy = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    int rc = -1;

    if (need_h && make_coeffs(&cx, in->width, full_w, x0, w)) goto oom;
    if (need_v && make_coeffs(&cy, in->height, full_h, y0, h)) goto oom;

    if (!need_v) { /* horizontal only, or a plain copy of the window */
        if (need_h) {
            pass_h(out, in->pixels, in->width, ch, y0, h, &cx, w);
        } else {
            for (int32_t y = 0; y < h; y++)
                memcpy(out + (size_t)y * row,
                       in->pixels + (size_t)(y0 + y) * in_stride +
                           (size_t)x0 * (size_t)ch,
                       row);
        }
        rc = 0;
        goto done;
    }
    acc = malloc(row * sizeof *acc);
    if (!acc) goto oom;
    if (!need_h) {
        pass_v(out, in->pixels, in_stride, 0, (size_t)x0 * (size_t)ch, row, &cy, h, acc);
        rc = 0;
        goto done;
    }
    /* Both passes: the horizontal one over just the input rows the vertical one
     * reads (Pillow's ybox_first .. ybox_last). */
    int32_t r0 = INT32_MAX, r1 = 0;
    for (int32_t j = 0; j < h; j++) {
        int32_t a = cy.bounds[2 * j], b = a + cy.bounds[2 * j + 1];
        if (a < r0) r0 = a;
        if (b > r1) r1 = b;
    }
    if (r1 <= r0) r1 = r0 + 1;
    tmp = malloc((size_t)(r1 - r0) * row);
    if (!tmp) goto oom;
    pass_h(tmp, in->pixels, in->width, ch, r0, r1 - r0, &cx, w);
    pass_v(out, tmp, row, r0, 0, row, &cy, h, acc);
    rc = 0;
    goto done;
oom:
    fail(err, errlen, "out of memory for the resize buffers");
done:
    coeffs_free(&cx);
    coeffs_free(&cy);
    free(tmp);
    free(acc);
    return rc;
}

int sal_image_resize(sal_image *out, const sal_image *in, int32_t width,
                     int32_t height, char *err, size_t errlen) {
    if (!out) return fail(err, errlen, "sal_image_resize: no output image");
    memset(out, 0, sizeof *out);
    if (!in || !in->pixels || in->width < 1 || in->height < 1 ||
        (in->channels != 1 && in->channels != 3))
        return fail(err, errlen, "sal_image_resize: empty or invalid input image");
    if (width < 1 || height < 1) {
        if (err && errlen)
            snprintf(err, errlen, "sal_image_resize: target size %d x %d is not positive",
                     (int)width, (int)height);
        return -1;
    }
    size_t n = (size_t)width * (size_t)height * (size_t)in->channels;
    if ((uint64_t)width * (uint64_t)height > SIZE_MAX / 4 || !(out->pixels = malloc(n)))
        return fail(err, errlen, "sal_image_resize: out of memory for the output image");
    out->width = width;
    out->height = height;
    out->channels = in->channels;
    if (image_resample_window(out->pixels, in, width, height, 0, 0, width, height, err,
                              errlen)) {
        sal_image_free(out);
        return -1;
    }
    return 0;
}
