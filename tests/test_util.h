/*
 * What the C test programs share: the checks that end a case, allocation that ends
 * the program on failure, fixture-file helpers and a seeded generator. Header-only
 * (static inline), so each test program stays one file plus the code it tests.
 * Define TEST_NAME before including it: messages start with it.
 */
#ifndef SAL_TEST_UTIL_H
#define SAL_TEST_UTIL_H
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_NAME
#error "define TEST_NAME (the program's name, for its messages) before test_util.h"
#endif

/* In a case function returning int: a failed condition prints where and why, and the
 * case returns 1. */
#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

/* A fixture could not be made: not a test failure, the program ends (exit 2). */
static inline void die(const char *what, const char *path) {
    fprintf(stderr, TEST_NAME ": %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, TEST_NAME ": out of memory\n");
        exit(2);
    }
    return p;
}

/* Uniform in [lo, hi) from splitmix64 on *state: the same numbers on every machine. */
static inline double uniform_from(uint64_t *state, double lo, double hi) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53;
}

#endif
