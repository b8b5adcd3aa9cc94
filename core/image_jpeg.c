/*
 * JPEG decoding with libjpeg-turbo, driven the way Pillow 9.4's JpegDecode.c drives
 * the same library, so the bytes are Pillow's: default decompression settings
 * (ISLOW DCT, fancy upsampling, libjpeg's own guess of the file's color space), the
 * output color space chosen from the number of components alone (1 gray, 3 RGB,
 * 4 CMYK), CMYK read with Adobe's inverted polarity ("CMYK;I") and turned into RGB
 * with Pillow's cmyk2rgb. libjpeg's error_exit would call exit(): it longjmps here.
 * Warnings that mean image data is missing or corrupt are errors (docs/image-input.md).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image_internal.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int lost; /* libjpeg code of a warning that means lost image data, else 0 */
} jpeg_err;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    int created;  /* jpeg_create_decompress done */
    uint8_t *row; /* one CMYK scanline */
} jpeg_state;

static void on_error_exit(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jump, 1);
}

/* libjpeg goes on after these with gray or garbled blocks where data was; Pillow
 * accepts the result silently (except at end of file), salpipe does not. */
static int means_lost_data(int code) {
    return code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_MUST_RESYNC ||
           code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE ||
           code == JWRN_BOGUS_PROGRESSION;
}

/* level < 0: a warning; level >= 0: trace output, ignored. Harmless warnings
 * (extraneous bytes between markers, unknown JFIF revision, bad ICC marker) are
 * counted and otherwise ignored, as Pillow ignores them. */
static void on_emit_message(j_common_ptr c, int level) {
    if (level >= 0) return;
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->num_warnings++;
    if (means_lost_data(c->err->msg_code)) {
        e->lost = c->err->msg_code;
        c->err->format_message(c, e->msg);
        longjmp(e->jump, 1);
    }
}

static void on_output_message(j_common_ptr c) { (void)c; }

static uint8_t clip8(int v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v; }

/* Pillow's MULDIV255: a * b / 255 rounded, in integers. */
static int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* libjpeg's CMYK output -> Pillow "CMYK;I" (every channel inverted) -> Pillow's
 * cmyk2rgb: R = nk - C * nk / 255 with nk = 255 - K. */
static void cmyk_row_to_rgb(uint8_t *rgb, const uint8_t *raw, int32_t w) {
    for (int32_t x = 0; x < w; x++, raw += 4, rgb += 3) {
        int nk = raw[3]; /* 255 - K, K = 255 - raw[3] */
        for (int c = 0; c < 3; c++) rgb[c] = clip8(nk - muldiv255(255 - raw[c], nk));
    }
}

/* Everything that can longjmp. Returns 0, or -1 after a libjpeg error or lost-data
 * warning (s->jerr says which) or with the message already set (rc -2). */
static int decode(jpeg_state *s, sal_image *out, const image_src *src) {
    if (setjmp(s->jerr.jump)) return -1;
    jpeg_create_decompress(&s->cinfo);
    s->created = 1;
    jpeg_mem_src(&s->cinfo, src->data, (unsigned long)src->size);
    jpeg_read_header(&s->cinfo, TRUE);

    int ncomp = s->cinfo.num_components;
    if (ncomp == 1)
        s->cinfo.out_color_space = JCS_GRAYSCALE;
    else if (ncomp == 3)
        s->cinfo.out_color_space = JCS_RGB;
    else if (ncomp == 4)
        s->cinfo.out_color_space = JCS_CMYK;
    else {
        image_fail(src, "JPEG with %d color components (Pillow reads 1, 3 or 4)", ncomp);
        return -2;
    }
    if (image_alloc(out, s->cinfo.image_width, s->cinfo.image_height, ncomp == 1 ? 1 : 3,
                    src))
        return -2;

    jpeg_start_decompress(&s->cinfo);
    if ((int32_t)s->cinfo.output_width != out->width ||
        (int32_t)s->cinfo.output_height != out->height) {
        image_fail(src, "JPEG decoder output size %u x %u differs from the header's",
                   s->cinfo.output_width, s->cinfo.output_height);
        return -2;
    }
    size_t stride = (size_t)out->width * (size_t)out->channels;
    if (ncomp == 4) {
        s->row = malloc((size_t)out->width * 4);
        if (!s->row) {
            image_fail(src, "out of memory for a JPEG scanline");
            return -2;
        }
    }
    while (s->cinfo.output_scanline < s->cinfo.output_height) {
        size_t y = s->cinfo.output_scanline;
        JSAMPROW row = ncomp == 4 ? s->row : out->pixels + y * stride;
        if (jpeg_read_scanlines(&s->cinfo, &row, 1) != 1) {
            image_fail(src, "JPEG decoder stopped at row %zu of %d", y, out->height);
            return -2;
        }
        if (ncomp == 4) cmyk_row_to_rgb(out->pixels + y * stride, s->row, out->width);
    }
    /* Reads on to the EOI marker: a file cut anywhere before it is refused, as
     * Pillow refuses it ("image file is truncated"). */
    jpeg_finish_decompress(&s->cinfo);
    return 0;
}

int image_decode_jpeg(sal_image *out, const image_src *src) {
    jpeg_state st;
    memset(&st, 0, sizeof st);
    memset(out, 0, sizeof *out);
    st.cinfo.err = jpeg_std_error(&st.jerr.pub);
    st.jerr.pub.error_exit = on_error_exit;
    st.jerr.pub.emit_message = on_emit_message;
    st.jerr.pub.output_message = on_output_message;

    int rc = decode(&st, out, src);
    if (rc == -1) {
        if (st.jerr.lost == JWRN_JPEG_EOF)
            image_fail(src, "truncated JPEG: the file ends before the image data does "
                       "(libjpeg: %s)", st.jerr.msg);
        else if (st.jerr.lost)
            image_fail(src, "corrupt JPEG data, part of the image would be garbled or "
                       "gray (libjpeg: %s)", st.jerr.msg);
        else
            image_fail(src, "invalid JPEG (libjpeg: %s)", st.jerr.msg);
    }
    if (st.created) jpeg_destroy_decompress(&st.cinfo);
    free(st.row);
    if (rc) sal_image_free(out);
    return rc ? -1 : 0;
}
