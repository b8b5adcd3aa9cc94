/*
 * salimage against Pillow 9.4 + torchvision 0.14 (references from make_image_refs.py):
 * decoded bytes identical, resized/cropped bytes identical, the float32 tensor
 * bit-identical to ToTensor + Normalize, the float64 tensor bit-identical to
 * (x / 255 - mean) / std in double. One line per case; exit 1 if any case fails.
 *
 *     test_image DATA_DIR        (DATA_DIR/manifest.txt)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"

static char g_dir[4096];

static void *read_ref(const char *name, size_t *size) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* Compares bytes of an (H, W, C) image; on mismatch describes the first difference. */
static int same_pixels(const sal_image *im, const char *ref, char *why, size_t len) {
    size_t n;
    uint8_t *want = read_ref(ref, &n);
    if (!want) return snprintf(why, len, "cannot read reference %s", ref), 0;
    size_t have = (size_t)im->width * im->height * im->channels;
    int ok = 1;
    if (n != have) {
        snprintf(why, len, "size %zu bytes, reference %zu", have, n);
        ok = 0;
    } else {
        size_t ndiff = 0, first = 0;
        int maxd = 0;
        for (size_t i = 0; i < n; i++)
            if (im->pixels[i] != want[i]) {
                if (!ndiff++) first = i;
                int d = abs(im->pixels[i] - want[i]);
                if (d > maxd) maxd = d;
            }
        if (ndiff) {
            size_t px = first / im->channels;
            snprintf(why, len, "%zu bytes differ (max %d); first at x=%zu y=%zu c=%zu: "
                     "%u, Pillow %u", ndiff, maxd, px % im->width, px / im->width,
                     first % im->channels, im->pixels[first], want[first]);
            ok = 0;
        }
    }
    free(want);
    return ok;
}

/* Bitwise comparison of a tensor; reports the count and max |difference|. */
static int same_tensor(const void *have, size_t count, size_t esize, const char *ref,
                       char *why, size_t len) {
    size_t n;
    void *want = read_ref(ref, &n);
    if (!want) return snprintf(why, len, "cannot read reference %s", ref), 0;
    int ok = n == count * esize;
    if (!ok) snprintf(why, len, "tensor %zu bytes, reference %zu", count * esize, n);
    if (ok && memcmp(have, want, n) != 0) {
        size_t ndiff = 0;
        double maxd = 0;
        for (size_t i = 0; i < count; i++) {
            double a = esize == 4 ? ((const float *)have)[i] : ((const double *)have)[i];
            double b = esize == 4 ? ((const float *)want)[i] : ((const double *)want)[i];
            if (memcmp((const char *)have + i * esize, (const char *)want + i * esize,
                       esize)) {
                ndiff++;
                if (fabs(a - b) > maxd) maxd = fabs(a - b);
            }
        }
        snprintf(why, len, "%zu of %zu values differ, max |diff| %.3g", ndiff, count,
                 maxd);
        ok = 0;
    }
    free(want);
    return ok;
}

static double now(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int run_image(char **f, int nf, int *pass) {
    /* image NAME FILE CH W H DEC */
    if (nf != 7) return fprintf(stderr, "bad manifest line for %s\n", f[1]), 0;
    char path[8192], err[SAL_ERR_LEN], why[SAL_ERR_LEN + 512] = "";
    snprintf(path, sizeof path, "%s/%s", g_dir, f[2]);
    sal_image im;
    double t = now();
    int ok = sal_image_load(&im, path, atoi(f[3]), 0, err, sizeof err) == 0;
    t = now() - t;
    if (!ok)
        snprintf(why, sizeof why, "load failed: %s", err);
    else if (im.width != atoi(f[4]) || im.height != atoi(f[5]))
        snprintf(why, sizeof why, "size %dx%d, Pillow %sx%s", im.width, im.height, f[4],
                 f[5]),
            ok = 0;
    else
        ok = same_pixels(&im, f[6], why, sizeof why);
    printf("%s decode %-34s %5sx%-5s %s  %s (%.3f s)\n", ok ? "ok  " : "FAIL", f[1], f[4],
           f[5], f[3][0] == '1' ? "L  " : "RGB", ok ? "identical to Pillow" : why, t);
    sal_image_free(&im);
    *pass += ok;
    return 1;
}

static int run_fit(char **f, int nf, int *pass) {
    /* fit NAME FILE CH MODE W H S M0 M1 M2 S0 S1 S2 PIX T32 T64 */
    if (nf != 17) return fprintf(stderr, "bad manifest line for %s\n", f[1]), 0;
    char path[8192], err[SAL_ERR_LEN], why[SAL_ERR_LEN + 512] = "";
    char why32[256] = "", why64[256] = "";
    snprintf(path, sizeof path, "%s/%s", g_dir, f[2]);
    sal_preprocess pp = {0};
    pp.channels = atoi(f[3]);
    pp.width = atoi(f[5]);
    pp.height = atoi(f[6]);
    pp.resize_size = atoi(f[7]);
    pp.resize_crop = strcmp(f[4], "crop") == 0;
    for (int c = 0; c < 3; c++) {
        pp.mean[c] = strtod(f[8 + c], NULL);
        pp.std[c] = strtod(f[11 + c], NULL);
    }
    int ok = 1, ok32 = 1, ok64 = 1;
    double t = now();
    if (strcmp(f[4], "resize") == 0) {
        sal_image src, out = {0};
        ok = sal_image_load(&src, path, pp.channels, 0, err, sizeof err) == 0;
        if (ok)
            ok = sal_image_resize(&out, &src, pp.width, pp.height, err, sizeof err) == 0;
        if (!ok) snprintf(why, sizeof why, "failed: %s", err);
        if (ok) ok = same_pixels(&out, f[14], why, sizeof why);
        t = now() - t;
        printf("%s resize %-34s -> %dx%d  %s (%.3f s)\n", ok ? "ok  " : "FAIL", f[1],
               pp.width, pp.height, ok ? "identical to Pillow" : why, t);
        sal_image_free(&src);
        sal_image_free(&out);
        *pass += ok;
        return 1;
    }
    size_t count = (size_t)pp.channels * pp.width * pp.height;
    float *x32 = malloc(count * sizeof *x32);
    double *x64 = malloc(count * sizeof *x64);
    sal_image px = {0}, px64 = {0};
    ok = x32 && x64 &&
         sal_image_preprocess(x32, &px, path, &pp, SAL_F32, 0, err, sizeof err) == 0 &&
         sal_image_preprocess(x64, &px64, path, &pp, SAL_F64, 0, err, sizeof err) == 0;
    t = now() - t;
    if (!ok) {
        snprintf(why, sizeof why, "failed: %s", err);
    } else {
        ok = same_pixels(&px, f[14], why, sizeof why);
        ok32 = same_tensor(x32, count, 4, f[15], why32, sizeof why32);
        ok64 = same_tensor(x64, count, 8, f[16], why64, sizeof why64);
        if (px64.width != px.width ||
            memcmp(px.pixels, px64.pixels, (size_t)px.width * px.height * px.channels))
            ok64 = 0, snprintf(why64, sizeof why64, "float64 call saw other pixels");
    }
    int all = ok && ok32 && ok64;
    printf("%s %-7s %-34s %s  pixels %s, f32 %s, f64 %s (%.3f s)\n",
           all ? "ok  " : "FAIL", f[4], f[1], pp.channels == 1 ? "L  " : "RGB",
           ok ? "identical" : why, ok32 ? "bit-identical" : why32,
           ok64 ? "bit-identical" : why64, t / 2);
    sal_image_free(&px);
    sal_image_free(&px64);
    free(x32);
    free(x64);
    *pass += all;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATA_DIR (made by make_image_refs.py)\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    char mpath[8192], line[4096];
    snprintf(mpath, sizeof mpath, "%s/manifest.txt", g_dir);
    FILE *m = fopen(mpath, "r");
    if (!m) {
        fprintf(stderr, "%s: cannot open; run make_image_refs.py first\n", mpath);
        return 2;
    }
    int total = 0, pass = 0;
    while (fgets(line, sizeof line, m)) {
        char *f[32];
        int nf = 0;
        for (char *tok = strtok(line, " \n"); tok && nf < 32; tok = strtok(NULL, " \n"))
            f[nf++] = tok;
        if (nf < 2) continue;
        if (strcmp(f[0], "image") == 0)
            total++, run_image(f, nf, &pass);
        else if (strcmp(f[0], "fit") == 0)
            total++, run_fit(f, nf, &pass);
    }
    fclose(m);
    printf("%d of %d cases identical to Pillow/torchvision\n", pass, total);
    return total > 0 && pass == total ? 0 : 1;
}
