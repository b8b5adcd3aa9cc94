/*
 * Crash tests of the output file: after a writer dies, the file must open (plain
 * HDF5, h5py, xarray), every image with status 1 must hold exactly its maps, and
 * resuming must complete the file.
 *
 *   test_output_crash kill        DIR PYTHON CHECK_PY [TRIALS]  SIGKILL at random moments
 *   test_output_crash crashpoints DIR PYTHON CHECK_PY   stopped before each single write
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "output_check.h"

/* ---- kill -9 ------------------------------------------------------------------ */

static void kill_trial(const char *dir, const char *py, const char *script, int trial,
                       int *mid) {
    static const int every[3] = {1, 4, 16};
    int level = trial % 2 ? 0 : 4, n = 600, flush_every = every[trial % 3];
    fixture f;
    fixture_init(&f, n, 3, 32, 32, trial % 5 == 4 ? SAL_F64 : SAL_F32, level);
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/kill_%d.h5", dir, trial);
    unlink(path);
    int pfd[2];
    if (pipe(pfd) < 0) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        /* Some trials close and reopen the file at every flush (the metadata
         * cache limit path). */
        if (trial % 4 == 3) setenv("SALPIPE_OUTPUT_MDC_LIMIT", "1", 1);
        sp_output *o;
        int8_t *st = malloc((size_t)n);
        if (sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err)) _exit(3);
        /* Past the last image it starts over: rewriting is part of the test. */
        for (long k = 0;; k++) {
            if (write_image(o, &f.lay, (int)(k % n), err)) _exit(4);
            if ((k + 1) % flush_every == 0) {
                if (sp_output_flush(o, err, sizeof err)) _exit(5);
                int done = k + 1 < n ? (int)(k + 1) : n;
                if (write(pfd[1], &done, sizeof done) != sizeof done) _exit(6);
            }
        }
    }
    close(pfd[1]);
    unsigned seed = 1000u + (unsigned)trial;
    int ms = 5 + (int)(rand_r(&seed) % 400);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int ws, flushed = 0, v;
    waitpid(pid, &ws, 0);
    while (read(pfd[0], &v, sizeof v) == sizeof v) flushed = v;
    close(pfd[0]);
    CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "trial %d: child ended with %d", trial, ws);

    int unreadable = 0, ndone = access(path, F_OK) == 0 ? verify_file(path, &f.lay, &unreadable) : 0;
    CHECK(ndone >= flushed, "trial %d: %d images done in the file, %d were flushed", trial,
          ndone, flushed);
    if (unreadable) (*mid)++;
    if (trial < 2 && flushed > 0) {
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "'%s' '%s' readable '%s'", py, script, path);
        CHECK(system(cmd) == 0, "trial %d: %s", trial, cmd);
    }
    /* Resume: done images are kept, the rest written, and the file is complete. */
    sp_output *o;
    int8_t *st = malloc((size_t)n);
    int rc = sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err);
    CHECK(rc == 0, "trial %d: resume: %s", trial, err);
    if (rc == 0) {
        int kept = 0;
        for (int i = 0; i < n; i++) {
            if (st[i] == 1) kept++;
            else CHECK(write_image(o, &f.lay, i, err) == 0, "trial %d: %s", trial, err);
            if (i < flushed) CHECK(st[i] == 1, "trial %d: flushed image %d lost", trial, i);
        }
        CHECK(sp_output_close(o, err, sizeof err) == 0, "trial %d: %s", trial, err);
        int all = verify_file(path, &f.lay, &unreadable);
        CHECK(all == n && unreadable == 0, "trial %d: %d of %d done after resume", trial, all, n);
        printf("  trial %2d: flush every %2d, level %d, %s%s, killed at %3d ms: %3d flushed, "
               "%3d done on disk, %d unreadable, resumed to %d/%d\n",
               trial, flush_every, level, f.lay.precision == SAL_F64 ? "f64" : "f32",
               trial % 4 == 3 ? ", reopening" : "", ms,
               flushed, ndone, unreadable, all, n);
        (void)kept;
    }
    free(st);
    unlink(path);
    fixture_free(&f);
}

/* ---- crash points ------------------------------------------------------------ */

/* HDF5's sec2 driver writes with pwrite; this one stands in for libc's (the
 * executable's definition takes precedence) and, when armed, ends the process
 * right before the write number crash_at, as a SIGKILL at that moment would. */
static volatile long crash_at = -1, writes_seen;

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    if (crash_at >= 0 && writes_seen++ == crash_at) _exit(99);
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

/* The file ends with a journal (journal.c's trailer): a flush was cut short after
 * its journal was written, and opening the file to resume will replay it. */
static int journal_pending(const char *path) {
    char t[16] = "";
    FILE *f = fopen(path, "rb");
    int yes = f && fseek(f, -48, SEEK_END) == 0 && fread(t, 1, 16, f) == 16 &&
              memcmp(t, "salpipe journal", 16) == 0;
    if (f) fclose(f);
    return yes;
}

/* Resumes (and completes) the file at path; the file must end up complete. */
static void resume_and_finish(const char *path, const fixture *f, const char *what, long at) {
    char err[1024];
    int8_t st[256];
    sp_output *o;
    int unreadable = 0, n = f->lay.nimages;
    int rc = sp_output_open(path, &f->lay, 0, &o, st, err, sizeof err);
    CHECK(rc == 0, "%s %ld: resume: %s", what, at, err);
    if (rc) return;
    for (int i = 0; i < n; i++)
        if (st[i] != 1) CHECK(write_image(o, &f->lay, i, err) == 0, "%s", err);
    CHECK(sp_output_close(o, err, sizeof err) == 0, "%s", err);
    int all = verify_file(path, &f->lay, &unreadable);
    CHECK(all == n && unreadable == 0, "%s %ld: %d of %d after resume", what, at, all, n);
}

/* A kill while resuming replays the journal: stop that replay before each of its
 * writes too; the next resume must still complete the file. */
static int replay_points(const char *path, const fixture *f, long at, int flushed) {
    char copy[1100], cmd[3000], err[1024];
    snprintf(copy, sizeof copy, "%s.replay", path);
    int points = 0;
    for (long k = 0;; k++, points++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, copy);
        if (system(cmd) != 0) break;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int8_t st[256];
            sp_output *o;
            writes_seen = 0;
            crash_at = k;
            int rc = sp_output_open(copy, &f->lay, 0, &o, st, err, sizeof err);
            _exit(rc ? 4 : 0);
        }
        int ws, unreadable;
        waitpid(pid, &ws, 0);
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        CHECK(code == 99 || code == 0, "replay %ld/%ld: child exit %d", at, k, code);
        CHECK(verify_file(copy, &f->lay, &unreadable) >= flushed, "replay %ld/%ld: file", at, k);
        resume_and_finish(copy, f, "replay point", at * 1000 + k);
        if (code != 99) break;
    }
    unlink(copy);
    return points;
}

/* A base file has images [0, done) done and image `done` failed. A child resumes
 * it, writes images [done, fail), fails image `fail`, flushes, writes 8 more and
 * closes. It is stopped before its write number first_at, first_at + 1, ... (the
 * writes before first_at are maps going to new space), until it gets through; each
 * time the parent checks the file as a reader sees it (opens, done images exact)
 * and that resuming completes it. */
typedef struct {
    const char *name;
    int n, done, fail;
    long first_at;
} crash_case;

static void test_crash_points(const char *dir, const char *py, const char *script,
                              const crash_case *c) {
    fixture f;
    fixture_init(&f, c->n, 3, 16, 16, SAL_F32, 4);
    char base[1024], path[1024], err[1024], cmd[3000];
    snprintf(base, sizeof base, "%s/crash_base.h5", dir);
    snprintf(path, sizeof path, "%s/crash.h5", dir);
    int8_t st[256];
    sp_output *o;
    if (sp_output_open(base, &f.lay, 1, &o, st, err, sizeof err)) {
        CHECK(0, "%s", err);
        return;
    }
    for (int i = 0; i < c->done; i++) write_image(o, &f.lay, i, err);
    sp_output_fail_image(o, c->done, FAIL_MESSAGE, err, sizeof err);
    CHECK(sp_output_close(o, err, sizeof err) == 0, "%s", err);
    int points = 0, unreadable_total = 0, journals = 0, replays = 0;
    for (long at = c->first_at;; at++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", base, path);
        if (system(cmd) != 0) break;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            if (sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err)) _exit(3);
            writes_seen = 0;
            crash_at = at;
            int rc = 0;
            for (int i = c->done; i < c->fail; i++) rc |= write_image(o, &f.lay, i, err);
            rc |= sp_output_fail_image(o, c->fail, FAIL_MESSAGE, err, sizeof err);
            rc |= sp_output_flush(o, err, sizeof err);
            for (int i = c->fail + 1; i < c->fail + 9; i++) rc |= write_image(o, &f.lay, i, err);
            rc |= sp_output_close(o, err, sizeof err);
            _exit(rc ? 4 : 0);
        }
        int ws;
        waitpid(pid, &ws, 0);
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        CHECK(code == 99 || code == 0, "crash point %ld: child exit %d", at, code);
        int unreadable = 0, ndone = verify_file(path, &f.lay, &unreadable);
        CHECK(ndone >= c->done, "crash point %ld: %d images done (%d were flushed)", at, ndone,
              c->done);
        unreadable_total += unreadable;
        if (at % 8 == 0 || unreadable) {
            snprintf(cmd, sizeof cmd, "'%s' '%s' readable '%s' > /dev/null", py, script, path);
            CHECK(system(cmd) == 0, "crash point %ld: h5py/xarray cannot read the file", at);
        }
        if (journal_pending(path)) {
            journals++;
            replays += replay_points(path, &f, at, c->done);
        }
        resume_and_finish(path, &f, "crash point", at);
        points++;
        if (code == 0) break;
    }
    CHECK(points > 5, "%s: the pwrite stand-in never stopped the writer", c->name);
    printf("crash points (%s): %d write points tried (%d with a journal to replay, whose "
           "replay was cut at %d points), %d not-done images unreadable in all\n",
           c->name, points, journals, replays, unreadable_total);
    fixture_free(&f);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_output_crash kill|crashpoints DIR PYTHON CHECK_PY [TRIALS]\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2];
    const char *py = argc > 3 ? argv[3] : "python3", *script = argc > 4 ? argv[4] : "check_output.py";
    mkdir_p(dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (strcmp(mode, "kill") == 0) {
        int trials = argc > 5 ? atoi(argv[5]) : 10, mid = 0;
        for (int t = 0; t < trials; t++) kill_trial(dir, py, script, t, &mid);
        printf("kill: %d of %d trials left maps of not-done images unreadable\n", mid, trials);
    } else if (strcmp(mode, "crashpoints") == 0) {
        /* A small chunk index whose root splits; a deeper one whose leaves split. */
        static const crash_case cases[2] = {{"root split", 40, 10, 18, 0},
                                            {"leaf splits", 200, 130, 162, 4 * 32 - 2}};
        for (int k = 0; k < 2; k++) test_crash_points(dir, py, script, &cases[k]);
    } else {
        fprintf(stderr, "test_output_crash: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("test_output_crash %s: %s (%d failures)\n", mode, failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}

