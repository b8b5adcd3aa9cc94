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
 * them and spends most of its time trying. So the byte planes below the top two
 * go into the stream as stored blocks (level 0) and only the top two (sign,
 * exponent, high mantissa) are deflated at the dataset's level, switching levels
 * inside one stream with deflateParams. Any HDF5 decodes it as usual; the result
 * is about as small as deflating everything, at less than half the time.
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

size_t sp_chunk_compress(void *out, const void *in, size_t nbytes, size_t elem_size,
                         int level, void *scratch) {
    if (!out || !in || nbytes == 0 || elem_size == 0 || level < 0 || level > 9)
        return 0;
    if (level == 0) {
        memcpy(out, in, nbytes);
        return nbytes;
    }
    const void *src = in;
    /* HDF5 leaves the bytes alone when there is nothing to regroup. */
    if (elem_size > 1 && nbytes / elem_size > 1) {
        if (!scratch) return 0;
        shuffle(scratch, in, nbytes, elem_size);
        src = scratch;
    }
    size_t bound = sp_chunk_bound(nbytes);
    if (bound == 0) return 0;
    /* Bytes of the planes stored as they are: all but the top two. */
    size_t n = nbytes / elem_size, raw = elem_size > 2 && n > 1 ? (elem_size - 2) * n : 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit(&z, raw ? 0 : level) != Z_OK) return 0;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)raw;
    int ok = 1;
    if (raw) {
        ok = deflate(&z, Z_NO_FLUSH) == Z_OK && z.avail_in == 0 &&
             deflateParams(&z, level, Z_DEFAULT_STRATEGY) == Z_OK;
    }
    z.next_in = (Bytef *)src + raw;
    z.avail_in = (uInt)(nbytes - raw);
    ok = ok && deflate(&z, Z_FINISH) == Z_STREAM_END;
    size_t len = z.total_out;
    deflateEnd(&z);
    return ok ? len : 0;
}
