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
 * products of a layer give a few parts per thread. */
#define SAL_GEMM_PART_COLUMNS 256
/* Parts are whole multiples of this many columns (OpenBLAS's widest tile). */
#define SAL_GEMM_PART_ALIGN 16

typedef struct {
    CBLAS_TRANSPOSE ta, tb;
    int M, K, width, N;
    const real *A, *B;
    int lda, ldb, ldc;
    real beta;
    real *C;
} gemm_job;

static void gemm_part(void *arg, int i) {
    const gemm_job *j = arg;
    const int c0 = i * j->width, nc = j->N - c0 < j->width ? j->N - c0 : j->width;
    const real *B = j->tb == CblasNoTrans ? j->B + c0 : j->B + (size_t)c0 * j->ldb;
    cblas_gemm(CblasRowMajor, j->ta, j->tb, j->M, nc, j->K, 1, j->A, j->lda, B, j->ldb,
               j->beta, j->C + c0, j->ldc);
}

void R(gemm)(const sal_par *par, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
             int K, const real *A, int lda, const real *B, int ldb, real beta, real *C,
             int ldc) {
    if (M < 1 || N < 1) return;
    /* Equal parts of about SAL_GEMM_PART_COLUMNS, rounded up to the alignment. */
    int parts = (N + SAL_GEMM_PART_COLUMNS / 2) / SAL_GEMM_PART_COLUMNS;
    if (parts < 1) parts = 1;
    int width = (N + parts - 1) / parts;
    width = (width + SAL_GEMM_PART_ALIGN - 1) / SAL_GEMM_PART_ALIGN * SAL_GEMM_PART_ALIGN;
    parts = (N + width - 1) / width;
    gemm_job j = {ta, tb, M, K, width, N, A, B, lda, ldb, ldc, beta, C};
    if (par && par->pfor && parts > 1)
        par->pfor(par->pool, parts, gemm_part, &j);
    else
        for (int i = 0; i < parts; i++) gemm_part(&j, i);
}
