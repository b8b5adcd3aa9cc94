/*
 * Test hook: writes SmoothGrad's noise (core/noise.c) for one image to a .npy file,
 * so Python references add exactly the noise salpipe adds.
 *     noise_dump SEED IMAGE SAMPLES COUNT OUT.npy [FIRST]
 * OUT.npy: float64 little-endian, C order, shape (SAMPLES, COUNT); row s holds
 * N(SEED, IMAGE, s, FIRST + e) for e < COUNT (FIRST defaults to 0). For an image's
 * normalized (C, H, W) tensor, COUNT = C*H*W and element e is its flat index.
 * Exit 0, or 1 with a message on bad arguments or a write error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"

static int parse_u64(const char *s, uint64_t max, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-' || x > max) return -1;
    *v = x;
    return 0;
}

int main(int argc, char **argv) {
    uint64_t seed, image, samples, count, first = 0;
    if ((argc != 6 && argc != 7) || parse_u64(argv[1], UINT64_MAX, &seed) ||
        parse_u64(argv[2], UINT32_MAX, &image) ||
        parse_u64(argv[3], (uint64_t)UINT32_MAX + 1, &samples) ||
        parse_u64(argv[4], (uint64_t)1 << 40, &count) ||
        (argc == 7 && parse_u64(argv[6], UINT64_MAX - count, &first))) {
        fprintf(stderr, "usage: noise_dump SEED IMAGE SAMPLES COUNT OUT.npy [FIRST]\n"
                        "  writes float64 (SAMPLES, COUNT): row s = N(SEED, IMAGE, s, "
                        "FIRST + e)\n");
        return 1;
    }
    FILE *f = fopen(argv[5], "wb");
    if (!f) {
        fprintf(stderr, "noise_dump: %s: %s\n", argv[5], strerror(errno));
        return 1;
    }
    /* .npy version 1.0: magic, header length, a dict padded with spaces to a
     * multiple of 64 bytes in all, ending in a newline. */
    char dict[128];
    int len = snprintf(dict, sizeof dict,
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (%" PRIu64
                       ", %" PRIu64 "), }",
                       samples, count);
    int total = (10 + len + 1 + 63) / 64 * 64;
    memset(dict + len, ' ', (size_t)(total - 10 - len - 1));
    dict[total - 10 - 1] = '\n';
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                              (unsigned char)((total - 10) & 0xff),
                              (unsigned char)((total - 10) >> 8)};
    int ok = fwrite(head, 1, 10, f) == 10 &&
             fwrite(dict, 1, (size_t)(total - 10), f) == (size_t)(total - 10);
    enum { CHUNK = 65536 };
    static double buf[CHUNK];
    for (uint64_t s = 0; ok && s < samples; s++)
        for (uint64_t at = 0; ok && at < count; at += CHUNK) {
            size_t n = count - at < CHUNK ? (size_t)(count - at) : CHUNK;
            sal_noise_normal(seed, (uint32_t)image, (uint32_t)s, first + at, n, buf);
            ok = fwrite(buf, sizeof(double), n, f) == n; /* x86-64: little-endian */
        }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "noise_dump: %s: write failed\n", argv[5]);
        return 1;
    }
    return 0;
}
