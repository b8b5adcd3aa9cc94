/*
 * The OpenBLAS kernel-set check (blas_note.h).
 */
#include "blas_note.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel sets without AVX: a CPU with AVX2 + FMA should never run them. */
static const char *const sse_sets[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                       "Nehalem", "Atom", "Katmai", "Coppermine",
                                       "Northwood", "Banias", "Opteron", "Barcelona",
                                       "Bobcat", "Athlon", "Opteron_SSE3", "Nano", "Unknown"};

int sp_blas_note(char *buf, size_t len) {
    const char *core = openblas_get_corename();
    if (!core) core = "unknown";
    int old = 0;
    for (size_t i = 0; i < sizeof sse_sets / sizeof *sse_sets; i++)
        if (!strcmp(core, sse_sets[i])) old = 1;
    const char *set = getenv("OPENBLAS_CORETYPE");
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char *better = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        better = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        better = "Haswell";
    if (old && better && !(set && *set)) {
        snprintf(buf, len, "OpenBLAS runs its %s kernels although this CPU has %s; "
                 "`export OPENBLAS_CORETYPE=%s` before mpirun makes salpipe's matrix "
                 "products about 2-3x faster (docs/performance.md)",
                 core, strcmp(better, "SkylakeX") ? "AVX2 and FMA" : "AVX-512", better);
        return 1;
    }
#endif
    snprintf(buf, len, "OpenBLAS kernels %s%s", core,
             set && *set ? " (OPENBLAS_CORETYPE)" : "");
    return 0;
}
