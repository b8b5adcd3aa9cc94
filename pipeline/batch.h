/*
 * The batch message: one computed batch as a worker packs it (run.c) and rank 0
 * reads it back, over MPI or from its own worker. Layout, all native-endian:
 *   int32 batch k, int32 count (the images of batch k), then per image:
 *   int32 image (k * batch + i), int32 status (1 done, -1 failed),
 *   int32 len, len bytes of message (no NUL),
 *   and when done: ntargets activations (precision's type), then per
 *   (target, method) an int64 size and that many bytes of compressed map chunk.
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
    int ntargets, nmethods;
    size_t real_size;         /* 4 (float32) or 8 (float64)                       */
    size_t max_chunk;         /* largest compressed map: sp_chunk_bound(map bytes) */
} sp_batch_shape;

typedef struct {
    int32_t image;            /* index into the plan's images                      */
    int32_t status;           /* 1 done, -1 failed                                 */
    const char *msg;          /* msg_len bytes, not NUL-terminated ("" when done)  */
    int32_t msg_len;
    const void *acts;         /* done: ntargets activations, unaligned             */
    const void *const *chunks;/* done: ntargets * nmethods chunks, [t * M + m]     */
    const size_t *sizes;      /* their sizes in bytes                              */
} sp_batch_image;

typedef struct {
    int32_t batch, count;
    sp_batch_image *images;   /* count entries; pointers into the message          */
    const void **chunk_v;     /* storage behind images[].chunks and .sizes         */
    size_t *size_v;
} sp_batch;

/* Reads and checks the message buf[0..len): the batch index is one of the plan's,
 * count and image indices are exactly that batch's, every length fits in what is
 * left, each chunk is 1..max_chunk bytes, and nothing follows the last image.
 * Returns 0 with *b filled (pointing into buf; sp_batch_free it), or -1 with *b
 * empty and err saying what is wrong. */
int sp_batch_unpack(const void *buf, size_t len, const sp_batch_shape *shape, sp_batch *b,
                    char *err, size_t errlen);

void sp_batch_free(sp_batch *b);

#endif
