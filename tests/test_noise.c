/*
 * core/noise.c (issue 12): Philox4x32-10 against Random123's known answers, the
 * normals' split invariance, and statistics of 10^6 draws that a broken generator
 * fails. ~0.5 s. With --expect-fail (the mutants of tests/leaf.cmake) it passes only
 * when some statistical check fails, so each mutant shows the checks can fail.
 * The bit-for-bit comparison with an independent Python generator is
 * tests/leaf/noise_ref.py.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"

static int failures;

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                \
            printf(__VA_ARGS__);                                                       \
            printf("\n");                                                              \
        }                                                                              \
    } while (0)

/* Random123's kat_vectors for philox4x32 with 10 rounds (ctr, key, expected). */
static void test_known_answers(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        sal_philox4x32_10(kat[t], kat[t] + 4, out);
        for (int k = 0; k < 4; k++)
            CHECK(out[k] == kat[t][6 + k], "philox kat %d word %d: %08x, expected %08x", t,
                  k, out[k], kat[t][6 + k]);
    }
    printf("philox4x32-10 known answers: 3 vectors checked\n");
}

/* Any split of a range into calls gives the same numbers, also at odd starts and
 * near 2^32 and 2^40 pairs (the counter's high word). */
static void test_split(void) {
    enum { N = 1001 };
    static const uint64_t bases[] = {0, 1, 0xFFFFFFFFull * 2 - 6, (1ull << 41) + 5};
    double whole[N], part[N];
    unsigned rng = 12345;
    for (size_t b = 0; b < sizeof bases / sizeof *bases; b++) {
        sal_noise_normal(42, 7, 3, bases[b], N, whole);
        for (int trial = 0; trial < 50; trial++) {
            memset(part, 0, sizeof part);
            for (size_t at = 0; at < N;) {
                rng = rng * 1103515245u + 12345u;
                size_t len = 1 + (rng >> 16) % (trial < 25 ? 4 : 200);
                if (len > N - at) len = N - at;
                sal_noise_normal(42, 7, 3, bases[b] + at, len, part + at);
                at += len;
            }
            CHECK(!memcmp(whole, part, sizeof whole), "split %d of base %llu differs",
                  trial, (unsigned long long)bases[b]);
        }
    }
    sal_noise_normal(42, 7, 3, 0, 0, NULL); /* count 0 touches nothing */
    printf("split invariance: 4 bases x 50 random splits identical\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double corr(const double *a, const double *b, size_t n) {
    double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        sa += a[i], sb += b[i], sab += a[i] * b[i], saa += a[i] * a[i], sbb += b[i] * b[i];
    }
    double ma = sa / n, mb = sb / n;
    return (sab / n - ma * mb) / sqrt((saa / n - ma * ma) * (sbb / n - mb * mb));
}

/* Statistics of 10^6 draws; returns the number of checks failed. Bounds are ~5
 * standard errors (a correct generator fails one with probability < 1e-5; the
 * draws are fixed, so the outcome is too). */
static int test_statistics(void) {
    enum { N = 1000000 };
    double *z = malloc(sizeof(double) * N), *o = malloc(sizeof(double) * N);
    if (!z || !o) {
        printf("FAIL: out of memory\n");
        exit(1);
    }
    int bad = 0;
    const double se = 1.0 / sqrt((double)N);
    sal_noise_normal(20261201, 3, 17, 0, N, z);

    double s1 = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < N; i++) s1 += z[i], s2 += z[i] * z[i], s4 += z[i] * z[i] * z[i] * z[i];
    double mean = s1 / N, var = s2 / N - mean * mean, kurt = s4 / N;
    printf("10^6 draws: mean %.5f (bound %.4f), variance %.5f (bound 1 +- %.4f), "
           "E[z^4] %.4f (bound 3 +- %.4f)\n",
           mean, 5 * se, var, 5 * sqrt(2.0) * se, kurt, 5 * sqrt(96.0) * se);
    bad += fabs(mean) > 5 * se;
    bad += fabs(var - 1) > 5 * sqrt(2.0) * se;
    bad += fabs(kurt - 3) > 5 * sqrt(96.0) * se; /* Var z^4 = 105 - 9 = 96 */

    /* Even and odd elements (cos and sin of a pair) separately: a pair half that
     * is off shows in its own mean. */
    double se_half = 1.0 / sqrt(N / 2.0), m_even = 0, m_odd = 0;
    for (size_t i = 0; i < N; i += 2) m_even += z[i], m_odd += z[i + 1];
    m_even /= N / 2, m_odd /= N / 2;
    printf("  mean of even elements %.5f, odd %.5f (bound %.4f)\n", m_even, m_odd,
           5 * se_half);
    bad += fabs(m_even) > 5 * se_half || fabs(m_odd) > 5 * se_half;

    /* Kolmogorov-Smirnov against the standard normal: D sqrt(N) > 1.95 has
     * probability 0.001 for a correct generator. */
    memcpy(o, z, sizeof(double) * N);
    qsort(o, N, sizeof(double), cmp_double);
    double D = 0;
    for (size_t i = 0; i < N; i++) {
        double F = 0.5 * erfc(-o[i] / sqrt(2.0));
        double d1 = F - (double)i / N, d2 = (double)(i + 1) / N - F;
        if (d1 > D) D = d1;
        if (d2 > D) D = d2;
    }
    printf("  Kolmogorov-Smirnov D sqrt(N) = %.3f (bound 1.95)\n", D * sqrt((double)N));
    bad += D * sqrt((double)N) > 1.95;

    /* Neighbours within a stream: lag 1 (inside a pair or across pairs), lag 2. */
    double r1 = corr(z, z + 1, N - 1), r2 = corr(z, z + 2, N - 2);
    printf("  correlation lag 1 %.5f, lag 2 %.5f (bound %.4f)\n", r1, r2, 5 * se);
    bad += fabs(r1) > 5 * se || fabs(r2) > 5 * se;
    /* Squares of the two normals of a pair: independent normals have uncorrelated
     * squares; a shared radius without the angle's independence would not. */
    for (size_t i = 0; i + 1 < N; i += 2) o[i / 2] = z[i] * z[i], o[N / 2 + i / 2] = z[i + 1] * z[i + 1];
    double rsq = corr(o, o + N / 2, N / 2);
    printf("  correlation of a pair's squares %.5f (bound %.4f)\n", rsq, 5 * se_half);
    bad += fabs(rsq) > 5 * se_half;

    /* Between keys: the same elements under another sample, image, seed. */
    static const struct { uint64_t seed; uint32_t image, sample; const char *what; } keys[] = {
        {20261201, 3, 18, "sample + 1"}, {20261201, 4, 17, "image + 1"},
        {20261202, 3, 17, "seed + 1"},   {20261201 + (1ull << 32), 3, 17, "seed + 2^32"},
        {20261201, 17, 3, "image and sample swapped"}};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        sal_noise_normal(keys[k].seed, keys[k].image, keys[k].sample, 0, N, o);
        double r = corr(z, o, N);
        printf("  correlation with %-24s %.5f (bound %.4f)\n", keys[k].what, r, 5 * se);
        bad += fabs(r) > 5 * se || !memcmp(z, o, sizeof(double) * N);
    }
    free(z);
    free(o);
    return bad;
}

int main(int argc, char **argv) {
    int expect_fail = argc > 1 && !strcmp(argv[1], "--expect-fail");
    if (!expect_fail) {
        test_known_answers();
        test_split();
    }
    int bad = test_statistics();
    if (expect_fail) {
        printf("%d statistical checks failed: %s\n", bad,
               bad ? "the mutant is caught" : "FAIL: the mutant passes");
        return bad ? 0 : 1;
    }
    CHECK(bad == 0, "%d statistical checks failed", bad);
    printf(failures ? "test_noise: %d FAILURES\n" : "test_noise: all passed\n", failures);
    return failures != 0;
}
