/*
 * SmoothGrad's noise: standard normals from a counter-based generator, so that the
 * noise of (seed, image, sample, element) is one fixed number whatever rank, batch,
 * resume, machine or compiler computes it (issue 12). docs/saliency.md "### Noise"
 * is the definition; SAL_NOISE_GENERATOR (salcore.h) names this version of it.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC11), written from the paper's definition: key (k0, k1) = the seed's
 * low and high 32 bits; counter (c0, c1, c2, c3) = (pair low 32 bits, pair high 32
 * bits, sample, image), pair = element / 2. Its four output words give two 53-bit
 * uniforms, u1 = ((x1:x0 >> 11) + 1) 2^-53 in (0, 1] and u2 = (x3:x2 >> 11) 2^-53
 * in [0, 1), and Box-Muller gives the pair's two normals:
 *     element 2p   = sqrt(-2 log u1) cos(2 pi u2)
 *     element 2p+1 = sqrt(-2 log u1) sin(2 pi u2)
 * log, cos and sin are this file's own (log_u1, sincos_turn below): IEEE double
 * +, -, *, /, sqrt and exact bit operations only, in a fixed order, so the bits
 * depend on no C library and tests/leaf/noise_ref.py reproduces them with numpy
 * float64 arrays. Compiled with -ffp-contract=off (core/CMakeLists.txt): a fused
 * multiply-add would round differently.
 *
 * Speed (~28 ns a normal with glibc's log/sin/cos and scalar Philox before): pairs
 * in blocks of BLOCK; Philox on 64-bit lanes with the 32x32->64 multiply of SSE2 /
 * AVX2 (pmuludq), the floating point in loops without branches that GCC vectorizes;
 * the block is built for AVX2 and for baseline x86-64 and picked by CPU. Every path
 * gives the same bits (integers, and the same IEEE operations in the same order);
 * SAL_NOISE_ISA caps the path (2 AVX2, 1 SSE2, 0 portable C) so tests/leaf.cmake
 * can build and compare each.
 */
#include <math.h>
#include <string.h>

#include "attrib.h"

#ifndef SAL_NOISE_ISA
#define SAL_NOISE_ISA 3
#endif
#if SAL_NOISE_ISA > 0 && !(defined(__GNUC__) && defined(__x86_64__))
#undef SAL_NOISE_ISA
#define SAL_NOISE_ISA 0
#endif
#if SAL_NOISE_ISA > 0
#include <immintrin.h>
#endif

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

/* Pairs per block (a multiple of 8, the AVX-512 lanes): 512 normals, ~12 KiB of stack. */
enum { BLOCK = 256 };

/* What a block's counters share: the round keys, sample and image. The philox_*
 * functions below give the 53-bit words of pairs p0 + i, a[i] = x1:x0 >> 11 and
 * b[i] = x3:x2 >> 11, for i < n (the SIMD ones write up to n rounded up to their
 * lanes; a and b hold BLOCK). */
typedef struct {
    uint32_t k0[10], k1[10]; /* round r's key: the seed's words + r (W0, W1) */
    uint32_t sample, image;
} philox_in;

#if SAL_NOISE_ISA == 0
static void philox_portable(const philox_in *in, uint64_t p0, int n, uint64_t *a,
                            uint64_t *b) {
    const uint32_t key[2] = {in->k0[0], in->k1[0]};
    for (int i = 0; i < n; i++) {
        const uint64_t p = p0 + (uint64_t)i;
        const uint32_t ctr[4] = {(uint32_t)p, (uint32_t)(p >> 32), in->sample, in->image};
        uint32_t x[4];
        sal_philox4x32_10(ctr, key, x);
        a[i] = ((uint64_t)x[1] << 32 | x[0]) >> 11;
        b[i] = ((uint64_t)x[3] << 32 | x[2]) >> 11;
    }
}
#endif

#if SAL_NOISE_ISA > 0
/* One Philox word per 64-bit lane, in its low half. pmuludq reads only the low
 * halves, so the high halves may hold garbage until the final mask: a word that
 * feeds a multiply (x0, x2) is never read whole, one that is xored (x1, x3) is
 * xored into a word that only feeds a multiply. */
#define PHILOX_LANES(V, set1, add, mul, srl, sll, xor, and, or, load, store, W)          \
    const V m0 = set1(PHILOX_M0), m1 = set1(PHILOX_M1), lo = set1(0xFFFFFFFFu);          \
    const V s = set1(in->sample), im = set1(in->image);                                 \
    const uint64_t first[8] = {p0, p0 + 1, p0 + 2, p0 + 3, p0 + 4, p0 + 5, p0 + 6, p0 + 7};\
    V k0[10], k1[10], step = set1(W), p = load((const V *)first);                       \
    for (int r = 0; r < 10; r++) k0[r] = set1(in->k0[r]), k1[r] = set1(in->k1[r]);       \
    for (int i = 0; i < n; i += W, p = add(p, step)) {                                  \
        V x0 = p, x1 = srl(p, 32), x2 = s, x3 = im;                                     \
        for (int r = 0; r < 10; r++) {                                                  \
            const V q0 = mul(x0, m0), q1 = mul(x2, m1);                                 \
            x0 = xor(xor(srl(q1, 32), x1), k0[r]);                                      \
            x1 = q1;                                                                    \
            x2 = xor(xor(srl(q0, 32), x3), k1[r]);                                      \
            x3 = q0;                                                                    \
        }                                                                               \
        store((V *)(a + i), srl(or(sll(x1, 32), and(x0, lo)), 11));                     \
        store((V *)(b + i), srl(or(sll(x3, 32), and(x2, lo)), 11));                     \
    }

static inline __attribute__((always_inline)) void
philox_sse2(const philox_in *in, uint64_t p0, int n, uint64_t *a, uint64_t *b) {
    PHILOX_LANES(__m128i, _mm_set1_epi64x, _mm_add_epi64, _mm_mul_epu32, _mm_srli_epi64,
                 _mm_slli_epi64, _mm_xor_si128, _mm_and_si128, _mm_or_si128, _mm_loadu_si128,
                 _mm_storeu_si128, 2)
}
#endif

#if SAL_NOISE_ISA > 2
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
philox_avx512(const philox_in *in, uint64_t p0, int n, uint64_t *a, uint64_t *b) {
    PHILOX_LANES(__m512i, _mm512_set1_epi64, _mm512_add_epi64, _mm512_mul_epu32,
                 _mm512_srli_epi64, _mm512_slli_epi64, _mm512_xor_si512, _mm512_and_si512,
                 _mm512_or_si512, _mm512_loadu_si512, _mm512_storeu_si512, 8)
}
#endif

#if SAL_NOISE_ISA > 1
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void
philox_avx2(const philox_in *in, uint64_t p0, int n, uint64_t *a, uint64_t *b) {
    PHILOX_LANES(__m256i, _mm256_set1_epi64x, _mm256_add_epi64, _mm256_mul_epu32,
                 _mm256_srli_epi64, _mm256_slli_epi64, _mm256_xor_si256, _mm256_and_si256,
                 _mm256_or_si256, _mm256_loadu_si256, _mm256_storeu_si256, 4)
}
#endif

/* ---- the floating point: IEEE operations only, in this order ------------------- */

static inline double from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}
static inline uint64_t to_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

#define EXP_2P52 0x4330000000000000ull /* the bits of 2^52: or-ing n < 2^52 in gives 2^52 + n */
#define SQRT_HALF 0x3FE6A09E667F3BCDull /* the bits of sqrt(0.5) rounded (math.sqrt(0.5)) */
#define MANT 0x000FFFFFFFFFFFFFull
#define LN2_HI 0x1.62e42fefa3800p-1 /* ln 2 rounded to a multiple of 2^-43: k LN2_HI exact */
#define LN2_LO 0x1.ef35793c76730p-45 /* ln 2 - LN2_HI rounded                             */
#define PI_2 0x1.921fb54442d18p+0 /* pi/2 rounded: Python's math.tau / 4 */

/* A 53-bit integer as a double, exactly, without an int64 conversion (SSE2 and
 * AVX2 have none): its high 21 and low 32 bits through the mantissa of 2^52. */
static inline double u53_to_double(uint64_t v) {
    return (from_bits(EXP_2P52 | v >> 32) - 0x1p52) * 0x1p32 +
           (from_bits(EXP_2P52 | (v & 0xFFFFFFFFu)) - 0x1p52);
}

/* log u for u = (a + 1) 2^-53 in (0, 1]: u = 2^k m with m in [sqrt(1/2), sqrt(2)),
 * f = m - 1 (exact), s = f / (2 + f), log m = 2 atanh s = f - s (f - R) with
 * R = sum_{j=1..10} 2 s^(2j) / (2j + 1) (Taylor; |s| <= 0.172 leaves < 2^-60),
 * and log u = k LN2_HI + ((log m) + k LN2_LO). Error < 1 ulp (noise_ref.py
 * measures it against math.log). */
static inline double log_u1(double u) {
    const uint64_t d = to_bits(u) - SQRT_HALF + (64ull << 52); /* exponent field: k + 64 */
    const double k = from_bits(EXP_2P52 | d >> 52) - (0x1p52 + 64.0);
    const double m = from_bits(SQRT_HALF + (d & MANT));
    const double f = m - 1.0, s = f / (2.0 + f), z = s * s;
    const double R =
        z * (2.0 / 3 + z * (2.0 / 5 + z * (2.0 / 7 + z * (2.0 / 9 + z * (2.0 / 11 +
        z * (2.0 / 13 + z * (2.0 / 15 + z * (2.0 / 17 + z * (2.0 / 19 + z * (2.0 / 21))))))))));
    return k * LN2_HI + ((f - s * (f - R)) + k * LN2_LO);
}

/* cos and sin of 2 pi u, u = b 2^-53 in [0, 1): j = u in quarter turns rounded to
 * nearest (ties to even) through the mantissa of 1.5 2^52, x = (4u - j) pi/2 in
 * [-pi/4, pi/4] (4u - j exact, one rounding), Taylor polynomials of sin x to x^17
 * and cos x to x^16 (truncation < 2^-60), and the quarter turn j mod 4 swaps and
 * negates them (exactly). cos x = w + (((1 - w) - h) + x^4 P) with h = x^2/2,
 * w = 1 - h keeps the rounding of 1 - h. Errors < 1 ulp of x's sin and cos. */
static inline void sincos_turn(double u, double *c, double *s) {
    const double t = 4.0 * u, big = t + 0x1.8p52, j = big - 0x1.8p52;
    const uint64_t q = to_bits(big) & 3;
    const double x = (t - j) * PI_2, x2 = x * x;
    const double ps =
        -1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 +
        x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800 + x2 * (-1.0 / 1307674368000 +
        x2 * (1.0 / 355687428096000)))))));
    const double pc =
        1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320 + x2 * (-1.0 / 3628800 +
        x2 * (1.0 / 479001600 + x2 * (-1.0 / 87178291200 + x2 * (1.0 / 20922789888000))))));
    const double sx = x + (x * x2) * ps;
    const double h = 0.5 * x2, w = 1.0 - h;
    const double cx = w + (((1.0 - w) - h) + (x2 * x2) * pc);
    /* quarter turn q: cos = (cx, -sx, -cx, sx)[q], sin = (sx, cx, -sx, -cx)[q] */
    const uint64_t swap = 0 - (q & 1), bs = to_bits(sx), bc = to_bits(cx);
    const uint64_t cb = (bs & swap) | (bc & ~swap), sb = (bc & swap) | (bs & ~swap);
    *c = from_bits(cb ^ ((q + 1) & 2) << 62);
    *s = from_bits(sb ^ (q & 2) << 62);
}

/* Box-Muller of n pairs: zc[i], zs[i] = the normals 2p, 2p+1 of pair p0 + i. */
static inline __attribute__((always_inline)) void
box_muller(int n, const uint64_t *restrict a, const uint64_t *restrict b,
           double *restrict zc, double *restrict zs) {
    for (int i = 0; i < n; i++) {
        const double u1 = u53_to_double(a[i]) * 0x1p-53 + 0x1p-53; /* (a + 1) 2^-53, exact */
        const double u2 = u53_to_double(b[i]) * 0x1p-53;
        const double r = sqrt(-2.0 * log_u1(u1));
        double c, s;
        sincos_turn(u2, &c, &s);
        zc[i] = r * c;
        zs[i] = r * s;
    }
}

/* ---- blocks and the API -------------------------------------------------------- */

#if SAL_NOISE_ISA > 2
__attribute__((target("avx512f"))) static void block_avx512(const philox_in *in, uint64_t p0,
                                                            int n, double *zc, double *zs) {
    uint64_t a[BLOCK], b[BLOCK];
    philox_avx512(in, p0, n, a, b);
    box_muller(n, a, b, zc, zs);
}
#endif

#if SAL_NOISE_ISA > 1
__attribute__((target("avx2"))) static void block_avx2(const philox_in *in, uint64_t p0, int n,
                                                        double *zc, double *zs) {
    uint64_t a[BLOCK], b[BLOCK];
    philox_avx2(in, p0, n, a, b);
    box_muller(n, a, b, zc, zs);
}
#endif

static void block(const philox_in *in, uint64_t p0, int n, double *zc, double *zs) {
#if SAL_NOISE_ISA > 2
    if (__builtin_cpu_supports("avx512f")) {
        block_avx512(in, p0, n, zc, zs);
        return;
    }
#endif
#if SAL_NOISE_ISA > 1
    if (__builtin_cpu_supports("avx2")) {
        block_avx2(in, p0, n, zc, zs);
        return;
    }
#endif
    uint64_t a[BLOCK], b[BLOCK];
#if SAL_NOISE_ISA > 0
    philox_sse2(in, p0, n, a, b);
#else
    philox_portable(in, p0, n, a, b);
#endif
    box_muller(n, a, b, zc, zs);
}

void sal_noise_normal(uint64_t seed, uint32_t image, uint32_t sample, uint64_t first,
                      size_t count, double *out) {
    philox_in in = {.sample = sample, .image = image};
    in.k0[0] = (uint32_t)seed, in.k1[0] = (uint32_t)(seed >> 32);
    for (int r = 1; r < 10; r++)
        in.k0[r] = in.k0[r - 1] + PHILOX_W0, in.k1[r] = in.k1[r - 1] + PHILOX_W1;
    double zc[BLOCK], zs[BLOCK];
    size_t k = 0;
    if (count && (first & 1)) { /* an odd start: the sin half of its pair */
        block(&in, first >> 1, 1, zc, zs);
        out[k++] = zs[0];
    }
    while (count - k >= 2) { /* whole pairs from the even element first + k */
        const size_t left = (count - k) / 2;
        const int n = left < BLOCK ? (int)left : BLOCK;
        block(&in, (first + k) >> 1, n, zc, zs);
        for (int i = 0; i < n; i++) out[k + 2 * (size_t)i] = zc[i], out[k + 2 * (size_t)i + 1] = zs[i];
        k += 2 * (size_t)n;
    }
    if (k < count) { /* an odd end: the cos half of its pair */
        block(&in, (first + k) >> 1, 1, zc, zs);
        out[k] = zc[0];
    }
}
