/*
 * One source, two precisions. Files that include this header are compiled twice,
 * once with SAL_DOUBLE=0 (float32) and once with SAL_DOUBLE=1 (float64); R(name)
 * gives each compiled copy its own symbol, e.g. conv_forward_f32 / conv_forward_f64.
 */
#ifndef SAL_REAL_H
#define SAL_REAL_H

#include <cblas.h>
#include <math.h>

#if SAL_DOUBLE
typedef double real;
#define R(name) name##_f64
#define SAL_PREC SAL_F64
#define cblas_gemm cblas_dgemm
#define real_fma fma
#else
typedef float real;
#define R(name) name##_f32
#define SAL_PREC SAL_F32
#define cblas_gemm cblas_sgemm
#define real_fma fmaf
#endif

#endif
