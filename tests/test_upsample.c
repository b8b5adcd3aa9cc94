/*
 * core/upsample.c (issue 12): bilinear resize as torch's interpolate. Without
 * arguments, checks that need no torch (<1 s): equal sizes copy exactly; a
 * constant map stays within rounding of the constant; a map linear in x and y is
 * reproduced (to rounding) wherever no clamping at the border applies; float32
 * and float64 agree to float32 rounding. tests/leaf/check_upsample.py compares
 * with torch itself, through
 *     test_upsample --run CASES OUT
 * CASES: records of six int32 (bits 32|64, n, H, W, OH, OW) followed by n*H*W
 * values of that precision; OUT: for each record n*OH*OW values (little-endian).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrib.h"

static int failures;

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            if (failures++ < 20) {                                                     \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                            \
                printf(__VA_ARGS__);                                                   \
                printf("\n");                                                          \
            }                                                                          \
        }                                                                              \
    } while (0)

static int run_cases(const char *in_path, const char *out_path) {
    FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
    if (!in || !out) {
        fprintf(stderr, "test_upsample: cannot open %s or %s\n", in_path, out_path);
        return 1;
    }
    int32_t h[6];
    while (fread(h, sizeof h, 1, in) == 1) {
        size_t es = h[0] == 64 ? 8 : 4, nin = (size_t)h[1] * h[2] * h[3],
               nout = (size_t)h[1] * h[4] * h[5];
        void *src = malloc(es * nin), *dst = malloc(es * nout);
        if (!src || !dst || fread(src, es, nin, in) != nin) {
            fprintf(stderr, "test_upsample: %s: truncated record\n", in_path);
            return 1;
        }
        if (es == 8)
            sal_upsample_bilinear_f64(dst, src, h[1], h[2], h[3], h[4], h[5]);
        else
            sal_upsample_bilinear_f32(dst, src, h[1], h[2], h[3], h[4], h[5]);
        if (fwrite(dst, es, nout, out) != nout) return 1;
        free(src);
        free(dst);
    }
    return fclose(out) != 0;
}

static void test_properties(void) {
    static const int sizes[][4] = {{7, 7, 224, 224}, {13, 13, 227, 227}, {14, 10, 224, 160},
                                   {1, 1, 224, 224},  {224, 224, 7, 7},   {5, 9, 5, 9},
                                   {6, 6, 13, 4},     {1, 5, 3, 17}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int H = sizes[k][0], W = sizes[k][1], OH = sizes[k][2], OW = sizes[k][3];
        size_t ni = (size_t)H * W, no = (size_t)OH * OW;
        double *in = malloc(8 * ni), *out = malloc(8 * no);
        float *inf = malloc(4 * ni), *outf = malloc(4 * no);
        /* linear map v = 0.25 + 0.5 y - 0.75 x (exact in float32 too) */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) in[y * W + x] = inf[y * W + x] = 0.25f + 0.5f * y - 0.75f * x;
        sal_upsample_bilinear_f64(out, in, 1, H, W, OH, OW);
        sal_upsample_bilinear_f32(outf, inf, 1, H, W, OH, OW);
        double worst = 0, worst32 = 0;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double sy = ((double)H / OH) * (oy + 0.5) - 0.5, sx = ((double)W / OW) * (ox + 0.5) - 0.5;
                double o = out[oy * OW + ox];
                if (H == OH && W == OW) CHECK(o == in[oy * W + ox], "copy %d,%d", oy, ox);
                if (sy >= 0 && sy <= H - 1 && sx >= 0 && sx <= W - 1) {
                    double e = fabs(o - (0.25 + 0.5 * sy - 0.75 * sx));
                    if (e > worst) worst = e;
                }
                double e32 = fabs(outf[oy * OW + ox] - o) / (1 + fabs(o));
                if (e32 > worst32) worst32 = e32;
            }
        CHECK(worst < 1e-12, "%dx%d -> %dx%d: linear map off by %.3g", H, W, OH, OW, worst);
        CHECK(worst32 < 1e-5, "%dx%d -> %dx%d: float32 off float64 by %.3g", H, W, OH, OW,
              worst32);
        /* a constant stays within rounding of itself */
        for (size_t i = 0; i < ni; i++) in[i] = 0.3;
        sal_upsample_bilinear_f64(out, in, 1, H, W, OH, OW);
        for (size_t i = 0; i < no; i++)
            CHECK(fabs(out[i] - 0.3) <= 4e-16, "%dx%d -> %dx%d: constant 0.3 gives %.17g", H,
                  W, OH, OW, out[i]);
        printf("%3dx%-3d -> %3dx%-3d linear map within %.2g, float32 within %.2g of float64\n",
               H, W, OH, OW, worst, worst32);
        free(in), free(out), free(inf), free(outf);
    }
    /* n planes are n independent maps */
    double in2[2 * 12], out2[2 * 35], one[35];
    for (int i = 0; i < 24; i++) in2[i] = sin(i);
    sal_upsample_bilinear_f64(out2, in2, 2, 3, 4, 5, 7);
    sal_upsample_bilinear_f64(one, in2 + 12, 1, 3, 4, 5, 7);
    CHECK(!memcmp(one, out2 + 35, sizeof one), "second plane differs from its own run");
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--run")) return run_cases(argv[2], argv[3]);
    test_properties();
    printf(failures ? "test_upsample: %d FAILURES\n" : "test_upsample: all passed\n",
           failures);
    return failures != 0;
}
