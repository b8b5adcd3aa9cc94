/*
 * OpenBLAS's kernel set. Debian's OpenBLAS picks its kernels from the CPU's model
 * number, once, when the library loads; on a CPU its tables do not know (some virtual
 * machines report a generic "Xeon Processor", and OpenBLAS 0.3.21 does not know
 * Emerald Rapids) it falls back to Prescott's SSE3 kernels, and every GEMM runs 3-5x
 * slower than the CPU allows (docs/performance.md).
 *
 * salpipe corrects that one case: when OPENBLAS_CORETYPE is unset, OpenBLAS runs a
 * kernel set without AVX and the CPU (with the operating system's support) has AVX,
 * AVX2 + FMA or AVX-512, it sets OPENBLAS_CORETYPE to the set those features allow
 * and starts itself again, before MPI starts. A user's own OPENBLAS_CORETYPE (any
 * value) is never touched, SALPIPE_BLAS_AUTO=0 keeps OpenBLAS's choice, and a set the
 * CPU lacks is never chosen (it would crash).
 */
#ifndef SP_BLAS_NOTE_H
#define SP_BLAS_NOTE_H

#include <stddef.h>

/* Called first in main, before MPI_Init and before any thread exists. When the case
 * above holds, sets OPENBLAS_CORETYPE and SALPIPE_BLAS_CHOSEN (OpenBLAS's own choice,
 * for the note) and re-executes this program's file (/proc/self/exe's target)
 * with argv; returns only when there is nothing to do or the exec failed (salpipe
 * then runs on OpenBLAS's choice). */
void sp_blas_choose(char **argv);

/* Writes a one-line account of the kernel set into buf: "OpenBLAS kernels Haswell",
 * "... SkylakeX (OPENBLAS_CORETYPE)", or, when salpipe chose it, "OpenBLAS kernels
 * SkylakeX, chosen by salpipe: OpenBLAS's own choice for this CPU was Prescott ...".
 * Returns 1 when the user should read it (salpipe chose, or SALPIPE_BLAS_AUTO=0 keeps
 * an SSE-era set on a CPU with AVX), else 0. */
int sp_blas_note(char *buf, size_t len);

#endif
