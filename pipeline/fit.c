/*
 * Does the job fit (fit.h): size limits checked on rank 0 from the config, the
 * model and the plan, the output's size estimated against its file system's free
 * space, and the plan --check prints.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <hdf5.h>

#include "fit.h"
#include "output.h"

/* Bytes the output file spends besides the maps' own (measured on the demo
 * model's files: about 100 bytes of chunk index per map; the image's name, its
 * /status, /error and /activation entries and their heap records per image). */
#define PER_MAP_INDEX 128.0
#define PER_IMAGE_FIXED 64.0
#define FILE_FIXED 65536.0

static size_t map_bytes(const sp_plan *p) {
    return (size_t)p->pre.channels * p->pre.height * p->pre.width *
           (p->precision == SAL_F64 ? 8 : 4);
}

/* One Grad-CAM map: one channel. */
static size_t cam_bytes(const sp_plan *p) { return map_bytes(p) / p->pre.channels; }

/* One map as stored and sent to rank 0: one channel with [output] channels =
 * "max_abs", else as computed. */
static size_t stored_map_bytes(const sp_plan *p) {
    return cam_bytes(p) * sp_plan_map_channels(p);
}

/* Bytes of maps one image adds to the output, uncompressed: every method's
 * (C, H, W) maps and Grad-CAM's (H, W) ones. */
static double image_map_bytes(const sp_plan *p) {
    const sp_batch_shape sh = sp_plan_batch_shape(p);
    return (double)p->ntargets * (sh.nmaps * (double)stored_map_bytes(p) +
                                  sh.ncams * (double)cam_bytes(p));
}

static double phys_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * size : -1;
}

/* "12.3 GB" (decimal units, as df -H). */
static const char *human(double bytes, char *buf, size_t len) {
    static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    while (bytes >= 1000 && u < 6) bytes /= 1000, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* "CONFIG:LINE:COL: " for a key the config may lack (line 0: the file alone). */
static int at(char *buf, size_t len, const sp_config *c, int line, int col) {
    return line > 0 ? snprintf(buf, len, "%s:%d:%d: ", c->config_path, line, col)
                    : snprintf(buf, len, "%s: ", c->config_path);
}

int sp_fit_sizes(const sp_config *c, const sp_plan *p, int ranks, char *err, size_t errlen) {
    const sp_target *t0 = &c->targets[0];
    const sp_batch_shape sh = sp_plan_batch_shape(p);
    const double N = c->nimages, T = c->ntargets, M = c->nmethods, B = p->batch;
    const double mb = (double)map_bytes(p), cb = (double)cam_bytes(p), per_image = T * M;
    char h1[32], h2[32], where[4200];
    if (per_image > SP_FIT_MAX_MAPS_PER_IMAGE) {
        at(where, sizeof where, c, t0->layer_line, t0->layer_col);
        snprintf(err, errlen, "%skey 'targets': %d targets x %d methods = %.0f maps per "
                 "image, more than the %d one job computes per image; split the targets "
                 "into several jobs", where, c->ntargets, c->nmethods, per_image,
                 SP_FIT_MAX_MAPS_PER_IMAGE);
        return -1;
    }
    /* Every rank holds a batch's maps and their compressed copies at once. */
    const double sb = (double)stored_map_bytes(p);
    const double per_batch_image = T * (sh.nmaps * (mb + (double)sp_chunk_bound((size_t)sb)) +
                                        sh.ncams * (cb + (double)sp_chunk_bound((size_t)cb)));
    const double mem = phys_memory();
    if (mem > 0 && B * per_batch_image > mem) {
        at(where, sizeof where, c, c->batch_line, c->batch_col);
        int fit = (int)(mem / per_batch_image);
        int n = snprintf(err, errlen, "%skey 'run.batch': a batch of %d images x %.0f maps of "
                         "up to %.0f bytes needs %s of buffers on every rank, more than this "
                         "node's memory (%s); ", where, p->batch, per_image, mb,
                         human(B * per_batch_image, h1, sizeof h1), human(mem, h2, sizeof h2));
        if (n > 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - n, fit >= 1 ? "use batch = %d or less" :
                     "even one image does not fit: split the targets into several jobs", fit);
        return -1;
    }
    /* A batch's results travel to rank 0 as one MPI message, counted in an int. */
    const double per_msg_image = 12 + SAL_ERR_LEN + T * (mb / (p->pre.channels *
                                 p->pre.height * p->pre.width)) + 8.0 * T * sh.ngaps +
                                 T * sh.nmaps * (8 + (double)sp_chunk_bound((size_t)sb)) +
                                 T * sh.ncams * (8 + (double)sp_chunk_bound((size_t)cb));
    if (ranks > 1 && 8 + B * per_msg_image > INT32_MAX) {
        at(where, sizeof where, c, c->batch_line, c->batch_col);
        int fit = (int)((INT32_MAX - 8) / per_msg_image);
        int n = snprintf(err, errlen, "%skey 'run.batch': the results of a batch of %d images "
                         "(%.0f maps of up to %.0f bytes each) would take %s, more than the 2 GiB an "
                         "MPI message between ranks can carry; ", where, p->batch, per_image, sb,
                         human(8 + B * per_msg_image, h1, sizeof h1));
        if (n > 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - n, fit >= 1 ? "use batch = %d or less" :
                     "even one image does not fit: split the targets into several jobs, or "
                     "run on one rank", fit);
        return -1;
    }
    /* HDF5 addresses a dataset's bytes with 64-bit sizes. */
    if (N * T * sh.nmaps * sb >= 9.2e18) {
        at(where, sizeof where, c, c->images_line, c->images_col);
        snprintf(err, errlen, "%skey 'images.%s': %d images x %d targets x %d methods x %.0f "
                 "bytes per map = %.3g bytes, more than one HDF5 dataset can hold (2^63); "
                 "split the job", where, c->images_source, c->nimages, c->ntargets,
                 c->nmethods, sb, N * per_image * sb);
        return -1;
    }
    return 0;
}

/* ---- disk space -------------------------------------------------------------- */

/* Images with status 1 in the existing output at `path` (read-only, without
 * HDF5's file lock: another run may hold it), or -1 when it cannot be read or
 * has another image count. */
static int count_done(const char *path, int nimages) {
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int done = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_file_locking(fapl, 0, 1) >= 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        hid_t ds = f >= 0 ? H5Dopen2(f, "status", H5P_DEFAULT) : -1;
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        int8_t *st = NULL;
        if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
            H5Sget_simple_extent_npoints(sp) == nimages && (st = malloc((size_t)nimages)) &&
            H5Dread(ds, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, st) >= 0) {
            done = 0;
            for (int i = 0; i < nimages; i++) done += st[i] == 1;
        }
        free(st);
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
        if (f >= 0) H5Fclose(f);
    }
    if (fapl >= 0) H5Pclose(fapl);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    return done;
}

/* The nearest existing directory at or above the output's own directory (it is
 * created at the start of the run when missing). */
static void existing_dir(const char *path, char *dir, size_t len) {
    snprintf(dir, len, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, len, ".");
        return;
    }
    *(slash == dir ? slash + 1 : slash) = '\0';
    struct stat st;
    while (stat(dir, &st) != 0 && (slash = strrchr(dir, '/')))
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (stat(dir, &st) != 0) snprintf(dir, len, ".");
}

void sp_fit_disk_estimate(const sp_config *c, const sp_plan *p, int overwrite,
                          sp_fit_disk *d) {
    memset(d, 0, sizeof *d);
    const double per_image = (double)c->ntargets * c->nmethods, mb = (double)map_bytes(p);
    const double image_bytes = image_map_bytes(p);
    d->maps = c->nimages * per_image;
    struct stat st;
    int exists = stat(c->output_path, &st) == 0 && S_ISREG(st.st_mode);
    d->resuming = exists && !overwrite;
    int done = d->resuming ? count_done(c->output_path, c->nimages) : 0;
    d->done_images = done > 0 ? done : 0;
    d->todo_maps = (c->nimages - d->done_images) * per_image;
    /* A resumed file has its labels already; a new one writes them first. */
    double labels = 0;
    if (!d->resuming) {
        labels = FILE_FIXED + c->nimages * (PER_IMAGE_FIXED + c->ntargets * (mb / (
                 p->pre.channels * p->pre.height * p->pre.width)));
        for (int i = 0; i < c->nimages; i++) labels += (double)strlen(c->images[i].display);
    }
    const double todo_images = c->nimages - d->done_images;
    d->raw_bytes = labels + todo_images * image_bytes + d->todo_maps * PER_MAP_INDEX;
    d->need_bytes = labels + todo_images * image_bytes * (c->compression > 0 ?
                    SP_FIT_DEFLATE_KEEPS : 1.0) + d->todo_maps * PER_MAP_INDEX;
    existing_dir(c->output_path, d->fs_dir, sizeof d->fs_dir);
    struct statvfs vfs;
    d->free_bytes = -1;
    if (statvfs(d->fs_dir, &vfs) == 0) {
        d->free_bytes = (double)vfs.f_bavail * vfs.f_frsize;
        /* --overwrite replaces the old file once the new one's layout is written. */
        if (exists && overwrite && st.st_nlink == 1) d->free_bytes += (double)st.st_blocks * 512;
    }
}

int sp_fit_disk_check(const sp_config *c, const sp_fit_disk *d, char *err, size_t errlen) {
    if (d->free_bytes < 0 || d->need_bytes <= d->free_bytes) return 0;
    char h1[32], h2[32], h3[32];
    snprintf(err, errlen, "%s: output.path %s: the run would write about %s (%.0f maps%s; %s "
             "uncompressed), but its file system (%s) has %s free; make room, or set [output] "
             "path to a larger file system", c->config_path, c->output_path,
             human(d->need_bytes, h1, sizeof h1), d->todo_maps,
             d->resuming ? " of the images not done yet" : "",
             human(d->raw_bytes, h2, sizeof h2), d->fs_dir, human(d->free_bytes, h3, sizeof h3));
    return -1;
}

/* ---- --check ------------------------------------------------------------------ */

const char *sp_fit_resize_rule(const sal_preprocess *pp, char *buf, size_t len) {
    if (!pp->resize_crop)
        snprintf(buf, len, "stretch: Resize((%d, %d))", pp->height, pp->width);
    else if (pp->height == pp->width)
        snprintf(buf, len, "crop: Resize(%d) + CenterCrop(%d)", pp->resize_size, pp->height);
    else
        snprintf(buf, len, "crop: Resize(%d) + CenterCrop((%d, %d))", pp->resize_size,
                 pp->height, pp->width);
    return buf;
}

void sp_fit_print_plan(const sp_config *c, const sal_model *m, const sp_plan *p,
                       const sp_fit_disk *d) {
    char h1[32], h2[32], h3[32];
    int missing = 0;
    printf("config    %s\n", c->config_path);
    printf("model     %s (%s, %d layers), %s\n", c->model_path, sal_model_name(m),
           sal_model_num_layers(m), p->precision == SAL_F64 ? "float64" : "float32");
    char rule[160];
    printf("input     %dx%dx%d (from the model file), resize %s (%s)\n", p->pre.channels,
           p->pre.height, p->pre.width, sp_fit_resize_rule(&p->pre, rule, sizeof rule),
           c->resize == SP_RESIZE_MODEL ? "the model file's" : "[preprocess] resize");
    for (int i = 0; i < c->nimages; i++)
        if (access(c->images[i].path, R_OK)) {
            if (missing++ < 10) printf("missing   %s\n", c->images[i].path);
        }
    printf("images    %d from %s, %d missing or unreadable%s\n", c->nimages, c->images_source,
           missing, missing > 10 ? " (first 10 listed)" : "");
    printf("targets   %d:", c->ntargets);
    for (int t = 0; t < c->ntargets && t < 100; t++)
        printf(" %s:%d", c->targets[t].layer, c->targets[t].unit);
    if (c->ntargets > 100) printf(" ... (first 100 listed)");
    printf("\nmethods   ");
    for (int i = 0; i < p->nmethods; i++) {
        char text[256];
        printf("%s ", sp_plan_method_text(p, p->methods[i], text, sizeof text));
    }
    printf("\nmaps      %.0f (%d images x %d targets x %d methods), %zu bytes each%s", d->maps,
           c->nimages, c->ntargets, c->nmethods, stored_map_bytes(p),
           p->max_abs ? " (channels = \"max_abs\": max |map| over the input channels)" : "");
    if (sp_plan_batch_shape(p).ncams)
        printf(" (gradcam's: %zu bytes, one channel)", cam_bytes(p));
    sal_method_params par;
    sp_plan_method_params(p, &par);
    double fwd, bwd;
    sal_method_passes(p->methods, p->nmethods, &par, p->ntargets, &fwd, &bwd);
    printf("\npasses    %.0f forward + %.0f backward per image, %.0f + %.0f for the job\n",
           fwd, bwd, fwd * c->nimages, bwd * c->nimages);
    if (d->resuming)
        printf("output    %s (exists: the run would resume it; %d of %d images done)\n",
               c->output_path, d->done_images, c->nimages);
    else
        printf("output    %s (new)\n", c->output_path);
    printf("disk      about %s to write (%s uncompressed%s), %s free on %s: %s\n",
           human(d->need_bytes, h1, sizeof h1), human(d->raw_bytes, h2, sizeof h2),
           c->compression > 0 ? ", deflate keeps ~86% of a map" : "",
           d->free_bytes < 0 ? "unknown" : human(d->free_bytes, h3, sizeof h3), d->fs_dir,
           d->free_bytes < 0 ? "not checked"
           : d->need_bytes <= d->free_bytes ? (d->raw_bytes <= d->free_bytes ? "fits"
                                               : "fits if the maps compress as usual")
                                            : "DOES NOT FIT (the run would refuse to start)");
    printf("batches   %d of up to %d images, %d thread(s) per rank\n",
           (c->nimages + c->batch - 1) / c->batch, c->batch, c->threads);
    printf("conv      %s\n",
           p->precision == SAL_F64 ? "direct (float64 always is)"
           : p->convolution == SAL_CONV_DIRECT ? "direct ([run] convolution)"
           : p->convolution == SAL_CONV_FASTEST
               ? "fastest: forward and backward of stride-1 3x3 and 5x5 convolutions by "
                 "Winograd ([run] convolution)"
               : "fast: backward of stride-1 3x3 convolutions by Winograd");
}
