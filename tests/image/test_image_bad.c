/*
 * salimage on bad input. Every "bad" file of make_image_refs.py must be refused by
 * sal_image_load and sal_image_preprocess with a message that names the file and the
 * expected reason, the output left zeroed, and nothing crashing; after each one a good
 * image must still decode identically (the caller carries on with the next image).
 * Also: an unreadable file, the pixel limit, and API misuse. One line per case.
 *
 *     test_image_bad DATA_DIR
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

static char g_dir[4096];
static int g_total, g_pass;
static uint8_t *g_photo_ref;
static size_t g_photo_size;

static void report(int ok, const char *name, const char *detail) {
    g_total++;
    g_pass += ok;
    printf("%s %-32s %s\n", ok ? "ok  " : "FAIL", name, detail);
}

static int zeroed(const sal_image *im) {
    return im->pixels == NULL && im->width == 0 && im->height == 0 && im->channels == 0;
}

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The caller goes on: the next (good) image decodes exactly as before. */
static int next_image_ok(void) {
    char path[8192], err[SAL_ERR_LEN];
    snprintf(path, sizeof path, "%s/photo.jpg", g_dir);
    sal_image im;
    if (sal_image_load(&im, path, 3, 0, err, sizeof err)) return 0;
    int ok = (size_t)im.width * im.height * 3 == g_photo_size &&
             memcmp(im.pixels, g_photo_ref, g_photo_size) == 0;
    sal_image_free(&im);
    return ok;
}

/* A refusal that names the file and says `reason`, from both entry points. */
static void expect_refusal(const char *name, const char *path, const char *reason,
                           const char *note) {
    char err[SAL_ERR_LEN] = "", err2[SAL_ERR_LEN] = "", detail[2 * SAL_ERR_LEN + 256];
    sal_image im = {(int32_t)-1, (int32_t)-1, (int32_t)-1, (uint8_t *)&im};
    int rc = sal_image_load(&im, path, 3, 0, err, sizeof err);
    sal_preprocess pp = {3, 224, 224, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                         1, 256};
    float *x = malloc(3 * 224 * 224 * sizeof *x);
    sal_image px = {(int32_t)-1, (int32_t)-1, (int32_t)-1, NULL};
    int rc2 = sal_image_preprocess(x, &px, path, &pp, SAL_F32, 0, err2, sizeof err2);
    free(x);
    int ok = rc == -1 && zeroed(&im) && strstr(err, path) == err && strstr(err, reason) &&
             rc2 == -1 && zeroed(&px) && strcmp(err, err2) == 0;
    int next = next_image_ok();
    if (ok && next)
        snprintf(detail, sizeof detail, "\"%s\"%s%s%s", err, note ? "  [" : "",
                 note ? note : "", note ? "]" : "");
    else
        snprintf(detail, sizeof detail,
                 "rc %d/%d, zeroed %d/%d, wanted \"%s\" in \"%s\" / "
                 "\"%s\"; next image %s",
                 rc, rc2, zeroed(&im), zeroed(&px), reason, err, err2,
                 next ? "ok" : "BROKEN");
    report(ok && next, name, detail);
}

static void bad_files(void) {
    char mpath[8192], line[4096];
    snprintf(mpath, sizeof mpath, "%s/manifest.txt", g_dir);
    FILE *m = fopen(mpath, "r");
    if (!m) {
        report(0, "manifest", "cannot open manifest.txt; run make_image_refs.py");
        return;
    }
    while (fgets(line, sizeof line, m)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "bad ", 4) != 0) continue;
        /* bad NAME FILE PILLOW EXPECTED TEXT... */
        char *name = strtok(line + 4, " "), *file = strtok(NULL, " ");
        char *pil = strtok(NULL, " "), *reason = strtok(NULL, "");
        if (!name || !file || !pil || !reason) {
            report(0, "manifest", "malformed bad line");
            continue;
        }
        char path[8192], note[256];
        snprintf(path, sizeof path, "%s/%s", g_dir, file);
        snprintf(note, sizeof note, "Pillow %s%s", pil,
                 strncmp(pil, "accepts", 7) == 0 ? ": deliberate difference" : " too");
        expect_refusal(name, path, reason, note);
    }
    fclose(m);
}

/* chmod 000 stops everyone but root, and the tests usually run as root: then the
 * check runs with the effective uid of `nobody`, or is skipped with the reason. */
static void unreadable(void) {
    char src[8192], path[8192];
    snprintf(src, sizeof src, "%s/photo.jpg", g_dir);
    snprintf(path, sizeof path, "%s/unreadable.jpg", g_dir);
    size_t n;
    void *data = slurp(src, &n);
    FILE *f = fopen(path, "wb");
    int made = data && f && fwrite(data, 1, n, f) == n;
    if (f) fclose(f);
    free(data);
    if (!made || chmod(path, 0) != 0) {
        report(0, "unreadable_file", "could not create the test file");
        return;
    }
    uid_t euid = geteuid();
    if (euid == 0 && seteuid(65534) != 0) {
        printf(
            "SKIP %-32s running as root and cannot switch to uid 65534 (%s): chmod 000 "
            "does not stop root\n",
            "unreadable_file", strerror(errno));
    } else {
        char err[SAL_ERR_LEN] = "";
        sal_image im;
        int rc = sal_image_load(&im, path, 3, 0, err, sizeof err);
        if (euid == 0 && seteuid(0) != 0) {
            report(0, "unreadable_file", "cannot return to uid 0");
            return;
        }
        int ok = rc == -1 && zeroed(&im) && strstr(err, path) &&
                 strstr(err, "Permission denied");
        char detail[SAL_ERR_LEN + 64];
        snprintf(detail, sizeof detail, "\"%s\"%s", err,
                 euid == 0 ? "  [as uid 65534: root reads mode-000 files]" : "");
        report(ok && next_image_ok(), "unreadable_file", detail);
    }
    chmod(path, 0644);
    unlink(path);
}

static void pixel_limit(void) {
    char path[8192], err[SAL_ERR_LEN] = "", detail[SAL_ERR_LEN + 64];
    snprintf(path, sizeof path, "%s/photo.jpg", g_dir);
    sal_image im;
    int rc = sal_image_load(&im, path, 3, 375 * 375 - 1, err, sizeof err);
    int ok = rc == -1 && zeroed(&im) && strstr(err, "above the limit of 140624");
    snprintf(detail, sizeof detail, "375x375 with max_pixels 140624: \"%s\"", err);
    report(ok, "pixel_limit_one_below", detail);
    rc = sal_image_load(&im, path, 3, 375 * 375, err, sizeof err);
    report(rc == 0 && im.width == 375, "pixel_limit_exact", rc ? err : "decodes");
    sal_image_free(&im);
}

static void misuse(void) {
    char path[8192], err[SAL_ERR_LEN];
    snprintf(path, sizeof path, "%s/photo.jpg", g_dir);
    sal_image im, out;
    float x[3 * 8 * 8];
#define CASE(label, want_, call)                                                         \
    do {                                                                                 \
        err[0] = 0;                                                                      \
        int rc_ = (call);                                                                \
        int ok_ = rc_ == -1 && strstr(err, want_) != NULL;                               \
        char d_[SAL_ERR_LEN + 32];                                                       \
        snprintf(d_, sizeof d_, "\"%s\"", err);                                          \
        report(ok_, label, d_);                                                          \
    } while (0)
    CASE("api_channels_2", "channels must be 1 or 3",
         sal_image_load(&im, path, 2, 0, err, sizeof err));
    CASE("api_null_path", "no path", sal_image_load(&im, NULL, 3, 0, err, sizeof err));
    if (sal_image_load(&im, path, 3, 0, err, sizeof err)) {
        report(0, "api_setup", err);
        return;
    }
    CASE("api_resize_zero", "not positive",
         sal_image_resize(&out, &im, 0, 5, err, sizeof err));
    sal_preprocess pp = {3, 8, 8, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, 0, 0};
    pp.channels = 2;
    CASE("api_pp_channels", "channels must be 1 or 3",
         sal_image_fit(&out, &im, &pp, err, sizeof err));
    pp.channels = 3;
    pp.height = 0;
    CASE("api_pp_size", "not positive", sal_image_fit(&out, &im, &pp, err, sizeof err));
    pp.height = 8;
    pp.resize_crop = 2;
    CASE("api_pp_mode", "neither 0", sal_image_fit(&out, &im, &pp, err, sizeof err));
    pp.resize_crop = 1;
    CASE("api_pp_crop_size", "positive resize size",
         sal_image_fit(&out, &im, &pp, err, sizeof err));
    pp.resize_crop = 0;
    pp.std[1] = 0;
    CASE("api_pp_std_zero", "std[1]",
         sal_image_preprocess(x, NULL, path, &pp, SAL_F32, 0, err, sizeof err));
    pp.std[1] = 0.25;
    CASE("api_null_tensor", "no tensor",
         sal_image_preprocess(NULL, NULL, path, &pp, SAL_F32, 0, err, sizeof err));
    CASE("api_bad_precision", "unknown precision",
         sal_image_preprocess(x, NULL, path, &pp, (sal_precision)7, 0, err, sizeof err));
    /* A 1 x 100000 strip cropped with Resize(30000): the long side would be 3e9. */
    sal_image strip = {1, 100000, 1, calloc(100000, 1)};
    sal_preprocess tall = {1, 224, 224, {0.5}, {0.5}, 1, 30000};
    CASE("api_crop_too_elongated", "too long",
         sal_image_fit(&out, &strip, &tall, err, sizeof err));
    free(strip.pixels);
    sal_image_free(&im);
    sal_image_free(&im); /* twice is fine */
    report(1, "api_free_twice", "no crash");
#undef CASE
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATA_DIR (made by make_image_refs.py)\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    char ref[8192];
    snprintf(ref, sizeof ref, "%s/photo.dec.u8", g_dir);
    g_photo_ref = slurp(ref, &g_photo_size);
    if (!g_photo_ref) {
        fprintf(stderr, "%s: missing; run make_image_refs.py first\n", ref);
        return 2;
    }
    if (!next_image_ok()) {
        fprintf(stderr, "photo.jpg does not decode to its reference\n");
        return 1;
    }
    bad_files();
    unreadable();
    pixel_limit();
    misuse();
    free(g_photo_ref);
    printf("%d of %d bad-input checks passed\n", g_pass, g_total);
    return g_total > 0 && g_pass == g_total ? 0 : 1;
}
