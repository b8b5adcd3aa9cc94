/*
 * Reading a batch message (layout in batch.h). Nothing in the bytes is trusted:
 * each field is checked against the plan's shape and the bytes left before it is
 * used, and allocation is bounded by the plan's batch size, not by the message.
 */
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

int sp_batch_unpack(const void *buf, size_t len, const sp_batch_shape *s, sp_batch *b,
                    char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    reader r = {buf, len};
    int32_t k, count;
    if (s->batch < 1 || s->nimages < 1 || s->ntargets < 1 || s->nmethods < 1)
        return fail(b, err, errlen, "empty plan");
    const int nbatches = (int)(((int64_t)s->nimages + s->batch - 1) / s->batch);
    const size_t TM = (size_t)s->ntargets * s->nmethods;
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
    b->chunk_v = calloc((size_t)count * TM, sizeof *b->chunk_v);
    b->size_v = calloc((size_t)count * TM, sizeof *b->size_v);
    if (!b->images || !b->chunk_v || !b->size_v) return fail(b, err, errlen, "out of memory");
    for (int i = 0; i < count; i++) {
        sp_batch_image *im = &b->images[i];
        const void **chunks = b->chunk_v + i * TM;
        size_t *sizes = b->size_v + i * TM;
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
        for (size_t j = 0; j < TM; j++) {
            int64_t z;
            const void *q = take(&r, sizeof z);
            if (!q) return fail(b, err, errlen, "image %d: map %zu cut short", (int)im->image, j);
            memcpy(&z, q, sizeof z);
            if (z <= 0 || (uint64_t)z > s->max_chunk || !(chunks[j] = take(&r, (size_t)z)))
                return fail(b, err, errlen, "image %d: map %zu of %lld bytes (at most %zu, "
                            "%zu left)", (int)im->image, j, (long long)z, s->max_chunk,
                            r.left);
            sizes[j] = (size_t)z;
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
