/*
 * The batch message: one computed batch as a worker packs it (sp_batch_writer, used
 * by run.c) and rank 0 reads it back (sp_batch_unpack), over MPI or from its own
 * worker. Both sides are in batch.c, and this is the one description of the layout,
 * all native-endian:
 *   int32 batch k, int32 count (the images of batch k), then per image:
 *   int32 image (k * batch + i), int32 status (1 done, -1 failed),
 *   int32 len, len bytes of message (no NUL),
 *   and when done: ntargets activations (precision's type), then per
 *   (target, method) an int64 size and that many bytes of compressed map chunk.
 * A worker's first message is the 8 bytes {-1, 0}, asking for work: rank 0 reads a
 * message of at most 8 bytes as that and anything longer as a batch (run.c).
 * sp_batch_unpack checks all of it before rank 0 writes anything, so a damaged or
 * foreign message is refused whole; it has no MPI in it (tests/fuzz/ calls it).
 */
#ifndef SP_BATCH_H
#define SP_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* What rank 0 expects, from the plan. */
typedef struct {
    int nimages, batch;       /* the plan's image count and batch size            */
    int ntargets;
    int nmaps;                /* maps per target: the plan's methods but gradcam   */
    int ncams;                /* 1 when gradcam is asked, else 0                   */
    int ngaps;                /* 1 when integrated_gradients is asked, else 0      */
    size_t real_size;         /* 4 (float32) or 8 (float64)                       */
    size_t max_chunk;         /* largest compressed map: sp_chunk_bound(map bytes) */
    size_t max_cam_chunk;     /* largest compressed Grad-CAM map: sp_chunk_bound of
                               * one H*W map's bytes                               */
} sp_batch_shape;

typedef struct {
    int32_t image;            /* index into the plan's images                      */
    int32_t status;           /* 1 done, -1 failed                                 */
    const char *msg;          /* msg_len bytes, not NUL-terminated ("" when done)  */
    int32_t msg_len;
    const void *acts;         /* done: ntargets activations, unaligned             */
    const void *const *chunks;/* done: ntargets * nmaps chunks, [t * nmaps + m]    */
    const size_t *sizes;      /* their sizes in bytes                              */
    const void *gaps;         /* done and ngaps: ntargets float64, unaligned; else NULL */
    const void *const *cams;  /* done and ncams: ntargets Grad-CAM chunks; else NULL */
    const size_t *cam_sizes;  /* their sizes in bytes                              */
} sp_batch_image;

typedef struct {
    int32_t batch, count;
    sp_batch_image *images;   /* count entries; pointers into the message          */
    const void **chunk_v;     /* storage behind images[].chunks and .sizes         */
    size_t *size_v;
} sp_batch;

/* Reads and checks the message buf[0..len): the batch index is one of the plan's,
 * count and image indices are exactly that batch's, every length fits in what is
 * left, each map chunk is 1..max_chunk bytes and each Grad-CAM chunk
 * 1..max_cam_chunk, every gap is finite, and nothing follows the last image.
 * Returns 0 with *b filled (pointing into buf; sp_batch_free it), or -1 with *b
 * empty and err saying what is wrong. */
int sp_batch_unpack(const void *buf, size_t len, const sp_batch_shape *shape, sp_batch *b,
                    char *err, size_t errlen);

void sp_batch_free(sp_batch *b);

/* The sender's side. Maps are compressed in parallel straight into the message:
 * each gets a slot reserved in order (max_chunk bytes for a map, max_cam_chunk for a
 * Grad-CAM map), and sp_batch_end closes the holes, so no map is copied twice. A
 * done image reserves ntargets * nmaps map slots ([t * nmaps + m]) and then, when
 * ncams, ntargets Grad-CAM slots, so its slots are consecutive in that order.
 *
 *     sp_batch_begin(&w, k, count);
 *     for each image: sp_batch_put_image(&w, image, status, msg, acts, gaps);
 *     in any order, any thread: n = compress(sp_batch_slot(&w, q), ...);
 *                               sp_batch_slot_done(&w, q, n);   (q < w.nslots)
 *     sp_batch_end(&w);         message: w.buf[0 .. w.len)
 */
typedef struct {
    sp_batch_shape shape;
    size_t max_msg;           /* longest message kept per image (longer ones cut)  */
    char *buf;                /* the message being built                           */
    size_t cap, len;
    int nslots;               /* maps reserved so far, in message order            */
    size_t *slot_off;         /* per map: where its int64 size and data go         */
    size_t *slot_len;         /* per map: its compressed size (sp_batch_slot_done)  */
    size_t *slot_cap;         /* per map: its reserved room (max_chunk or max_cam_chunk) */
} sp_batch_writer;

/* Sizes the writer for any batch of the shape (one allocation, reused). Returns 0,
 * or -1 when out of memory (*w then empty). */
int sp_batch_writer_init(sp_batch_writer *w, const sp_batch_shape *shape, size_t max_msg);
void sp_batch_writer_free(sp_batch_writer *w);

/* Starts the message of batch k with its count images. */
void sp_batch_begin(sp_batch_writer *w, int32_t k, int32_t count);

/* Appends one image: its index, status (1 done, -1 failed), message (NUL-terminated,
 * "" when done), and when done its ntargets activations (precision's type), its
 * ntargets gaps (double; when ngaps, else NULL), ntargets * nmaps reserved map slots
 * and, when ncams, ntargets reserved Grad-CAM slots. */
void sp_batch_put_image(sp_batch_writer *w, int32_t image, int32_t status, const char *msg,
                        const void *acts, const double *gaps);

/* Slot q: room for max_chunk bytes of compressed map (max_cam_chunk for a Grad-CAM
 * slot). */
void *sp_batch_slot(sp_batch_writer *w, int q);
void sp_batch_slot_done(sp_batch_writer *w, int q, size_t bytes);

/* Writes every map's size and closes the gaps; the message is buf[0 .. len). */
void sp_batch_end(sp_batch_writer *w);

#endif
