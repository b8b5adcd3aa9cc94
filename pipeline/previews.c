/*
 * JPEG previews of the maps of one image, written by the rank that computed them:
 *   <name>_montage.jpg                the input, then one tile per (target, method)
 *   <name>_<layer>-<unit>_<method>.jpg one per map
 * with <name> the image's file name without its extension. A tile is normalized as
 * DNNBrain's ip.to_pil(np.abs(map), True): absolute value, then min-max over the
 * whole map to 0..255 (a constant map is black). "gray" mode first takes the max of
 * |map| over channels and colours it. Inputs smaller than 224 pixels are enlarged
 * by an integer factor with nearest neighbour, so a 28x28 map is visible.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "previews.h"

#define PREVIEW_MIN_SIDE 224
#define PREVIEW_GAP 4
#define PREVIEW_BACKGROUND 40
#define PREVIEW_QUALITY 92

struct sp_previews {
    const sp_plan *plan;
    const sal_model *model;     /* the network the maps are of                */
    int scale, tile_h, tile_w;  /* enlarged tile size                         */
    int cols, rows;             /* montage grid: 1 + methods by targets       */
    int nmaps;                  /* methods with a map (all but gradcam)       */
    int mont_h, mont_w;
    uint8_t *tile;              /* (tile_h, tile_w, 3)                        */
    uint8_t *montage;           /* (mont_h, mont_w, 3)                        */
    float *norm;                /* (H, W, C) normalized |map| in 0..255       */
};

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    e->mgr.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Writes an RGB image as JPEG; -1 with err on failure. */
static int write_jpeg(const char *path, const uint8_t *rgb, int h, int w, char *err,
                      size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) return snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno)), -1;
    struct jpeg_compress_struct c;
    jpeg_err e;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = on_jpeg_error;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        fclose(f);
        return snprintf(err, errlen, "%s: JPEG encoder: %s", path, e.msg), -1;
    }
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, PREVIEW_QUALITY, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (ferror(f) | fclose(f))
        return snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno)), -1;
    return 0;
}

/* A perceptually ordered black-red-yellow-white ramp (like matplotlib's "hot"). */
static void colormap(float t, uint8_t *rgb) {
    float r = 3 * t, g = 3 * t - 1, b = 3 * t - 2;
    rgb[0] = (uint8_t)(255 * (r < 0 ? 0 : r > 1 ? 1 : r));
    rgb[1] = (uint8_t)(255 * (g < 0 ? 0 : g > 1 ? 1 : g));
    rgb[2] = (uint8_t)(255 * (b < 0 ? 0 : b > 1 ? 1 : b));
}

static double map_value(const sp_plan *p, const void *map, size_t i) {
    return p->precision == SAL_F64 ? ((const double *)map)[i] : ((const float *)map)[i];
}

/* Fills pv->tile from one map (C, H, W). */
static void render_map(sp_previews *pv, const void *map) {
    const sp_plan *p = pv->plan;
    const int C = p->pre.channels, H = p->pre.height, W = p->pre.width;
    const int planes = pv->plan->preview_gray ? 1 : C;
    double lo = INFINITY, hi = -INFINITY;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < planes; c++) {
                double v = 0;
                if (planes == 1 && C > 1) {
                    for (int k = 0; k < C; k++) {
                        double a = fabs(map_value(p, map, ((size_t)k * H + y) * W + x));
                        if (a > v) v = a;
                    }
                } else {
                    v = fabs(map_value(p, map, ((size_t)c * H + y) * W + x));
                }
                if (isnan(v)) v = 0;
                pv->norm[((size_t)y * W + x) * planes + c] = (float)v;
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
    double range = hi - lo;
    for (int ty = 0; ty < pv->tile_h; ty++)
        for (int tx = 0; tx < pv->tile_w; tx++) {
            const float *v = pv->norm + ((size_t)(ty / pv->scale) * W + tx / pv->scale) * planes;
            uint8_t *out = pv->tile + ((size_t)ty * pv->tile_w + tx) * 3;
            if (pv->plan->preview_gray) {
                colormap(range > 0 ? (float)((v[0] - lo) / range) : 0, out);
                continue;
            }
            for (int k = 0; k < 3; k++) {
                float t = v[planes == 1 ? 0 : k];
                out[k] = range > 0 ? (uint8_t)((t - lo) / range * 255.0) : 0;
            }
        }
}

/* Fills pv->tile from one Grad-CAM map (H, W): min to max on the colormap, half and
 * half over the fitted input, as Grad-CAM's figures and pytorch-grad-cam's
 * show_cam_on_image present it. */
static void render_cam(sp_previews *pv, const void *cam, const sal_image *px) {
    const sp_plan *p = pv->plan;
    const int H = p->pre.height, W = p->pre.width;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)H * W; i++) {
        double v = map_value(p, cam, i);
        if (isnan(v)) v = 0;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    const double range = hi - lo;
    for (int ty = 0; ty < pv->tile_h; ty++)
        for (int tx = 0; tx < pv->tile_w; tx++) {
            const int y = ty / pv->scale, x = tx / pv->scale;
            double v = map_value(p, cam, (size_t)y * W + x);
            uint8_t heat[3], *out = pv->tile + ((size_t)ty * pv->tile_w + tx) * 3;
            colormap(range > 0 && !isnan(v) ? (float)((v - lo) / range) : 0, heat);
            const uint8_t *in = px->pixels + ((size_t)y * px->width + x) * px->channels;
            for (int k = 0; k < 3; k++)
                out[k] = (uint8_t)((heat[k] + in[px->channels == 1 ? 0 : k] + 1) / 2);
        }
}

/* Fills pv->tile from the fitted 8-bit input (H, W, C). */
static void render_input(sp_previews *pv, const sal_image *px) {
    for (int ty = 0; ty < pv->tile_h; ty++)
        for (int tx = 0; tx < pv->tile_w; tx++) {
            const uint8_t *v = px->pixels +
                ((size_t)(ty / pv->scale) * px->width + tx / pv->scale) * px->channels;
            uint8_t *out = pv->tile + ((size_t)ty * pv->tile_w + tx) * 3;
            for (int k = 0; k < 3; k++) out[k] = v[px->channels == 1 ? 0 : k];
        }
}

static void place(sp_previews *pv, int row, int col) {
    int y0 = PREVIEW_GAP + row * (pv->tile_h + PREVIEW_GAP);
    int x0 = PREVIEW_GAP + col * (pv->tile_w + PREVIEW_GAP);
    for (int y = 0; y < pv->tile_h; y++)
        memcpy(pv->montage + ((size_t)(y0 + y) * pv->mont_w + x0) * 3,
               pv->tile + (size_t)y * pv->tile_w * 3, (size_t)pv->tile_w * 3);
}

/* The image's file name without directory and extension. */
static void base_name(const char *label, char *out, size_t n) {
    const char *s = strrchr(label, '/');
    s = s ? s + 1 : label;
    snprintf(out, n, "%s", s);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

int sp_previews_init(sp_previews **out, const sp_plan *p, const sal_model *m, char *err,
                     size_t errlen) {
    sp_previews *pv = calloc(1, sizeof *pv);
    if (!pv) return snprintf(err, errlen, "previews: out of memory"), -1;
    const int H = p->pre.height, W = p->pre.width, side = H > W ? H : W;
    pv->plan = p;
    pv->model = m;
    pv->scale = side >= PREVIEW_MIN_SIDE ? 1 : (PREVIEW_MIN_SIDE + side - 1) / side;
    pv->tile_h = H * pv->scale;
    pv->tile_w = W * pv->scale;
    /* one column per method (Grad-CAM's maps come separately from the others) */
    int nmaps = 0;
    for (int i = 0; i < p->nmethods; i++) nmaps += p->methods[i] != SAL_METHOD_GRADCAM;
    pv->nmaps = nmaps;
    pv->cols = 1 + p->nmethods;
    pv->rows = p->ntargets;
    pv->mont_h = PREVIEW_GAP + pv->rows * (pv->tile_h + PREVIEW_GAP);
    pv->mont_w = PREVIEW_GAP + pv->cols * (pv->tile_w + PREVIEW_GAP);
    pv->tile = malloc((size_t)pv->tile_h * pv->tile_w * 3);
    pv->montage = malloc((size_t)pv->mont_h * pv->mont_w * 3);
    pv->norm = malloc(sizeof(float) * H * W * p->pre.channels);
    if (!pv->tile || !pv->montage || !pv->norm) {
        snprintf(err, errlen, "previews: out of memory for a %dx%d montage", pv->mont_w,
                 pv->mont_h);
        sp_previews_free(pv);
        return -1;
    }
    *out = pv;
    return 0;
}

int sp_previews_write(sp_previews *pv, int image, const sal_image *pixels, const void *maps,
                      const void *cams, char *err, size_t errlen) {
    const sp_plan *p = pv->plan;
    const size_t map_elems = (size_t)p->pre.channels * p->pre.height * p->pre.width;
    const size_t rs = p->precision == SAL_F64 ? sizeof(double) : sizeof(float);
    char name[256], path[4096];
    base_name(p->image_labels[image], name, sizeof name);
    memset(pv->montage, PREVIEW_BACKGROUND, (size_t)pv->mont_h * pv->mont_w * 3);
    render_input(pv, pixels);
    place(pv, 0, 0);
    for (int t = 0; t < p->ntargets; t++)
        for (int i = 0, m = 0; i < p->nmethods; i++) {
            if (p->methods[i] == SAL_METHOD_GRADCAM) {
                render_cam(pv, (const char *)cams + (size_t)t * p->pre.height * p->pre.width
                                                        * rs, pixels);
            } else {
                render_map(pv, (const char *)maps + ((size_t)t * pv->nmaps + m) * map_elems *
                                                        rs);
                m++;
            }
            place(pv, t, 1 + i);
            snprintf(path, sizeof path, "%s/%s_%s-%d_%s.jpg", p->previews_dir, name,
                     p->target_names[t],
                     p->targets[t].unit + 1, sal_method_name(p->methods[i]));
            if (write_jpeg(path, pv->tile, pv->tile_h, pv->tile_w, err, errlen)) return -1;
        }
    snprintf(path, sizeof path, "%s/%s_montage.jpg", p->previews_dir, name);
    return write_jpeg(path, pv->montage, pv->mont_h, pv->mont_w, err, errlen);
}

void sp_previews_free(sp_previews *pv) {
    if (!pv) return;
    free(pv->tile);
    free(pv->montage);
    free(pv->norm);
    free(pv);
}
