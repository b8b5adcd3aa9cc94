/*
 * The engine's matrix products, cut at fixed column boundaries so that results do
 * not depend on the number of threads (docs/reliability.md, "Bit-identical whatever
 * the thread count").
 *
 * OpenBLAS's own threading splits a product among however many threads it has, and
 * where a thread's share begins decides which of its micro-kernels (the full tile or
 * an edge variant, which may sum in another order) computes an element: with 2 BLAS
 * threads most AlexNet activations differed in the last bit from 1 thread. Here a
 * product C (M, N) is cut into parts of whole columns whose boundaries depend on N
 * only; each part is one single-threaded BLAS call, and the parts run on the
 * caller's parallel loop (sal_engine_set_parallel) or one after another. Every
 * element is then computed by the same call with the same operands whatever the
 * number of threads.
 */
#include "layers.h"

/* Columns per part, about: wide enough that repacking A once per part costs little
 * (about 1/(2*width) of the part's flops in copies), narrow enough that the wide
 * products of a layer give a few parts per thread. 512 rather than 256: the engine
 * alone took 4-7 % less CPU time on VGG16 and AlexNet (bench_core, one thread), about
 * the same with two (docs/performance.md, "Fewer repacks of the weights"). */
#ifndef SAL_GEMM_PART_COLUMNS
#define SAL_GEMM_PART_COLUMNS 512
#endif
/* The number of parts, when more than one, is a multiple of this, so that 2 or 4
 * threads get equal shares of every product (fixed whatever the thread count). */
#define SAL_GEMM_PART_MULTIPLE 4
/* Part boundaries are multiples of this many columns (OpenBLAS's widest tile). */
#define SAL_GEMM_PART_ALIGN 16

typedef struct {
    CBLAS_TRANSPOSE ta, tb;
    int M, K, parts, N;
    const real *A, *B;
    int lda, ldb, ldc;
    real beta;
    real *C;
} gemm_job;

/* First column of part i of `parts`: i*N/parts rounded down to the alignment. */
static int part_start(const gemm_job *j, int i) {
    if (i >= j->parts) return j->N;
    long long c = (long long)i * j->N / j->parts;
    return (int)(c / SAL_GEMM_PART_ALIGN * SAL_GEMM_PART_ALIGN);
}

static void gemm_part(void *arg, int i) {
    const gemm_job *j = arg;
    const int c0 = part_start(j, i), nc = part_start(j, i + 1) - c0;
    if (nc < 1) return;
    const real *B = j->tb == CblasNoTrans ? j->B + c0 : j->B + (size_t)c0 * j->ldb;
    cblas_gemm(CblasRowMajor, j->ta, j->tb, j->M, nc, j->K, 1, j->A, j->lda, B, j->ldb,
               j->beta, j->C + c0, j->ldc);
}

void R(gemm)(const sal_par *par, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
             int K, const real *A, int lda, const real *B, int ldb, real beta, real *C,
             int ldc) {
    if (M < 1 || N < 1) return;
    int parts = (N + SAL_GEMM_PART_COLUMNS / 2) / SAL_GEMM_PART_COLUMNS;
    if (parts > 1)
        parts = (parts + SAL_GEMM_PART_MULTIPLE - 1) / SAL_GEMM_PART_MULTIPLE *
                SAL_GEMM_PART_MULTIPLE;
    else
        parts = 1;
    gemm_job j = {ta, tb, M, K, parts, N, A, B, lda, ldb, ldc, beta, C};
    if (par && par->pfor && parts > 1)
        par->pfor(par->pool, parts, gemm_part, &j);
    else
        for (int i = 0; i < parts; i++) gemm_part(&j, i);
}
