/*
 * Writing and reading a batch message (layout in batch.h). The reader trusts
 * nothing in the bytes: each field is checked against the plan's shape and the
 * bytes left before it is used, and allocation is bounded by the plan's batch size,
 * not by the message.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

typedef struct {
    const char *p;
    size_t left;
} reader;

static const void *take(reader *r, size_t n) {
    if (n > r->left) return NULL;
    const void *q = r->p;
    r->p += n;
    r->left -= n;
    return q;
}

static int take_i32(reader *r, int32_t *v) {
    const void *q = take(r, sizeof *v);
    if (q) memcpy(v, q, sizeof *v);
    return q ? 0 : -1;
}

static int fail(sp_batch *b, char *err, size_t errlen, const char *fmt, ...) {
    sp_batch_free(b);
    if (err && errlen) {
        int n = snprintf(err, errlen, "malformed batch message: ");
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < errlen) vsnprintf(err + n, errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* count chunks of an image, each an int64 size in 1..max and that many bytes. */
static int take_chunks(reader *r, int count, size_t max, const void **chunks, size_t *sizes,
                       int image, const char *what, sp_batch *b, char *err, size_t errlen) {
    for (int j = 0; j < count; j++) {
        int64_t z;
        const void *q = take(r, sizeof z);
        if (!q) return fail(b, err, errlen, "image %d: %s %d cut short", image, what, j);
        memcpy(&z, q, sizeof z);
        if (z <= 0 || (uint64_t)z > max || !(chunks[j] = take(r, (size_t)z)))
            return fail(b, err, errlen, "image %d: %s %d of %lld bytes (at most %zu, "
                        "%zu left)", image, what, j, (long long)z, max, r->left);
        sizes[j] = (size_t)z;
    }
    return 0;
}

int sp_batch_unpack(const void *buf, size_t len, const sp_batch_shape *s, sp_batch *b,
                    char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    reader r = {buf, len};
    int32_t k, count;
    if (s->batch < 1 || s->nimages < 1 || s->ntargets < 1 || s->nmaps < 0 ||
        (s->ncams != 0 && s->ncams != 1) || (s->ngaps != 0 && s->ngaps != 1) ||
        s->nmaps + s->ncams < 1)
        return fail(b, err, errlen, "empty plan");
    const int nbatches = (int)(((int64_t)s->nimages + s->batch - 1) / s->batch);
    const size_t TM = (size_t)s->ntargets * s->nmaps, TC = (size_t)s->ntargets * s->ncams;
    const size_t per = TM + TC; /* chunk pointers per image: maps, then cams */
    if (take_i32(&r, &k) || take_i32(&r, &count))
        return fail(b, err, errlen, "%zu bytes, shorter than its header", len);
    if (k < 0 || k >= nbatches)
        return fail(b, err, errlen, "batch %d, expected 0..%d", (int)k, nbatches - 1);
    const int first = k * s->batch, want = s->nimages - first < s->batch
                                               ? s->nimages - first : s->batch;
    if (count != want)
        return fail(b, err, errlen, "batch %d holds %d images, expected %d", (int)k,
                    (int)count, want);
    b->batch = k;
    b->count = count;
    b->images = calloc((size_t)count, sizeof *b->images);
    b->chunk_v = calloc((size_t)count * per, sizeof *b->chunk_v);
    b->size_v = calloc((size_t)count * per, sizeof *b->size_v);
    if (!b->images || !b->chunk_v || !b->size_v) return fail(b, err, errlen, "out of memory");
    for (int i = 0; i < count; i++) {
        sp_batch_image *im = &b->images[i];
        const void **chunks = b->chunk_v + i * per;
        size_t *sizes = b->size_v + i * per;
        if (take_i32(&r, &im->image) || take_i32(&r, &im->status) ||
            take_i32(&r, &im->msg_len))
            return fail(b, err, errlen, "image %d of batch %d is cut short", i, (int)k);
        if (im->image != first + i)
            return fail(b, err, errlen, "image %d of batch %d has index %d, expected %d", i,
                        (int)k, (int)im->image, first + i);
        if (im->status != 1 && im->status != -1)
            return fail(b, err, errlen, "image %d has status %d", (int)im->image,
                        (int)im->status);
        if (im->msg_len < 0 || !(im->msg = take(&r, (size_t)im->msg_len)) ||
            memchr(im->msg, '\0', (size_t)im->msg_len))
            return fail(b, err, errlen, "image %d: message of %d bytes does not fit",
                        (int)im->image, (int)im->msg_len);
        im->chunks = chunks;
        im->sizes = sizes;
        if (im->status != 1) continue;
        if (!(im->acts = take(&r, s->ntargets * s->real_size)))
            return fail(b, err, errlen, "image %d: activations cut short", (int)im->image);
        if (s->ngaps) {
            if (!(im->gaps = take(&r, s->ntargets * sizeof(double))))
                return fail(b, err, errlen, "image %d: gaps cut short", (int)im->image);
            for (int t = 0; t < s->ntargets; t++) {
                double g;
                memcpy(&g, (const char *)im->gaps + t * sizeof g, sizeof g);
                if (!isfinite(g))
                    return fail(b, err, errlen, "image %d: gap of target %d is not finite",
                                (int)im->image, t);
            }
        }
        if (take_chunks(&r, (int)TM, s->max_chunk, chunks, sizes, im->image, "map", b, err,
                        errlen))
            return -1;
        if (s->ncams) {
            im->cams = chunks + TM;
            im->cam_sizes = sizes + TM;
            if (take_chunks(&r, (int)TC, s->max_cam_chunk, chunks + TM, sizes + TM, im->image,
                            "Grad-CAM map", b, err, errlen))
                return -1;
        }
    }
    if (r.left) return fail(b, err, errlen, "%zu bytes after the last image", r.left);
    return 0;
}

void sp_batch_free(sp_batch *b) {
    free(b->images);
    free(b->chunk_v);
    free(b->size_v);
    memset(b, 0, sizeof *b);
}

/* ---- writing ------------------------------------------------------------------ */

int sp_batch_writer_init(sp_batch_writer *w, const sp_batch_shape *s, size_t max_msg) {
    memset(w, 0, sizeof *w);
    const size_t B = (size_t)s->batch, TM = (size_t)s->ntargets * s->nmaps,
                 TC = (size_t)s->ntargets * s->ncams;
    w->shape = *s;
    w->max_msg = max_msg;
    w->cap = 8 + B * (12 + max_msg + s->ntargets * s->real_size +
                      s->ngaps * s->ntargets * sizeof(double) +
                      TM * (sizeof(int64_t) + s->max_chunk) +
                      TC * (sizeof(int64_t) + s->max_cam_chunk));
    w->buf = malloc(w->cap);
    const size_t nslots = B * (TM + TC) > 0 ? B * (TM + TC) : 1;
    w->slot_off = malloc(sizeof *w->slot_off * nslots);
    w->slot_len = malloc(sizeof *w->slot_len * nslots);
    w->slot_cap = malloc(sizeof *w->slot_cap * nslots);
    if (!w->buf || !w->slot_off || !w->slot_len || !w->slot_cap) {
        sp_batch_writer_free(w);
        return -1;
    }
    return 0;
}

void sp_batch_writer_free(sp_batch_writer *w) {
    free(w->buf);
    free(w->slot_off);
    free(w->slot_len);
    free(w->slot_cap);
    memset(w, 0, sizeof *w);
}

static void put(sp_batch_writer *w, const void *p, size_t n) {
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_i32(sp_batch_writer *w, int32_t v) { put(w, &v, sizeof v); }

void sp_batch_begin(sp_batch_writer *w, int32_t k, int32_t count) {
    w->len = 0;
    w->nslots = 0;
    put_i32(w, k);
    put_i32(w, count);
}

void sp_batch_put_image(sp_batch_writer *w, int32_t image, int32_t status, const char *msg,
                        const void *acts, const double *gaps) {
    size_t len = strlen(msg);
    if (len > w->max_msg) len = w->max_msg;
    put_i32(w, image);
    put_i32(w, status);
    put_i32(w, (int32_t)len);
    put(w, msg, len);
    if (status != 1) return;
    const sp_batch_shape *s = &w->shape;
    put(w, acts, s->ntargets * s->real_size);
    if (s->ngaps) put(w, gaps, s->ntargets * sizeof(double));
    const int nm = s->ntargets * s->nmaps, nc = s->ntargets * s->ncams;
    for (int j = 0; j < nm + nc; j++) {
        const size_t room = j < nm ? s->max_chunk : s->max_cam_chunk;
        w->slot_off[w->nslots] = w->len;
        w->slot_cap[w->nslots] = room;
        w->slot_len[w->nslots++] = 0;
        w->len += sizeof(int64_t) + room;
    }
}

void *sp_batch_slot(sp_batch_writer *w, int q) {
    return w->buf + w->slot_off[q] + sizeof(int64_t);
}

void sp_batch_slot_done(sp_batch_writer *w, int q, size_t bytes) { w->slot_len[q] = bytes; }

/* Data only moves down: every slot is at least as far along as where it ends up. */
void sp_batch_end(sp_batch_writer *w) {
    size_t rd = 0, wr = 0;
    for (int q = 0; q < w->nslots; q++) {
        size_t gap = w->slot_off[q] - rd;
        memmove(w->buf + wr, w->buf + rd, gap);
        wr += gap;
        int64_t z = (int64_t)w->slot_len[q];
        memcpy(w->buf + wr, &z, sizeof z);
        memmove(w->buf + wr + sizeof z, w->buf + w->slot_off[q] + sizeof z, w->slot_len[q]);
        wr += sizeof z + w->slot_len[q];
        rd = w->slot_off[q] + sizeof z + w->slot_cap[q];
    }
    memmove(w->buf + wr, w->buf + rd, w->len - rd);
    w->len = wr + (w->len - rd);
}
