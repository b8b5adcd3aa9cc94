/*
 * Whether OpenBLAS runs kernels far below what this CPU can do, and what to do about
 * it. Debian's OpenBLAS picks its kernel set from the CPU's model number; on a CPU
 * its tables do not know (some virtual machines report a generic "Xeon Processor")
 * it falls back to Prescott's SSE3 kernels, and every GEMM runs ~2.7x slower
 * (measured on such an AVX-512 Xeon with ResNet-50: docs/performance.md). salpipe
 * never sets OPENBLAS_CORETYPE itself (a user may set it on purpose, and a kernel
 * set the CPU lacks crashes); it says so and names the set the CPU's features allow.
 */
#ifndef SP_BLAS_NOTE_H
#define SP_BLAS_NOTE_H

#include <stddef.h>

/* Writes a one-line note into buf and returns 1 when OPENBLAS_CORETYPE is unset and
 * OpenBLAS's kernel set is an SSE-era one although the CPU has AVX2 and FMA (or
 * AVX-512); else writes the kernel set's name ("kernels Haswell") and returns 0. */
int sp_blas_note(char *buf, size_t len);

#endif
