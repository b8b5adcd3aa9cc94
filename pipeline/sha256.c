/*
 * SHA-256 (FIPS 180-4, section 6.2) of a whole file, to record which model made an
 * output file and to refuse resuming it with another one. Streams the file in
 * 1 MiB reads; no dependency beyond libc.
 *
 * Rank 0 hashes the model before any rank can start (a 244 MB AlexNet file), so on
 * x86-64 CPUs with the SHA extensions the compression function runs on them: 0.12 s
 * instead of 0.8 s for that file. The portable C function is the reference; the test
 * (tests/test_output.c) runs both against FIPS 180-4 vectors and Python's hashlib.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "output.h"

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;        /* message length so far                  */
    unsigned char blk[64];  /* pending partial block                  */
    size_t nblk;
} sha256;

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
             hh = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K[t] + w[t];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

#ifdef SHA_X86
/* The same compression function on the SHA extensions. The state lives in two
 * registers as the instructions want it: (A,B,E,F) and (C,D,G,H), A and C in the top
 * lane. SHA256RNDS2 does two rounds, so each group of four message words takes two;
 * after two rounds the old (A,B,E,F) is the new (C,D,G,H), which is why the two
 * registers swap roles inside a group. SHA256MSG1/MSG2 extend the schedule: for words
 * t..t+3, MSG1 adds sigma0(W[t-15]) to W[t-16], the ALIGNR adds W[t-7], and MSG2 adds
 * sigma1(W[t-2]), using its own first results for the last two lanes. */
__attribute__((target("sha,sse4.1,ssse3")))
static void sha256_blocks_x86(uint32_t h[8], const unsigned char *p, size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0xB1); /* B A D C */
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1B);
    __m128i abef = _mm_alignr_epi8(t, efgh, 8);      /* F E B A */
    __m128i cdgh = _mm_blend_epi16(efgh, t, 0xF0);   /* H G D C */
    for (; nblocks--; p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, m[4];
        for (int g = 0; g < 16; g++) {
            __m128i *w = &m[g & 3];
            if (g < 4) {
                *w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            } else {
                const __m128i prev = m[(g + 3) & 3], prev2 = m[(g + 2) & 3];
                __m128i x = _mm_sha256msg1_epu32(*w, m[(g + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(prev, prev2, 4));
                *w = _mm_sha256msg2_epu32(x, prev);
            }
            __m128i wk = _mm_add_epi32(*w, _mm_loadu_si128((const __m128i *)(K + 4 * g)));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    t = _mm_shuffle_epi32(abef, 0x1B);                /* A B E F */
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);             /* G H C D */
    _mm_storeu_si128((__m128i *)h, _mm_blend_epi16(t, cdgh, 0xF0));
    _mm_storeu_si128((__m128i *)(h + 4), _mm_alignr_epi8(cdgh, t, 8));
}

static int x86_has_sha(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;
}
#endif

/* -1: not decided yet; 0: portable C; 1: SHA extensions. */
static _Atomic int use_hw = -1;

int sp_sha256_hardware(int allow) {
#ifdef SHA_X86
    use_hw = allow && x86_has_sha();
#else
    (void)allow;
    use_hw = 0;
#endif
    return use_hw;
}

static void sha256_blocks(uint32_t h[8], const unsigned char *p, size_t nblocks) {
    if (use_hw < 0) sp_sha256_hardware(1);
#ifdef SHA_X86
    if (use_hw) {
        sha256_blocks_x86(h, p, nblocks);
        return;
    }
#endif
    for (; nblocks--; p += 64) sha256_block(h, p);
}

static void sha256_init(sha256 *s) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->nbytes = 0;
    s->nblk = 0;
}

static void sha256_update(sha256 *s, const unsigned char *p, size_t n) {
    s->nbytes += n;
    if (s->nblk) {
        size_t k = 64 - s->nblk < n ? 64 - s->nblk : n;
        memcpy(s->blk + s->nblk, p, k);
        s->nblk += k;
        p += k;
        n -= k;
        if (s->nblk < 64) return;
        sha256_blocks(s->h, s->blk, 1);
        s->nblk = 0;
    }
    sha256_blocks(s->h, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
    memcpy(s->blk, p, n);
    s->nblk = n;
}

/* Padding (5.1.1): a 1 bit, zeros to 56 mod 64 bytes, the length in bits. */
static void sha256_final(sha256 *s, char hex[65]) {
    uint64_t bits = s->nbytes * 8;
    unsigned char pad[72] = {0x80};
    size_t npad = (s->nblk < 56 ? 56 : 120) - s->nblk;
    for (int i = 0; i < 8; i++) pad[npad + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, pad, npad + 8);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", (unsigned)s->h[i]);
    hex[64] = '\0';
}

int sp_sha256_file(const char *path, char hex[65], char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open to compute its SHA-256: %s", path,
                 strerror(errno));
        return -1;
    }
    enum { BUF = 1 << 20 };
    unsigned char *buf = malloc(BUF);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory computing its SHA-256", path);
        return -1;
    }
    sha256 s;
    sha256_init(&s);
    size_t n;
    while ((n = fread(buf, 1, BUF, f)) > 0) sha256_update(&s, buf, n);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    free(buf);
    if (bad) {
        snprintf(err, errlen, "%s: read error while computing its SHA-256: %s", path,
                 strerror(e));
        return -1;
    }
    sha256_final(&s, hex);
    return 0;
}
