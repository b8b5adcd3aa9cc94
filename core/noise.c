/*
 * SmoothGrad's noise: standard normals from a counter-based generator, so that the
 * noise of (seed, image, sample, element) is one fixed number whatever rank, batch
 * or resume computes it (issue 12).
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC11), written from the paper's definition: key (k0, k1) = the seed's
 * low and high 32 bits; counter (c0, c1, c2, c3) = (pair low 32 bits, pair high 32
 * bits, sample, image), pair = element / 2. Its four output words give two 53-bit
 * uniforms, u1 = ((x1:x0 >> 11) + 1) 2^-53 in (0, 1] and u2 = (x3:x2 >> 11) 2^-53
 * in [0, 1), and Box-Muller in double gives the pair's two normals:
 *     element 2p   = sqrt(-2 log u1) cos(2 pi u2)
 *     element 2p+1 = sqrt(-2 log u1) sin(2 pi u2)
 * sqrt is exact-rounded and log, cos, sin are the C library's, the ones Python's
 * math module calls, so tests/leaf/noise_ref.py reproduces every bit.
 * Compiled with -ffp-contract=off (core/CMakeLists.txt): no fused multiply-adds.
 */
#include <math.h>

#include "attrib.h"

#define TWO_PI 0x1.921fb54442d18p+2 /* 2 pi rounded to double: Python's math.tau */
#define PHILOX_M0 0xD2511F53u /* the paper's multipliers for 4x32 */
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* the key schedule's increments (golden ratio,  */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1)                                  */

void sal_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * x0, p1 = (uint64_t)PHILOX_M1 * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0, y1 = (uint32_t)p1;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1, y3 = (uint32_t)p0;
        x0 = y0, x1 = y1, x2 = y2, x3 = y3;
        k0 += PHILOX_W0, k1 += PHILOX_W1;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

/* The two normals of pair p. */
static void normal_pair(const uint32_t key[2], uint32_t image, uint32_t sample,
                        uint64_t p, double z[2]) {
    uint32_t ctr[4] = {(uint32_t)p, (uint32_t)(p >> 32), sample, image}, x[4];
    sal_philox4x32_10(ctr, key, x);
    uint64_t a = ((uint64_t)x[1] << 32 | x[0]) >> 11, b = ((uint64_t)x[3] << 32 | x[2]) >> 11;
    double u1 = (double)(a + 1) * 0x1p-53, u2 = (double)b * 0x1p-53;
    double r = sqrt(-2.0 * log(u1)), theta = TWO_PI * u2;
    z[0] = r * cos(theta);
    z[1] = r * sin(theta);
}

void sal_noise_normal(uint64_t seed, uint32_t image, uint32_t sample, uint64_t first,
                      size_t count, double *out) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    double z[2];
    for (size_t k = 0; k < count;) {
        uint64_t e = first + k;
        normal_pair(key, image, sample, e >> 1, z);
        out[k++] = z[e & 1];
        if (!(e & 1) && k < count) out[k++] = z[1];
    }
}
