/*
 * core/quadrature.c (issue 12): Integrated Gradients' nodes and weights. Here the
 * properties a quadrature rule must have, for steps 1..300, 512, 1024,
 * 2048 and 4096 (~1 s): Gauss-Legendre's weights sum to 1, its nodes are ascending in (0, 1)
 * and symmetric, and it integrates x^d exactly (to rounding) for d <= 2n - 1 (and
 * not for d = 2n); Captum's riemann_trapezoid has weights summing to (n - 1)/n and,
 * rescaled by n/(n - 1), integrates linear functions exactly; bad arguments are
 * refused with a message. tests/leaf/check_quadrature.py compares the values with
 * numpy and Captum's definitions; for that
 *     test_quadrature --dump FILE
 * writes every rule's values for steps 1..300 as lines "RULE N I ALPHA WEIGHT"
 * (RULE 0 = gausslegendre, 1 = riemann_trapezoid, C99 hex floats).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attrib.h"

static int failures;

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            if (failures++ < 20) {                                                     \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                            \
                printf(__VA_ARGS__);                                                   \
                printf("\n");                                                          \
            }                                                                          \
        }                                                                              \
    } while (0)

/* 1, 2, ..., 300, 512, 1024, 2048, 4096 */
static int next_steps(int n) { return n < 300 ? n + 1 : n < 512 ? 512 : 2 * n; }

static double a[SAL_QUADRATURE_MAX_STEPS], w[SAL_QUADRATURE_MAX_STEPS];

static int dump(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    char err[200];
    for (int rule = 0; rule < 2; rule++)
        for (int n = 1; n <= 300; n++) {
            if (sal_quadrature((sal_rule)rule, n, a, w, err, sizeof err)) continue;
            for (int i = 0; i < n; i++) fprintf(f, "%d %d %d %a %a\n", rule, n, i, a[i], w[i]);
        }
    return fclose(f) != 0;
}

/* sum_i w_i alpha_i^d, by compensated summation so the check sees the rule's own
 * error, not the sum's. */
static double moment(int n, int d) {
    double s = 0, c = 0;
    for (int i = 0; i < n; i++) {
        double t = w[i] * pow(a[i], d), y = t - c, u = s + y;
        c = (u - s) - y;
        s = u;
    }
    return s;
}

static void test_gauss_legendre(void) {
    char err[200];
    double worst_sum = 0, worst_moment = 0;
    for (int n = 1; n <= SAL_QUADRATURE_MAX_STEPS; n = next_steps(n)) {
        CHECK(!sal_quadrature(SAL_RULE_GAUSSLEGENDRE, n, a, w, err, sizeof err), "%s", err);
        double s = moment(n, 0);
        if (fabs(s - 1) > worst_sum) worst_sum = fabs(s - 1);
        CHECK(fabs(s - 1) < 1e-13, "gausslegendre n=%d: weights sum to 1%+.3g", n, s - 1);
        for (int i = 0; i < n; i++) {
            CHECK(a[i] > 0 && a[i] < 1 && w[i] > 0, "gausslegendre n=%d node %d: %g %g", n,
                  i, a[i], w[i]);
            CHECK(i == 0 || a[i] > a[i - 1], "gausslegendre n=%d: nodes not ascending at %d",
                  n, i);
            CHECK(a[i] + a[n - 1 - i] == 1 && w[i] == w[n - 1 - i],
                  "gausslegendre n=%d: not symmetric at %d", n, i);
        }
        /* x^d on [0, 1] integrates to 1/(d + 1): exact for d <= 2n - 1. Powers of
         * nodes lose digits as d grows, so only up to d = 60. */
        for (int d = 1; d <= 2 * n - 1 && d <= 60; d++) {
            double e = fabs(moment(n, d) - 1.0 / (d + 1));
            if (e > worst_moment) worst_moment = e;
            CHECK(e < 1e-13, "gausslegendre n=%d: x^%d off by %.3g", n, d, e);
        }
        if (n <= 6) { /* x^(2n) is not exact: the error is (n!)^4 / ((2n+1) ((2n)!)^2) */
            double f = 1, f2 = 1;
            for (int k = 1; k <= n; k++) f *= k;
            for (int k = 1; k <= 2 * n; k++) f2 *= k;
            double want = f * f * f * f / ((2 * n + 1) * f2 * f2);
            double got = 1.0 / (2 * n + 1) - moment(n, 2 * n);
            CHECK(fabs(got / want - 1) < 1e-6, "gausslegendre n=%d: error on x^%d %.6g, "
                  "theory %.6g", n, 2 * n, got, want);
        }
    }
    printf("gausslegendre, n = 1..300 and powers of 2 to %d: |sum w - 1| <= %.2g, |error on x^d, d <= 2n-1| "
           "<= %.2g\n",
           SAL_QUADRATURE_MAX_STEPS, worst_sum, worst_moment);
}

static void test_trapezoid(void) {
    char err[200];
    for (int n = 2; n <= SAL_QUADRATURE_MAX_STEPS; n = next_steps(n)) {
        CHECK(!sal_quadrature(SAL_RULE_RIEMANN_TRAPEZOID, n, a, w, err, sizeof err), "%s",
              err);
        CHECK(a[0] == 0 && a[n - 1] == 1, "trapezoid n=%d: ends %g %g", n, a[0], a[n - 1]);
        CHECK(fabs(moment(n, 0) - (n - 1.0) / n) < 1e-14, "trapezoid n=%d: sum %.17g", n,
              moment(n, 0));
        /* rescaled to sum 1, it is the trapezoid rule: exact on 1 and x */
        CHECK(fabs(moment(n, 1) * n / (n - 1) - 0.5) < 1e-14, "trapezoid n=%d: x gives %.17g",
              n, moment(n, 1) * n / (n - 1));
        for (int i = 1; i < n; i++)
            CHECK(fabs(a[i] - a[i - 1] - 1.0 / (n - 1)) < 1e-15, "trapezoid n=%d spacing at %d",
                  n, i);
    }
    printf("riemann_trapezoid, n = 2..300 and powers of 2 to %d: sum w = (n-1)/n, rescaled exact on x\n",
           SAL_QUADRATURE_MAX_STEPS);
}

static void test_refusals(void) {
    char err[200];
    static const struct { int rule, n; const char *want; } bad[] = {
        {SAL_RULE_GAUSSLEGENDRE, 0, "gausslegendre needs 1 to"},
        {SAL_RULE_GAUSSLEGENDRE, SAL_QUADRATURE_MAX_STEPS + 1, "got 4097"},
        {SAL_RULE_RIEMANN_TRAPEZOID, 1, "riemann_trapezoid needs 2 to"},
        {SAL_RULE_RIEMANN_TRAPEZOID, -5, "got -5"},
        {7, 10, "unknown quadrature rule 7"}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        a[0] = 42;
        err[0] = 0;
        int rc = sal_quadrature((sal_rule)bad[k].rule, bad[k].n, a, w, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[k].want) && a[0] == 42,
              "rule %d n %d: rc %d, message '%s'", bad[k].rule, bad[k].n, rc, err);
    }
    CHECK(sal_rule_name((sal_rule)2) == NULL, "rule 2 has a name");
    printf("refusals: %zu bad arguments refused with a message\n", sizeof bad / sizeof *bad);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--dump")) return dump(argv[2]);
    test_gauss_legendre();
    test_trapezoid();
    test_refusals();
    printf(failures ? "test_quadrature: %d FAILURES\n" : "test_quadrature: all passed\n",
           failures);
    return failures != 0;
}
