/*
 * The output file's life: create or resume, write pre-compressed map chunks, record
 * status, flush, close. The layout itself is in output_layout.c, the file driver
 * that makes flushes atomic in journal.c.
 *
 * Crash safety (docs/output-format.md). A kill -9 at any moment must leave a file
 * that opens, with everything up to the last completed sp_output_flush intact:
 *  - every H5Fflush goes through the journaling driver (journal.c): in-place
 *    updates of the metadata the disk state uses reach the file as a whole or, after
 *    a kill, are completed from the journal the next time sp_output_open resumes;
 *  - the metadata cache never evicts, so HDF5 writes metadata only in H5Fflush, and
 *    the file space strategy is NONE, so space freed between flushes is not handed
 *    out again; maps (/saliency and /gradcam) go straight to new space with
 *    H5Dwrite_chunk;
 *  - /activation, /integrated_gradients_gap, /status and /error are written only
 *    inside sp_output_flush (pending values wait in memory), so an image's status 1
 *    lands in the same atomic flush as its maps;
 *  - a new file is built as PATH.partial and renamed to PATH once its layout is on
 *    disk, so PATH is never a half-created file and --overwrite is atomic.
 * The default (earliest) format keeps HDF5 from marking the superblock "open for
 * writing", which would make every reader refuse the file after a crash.
 *
 * Other HDF5 readers can open the file while a run writes it (they see the last
 * flush): HDF5's own file lock is off. A second salpipe is kept out by the lock on
 * PATH.lock, other writers by flock (output_lock.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output_internal.h"

/* Metadata cache size above which a flush also closes and reopens the file, to
 * drop the clean entries the cache keeps when evictions are off (about 85 bytes
 * per chunk written, but ~400 bytes of resident memory: at 512 MiB rank 0 grew by
 * 74 MB over 180,000 demo maps and would have reached gigabytes). At 256 KiB the
 * reopen comes every ~2,500 maps and rank 0's memory stays flat
 * (docs/reliability.md, "A long run"). SALPIPE_OUTPUT_MDC_LIMIT (bytes) overrides it. */
#define MDC_LIMIT_DEFAULT ((size_t)256 << 10)

typedef struct {
    int image, seq;
    int8_t status;  /* 1 done, -1 failed                                    */
    char *error;    /* failed: the message (owned)                          */
    size_t act;     /* done: offset of its activations in sp_output.acts and,
                     * with ig_gap, of its gaps (ntargets doubles) in .gaps   */
} pending;

struct sp_output {
    char *path;
    hid_t file, fapl;
    spo_dsets d;
    int fd;                  /* ours, holding flock(LOCK_SH) against HDF5 writers */
    sp_output_lock *own_lock; /* taken here when the caller gave none            */
    int nimages, ntargets, nmethods;
    int gradcam, ig_gap;     /* the layout's: /gradcam, /integrated_gradients_gap */
    size_t esize;            /* 4 or 8: bytes of one map value                   */
    size_t raw_chunk_bytes;  /* C*H*W*esize                                      */
    size_t raw_cam_bytes;    /* H*W*esize                                        */
    int filtered;            /* /saliency has shuffle + deflate                  */
    hid_t memtype;           /* native float or double                           */
    int8_t *disk_status;     /* /status as of the last flush                     */
    pending *pend;
    int npend, cappend;
    unsigned char *acts;     /* activations of pending done images               */
    size_t nacts, capacts;   /* bytes                                            */
    unsigned char *gaps;     /* with ig_gap: gaps of pending done images, in step
                              * with acts (capacts / esize * 8 bytes)           */
    int maps_dirty;          /* chunks written since the last flush              */
    size_t mdc_limit;
};

/* ---- errors ----------------------------------------------------------------- */

typedef struct {
    char desc[512];
} walk_ctx;

static herr_t walk_innermost(unsigned n, const H5E_error2_t *e, void *data) {
    walk_ctx *w = data;
    if (n == 0 && e->desc) snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    return 0;
}

int spo_h5err(char *err, size_t errlen, int code, const char *fmt, ...) {
    walk_ctx w = {""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, &w);
    /* The file drivers put the OS's words in "error message = '...'". */
    const char *reason = w.desc[0] ? w.desc : "HDF5 gave no reason";
    char os[256];
    const char *m = strstr(w.desc, "error message = '");
    if (m) {
        m += strlen("error message = '");
        const char *q = strchr(m, '\'');
        int len = q ? (int)(q - m) : (int)strlen(m);
        snprintf(os, sizeof os, "%.*s", len, m);
        reason = os;
    }
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", what, reason);
    H5Eclear2(H5E_DEFAULT);
    return code;
}

static int oserr(char *err, size_t errlen, int code, int e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int oserr(char *err, size_t errlen, int code, int e, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", what, strerror(e));
    return code;
}

/* ---- file handles and locks ------------------------------------------------- */

static hid_t make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    H5AC_cache_config_t c;
    memset(&c, 0, sizeof c);
    c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    if (H5Pget_mdc_config(fapl, &c) < 0) goto fail;
    /* Dirty metadata stays in memory until H5Fflush. */
    c.evictions_enabled = 0;
    c.incr_mode = H5C_incr__off;
    c.flash_incr_mode = H5C_flash_incr__off;
    c.decr_mode = H5C_decr__off;
    c.set_initial_size = 1;
    c.min_size = (size_t)1 << 20;
    c.initial_size = (size_t)32 << 20;
    c.max_size = (size_t)128 << 20;
    if (H5Pset_mdc_config(fapl, &c) < 0) goto fail;
    if (H5Pset_file_locking(fapl, 0, 1) < 0) goto fail;
    if (spo_use_journal_driver(fapl) < 0) goto fail;
    if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) goto fail;
    return fapl;
fail:
    H5Pclose(fapl);
    return -1;
}

static int open_dsets(sp_output *o) {
    const int want[SPO_NDSETS] = {o->nmethods > 0, 1, 1, 1, o->gradcam, o->ig_gap};
    for (int i = 0; i < SPO_NDSETS; i++)
        if (want[i] && (*spo_dset_ids(&o->d, i) =
                            H5Dopen2(o->file, spo_dset_names[i], H5P_DEFAULT)) < 0)
            return -1;
    return 0;
}

static void free_output(sp_output *o) {
    if (!o) return;
    spo_dsets_close(&o->d);
    if (o->file >= 0) H5Fclose(o->file);
    if (o->fapl >= 0) H5Pclose(o->fapl);
    if (o->fd >= 0) close(o->fd);
    sp_output_lock_release(o->own_lock);
    for (int i = 0; i < o->npend; i++) free(o->pend[i].error);
    free(o->pend);
    free(o->acts);
    free(o->gaps);
    free(o->disk_status);
    free(o->path);
    free(o);
}

/* The driver commits (and fdatasyncs) at the end of H5Fflush. */
static int h5flush(sp_output *o, char *err, size_t errlen) {
    if (H5Fflush(o->file, H5F_SCOPE_GLOBAL) < 0)
        return spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot flush", o->path);
    return SP_OUT_OK;
}

/* ---- open ------------------------------------------------------------------- */

static int resume(sp_output *o, const sp_output_layout *lay, int8_t *status, char *err,
                  size_t errlen) {
    const char *path = o->path;
    o->fd = open(path, O_RDWR | O_CLOEXEC);
    if (o->fd < 0)
        return oserr(err, errlen, SP_OUT_IOERR, errno,
                     "%s: exists, but cannot be opened for writing to resume it", path);
    int rc = spo_refuse_other_writers(o->fd, path, err, errlen);
    if (rc) return rc;
    if (spo_journal_recover(o->fd) < 0)
        return oserr(err, errlen, SP_OUT_IOERR, errno,
                     "%s: cannot complete the flush a kill interrupted", path);
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 == 0) {
        snprintf(err, errlen,
                 "%s: exists and is not an HDF5 file; use --overwrite to replace it, or "
                 "another [output] path", path);
        return SP_OUT_MISMATCH;
    }
    o->file = is_h5 > 0 ? H5Fopen(path, H5F_ACC_RDWR, o->fapl) : -1;
    if (o->file < 0) {
        spo_h5err(err, errlen, SP_OUT_MISMATCH, "%s: cannot be opened as an HDF5 file", path);
        size_t k = strlen(err);
        snprintf(err + k, errlen - k,
                 " (damaged?); use --overwrite to replace it, or another [output] path");
        return SP_OUT_MISMATCH;
    }
    rc = spo_layout_check(o->file, path, lay, &o->d, err, errlen);
    if (rc) return rc;
    /* The job's file of writers > 1: /status is read from the parts, each checked
     * first (a missing or foreign part is then named, not met here as a VDS
     * read error). */
    if (lay->writers > 1 && lay->part == 0) return SP_OUT_OK;
    if (H5Dread(o->d.status, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                o->disk_status) < 0)
        return spo_h5err(err, errlen, SP_OUT_MISMATCH, "%s: cannot read /status", path);
    for (int i = 0; i < lay->nimages; i++) {
        if (o->disk_status[i] < -1 || o->disk_status[i] > 1) {
            snprintf(err, errlen, "%s: /status[%d] is %d (expected -1, 0 or 1)%s", path, i,
                     o->disk_status[i],
                     "; use --overwrite to replace it, or another [output] path");
            return SP_OUT_MISMATCH;
        }
    }
    memcpy(status, o->disk_status, (size_t)lay->nimages);
    return SP_OUT_OK;
}

/* fsync of the directory holding path, so a rename is durable. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

static int create(sp_output *o, const sp_output_layout *lay, int8_t *status, char *err,
                  size_t errlen) {
    const char *path = o->path;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return oserr(err, errlen, SP_OUT_IOERR, EISDIR, "%s: cannot create the output", path);
        /* Never replace a file another program is writing. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int busy = fd >= 0 ? spo_refuse_other_writers(fd, path, err, errlen) : 0;
        if (fd >= 0) close(fd);
        if (busy) return busy;
    }
    size_t n = strlen(path) + sizeof ".partial";
    char *tmp = malloc(n);
    if (!tmp) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s", path);
    snprintf(tmp, n, "%s.partial", path);
    int rc = SP_OUT_IOERR;
    hid_t fcpl = -1;
    o->fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (o->fd < 0) {
        int e = errno;
        char *copy = strdup(path);
        if (e == ENOENT && copy)
            snprintf(err, errlen, "%s: cannot create the output: directory '%s' does not exist",
                     path, dirname(copy));
        else
            oserr(err, errlen, SP_OUT_IOERR, e, "%s: cannot create the output (%s)", path, tmp);
        free(copy);
        free(tmp);
        return SP_OUT_IOERR;
    }
    flock(o->fd, LOCK_SH | LOCK_NB); /* held: HDF5 writers stay out, readers not */
    if (ftruncate(o->fd, 0) < 0) {
        oserr(err, errlen, SP_OUT_IOERR, errno, "%s: cannot truncate", tmp);
        goto fail;
    }
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_file_space_strategy(fcpl, H5F_FSPACE_STRATEGY_NONE, 0, 1) < 0 ||
        H5Pset_obj_track_times(fcpl, 0) < 0) {
        spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot set up file creation", path);
        goto fail;
    }
    o->file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, o->fapl);
    if (o->file < 0) {
        spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot create the output (%s)", path, tmp);
        goto fail;
    }
    if ((rc = spo_layout_create(o->file, path, lay, &o->d, err, errlen))) goto fail;
    if ((rc = h5flush(o, err, errlen))) goto fail;
    if (rename(tmp, path) < 0) {
        rc = oserr(err, errlen, SP_OUT_IOERR, errno, "%s: cannot rename %s to it", path, tmp);
        goto fail;
    }
    sync_dir(path);
    memset(status, 0, (size_t)lay->nimages);
    H5Pclose(fcpl);
    free(tmp);
    return SP_OUT_OK;
fail:
    if (fcpl >= 0) H5Pclose(fcpl);
    spo_dsets_close(&o->d);
    if (o->file >= 0) H5Fclose(o->file);
    o->file = -1;
    unlink(tmp);
    free(tmp);
    return rc ? rc : SP_OUT_IOERR;
}

static int check_layout(const sp_output_layout *l, char *err, size_t errlen) {
    const char *bad = NULL;
    if (l->nimages < 1 || l->ntargets < 1 || l->nmethods < 0 || l->nmethods + !!l->gradcam < 1)
        bad = "no images, targets or methods";
    else if (l->channels < 1 || l->height < 1 || l->width < 1) bad = "empty map shape";
    else if (l->compression < 0 || l->compression > 9) bad = "compression not in 0..9";
    else if (!l->images || !l->target_layers || !l->target_units || !l->methods || !l->preprocess)
        bad = "missing labels or preprocessing";
    else {
        for (int i = 0; i < l->nimages && !bad; i++)
            if (!l->images[i]) bad = "NULL image name";
        for (int i = 0; i < l->ntargets && !bad; i++)
            if (!l->target_layers[i]) bad = "NULL target layer";
        for (int i = 0; i < l->nmethods && !bad; i++)
            if (!l->methods[i]) bad = "NULL method name";
        if (l->nparams < 0 || l->nparams > SP_OUTPUT_MAX_PARAMS || (l->nparams && !l->params))
            bad = "bad method parameters";
        for (int i = 0; i < l->nparams && !bad; i++)
            if (!l->params[i].name || (l->params[i].kind == SP_PARAM_STRING && !l->params[i].s))
                bad = "NULL method parameter";
    }
    if (bad) snprintf(err, errlen, "sp_output_open: invalid layout: %s", bad);
    return bad ? -1 : 0;
}

int sp_output_open(const char *path, const sp_output_layout *lay, int overwrite,
                   sp_output **out, int8_t *status, char *err, size_t errlen) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (check_layout(lay, err, errlen)) return SP_OUT_IOERR;
    sp_output *o = calloc(1, sizeof *o);
    if (!o) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s", path);
    o->file = o->fapl = -1;
    o->fd = -1;
    for (int i = 0; i < SPO_NDSETS; i++) *spo_dset_ids(&o->d, i) = -1;
    o->nimages = lay->nimages;
    o->ntargets = lay->ntargets;
    o->nmethods = lay->nmethods;
    o->gradcam = !!lay->gradcam;
    o->ig_gap = !!lay->ig_gap;
    o->esize = lay->precision == SAL_F64 ? 8 : 4;
    o->memtype = lay->precision == SAL_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    o->raw_cam_bytes = (size_t)lay->height * (size_t)lay->width * o->esize;
    o->raw_chunk_bytes = (size_t)lay->channels * o->raw_cam_bytes;
    o->filtered = lay->compression > 0;
    o->mdc_limit = MDC_LIMIT_DEFAULT;
    const char *lim = getenv("SALPIPE_OUTPUT_MDC_LIMIT");
    if (lim && *lim) o->mdc_limit = (size_t)strtoull(lim, NULL, 10);
    o->path = strdup(path);
    o->disk_status = calloc((size_t)lay->nimages, 1);
    o->fapl = make_fapl();
    if (!o->path || !o->disk_status || o->fapl < 0) {
        free_output(o);
        return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s: cannot set up the output", path);
    }
    int rc;
    struct stat st;
    if (!lay->lock && (rc = sp_output_lock_take(path, &o->own_lock, err, errlen))) {
        free_output(o);
        return rc;
    }
    if (overwrite) {
        rc = create(o, lay, status, err, errlen);
    } else if (stat(path, &st) == 0) {
        rc = S_ISDIR(st.st_mode)
                 ? oserr(err, errlen, SP_OUT_IOERR, EISDIR, "%s: cannot be the output", path)
                 : resume(o, lay, status, err, errlen);
    } else if (errno == ENOENT) {
        rc = create(o, lay, status, err, errlen);
    } else {
        rc = oserr(err, errlen, SP_OUT_IOERR, errno, "%s: cannot access the output", path);
    }
    if (rc) {
        free_output(o);
        return rc;
    }
    *out = o;
    return SP_OUT_OK;
}

/* ---- writing ---------------------------------------------------------------- */

/* HDF5's automatic error printing is per thread in thread-safe builds (Debian's),
 * and callers may write from another thread than the one that opened the file. */
static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static pending *add_pending(sp_output *o) {
    if (o->npend == o->cappend) {
        int cap = o->cappend ? 2 * o->cappend : 64;
        pending *p = realloc(o->pend, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        o->pend = p;
        o->cappend = cap;
    }
    pending *p = &o->pend[o->npend];
    memset(p, 0, sizeof *p);
    p->seq = o->npend;
    return p;
}

/* One compressed (H5Dwrite_chunk) chunk of /saliency or /gradcam; what names it
 * ("map (image 3, target 1, method 0)"). */
static int write_chunk(sp_output *o, hid_t ds, const hsize_t *off, const void *chunk,
                       size_t bytes, size_t raw, const char *what, char *err, size_t errlen) {
    if (!o->filtered && bytes != raw) {
        snprintf(err, errlen, "%s: %s has %zu bytes, expected %zu (the file is not compressed)",
                 o->path, what, bytes, raw);
        return SP_OUT_IOERR;
    }
    o->maps_dirty = 1;
    if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off, bytes, chunk) < 0)
        return spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot write the %s", o->path, what);
    return SP_OUT_OK;
}

int sp_output_write_image(sp_output *o, int image, const void *const *chunks,
                          const size_t *chunk_bytes, const void *const *cams,
                          const size_t *cam_bytes, const void *activations,
                          const void *gaps, char *err, size_t errlen) {
    quiet_hdf5();
    if (image < 0 || image >= o->nimages) {
        snprintf(err, errlen, "%s: image index %d out of range 0..%d", o->path, image,
                 o->nimages - 1);
        return SP_OUT_IOERR;
    }
    if ((o->gradcam && (!cams || !cam_bytes)) || (o->ig_gap && !gaps)) {
        snprintf(err, errlen, "%s: image %d comes without its %s", o->path, image,
                 o->ig_gap && !gaps ? "completeness gaps" : "Grad-CAM maps");
        return SP_OUT_IOERR;
    }
    size_t abytes = (size_t)o->ntargets * o->esize, gbytes = (size_t)o->ntargets * 8;
    if (o->nacts + abytes > o->capacts) {
        size_t cap = o->capacts ? 2 * o->capacts : 64 * abytes;
        while (cap < o->nacts + abytes) cap *= 2;
        unsigned char *a = realloc(o->acts, cap);
        if (a) o->acts = a;
        unsigned char *g = a && o->ig_gap ? realloc(o->gaps, cap / o->esize * 8) : NULL;
        if (g) o->gaps = g;
        if (!a || (o->ig_gap && !g)) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s", o->path);
        o->capacts = cap;
    }
    pending *p = add_pending(o);
    if (!p) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s", o->path);
    int rc = SP_OUT_OK;
    for (int t = 0; t < o->ntargets && !rc; t++) {
        for (int m = 0; m < o->nmethods && !rc; m++) {
            int k = t * o->nmethods + m;
            hsize_t off[6] = {(hsize_t)image, (hsize_t)t, (hsize_t)m, 0, 0, 0};
            char what[80];
            snprintf(what, sizeof what, "map (image %d, target %d, method %d)", image, t, m);
            rc = write_chunk(o, o->d.saliency, off, chunks[k], chunk_bytes[k],
                             o->raw_chunk_bytes, what, err, errlen);
        }
        hsize_t off[4] = {(hsize_t)image, (hsize_t)t, 0, 0};
        char what[80];
        snprintf(what, sizeof what, "Grad-CAM map (image %d, target %d)", image, t);
        if (!rc && o->gradcam)
            rc = write_chunk(o, o->d.gradcam, off, cams[t], cam_bytes[t], o->raw_cam_bytes,
                             what, err, errlen);
    }
    if (rc) return rc;
    p->image = image;
    p->status = 1;
    p->act = o->nacts;
    memcpy(o->acts + o->nacts, activations, abytes);
    if (o->ig_gap) memcpy(o->gaps + o->nacts / o->esize * 8, gaps, gbytes);
    o->nacts += abytes;
    o->npend++;
    return SP_OUT_OK;
}

/* Copy of s with bytes that are not valid UTF-8 replaced by '?' (/error is UTF-8). */
static char *utf8_copy(const char *s) {
    size_t n = strlen(s);
    unsigned char *d = malloc(n + 1);
    if (!d) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : (u[i] >> 5) == 6 ? 2 : (u[i] >> 4) == 14 ? 3
                : (u[i] >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; k++) ok = (u[i + k] >> 6) == 2;
        if (!ok) {
            d[i++] = '?';
            continue;
        }
        memcpy(d + i, u + i, (size_t)len);
        i += (size_t)len;
    }
    d[n] = '\0';
    return (char *)d;
}

int sp_output_fail_image(sp_output *o, int image, const char *message, char *err,
                         size_t errlen) {
    quiet_hdf5();
    if (image < 0 || image >= o->nimages) {
        snprintf(err, errlen, "%s: image index %d out of range 0..%d", o->path, image,
                 o->nimages - 1);
        return SP_OUT_IOERR;
    }
    pending *p = add_pending(o);
    char *msg = p ? utf8_copy(message ? message : "failed") : NULL;
    if (!msg) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s", o->path);
    p->image = image;
    p->status = -1;
    p->error = msg;
    o->npend++;
    return SP_OUT_OK;
}

/* ---- flushing --------------------------------------------------------------- */

static int by_image(const void *a, const void *b) {
    const pending *x = a, *y = b;
    if (x->image != y->image) return x->image < y->image ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Writes rows idx[0..n) (sorted, distinct) of a dataset whose rows have `cols`
 * values, from vals (n rows of rowbytes), one hyperslab per run of consecutive
 * images. */
static int write_rows(hid_t ds, hid_t memtype, hsize_t cols, const int *idx, int n,
                      const unsigned char *vals, size_t rowbytes) {
    hid_t fs = H5Dget_space(ds);
    if (fs < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(fs), rc = 0;
    for (int i = 0; i < n && rc == 0;) {
        int j = i + 1;
        while (j < n && idx[j] == idx[j - 1] + 1) j++;
        hsize_t start[2] = {(hsize_t)idx[i], 0}, count[2] = {(hsize_t)(j - i), cols};
        hid_t ms = H5Screate_simple(rank, count, NULL);
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, vals + (size_t)i * rowbytes) < 0)
            rc = -1;
        if (ms >= 0) H5Sclose(ms);
        i = j;
    }
    H5Sclose(fs);
    return rc;
}

/* The gaps of the k done images idx[0..k) (in the order of o->pend's done
 * entries), into /integrated_gradients_gap. */
static int write_gaps(sp_output *o, const int *idx, int k, char *err, size_t errlen) {
    const size_t gbytes = (size_t)o->ntargets * 8;
    unsigned char *rows = malloc(k ? (size_t)k * gbytes : 1);
    if (!rows) return oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s: flush", o->path);
    for (int i = 0, j = 0; i < o->npend; i++)
        if (o->pend[i].status == 1)
            memcpy(rows + (size_t)j++ * gbytes, o->gaps + o->pend[i].act / o->esize * 8, gbytes);
    int rc = write_rows(o->d.ig_gap, H5T_NATIVE_DOUBLE, (hsize_t)o->ntargets, idx, k, rows,
                        gbytes) < 0
                 ? spo_h5err(err, errlen, SP_OUT_IOERR,
                             "%s: cannot write /integrated_gradients_gap", o->path)
                 : SP_OUT_OK;
    free(rows);
    return rc;
}

/* Drops the metadata cache's clean entries by closing and reopening the file. */
static int recycle(sp_output *o, char *err, size_t errlen) {
    spo_dsets_close(&o->d);
    H5Fclose(o->file);
    /* HDF5 keeps freed metadata in free lists of its own; hand them back. */
    H5garbage_collect();
    o->file = H5Fopen(o->path, H5F_ACC_RDWR, o->fapl);
    if (o->file < 0 || open_dsets(o) < 0)
        return spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot reopen", o->path);
    return SP_OUT_OK;
}

int sp_output_flush(sp_output *o, char *err, size_t errlen) {
    quiet_hdf5();
    if (o->file < 0) {
        snprintf(err, errlen, "%s: the file is not open (an earlier error)", o->path);
        return SP_OUT_IOERR;
    }
    if (o->npend == 0 && !o->maps_dirty) return SP_OUT_OK;
    /* Latest entry per image, in image order. */
    qsort(o->pend, (size_t)o->npend, sizeof *o->pend, by_image);
    int n = 0;
    for (int i = 0; i < o->npend; i++) {
        if (n > 0 && o->pend[n - 1].image == o->pend[i].image) {
            free(o->pend[n - 1].error);
            o->pend[n - 1] = o->pend[i];
        } else {
            o->pend[n++] = o->pend[i];
        }
    }
    o->npend = n;
    size_t abytes = (size_t)o->ntargets * o->esize;
    int *idx = calloc(n ? (size_t)n : 1, sizeof *idx);
    unsigned char *rows = calloc(n ? (size_t)n : 1, abytes > sizeof(char *) ? abytes : sizeof(char *));
    int rc = SP_OUT_OK, k = 0;
    if (!idx || !rows) {
        rc = oserr(err, errlen, SP_OUT_IOERR, ENOMEM, "%s: flush", o->path);
        goto done;
    }

    /* Activations of done images, /status, and /error where it changes (failed
     * now, or failed before), then one atomic H5Fflush with the maps' index. */
    for (int i = 0; i < n; i++) {
        if (o->pend[i].status != 1) continue;
        idx[k] = o->pend[i].image;
        memcpy(rows + (size_t)k * abytes, o->acts + o->pend[i].act, abytes);
        k++;
    }
    if (write_rows(o->d.activation, o->memtype, (hsize_t)o->ntargets, idx, k, rows, abytes) < 0) {
        rc = spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot write /activation", o->path);
        goto done;
    }
    if (o->ig_gap && (rc = write_gaps(o, idx, k, err, errlen))) goto done;
    int8_t *st = (int8_t *)rows;
    for (int i = 0; i < n; i++) {
        idx[i] = o->pend[i].image;
        st[i] = o->pend[i].status;
    }
    if (write_rows(o->d.status, H5T_NATIVE_INT8, 1, idx, n, rows, 1) < 0) {
        rc = spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot write /status", o->path);
        goto done;
    }
    const char **msg = (const char **)(void *)rows;
    k = 0;
    for (int i = 0; i < n; i++) {
        const pending *p = &o->pend[i];
        if (p->status != -1 && o->disk_status[p->image] != -1) continue;
        idx[k] = p->image;
        msg[k] = p->error ? p->error : "";
        k++;
    }
    hid_t vstr = spo_vlen_str();
    int bad = vstr < 0 || write_rows(o->d.error, vstr, 1, idx, k, rows, sizeof(char *)) < 0;
    if (bad) rc = spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot write /error", o->path);
    if (vstr >= 0) H5Tclose(vstr);
    if (bad || (rc = h5flush(o, err, errlen))) goto done;
    o->maps_dirty = 0;

    for (int i = 0; i < n; i++) {
        o->disk_status[o->pend[i].image] = o->pend[i].status;
        free(o->pend[i].error);
    }
    o->npend = 0;
    o->nacts = 0;

    size_t maxs, minc, cur;
    int nent;
    if (H5Fget_mdc_size(o->file, &maxs, &minc, &cur, &nent) >= 0 && cur > o->mdc_limit)
        rc = recycle(o, err, errlen);
done:
    free(idx);
    free(rows);
    return rc;
}

int sp_output_close(sp_output *o, char *err, size_t errlen) {
    if (!o) return SP_OUT_OK;
    quiet_hdf5();
    int rc = o->file >= 0 ? sp_output_flush(o, err, errlen) : SP_OUT_OK;
    spo_dsets_close(&o->d);
    if (o->file >= 0 && H5Fclose(o->file) < 0 && rc == SP_OUT_OK)
        rc = spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot close", o->path);
    o->file = -1;
    free_output(o);
    return rc;
}
