/*
 * Fully connected layer: out (n, OC) = in (n, C) x W^T + b, W stored (OC, C) as in
 * torch. The input gradient over n stacked backward samples is one GEMM:
 * din (n, C) = dout (n, OC) x W.
 */
#include "layers.h"

void R(linear_forward)(real *out, const real *in, const real *weight, const real *bias,
                       const sal_layer *L, int n, const sal_par *par) {
    const int C = L->in_c, OC = L->out_c;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] = bias[o];
    R(gemm)(par, CblasNoTrans, CblasTrans, n, OC, C, in, C, weight, C, 1, out, OC);
}

void R(linear_backward)(real *din, const real *dout, const real *weight,
                        const sal_layer *L, int n, const sal_par *par) {
    const int C = L->in_c, OC = L->out_c;
    R(gemm)(par, CblasNoTrans, CblasNoTrans, n, C, OC, dout, OC, weight, C, 0, din, C);
}
