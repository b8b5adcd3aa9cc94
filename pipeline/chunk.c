/*
 * Chunk compression on the worker side: the exact bytes HDF5's shuffle filter
 * followed by its deflate filter would store, so rank 0 can hand them to
 * H5Dwrite_chunk unchanged and any HDF5 reader decodes them with the filter
 * pipeline recorded in the dataset. No HDF5 calls here; zlib only.
 *
 * Shuffle (HDF5's H5Z_FILTER_SHUFFLE) regroups the bytes of n elements of size s:
 * byte j of element i goes to position j * n + i, so the slowly varying sign and
 * exponent bytes of floats sit together and deflate well. Bytes past n * s (when
 * nbytes is not a multiple of s) stay where they are, at the end. Deflate
 * (H5Z_FILTER_DEFLATE) reads any zlib stream (header, deflate blocks, Adler-32).
 *
 * The low mantissa bytes of a gradient are close to random: deflate cannot shrink
 * them and spends most of its time trying (on a float32 AlexNet map only the top
 * plane, sign and exponent, shrinks at all). So each byte plane is first tried: a
 * 16 KiB sample of it, taken from four places, is deflated at level 1, and a plane
 * that does not shrink by 3% goes into the stream as stored blocks (level 0); the
 * others are deflated at the dataset's level, switching levels inside one stream
 * with deflateParams. Any HDF5 decodes it as usual. On real maps the result is a
 * little smaller than deflating everything, in less than a third of the time; on
 * data whose every plane is regular (exact zeros, smooth images) it is deflate.
 */
#include <limits.h>
#include <string.h>

#include <zlib.h>

#include "output.h"

size_t sp_chunk_bound(size_t nbytes) {
    if (nbytes > (size_t)ULONG_MAX / 2) return 0;
    size_t b = (size_t)compressBound((uLong)nbytes);
    return b > nbytes ? b : nbytes;
}

/* out (nbytes) = shuffled in. The 4- and 8-byte cases are the ones maps use and
 * get loops the compiler keeps in registers; the general one follows the
 * definition. */
static void shuffle(unsigned char *out, const unsigned char *in, size_t nbytes,
                    size_t s) {
    size_t n = nbytes / s;
    if (s == 4) {
        unsigned char *o0 = out, *o1 = out + n, *o2 = out + 2 * n, *o3 = out + 3 * n;
        for (size_t i = 0; i < n; i++, in += 4) {
            o0[i] = in[0];
            o1[i] = in[1];
            o2[i] = in[2];
            o3[i] = in[3];
        }
    } else if (s == 8) {
        unsigned char *o[8];
        for (int j = 0; j < 8; j++) o[j] = out + (size_t)j * n;
        for (size_t i = 0; i < n; i++, in += 8)
            for (int j = 0; j < 8; j++) o[j][i] = in[j];
    } else {
        for (size_t i = 0; i < n; i++, in += s)
            for (size_t j = 0; j < s; j++) out[j * n + i] = in[j];
    }
    memcpy(out + n * s, in, nbytes - n * s);
}

/* Whether deflate shrinks a byte plane of n bytes: a level-1 trial on a sample. */
static int worth_deflating(const unsigned char *p, size_t n) {
    enum { PIECE = 4096, PIECES = 4 };
    unsigned char sample[PIECE * PIECES], out[PIECE * PIECES + 1024];
    size_t len = 0;
    if (n <= sizeof sample) {
        memcpy(sample, p, n);
        len = n;
    } else {
        for (size_t k = 0; k < PIECES; k++, len += PIECE)
            memcpy(sample + len, p + k * (n - PIECE) / (PIECES - 1), PIECE);
    }
    uLongf got = sizeof out;
    if (compress2(out, &got, sample, (uLong)len, 1) != Z_OK) return 1;
    return got < len - len / 32;
}

size_t sp_chunk_compress(void *out, const void *in, size_t nbytes, size_t elem_size,
                         int level, void *scratch) {
    if (!out || !in || nbytes == 0 || elem_size == 0 || level < 0 || level > 9)
        return 0;
    if (level == 0) {
        memcpy(out, in, nbytes);
        return nbytes;
    }
    const unsigned char *src = in;
    size_t n = nbytes / elem_size;
    /* HDF5 leaves the bytes alone when there is nothing to regroup. */
    int shuffled = elem_size > 1 && n > 1;
    if (shuffled) {
        if (!scratch) return 0;
        shuffle(scratch, in, nbytes, elem_size);
        src = scratch;
    }
    size_t bound = sp_chunk_bound(nbytes);
    if (bound == 0) return 0;
    /* Pieces of the stream: each byte plane (plus, on the last, any bytes past
     * n * elem_size), or the whole buffer when it was not shuffled. */
    size_t pieces = shuffled ? elem_size : 1;
    z_stream z;
    memset(&z, 0, sizeof z);
    z.next_out = out;
    z.avail_out = (uInt)bound;
    int ok = 1, cur = -1;
    for (size_t j = 0; ok && j < pieces; j++) {
        size_t off = j * n, len = j + 1 < pieces ? n : nbytes - off;
        if (!shuffled) off = 0, len = nbytes;
        int lv = worth_deflating(src + off, len) ? level : 0;
        if (cur < 0) ok = deflateInit(&z, lv) == Z_OK;
        else if (lv != cur) ok = deflateParams(&z, lv, Z_DEFAULT_STRATEGY) == Z_OK;
        if (!ok) break;
        cur = lv;
        z.next_in = (Bytef *)src + off;
        z.avail_in = (uInt)len;
        ok = j + 1 < pieces ? deflate(&z, Z_NO_FLUSH) == Z_OK && z.avail_in == 0
                            : deflate(&z, Z_FINISH) == Z_STREAM_END;
    }
    size_t len = z.total_out;
    if (cur >= 0) deflateEnd(&z);
    return ok ? len : 0;
}
