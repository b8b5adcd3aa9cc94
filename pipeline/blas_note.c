/*
 * The OpenBLAS kernel-set choice (blas_note.h).
 */
#define _GNU_SOURCE
#include "blas_note.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Kernel sets without AVX. */
static const char *const sse_sets[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                       "Nehalem", "Atom", "Katmai", "Coppermine",
                                       "Northwood", "Banias", "Opteron", "Barcelona",
                                       "Bobcat", "Athlon", "Opteron_SSE3", "Nano", "Unknown"};

static const char *current_set(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

static int sse_era(const char *core) {
    for (size_t i = 0; i < sizeof sse_sets / sizeof *sse_sets; i++)
        if (!strcasecmp(core, sse_sets[i])) return 1;
    return 0;
}

/* The best kernel set the CPU's features allow (gcc's checks include the operating
 * system's support for the wider registers), or NULL. */
static const char *feature_set(const char **what) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd")) {
        *what = "AVX-512";
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *what = "AVX2 and FMA";
        return "Haswell";
    }
    if (__builtin_cpu_supports("avx")) {
        *what = "AVX";
        return "Sandybridge";
    }
#endif
    (void)what;
    return NULL;
}

static int auto_allowed(void) {
    const char *a = getenv("SALPIPE_BLAS_AUTO");
    return !(a && !strcmp(a, "0"));
}

void sp_blas_choose(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || !auto_allowed()) return;
    const char *what, *better = feature_set(&what);
    const char *core = current_set();
    if (!better || !sse_era(core)) return;
    if (setenv("SALPIPE_BLAS_CHOSEN", core, 1) || setenv("OPENBLAS_CORETYPE", better, 1))
        return;
    /* Exec the file itself, not /proc/self/exe: the process's name (comm, what ps,
     * top and pkill show) comes from the path's last component. */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0 && (size_t)len < sizeof self - 1) {
        self[len] = 0;
        execv(self, argv);
    }
    /* No /proc, or exec refused: go on with OpenBLAS's choice and say so. */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("SALPIPE_BLAS_CHOSEN");
}

int sp_blas_note(char *buf, size_t len) {
    const char *core = current_set();
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *chosen = getenv("SALPIPE_BLAS_CHOSEN");
    if (set && chosen) {
        snprintf(buf, len, "OpenBLAS kernels %s, chosen by salpipe: OpenBLAS's own choice "
                 "for this CPU was %s (SSE3 only); SALPIPE_BLAS_AUTO=0 keeps that, "
                 "docs/running.md", core, chosen);
        return 1;
    }
    const char *what, *better = feature_set(&what);
    if (!set && better && sse_era(core)) {
        snprintf(buf, len, "OpenBLAS runs its %s kernels although this CPU has %s "
                 "(SALPIPE_BLAS_AUTO=0); `export OPENBLAS_CORETYPE=%s` makes salpipe's "
                 "matrix products 3-5x faster (docs/running.md)", core, what, better);
        return 1;
    }
    snprintf(buf, len, "OpenBLAS kernels %s%s", core, set ? " (OPENBLAS_CORETYPE)" : "");
    return 0;
}
