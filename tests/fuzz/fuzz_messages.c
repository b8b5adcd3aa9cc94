/*
 * Harness: the messages ranks exchange, as received. Byte 0 chooses which:
 *   even: the plan rank 0 broadcasts (pipeline/plan.c sp_plan_unpack); a plan
 *         that is accepted must pack back to exactly the same bytes;
 *   odd:  a batch of results a worker sends (pipeline/batch.c sp_batch_unpack),
 *         read against a plan shape taken from the next 5 bytes; every byte an
 *         accepted message points at is read, so ASan sees any reference past it.
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fuzz_common.h"
#include "plan.h"

static void plan_case(const uint8_t *data, size_t size) {
    sp_plan p;
    char err[SAL_ERR_LEN];
    if (sp_plan_unpack(&p, (const char *)data, size, err, sizeof err)) {
        fz_note("plan refused: %s", err);
        if (!err[0]) fz_die("plan refused without a message");
        return;
    }
    fz_note("plan of %d images accepted", p.nimages);
    size_t n = 0;
    char *again = sp_plan_pack(&p, &n);
    if (!again) fz_die("an accepted plan does not pack");
    if (n != size || memcmp(again, data, n))
        fz_die("an accepted plan of %zu bytes packs back to %zu different bytes", size, n);
    free(again);
    sp_plan_free(&p);
}

static void batch_case(const uint8_t *data, size_t size) {
    fz_bytes in = {data, size};
    sp_batch_shape s;
    s.nimages = 1 + fz_u8(&in) % 20;
    s.batch = 1 + fz_u8(&in) % 8;
    s.ntargets = 1 + fz_u8(&in) % 3;
    /* Bit 6 asks for Grad-CAM maps (then 0..3 other maps), bit 7 for IG's gaps;
     * seeds made before them have both clear and read as before. */
    uint8_t mb = fz_u8(&in);
    s.ncams = mb >> 6 & 1;
    s.ngaps = mb >> 7 & 1;
    s.nmaps = s.ncams ? (mb & 63) % 4 : 1 + (mb & 63) % 3;
    uint8_t x = fz_u8(&in);
    s.real_size = x & 1 ? 8 : 4;
    s.max_chunk = 1 + (x >> 1) % 64;
    s.max_cam_chunk = 1 + (x >> 1) % 64 / 3;
    sp_batch b;
    char err[SAL_ERR_LEN];
    if (sp_batch_unpack(in.p, in.left, &s, &b, err, sizeof err)) {
        fz_note("batch refused: %s", err);
        if (!err[0]) fz_die("batch refused without a message");
        return;
    }
    fz_note("batch %d of %d images accepted", (int)b.batch, (int)b.count);
    volatile unsigned sum = 0;
    for (int i = 0; i < b.count; i++) {
        const sp_batch_image *im = &b.images[i];
        for (int k = 0; k < im->msg_len; k++) sum += (unsigned char)im->msg[k];
        if (im->status != 1) continue;
        for (size_t k = 0; k < s.ntargets * s.real_size; k++)
            sum += ((const unsigned char *)im->acts)[k];
        for (int j = 0; j < s.ntargets * s.nmaps; j++)
            for (size_t k = 0; k < im->sizes[j]; k++)
                sum += ((const unsigned char *)im->chunks[j])[k];
        for (int j = 0; j < s.ntargets * s.ncams; j++)
            for (size_t k = 0; k < im->cam_sizes[j]; k++)
                sum += ((const unsigned char *)im->cams[j])[k];
        for (size_t k = 0; s.ngaps && k < s.ntargets * sizeof(double); k++)
            sum += ((const unsigned char *)im->gaps)[k];
    }
    (void)sum;
    sp_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* A copy the size of the message, so a read past it is a heap overflow. */
    uint8_t *msg = malloc(size - 1 ? size - 1 : 1);
    if (!msg) return 0;
    memcpy(msg, data + 1, size - 1);
    if (data[0] & 1) batch_case(msg, size - 1);
    else plan_case(msg, size - 1);
    free(msg);
    return 0;
}
