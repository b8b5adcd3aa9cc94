/*
 * Harness: JPEG and PNG decoding, resizing and normalization, as salpipe's workers
 * run them (core/image.h sal_image_preprocess on a file). The input is the image
 * file; its last byte also picks the preprocessing (so any trailing byte works):
 * bits 0-1 the input size (16x16, 7x13, 1x1, 48x64), bit 2 crop or stretch, bit 3
 * luminance or RGB, bit 4 float64 or float32, bits 5-7 the crop's resize size.
 * Harness limit: at most 2^22 decoded pixels (salpipe's default is Pillow's 89.5
 * million), so that a header claiming a huge image costs milliseconds, not seconds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[4096];
    if (!path[0]) fz_path(path, "image");
    fz_write("image", data, size, NULL);
    uint8_t opt = size ? data[size - 1] : 0;
    static const int32_t sizes[4][2] = {{16, 16}, {7, 13}, {1, 1}, {48, 64}};
    sal_preprocess pp = {.channels = opt & 8 ? 1 : 3,
                         .height = sizes[opt & 3][0], .width = sizes[opt & 3][1],
                         .mean = {0.485, 0.456, 0.406}, .std = {0.229, 0.224, 0.225},
                         .resize_crop = (opt >> 2) & 1,
                         .resize_size = 1 + 9 * (opt >> 5)};
    const sal_precision prec = opt & 16 ? SAL_F64 : SAL_F32;
    const size_t n = (size_t)pp.channels * pp.height * pp.width;
    void *tensor = malloc(n * (prec == SAL_F64 ? 8 : 4));
    if (!tensor) return 0;
    sal_image px;
    char err[SAL_ERR_LEN];
    if (sal_image_preprocess(tensor, &px, path, &pp, prec, (int64_t)1 << 22, err,
                             sizeof err) == 0) {
        if (px.width != pp.width || px.height != pp.height || px.channels != pp.channels)
            fz_die("fitted image is %dx%dx%d, expected %dx%dx%d", px.height, px.width,
                   px.channels, pp.height, pp.width, pp.channels);
        for (size_t i = 0; i < n; i++) {
            double v = prec == SAL_F64 ? ((double *)tensor)[i] : ((float *)tensor)[i];
            if (!isfinite(v) || fabs(v) > 10) fz_die("tensor element %zu is %g", i, v);
        }
        sal_image_free(&px);
        fz_note("decoded and fitted to %dx%dx%d", pp.channels, pp.height, pp.width);
    } else if (fz_note("refused: %s", err), 0) {
    } else if (!err[0] || px.pixels) {
        fz_die("a refusal without a message, or with pixels left");
    }
    free(tensor);
    return 0;
}
