/*
 * sp_team (pipeline/team.h), the threads that decode and compress a batch when
 * `[run] threads` > 1: every item of every loop runs exactly once, on a thread index
 * below the team's size; the helpers really take items; loops run back to back
 * (as two per batch do) without losing or repeating one; a NULL team and a team of
 * one run the loop on the caller; sp_team_for, the loop lent to the engine for its
 * GEMM parts, runs every item once too.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "team.h"

static int failures;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                                \
            printf("\n");                                                       \
        }                                                                       \
    } while (0)

enum { MAX_ITEMS = 1000, MAX_THREADS = 8 };

typedef struct {
    atomic_int hits[MAX_ITEMS];
    atomic_int by_thread[MAX_THREADS];
    atomic_int bad_thread;
    long nap_ns;            /* per item, so that every thread gets some */
} loop_state;

/* Naps first, counts after: a loop that returned before its helpers finished would
 * show their items as not run. */
static void count_item(void *arg, int i, int thread) {
    loop_state *s = arg;
    if (s->nap_ns) {
        struct timespec ts = {0, s->nap_ns};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&s->hits[i], 1);
    if (thread < 0 || thread >= MAX_THREADS) atomic_fetch_add(&s->bad_thread, 1);
    else atomic_fetch_add(&s->by_thread[thread], 1);
}

static void reset(loop_state *s, long nap_ns) {
    for (int i = 0; i < MAX_ITEMS; i++) atomic_init(&s->hits[i], 0);
    for (int t = 0; t < MAX_THREADS; t++) atomic_init(&s->by_thread[t], 0);
    atomic_init(&s->bad_thread, 0);
    s->nap_ns = nap_ns;
}

/* Runs one loop of n items on t and checks that each ran once on a valid thread.
 * Returns how many distinct threads took items. */
static int run_and_check(sp_team *t, int n, long nap_ns, const char *what) {
    static loop_state s;
    reset(&s, nap_ns);
    sp_team_run(t, n, count_item, &s);
    int wrong = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (atomic_load(&s.hits[i]) != 1) {
            wrong++;
            if (first < 0) first = i;
        }
    for (int i = n; i < MAX_ITEMS; i++) wrong += atomic_load(&s.hits[i]) != 0;
    CHECK(wrong == 0, "%s, n=%d: %d items not run exactly once (first: %d, run %d times)",
          what, n, wrong, first, first >= 0 ? atomic_load(&s.hits[first]) : 0);
    CHECK(atomic_load(&s.bad_thread) == 0, "%s: thread index out of range", what);
    int used = 0, size = sp_team_size(t);
    for (int k = 0; k < MAX_THREADS; k++) {
        int c = atomic_load(&s.by_thread[k]);
        used += c > 0;
        CHECK(c == 0 || k < size, "%s: thread %d took %d items, team size %d", what, k, c,
              size);
    }
    return used;
}

/* sp_team_for's body: no thread index. */
static void count_plain(void *arg, int i) { atomic_fetch_add(&((loop_state *)arg)->hits[i], 1); }

static void check_plain(sp_team *t, int n, const char *what) {
    static loop_state s;
    reset(&s, 0);
    sp_team_for(t, n, count_plain, &s);
    int wrong = 0;
    for (int i = 0; i < MAX_ITEMS; i++) wrong += atomic_load(&s.hits[i]) != (i < n);
    CHECK(wrong == 0, "%s, sp_team_for n=%d: %d items not run exactly once", what, n, wrong);
}

int main(void) {
    printf("== NULL team and team of one: the caller runs every item\n");
    CHECK(sp_team_size(NULL) == 1, "sp_team_size(NULL) = %d", sp_team_size(NULL));
    run_and_check(NULL, 50, 0, "NULL team");
    sp_team_free(NULL);
    sp_team *one = sp_team_init(1);
    CHECK(one && sp_team_size(one) == 1, "team of 1 has size %d", one ? sp_team_size(one) : -1);
    CHECK(run_and_check(one, 50, 0, "team of 1") <= 1, "team of 1 used more than one thread");
    check_plain(one, 50, "team of 1");
    sp_team_free(one);

    for (int threads = 2; threads <= 4; threads++) {
        char what[64];
        snprintf(what, sizeof what, "team of %d", threads);
        printf("== %s\n", what);
        sp_team *t = sp_team_init(threads);
        CHECK(t != NULL, "%s: init failed", what);
        if (!t) continue;
        CHECK(sp_team_size(t) == threads, "%s: size %d", what, sp_team_size(t));
        const int sizes[] = {0, 1, 2, 3, 7, 64, MAX_ITEMS};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            run_and_check(t, sizes[k], 0, what);
        /* Items that take a while (0.2 ms each): every thread must have taken some. */
        int used = run_and_check(t, 200, 200000, what);
        CHECK(used == threads, "%s: %d of %d threads took items of a 200-item loop", what,
              used, threads);
        printf("    200 slow items: %d threads took items\n", used);
        /* Back-to-back small loops, as compute_batch runs them (decode, then compress). */
        for (int rep = 0; rep < 2000; rep++) run_and_check(t, 1 + rep % 5, 0, what);
        /* The engine's GEMM parts: many short loops through sp_team_for. */
        for (int rep = 0; rep < 2000; rep++) check_plain(t, rep % 40, what);
        sp_team_free(t);
    }

    if (failures) {
        printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    printf("all team checks passed\n");
    return 0;
}
