/*
 * Helpers of the output tests (output_check.h).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hdf5.h>

#include "output_check.h"

int failures;

const char *const FAIL_MESSAGE = "cannot decode 'b.jpg': not a JPEG file \xff";


void fixture_init(fixture *f, int nimages, int C, int H, int W, sal_precision p,
                         int level) {
    static const char *three[3] = {"a.jpg", "b.jpg", "dir/\xc3\xbc.png"};
    memset(f, 0, sizeof *f);
    f->names = calloc((size_t)nimages, sizeof *f->names);
    for (int i = 0; i < nimages; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "img%05d.jpg", i);
        f->names[i] = strdup(nimages <= 3 ? three[i] : buf);
    }
    f->layers[0] = "conv5";
    f->layers[1] = "fc3";
    f->units[0] = 3;
    f->units[1] = 540;
    f->methods[0] = "vanilla";
    f->methods[1] = "guided";
    f->pp = (sal_preprocess){3, 224, 224, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, 0, 256};
    f->lay = (sp_output_layout){
        .nimages = nimages, .ntargets = 2, .nmethods = 2, .channels = C, .height = H,
        .width = W, .precision = p, .compression = level,
        .images = (const char *const *)f->names, .target_layers = f->layers,
        .target_units = f->units, .methods = f->methods,
        .salpipe_version = "0.1.0-test", .config_path = "job.toml",
        .config_text = "[model]\npath = \"models/alexnet.h5\"\n",
        .model_path = "models/alexnet.h5",
        .model_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .model_name = "alexnet", .preprocess = &f->pp};
}

void fixture_free(fixture *f) {
    for (int i = 0; i < f->lay.nimages; i++) free(f->names[i]);
    free(f->names);
}

/* The value of map (i, t, m) at (c, y, x); check_output.py's expected_map. */
static double map_value(int i, int t, int m, int c, int y, int x, int W, int f64) {
    double v = i * 1000.0 + t * 100.0 + m * 10.0 + c + y / 8.0 + x / 64.0;
    if (f64) v = v + 1e-12 * ((y * (double)W + x) + 1.0);
    return c % 2 ? -v : v;
}

static void fill_map(void *buf, const sp_output_layout *l, int i, int t, int m) {
    int f64 = l->precision == SAL_F64;
    size_t k = 0;
    for (int c = 0; c < l->channels; c++)
        for (int y = 0; y < l->height; y++)
            for (int x = 0; x < l->width; x++, k++) {
                double v = map_value(i, t, m, c, y, x, l->width, f64);
                if (f64) ((double *)buf)[k] = v;
                else ((float *)buf)[k] = (float)v;
            }
}

size_t map_bytes(const sp_output_layout *l) {
    return (size_t)l->channels * l->height * l->width * (l->precision == SAL_F64 ? 8 : 4);
}

int write_image(sp_output *o, const sp_output_layout *l, int i, char *err) {
    size_t esize = l->precision == SAL_F64 ? 8 : 4, nb = map_bytes(l);
    void *raw = malloc(nb), *scratch = malloc(nb), *chunks[4];
    size_t bytes[4];
    double act[2] = {i * 10.0 + 0 + 0.25, i * 10.0 + 1 + 0.25};
    float act32[2] = {(float)act[0], (float)act[1]};
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < 2; m++) {
            fill_map(raw, l, i, t, m);
            chunks[t * 2 + m] = malloc(sp_chunk_bound(nb));
            bytes[t * 2 + m] =
                sp_chunk_compress(chunks[t * 2 + m], raw, nb, esize, l->compression, scratch);
        }
    int rc = sp_output_write_image(o, i, (const void *const *)chunks, bytes, NULL, NULL,
                                   esize == 8 ? (void *)act : (void *)act32, NULL, err, 1024);
    for (int k = 0; k < 4; k++) free(chunks[k]);
    free(raw);
    free(scratch);
    return rc;
}

int run_check(const char *py, const char *script, const char *path, int f64, int level,
              const char *status) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' check '%s' %s %d %s", py, script, path,
             f64 ? "f64" : "f32", level, status);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Reads the file with plain HDF5: every image with status 1 must hold exactly its
 * maps and activations; other images NaN or (flushed maps, status not yet) exact.
 * Returns the number of done images, or -1. */
int verify_file(const char *path, const sp_output_layout *l, int *unreadable) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return -1;
    int n = l->nimages, ndone = 0, f64 = l->precision == SAL_F64;
    hid_t type = f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    size_t esize = f64 ? 8 : 4, nb = map_bytes(l);
    int8_t *st = malloc((size_t)n);
    unsigned char *maps = malloc(4 * nb), *want = malloc(nb);
    double acts[2];
    hid_t sal = H5Dopen2(file, "saliency", H5P_DEFAULT);
    hid_t act = H5Dopen2(file, "activation", H5P_DEFAULT);
    hid_t sds = H5Dopen2(file, "status", H5P_DEFAULT);
    hid_t eds = H5Dopen2(file, "error", H5P_DEFAULT);
    hid_t vstr = H5Tcopy(H5T_C_S1);
    H5Tset_size(vstr, H5T_VARIABLE);
    H5Tset_cset(vstr, H5T_CSET_UTF8);
    char **msgs = calloc((size_t)n, sizeof *msgs);
    if (sal < 0 || act < 0 || sds < 0 || eds < 0 ||
        H5Dread(sds, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, st) < 0)
        ndone = -1;
    if (ndone == 0) {
        int ok = H5Dread(eds, vstr, H5S_ALL, H5S_ALL, H5P_DEFAULT, msgs) >= 0;
        CHECK(ok, "%s: /error cannot be read", path);
        hid_t es = H5Dget_space(eds);
        if (ok) H5Dvlen_reclaim(vstr, es, H5P_DEFAULT, msgs);
        H5Sclose(es);
    }
    free(msgs);
    H5Tclose(vstr);
    if (eds >= 0) H5Dclose(eds);
    *unreadable = 0;
    for (int i = 0; i < n && ndone >= 0; i++) {
        hsize_t start[6] = {(hsize_t)i, 0, 0, 0, 0, 0},
                count[6] = {1, 2, 2, (hsize_t)l->channels, (hsize_t)l->height, (hsize_t)l->width};
        hsize_t astart[2] = {(hsize_t)i, 0}, acount[2] = {1, 2};
        hid_t fs = H5Dget_space(sal), ms = H5Screate_simple(6, count, NULL);
        hid_t afs = H5Dget_space(act), ams = H5Screate_simple(2, acount, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        H5Sselect_hyperslab(afs, H5S_SELECT_SET, astart, NULL, acount, NULL);
        int ok = H5Dread(sal, type, ms, fs, H5P_DEFAULT, maps) >= 0 &&
                 H5Dread(act, H5T_NATIVE_DOUBLE, ams, afs, H5P_DEFAULT, acts) >= 0;
        H5Sclose(fs);
        H5Sclose(ms);
        H5Sclose(afs);
        H5Sclose(ams);
        if (!ok) {
            CHECK(st[i] != 1, "%s: image %d has status 1 but cannot be read", path, i);
            (*unreadable)++;
            continue;
        }
        for (int k = 0; k < 4; k++) {
            fill_map(want, l, i, k / 2, k % 2);
            int same = memcmp(maps + k * nb, want, nb) == 0;
            int nan = f64 ? isnan(((double *)(maps + k * nb))[0])
                          : isnan(((float *)(maps + k * nb))[0]);
            (void)esize;
            if (st[i] == 1) CHECK(same, "%s: image %d map %d differs", path, i, k);
            else CHECK(same || nan, "%s: image %d (status %d) map %d is garbage", path, i, st[i], k);
        }
        if (st[i] == 1) {
            CHECK(acts[0] == i * 10.0 + 0.25 && acts[1] == i * 10.0 + 1.25,
                  "%s: image %d activations %g %g", path, i, acts[0], acts[1]);
            ndone++;
        }
    }
    if (sal >= 0) H5Dclose(sal);
    if (act >= 0) H5Dclose(act);
    if (sds >= 0) H5Dclose(sds);
    H5Fclose(file);
    free(st);
    free(maps);
    free(want);
    return ndone;
}

void mkdir_p(const char *dir) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}
