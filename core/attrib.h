/*
 * Building blocks of the attribution methods of issue 12, private to core/: the
 * SmoothGrad noise (noise.c), the Integrated Gradients quadrature rules
 * (quadrature.c) and Grad-CAM's bilinear upsampling (upsample.c). No MPI, no
 * allocation, nothing here exits; docs/saliency.md "Building blocks of the methods"
 * gives the exact definitions and how each is tested.
 *
 * Usage:
 *     double z[150528];                        // one (3, 224, 224) image's noise
 *     sal_noise_normal(seed, image, sample, 0, 150528, z);
 *     double alpha[50], w[50];
 *     sal_quadrature(SAL_RULE_GAUSSLEGENDRE, 50, alpha, w, err, sizeof err);
 *     sal_upsample_bilinear_f32(map, cam, 1, 13, 13, 224, 224);
 */
#ifndef SAL_ATTRIB_H
#define SAL_ATTRIB_H

#include <stddef.h>
#include <stdint.h>

/* ---- noise.c: counter-based standard normals ----------------------------------- */

/* Philox4x32-10 (Salmon et al. 2011): out = the 10-round bijection of ctr under key.
 * Never fails. */
void sal_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* out[k] = N(seed, image, sample, first + k) for k in [0, count): standard normals,
 * each a pure function of its four keys, so any split of [first, first + count)
 * into calls gives the same numbers. Elements 2p and 2p+1 are the two normals of
 * one Box-Muller pair (docs/saliency.md gives the definition bit for bit).
 * Never fails; count 0 writes nothing. */
void sal_noise_normal(uint64_t seed, uint32_t image, uint32_t sample, uint64_t first,
                      size_t count, double *out);

/* ---- quadrature.c: Integrated Gradients' nodes and weights --------------------- */

typedef enum {
    SAL_RULE_GAUSSLEGENDRE = 0,    /* Captum "gausslegendre"                     */
    SAL_RULE_RIEMANN_TRAPEZOID = 1 /* Captum "riemann_trapezoid"                 */
} sal_rule;

/* Largest step count sal_quadrature accepts. */
#define SAL_QUADRATURE_MAX_STEPS 4096

/* alphas[i], weights[i], i < steps: the points on the path baseline -> input, in
 * [0, 1], and their weights, as Captum's approximation_methods gives them (in
 * Captum's order: ascending alphas). Returns 0, or -1 with a message in err (steps
 * out of range: gausslegendre needs 1..SAL_QUADRATURE_MAX_STEPS, riemann_trapezoid
 * 2..SAL_QUADRATURE_MAX_STEPS, as Captum asserts; unknown rule), arrays untouched. */
int sal_quadrature(sal_rule rule, int steps, double *alphas, double *weights, char *err,
                   size_t errlen);

/* "gausslegendre" / "riemann_trapezoid", or NULL for an unknown rule. */
const char *sal_rule_name(sal_rule rule);

/* ---- upsample.c: bilinear resize as torch's interpolate --------------------- */

/* out (n, OH, OW) = in (n, H, W) resized bilinearly exactly as
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
 * size=(OH, OW)) computes it on the CPU, in the working precision. All sizes >= 1;
 * up- or downsampling (no antialiasing, like torch's default). out must not alias in.
 * Never fails. */
void sal_upsample_bilinear_f32(float *out, const float *in, int n, int H, int W, int OH,
                               int OW);
void sal_upsample_bilinear_f64(double *out, const double *in, int n, int H, int W,
                               int OH, int OW);

#endif
