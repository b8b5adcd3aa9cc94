/*
 * Bilinear resize of maps, as torch.nn.functional.interpolate(x, size=(OH, OW),
 * mode="bilinear", align_corners=False) computes it on the CPU for one-channel maps
 * (N, 1, H, W), no antialiasing: Grad-CAM's map goes from its layer's (H, W) to the
 * input's (OH, OW) this way (issue 12). Bit for bit torch 1.13's, in both
 * precisions (tests/leaf/check_upsample.py); the rounding steps below are the ones
 * that takes, found by probing torch (docs/saliency.md).
 *
 * Per axis (in -> out), with real the working precision:
 *     scale = (real)in / (real)out                       rounded to real
 *     src   = max(fma(scale, dst + 0.5, -0.5), 0)        in double
 *     i0    = (int)src, i1 = i0 + (i0 < in - 1)
 *     l1    = (real)(src - i0), l0 = 1 - l1              rounded to real
 * and when in == out simply i0 = i1 = dst, l0 = 1, l1 = 0. With the weights
 * w00 = ly0 lx0, w01 = ly0 lx1, w10 = ly1 lx0, w11 = ly1 lx1 (each rounded to real):
 *     float64: out = fma(in11, w11, fma(in10, w10, fma(in00, w00, in01 w01)))
 *     float32: out = (float)(in00 w00 + in01 w01 + in10 w10 + in11 w11), the sum
 *              in double left to right (each product is exact in double)
 * The fused multiply-adds are torch's: its CPU kernels are built for AVX2 with
 * contraction on, and the build that runs here (an AVX2 CPU) rounds exactly these;
 * the plain formula differs from it by an ulp in about a third of the elements.
 * With C's fma() our result does not depend on our compiler's flags (the file is
 * built with -ffp-contract=off). A one-channel tensor counts as channels-last, so
 * torch takes its 4-weight channels-last kernel; with several channels it nests
 * the sums differently, which Grad-CAM's one-channel maps never meet.
 */
#include "attrib.h"
#include "real.h"

/* One axis' source indices and weights for output position dst. */
static void axis_weights(int in, int out, int dst, int *i0, int *i1, real *l0, real *l1) {
    if (in == out) {
        *i0 = *i1 = dst;
        *l0 = 1, *l1 = 0;
        return;
    }
    const real scale = (real)in / (real)out;
    double src = fma((double)scale, dst + 0.5, -0.5);
    if (src < 0) src = 0;
    *i0 = (int)src;
    *i1 = *i0 + (*i0 < in - 1);
    *l1 = (real)(src - *i0);
    *l0 = (real)1 - *l1;
}

/* The weighted sum of the four neighbours, rounded as torch rounds it. */
static inline real blend(real a, real wa, real b, real wb, real c, real wc, real d,
                         real wd) {
#if SAL_DOUBLE
    return fma(d, wd, fma(c, wc, fma(a, wa, b * wb)));
#else
    double s = (double)a * wa + (double)b * wb;
    s += (double)c * wc;
    s += (double)d * wd;
    return (float)s;
#endif
}

void R(sal_upsample_bilinear)(real *out, const real *in, int n, int H, int W, int OH,
                              int OW) {
    for (int oy = 0; oy < OH; oy++) {
        int y0, y1;
        real ly0, ly1;
        axis_weights(H, OH, oy, &y0, &y1, &ly0, &ly1);
        for (int ox = 0; ox < OW; ox++) {
            int x0, x1;
            real lx0, lx1;
            axis_weights(W, OW, ox, &x0, &x1, &lx0, &lx1);
            const real w00 = ly0 * lx0, w01 = ly0 * lx1, w10 = ly1 * lx0, w11 = ly1 * lx1;
            for (int c = 0; c < n; c++) {
                const real *r0 = in + ((size_t)c * H + y0) * W;
                const real *r1 = in + ((size_t)c * H + y1) * W;
                out[((size_t)c * OH + oy) * OW + ox] =
                    blend(r0[x0], w00, r0[x1], w01, r1[x0], w10, r1[x1], w11);
            }
        }
    }
}
