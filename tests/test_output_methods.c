/*
 * Tests of the output file's datasets for issue 12's methods (pipeline/output.h):
 * /gradcam (image, target, y, x) and /integrated_gradients_gap (image, target),
 * created, written, flushed, resumed and read back with plain HDF5 (shapes, dtypes,
 * chunking, filters, fill values, dimension scales, the gap's definition), a job of
 * Grad-CAM alone (no /saliency), and resumes refused when the plan gains or loses
 * gradcam or integrated_gradients. About 0.2 s.
 *
 *   test_output_methods DIR
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "output_check.h"

enum { H = 8, W = 8 };

/* Grad-CAM map (i, t) at (y, x), and the gap of (i, t). */
static double cam_value(int i, int t, int y, int x) { return i * 100.0 + t * 10.0 + y + x / 16.0; }
static double gap_value(int i, int t) { return t ? -1e-3 * (i + 1) : 0.5 * i + 0.125; }

/* Image i with its maps (write_image's formula), cams and gaps, or without
 * them when cams/gaps are 0 (a caller that forgets them). */
static int write_full(sp_output *o, const sp_output_layout *l, int i, int cams, int gaps,
                      char *err) {
    const size_t es = l->precision == SAL_F64 ? 8 : 4, nb = (size_t)H * W * es;
    void *raw = malloc(nb), *scratch = malloc(nb), *chunk[2];
    size_t bytes[2];
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < H * W; k++) {
            double v = cam_value(i, t, k / W, k % W);
            if (es == 8) ((double *)raw)[k] = v;
            else ((float *)raw)[k] = (float)v;
        }
        chunk[t] = malloc(sp_chunk_bound(nb));
        bytes[t] = sp_chunk_compress(chunk[t], raw, nb, es, l->compression, scratch);
    }
    /* The gaps arrive unaligned, straight out of a batch message. */
    unsigned char gapbuf[1 + 2 * sizeof(double)];
    for (int t = 0; t < 2; t++) {
        double g = gap_value(i, t);
        memcpy(gapbuf + 1 + t * sizeof g, &g, sizeof g);
    }
    int rc;
    if (l->nmethods == 0) { /* Grad-CAM alone: no maps, only activations */
        double act[2] = {i + 0.5, i + 1.5};
        float act32[2] = {(float)act[0], (float)act[1]};
        rc = sp_output_write_image(o, i, NULL, NULL, cams ? (const void *const *)chunk : NULL,
                                   cams ? bytes : NULL, es == 8 ? (void *)act : (void *)act32,
                                   gaps ? gapbuf + 1 : NULL, err, 1024);
    } else {
        /* Four maps of C*H*W values (their values are not checked here). */
        const size_t mb = map_bytes(l);
        void *mraw = calloc(1, mb), *ms = malloc(mb), *mc[4];
        size_t mbytes[4];
        for (int k = 0; k < 4; k++) {
            for (size_t e = 0; e < mb / es; e++) {
                double v = i * 1000.0 + k * 10.0 + (double)e;
                if (es == 8) ((double *)mraw)[e] = v;
                else ((float *)mraw)[e] = (float)v;
            }
            mc[k] = malloc(sp_chunk_bound(mb));
            mbytes[k] = sp_chunk_compress(mc[k], mraw, mb, es, l->compression, ms);
        }
        double act[2] = {i + 0.5, i + 1.5};
        float act32[2] = {(float)act[0], (float)act[1]};
        rc = sp_output_write_image(o, i, (const void *const *)mc, mbytes,
                                   cams ? (const void *const *)chunk : NULL, cams ? bytes : NULL,
                                   es == 8 ? (void *)act : (void *)act32,
                                   gaps ? gapbuf + 1 : NULL, err, 1024);
        for (int k = 0; k < 4; k++) free(mc[k]);
        free(mraw);
        free(ms);
    }
    for (int t = 0; t < 2; t++) free(chunk[t]);
    free(raw);
    free(scratch);
    return rc;
}

static int attached(hid_t file, hid_t ds, const char *scale, unsigned dim) {
    hid_t s = H5Dopen2(file, scale, H5P_DEFAULT);
    int ok = s >= 0 && H5DSis_attached(ds, s, dim) > 0;
    if (s >= 0) H5Dclose(s);
    return ok;
}

/* Layout of a dataset: rank, dims, chunk dims, filters, fill value NaN, dtype size. */
static void check_ds(hid_t file, const char *name, int rank, const hsize_t *dims,
                     const hsize_t *chunk, int nfilters, size_t size) {
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    CHECK(ds >= 0, "no /%s", name);
    if (ds < 0) return;
    hid_t s = H5Dget_space(ds), t = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t d[4] = {0}, c[4] = {0};
    CHECK(H5Sget_simple_extent_ndims(s) == rank, "/%s: rank %d", name,
          H5Sget_simple_extent_ndims(s));
    H5Sget_simple_extent_dims(s, d, NULL);
    CHECK(H5Pget_layout(dcpl) == H5D_CHUNKED, "/%s is not chunked", name);
    H5Pget_chunk(dcpl, rank, c);
    for (int k = 0; k < rank; k++) {
        CHECK(d[k] == dims[k], "/%s: dim %d is %llu, want %llu", name, k,
              (unsigned long long)d[k], (unsigned long long)dims[k]);
        CHECK(!chunk || c[k] == chunk[k], "/%s: chunk dim %d is %llu", name, k,
              (unsigned long long)c[k]);
    }
    CHECK(H5Pget_nfilters(dcpl) == nfilters, "/%s: %d filters, want %d", name,
          H5Pget_nfilters(dcpl), nfilters);
    CHECK(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == size, "/%s: dtype of %zu bytes",
          name, H5Tget_size(t));
    double fill = 0;
    CHECK(H5Pget_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill) >= 0 && isnan(fill),
          "/%s: fill value %g, want NaN", name, fill);
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(ds);
}

/* Reads the file back: images 0 and 2 written, 1 failed. */
static void verify(const char *path, const sp_output_layout *l) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "%s does not open", path);
    if (f < 0) return;
    const size_t es = l->precision == SAL_F64 ? 8 : 4;
    const int nf = l->compression > 0 ? 2 : 0;
    hsize_t gd[4] = {3, 2, H, W}, gc[4] = {1, 1, H, W};
    check_ds(f, "gradcam", 4, gd, gc, nf, es);
    check_ds(f, "integrated_gradients_gap", 2, gd, NULL, 0, 8);
    CHECK((H5Lexists(f, "saliency", H5P_DEFAULT) > 0) == (l->nmethods > 0),
          "/saliency present: %d, methods %d", H5Lexists(f, "saliency", H5P_DEFAULT) > 0,
          l->nmethods);
    hid_t g = H5Dopen2(f, "gradcam", H5P_DEFAULT), q = H5Dopen2(f, "integrated_gradients_gap",
                                                                  H5P_DEFAULT);
    static const char *const gs[4] = {"image", "target", "y", "x"};
    for (unsigned k = 0; k < 4; k++)
        CHECK(attached(f, g, gs[k], k), "/gradcam dim %u has no scale /%s", k, gs[k]);
    CHECK(attached(f, q, "image", 0) && attached(f, q, "target", 1), "gap scales");
    double *cam = malloc(sizeof *cam * 3 * 2 * H * W), gap[3][2];
    CHECK(H5Dread(g, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, cam) >= 0, "read cams");
    CHECK(H5Dread(q, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, gap) >= 0, "read gaps");
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 2; t++) {
            for (int k = 0; k < H * W; k++) {
                double v = cam[((i * 2 + t) * H * W) + k], want = cam_value(i, t, k / W, k % W);
                if (es == 4) want = (float)want;
                bad += i == 1 ? !isnan(v) : v != want;
            }
            CHECK(i == 1 ? isnan(gap[i][t]) : gap[i][t] == gap_value(i, t),
                  "gap (%d, %d) is %.17g", i, t, gap[i][t]);
        }
    CHECK(!bad, "%d Grad-CAM values differ from those written (or not NaN for failed)", bad);
    hid_t a = H5Aopen(q, "definition", H5P_DEFAULT), m = H5Tcopy(H5T_C_S1);
    H5Tset_size(m, H5T_VARIABLE);
    H5Tset_cset(m, H5T_CSET_UTF8);
    char *def = NULL;
    CHECK(a >= 0 && H5Aread(a, m, &def) >= 0 && def &&
              !strcmp(def, "sum of the attributions - (F(x) - F(baseline))"),
          "definition attribute '%s'", def ? def : "(none)");
    if (def) H5free_memory(def);
    if (a >= 0) H5Aclose(a);
    H5Tclose(m);
    /* /method lists the map methods only. */
    hid_t md = H5Dopen2(f, "method", H5P_DEFAULT), ms = H5Dget_space(md);
    CHECK(H5Sget_simple_extent_npoints(ms) == l->nmethods, "/method has %lld entries",
          (long long)H5Sget_simple_extent_npoints(ms));
    H5Sclose(ms);
    H5Dclose(md);
    free(cam);
    H5Dclose(g);
    H5Dclose(q);
    H5Fclose(f);
}

static void make_file(const char *path, fixture *fx, sal_precision p, int level, int nmaps) {
    fixture_init(fx, 3, 3, H, W, p, level);
    fx->methods[0] = "integrated_gradients";
    fx->methods[1] = "guided_gradcam";
    fx->lay.nmethods = nmaps;
    fx->lay.gradcam = 1;
    fx->lay.ig_gap = 1;
    unlink(path);
    char err[1024];
    sp_output *o;
    int8_t st[3];
    int rc = sp_output_open(path, &fx->lay, 0, &o, st, err, sizeof err);
    CHECK(rc == SP_OUT_OK, "create %s: %s", path, err);
    if (rc) return;
    CHECK(write_full(o, &fx->lay, 0, 1, 1, err) == 0, "write 0: %s", err);
    CHECK(sp_output_fail_image(o, 1, "broken", err, sizeof err) == 0, "fail 1: %s", err);
    /* A caller that forgets the cams or the gaps is refused, nothing written. */
    CHECK(write_full(o, &fx->lay, 2, 0, 1, err) == SP_OUT_IOERR && strstr(err, "Grad-CAM"),
          "image without its Grad-CAM maps: %s", err);
    CHECK(write_full(o, &fx->lay, 2, 1, 0, err) == SP_OUT_IOERR && strstr(err, "gaps"),
          "image without its gaps: %s", err);
    CHECK(sp_output_flush(o, err, sizeof err) == 0, "flush: %s", err);
    CHECK(sp_output_close(o, err, sizeof err) == 0, "close: %s", err);
    /* Resume: the datasets open again, image 2 goes in. */
    rc = sp_output_open(path, &fx->lay, 0, &o, st, err, sizeof err);
    CHECK(rc == SP_OUT_OK, "resume %s: %s", path, err);
    if (rc) return;
    CHECK(st[0] == 1 && st[1] == -1 && st[2] == 0, "resumed status %d %d %d", st[0], st[1],
          st[2]);
    CHECK(write_full(o, &fx->lay, 2, 1, 1, err) == 0, "write 2: %s", err);
    CHECK(sp_output_close(o, err, sizeof err) == 0, "close: %s", err);
}

static void expect_refused(const char *path, const sp_output_layout *l, const char *substr,
                           const char *what) {
    char err[1024] = "";
    sp_output *o = NULL;
    int8_t st[3];
    int rc = sp_output_open(path, l, 0, &o, st, err, sizeof err);
    CHECK(rc == SP_OUT_MISMATCH && strstr(err, substr) && strstr(err, "--overwrite"),
          "%s: rc %d, message '%s' (want '%s')", what, rc, err, substr);
    if (rc == SP_OUT_MISMATCH) printf("  ok %-30s %s\n", what, err);
    if (rc == SP_OUT_OK) sp_output_close(o, err, sizeof err);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_output_methods DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    mkdir_p(dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char path[1024];
    for (int f64 = 0; f64 < 2; f64++)
        for (int nmaps = 0; nmaps <= 2; nmaps += 2) {
            fixture fx;
            const int level = f64 ? 0 : 4;
            snprintf(path, sizeof path, "%s/methods_%s_%d.h5", dir, f64 ? "f64" : "f32", nmaps);
            make_file(path, &fx, f64 ? SAL_F64 : SAL_F32, level, nmaps);
            verify(path, &fx.lay);
            /* The plan gains or loses a method's dataset: refused, naming it. */
            fx.lay.gradcam = 0;
            if (nmaps) expect_refused(path, &fx.lay, "has a /gradcam dataset", "gradcam dropped");
            fx.lay.gradcam = 1;
            fx.lay.ig_gap = 0;
            expect_refused(path, &fx.lay, "/integrated_gradients_gap", "IG dropped");
            fx.lay.ig_gap = 1;
            fx.lay.nmethods = 2 - nmaps;
            expect_refused(path, &fx.lay, "another method list", "map methods changed");
            fx.lay.nmethods = nmaps;
            if (!nmaps) { /* no /saliency: /gradcam's own checks decide */
                fx.lay.compression = 4 - level;
                expect_refused(path, &fx.lay, "/gradcam was made with", "compression on/off");
                fx.lay.compression = level;
                fx.lay.precision = f64 ? SAL_F32 : SAL_F64;
                /* the root attribute `precision` refuses it first (output_layout.c's
                 * check_header); /gradcam's own type check backs files without it */
                expect_refused(path, &fx.lay, "was made with precision", "precision");
                fx.lay.precision = f64 ? SAL_F64 : SAL_F32;
                fx.lay.height = H + 1;
                expect_refused(path, &fx.lay, "/gradcam does not have the shape", "map shape");
                fx.lay.height = H;
            }
            fixture_free(&fx);
        }
    /* A file without the new datasets, resumed by a plan that asks for them. */
    fixture fx;
    fixture_init(&fx, 3, 3, H, W, SAL_F32, 4);
    snprintf(path, sizeof path, "%s/plain.h5", dir);
    unlink(path);
    char err[1024];
    sp_output *o;
    int8_t st[3];
    CHECK(sp_output_open(path, &fx.lay, 0, &o, st, err, sizeof err) == 0, "create: %s", err);
    CHECK(sp_output_close(o, err, sizeof err) == 0, "close: %s", err);
    fx.lay.gradcam = 1;
    expect_refused(path, &fx.lay, "has no /gradcam dataset", "gradcam gained");
    fx.lay.gradcam = 0;
    fx.lay.ig_gap = 1;
    expect_refused(path, &fx.lay, "has no /integrated_gradients_gap dataset", "IG gained");
    fixture_free(&fx);
    printf("test_output_methods: %s (%d failures)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
