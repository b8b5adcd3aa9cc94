/*
 * ReLU, and the three saliency methods, which differ only in its backward rule
 * (Springenberg et al. 2015, Fig. 1; SPEC §1). With x the forward input, kept as
 * the mask (x > 0), and g the gradient from above:
 *   vanilla   g * (x > 0)
 *   guided    g * (x > 0) * (g > 0)
 *   deconvnet g * (g > 0)
 */
#include "layers.h"

void R(relu_forward)(real *out, uint8_t *mask, const real *in, size_t count) {
    for (size_t i = 0; i < count; i++) {
        int on = in[i] > 0;
        mask[i] = (uint8_t)on;
        out[i] = on ? in[i] : 0;
    }
}

/* vanilla and guided load dout unconditionally, select without branches (& rather
 * than &&) and take mask as restrict (din may alias dout, never mask), so that the
 * compiler vectorizes them: as branches on the signs of activations and gradients
 * they mispredicted often. */
static void backward_vanilla(real *din, const real *dout, const uint8_t *restrict mask,
                             size_t count) {
    for (size_t i = 0; i < count; i++) {
        real d = dout[i];
        din[i] = mask[i] != 0 ? d : 0;
    }
}

static void backward_guided(real *din, const real *dout, const uint8_t *restrict mask,
                            size_t count) {
    for (size_t i = 0; i < count; i++) {
        real d = dout[i];
        din[i] = ((mask[i] != 0) & (d > 0)) ? d : 0;
    }
}

static void backward_deconvnet(real *din, const real *dout, const uint8_t *mask,
                               size_t count) {
    (void)mask;
    for (size_t i = 0; i < count; i++) din[i] = dout[i] > 0 ? dout[i] : 0;
}

/* Indexed by sal_method. */
static void (*const relu_rules[SAL_METHOD_COUNT])(real *, const real *, const uint8_t *,
                                                  size_t) = {
    [SAL_METHOD_VANILLA] = backward_vanilla,
    [SAL_METHOD_GUIDED] = backward_guided,
    [SAL_METHOD_DECONVNET] = backward_deconvnet,
};

void R(relu_backward)(real *din, const real *dout, const uint8_t *mask, size_t count,
                      sal_method rule) {
    relu_rules[rule](din, dout, mask, count);
}
