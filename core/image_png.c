/*
 * PNG decoding with libpng, giving the bytes of Pillow 9.4's own PNG decoder followed
 * by convert('RGB'): no gamma or color management (Pillow ignores gAMA, cHRM, iCCP,
 * sBIT), transparency dropped, 1/2/4-bit gray scaled to 8 bits, 16-bit samples cut to
 * their high byte, palettes looked up with Pillow's rule for indices beyond the PLTE
 * chunk (gray ramp: index i -> (i, i, i)). 16-bit grayscale is Pillow's mode "I",
 * which convert('RGB') clips at 255: salpipe decodes it when every value is <= 255
 * and refuses it otherwise (docs/image-input.md). Every chunk CRC is checked.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "image_internal.h"

typedef struct {
    const image_src *src;
    size_t pos;       /* next byte of src->data to hand to libpng */
    int truncated;    /* libpng asked for bytes past the end      */
    char msg[256];    /* libpng's error message                   */
} png_ctx;

typedef struct {
    png_structp png;
    png_infop info;
    png_ctx ctx;
    uint8_t *raw;     /* palette indices or 16-bit gray, before conversion */
    png_bytep *rows;
} png_state;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Benign problems (bad sRGB profile, unknown chunks, extra data): Pillow ignores them,
 * and nothing may reach stderr. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void on_read(png_structp png, png_bytep dst, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->src->size - c->pos) {
        c->truncated = 1;
        png_error(png, "file ends early");
    }
    memcpy(dst, c->src->data + c->pos, n);
    c->pos += n;
}

/* Pillow's palette: 256 entries preset to a gray ramp, the PLTE chunk over the first. */
static int palette_to_rgb(sal_image *out, const uint8_t *idx, png_state *s,
                          const image_src *src) {
    png_colorp pal = NULL;
    int n = 0;
    if (!png_get_PLTE(s->png, s->info, &pal, &n) || !pal) {
        image_fail(src, "invalid PNG: palette image without a PLTE chunk");
        return -2;
    }
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++) lut[i][0] = lut[i][1] = lut[i][2] = (uint8_t)i;
    for (int i = 0; i < n && i < 256; i++) {
        lut[i][0] = pal[i].red;
        lut[i][1] = pal[i].green;
        lut[i][2] = pal[i].blue;
    }
    size_t npix = (size_t)out->width * (size_t)out->height;
    for (size_t i = 0; i < npix; i++) memcpy(out->pixels + 3 * i, lut[idx[i]], 3);
    return 0;
}

static int gray16_to_gray8(sal_image *out, const uint8_t *be16, const image_src *src) {
    size_t npix = (size_t)out->width * (size_t)out->height;
    unsigned maxv = 0;
    for (size_t i = 0; i < npix; i++) {
        unsigned v = (unsigned)be16[2 * i] << 8 | be16[2 * i + 1];
        if (v > maxv) maxv = v;
        out->pixels[i] = (uint8_t)v;
    }
    if (maxv > 255) {
        image_fail(src, "16-bit grayscale PNG with values up to %u: Pillow (so DNNBrain) "
                   "opens it as mode 'I' and convert('RGB') clips every value above 255 "
                   "to white; salpipe refuses it. Save it as 8-bit (e.g. scale by 1/257) "
                   "first", maxv);
        return -2;
    }
    return 0;
}

/* Everything that can longjmp. 0 on success; -1 after a libpng error (s->ctx says
 * which); -2 with the message already set. */
static int decode(png_state *s, sal_image *out, const image_src *src) {
    if (setjmp(png_jmpbuf(s->png))) return -1;
    png_set_read_fn(s->png, &s->ctx, on_read);
    /* Pillow refuses a bad CRC in any chunk before the image data; libpng's default
     * would only warn for ancillary chunks. */
    png_set_crc_action(s->png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    /* The pixel limit below replaces libpng's 1e6-per-side default. */
    png_set_user_limits(s->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(s->png, s->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(s->png, s->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    int palette = ctype == PNG_COLOR_TYPE_PALETTE;
    int gray16 = ctype == PNG_COLOR_TYPE_GRAY && depth == 16;
    int nchan = (ctype & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (image_alloc(out, w, h, nchan, src)) return -2;

    if (palette && depth < 8) png_set_packing(s->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
    if (depth == 16 && !gray16) png_set_strip_16(s->png); /* keeps the high byte */
    if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(s->png);
    png_set_interlace_handling(s->png);
    png_read_update_info(s->png, s->info);

    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    size_t want = (size_t)w * (palette ? 1 : gray16 ? 2 : (size_t)nchan);
    if (rowbytes != want) {
        image_fail(src, "PNG rows are %zu bytes after conversion, expected %zu", rowbytes,
                   want);
        return -2;
    }
    uint8_t *dst = out->pixels;
    if (palette || gray16) {
        s->raw = malloc(rowbytes * h);
        if (!s->raw) {
            image_fail(src, "out of memory for %u PNG rows of %zu bytes", h, rowbytes);
            return -2;
        }
        dst = s->raw;
    }
    s->rows = malloc((size_t)h * sizeof *s->rows);
    if (!s->rows) {
        image_fail(src, "out of memory for %u row pointers", h);
        return -2;
    }
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = dst + (size_t)y * rowbytes;
    /* Stops after the last row: like Pillow, chunks after the image data are not
     * read, so a missing IEND is accepted. */
    png_read_image(s->png, s->rows);

    if (palette) return palette_to_rgb(out, s->raw, s, src);
    if (gray16) return gray16_to_gray8(out, s->raw, src);
    return 0;
}

int image_decode_png(sal_image *out, const image_src *src) {
    png_state st;
    memset(&st, 0, sizeof st);
    memset(out, 0, sizeof *out);
    st.ctx.src = src;
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.ctx, on_error, on_warning);
    if (st.png) st.info = png_create_info_struct(st.png);
    if (!st.png || !st.info) {
        png_destroy_read_struct(st.png ? &st.png : NULL, NULL, NULL);
        return image_fail(src, "out of memory for the PNG decoder");
    }
    int rc = decode(&st, out, src);
    if (rc == -1) {
        if (st.ctx.truncated)
            image_fail(src, "truncated PNG: the file ends before the image data (with its "
                       "CRC) is complete");
        else if (strstr(st.ctx.msg, "CRC"))
            image_fail(src, "corrupt PNG: a chunk fails its CRC checksum (libpng: %s)",
                       st.ctx.msg);
        else
            image_fail(src, "invalid PNG (libpng: %s)", st.ctx.msg);
    }
    png_destroy_read_struct(&st.png, &st.info, NULL);
    free(st.raw);
    free(st.rows);
    if (rc) sal_image_free(out);
    return rc ? -1 : 0;
}
