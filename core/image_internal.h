/*
 * Shared by the image_*.c files of salimage; not part of the API (see image.h).
 * A decoder gets the whole file in memory and returns the file's own channel count
 * (1 for gray sources, 3 for everything else); image_load.c converts to what the
 * caller asked for, as Pillow's convert() would.
 */
#ifndef SAL_IMAGE_INTERNAL_H
#define SAL_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* One file being decoded, and where its errors go. */
typedef struct {
    const char *path;       /* for messages                              */
    const uint8_t *data;    /* the whole file                            */
    size_t size;
    int64_t max_pixels;     /* > 0                                       */
    char *err;              /* caller's buffer, may be NULL              */
    size_t errlen;
} image_src;

/* Writes "path: <printf message>" into src->err; returns -1. */
int image_fail(const image_src *src, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Checks w x h against the pixel limit and allocates the pixels of *img (w, h, c).
 * Returns 0, or -1 with the message set and *img zeroed. */
int image_alloc(sal_image *img, uint32_t w, uint32_t h, int c, const image_src *src);

/* Decoders: fill *out with 1 (gray) or 3 (RGB) channels exactly as Pillow's
 * convert('RGB') would see them. 0 on success; -1 with the message set and *out
 * zeroed. */
int image_decode_jpeg(sal_image *out, const image_src *src);
int image_decode_png(sal_image *out, const image_src *src);

/* The window [x0, x0 + w) x [y0, y0 + h) of Pillow's BILINEAR resize of `in` to
 * full_w x full_h, into out (h, w, in->channels), caller-allocated. The window must
 * lie inside the full output. Returns 0, or -1 on out of memory / sizes Pillow would
 * refuse, with a message (no file name) in err. */
int image_resample_window(uint8_t *out, const sal_image *in, int32_t full_w,
                          int32_t full_h, int32_t x0, int32_t y0, int32_t w,
                          int32_t h, char *err, size_t errlen);

#endif
