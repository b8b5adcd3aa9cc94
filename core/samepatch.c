/*
 * Identical patches, identical outputs.
 *
 * In exact arithmetic two identical input patches (a uniform background, a
 * saturated sky) give identical convolution outputs, and a max-pool window over
 * them is an exact tie that its first element wins; PyTorch's direct convolutions
 * compute every patch the same way, so they keep such ties. A GEMM does not:
 * OpenBLAS rounds a column by where it falls among its kernel's blocks, and a
 * Winograd tile computes its outputs by different formulas. Ties then broke either
 * way, and float32 maps of stimuli on a gray background were tens of percents from
 * float64 (docs/reliability.md, "Max-pool ties that a GEMM breaks"). So after each
 * forward convolution, by whatever algorithm, every output whose input patch equals
 * the patch of an earlier output of the same image, bit for bit, takes that output's
 * values.
 *
 * Patches are compared through the pixels they are made of, not as im2col columns
 * (kh*kw times as many elements), so the same code serves the im2col, 1x1 and
 * Winograd paths:
 *   1. pixels: a 64-bit hash of each pixel's channels (one pass over the input,
 *      channel by channel), the first pixel with the same hash as its provisional
 *      class, confirmed channel by channel (a pixel that fails keeps a class of its
 *      own); zero padding is the class of an all-zero pixel;
 *   2. patches: the kh*kw class ids of each output's window, hashed, the first
 *      output with the same hash as its provisional representative, confirmed id by
 *      id (an output that fails keeps its own values);
 *   3. every confirmed repeat takes its representative's values, channel by channel.
 * A hash collision can only cost a copy, never make one that should not be made.
 */
#include <string.h>

#include "layers.h"

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

#if SAL_DOUBLE
typedef uint64_t bits_t;
#else
typedef uint32_t bits_t;
#endif

static inline bits_t bits_of(const real *x) {
    bits_t b;
    memcpy(&b, x, sizeof b);
    return b;
}

/* The scratch same_outputs carves (same_scratch_bytes in layers.h). */
typedef struct {
    uint64_t *h;    /* max(HW, P) hashes            */
    int32_t *pid;   /* HW pixel classes             */
    int32_t *rep;   /* P representatives            */
    int32_t *list;  /* max(HW, P) repeated indices  */
    int32_t *slot;  /* cap open-addressing slots    */
    size_t cap;
} same_space;

static same_space carve(void *scratch, const sal_layer *L) {
    const size_t HW = (size_t)L->in_h * L->in_w, P = (size_t)L->out_h * L->out_w;
    const size_t most = HW > P ? HW : P;
    same_space s;
    s.h = scratch;
    s.pid = (int32_t *)(s.h + most);
    s.rep = s.pid + HW;
    s.list = s.rep + P;
    s.slot = s.list + most;
    s.cap = same_table_slots(L);
    return s;
}

/* Slot of hash h among cap slots, or of the first free one on its probe path:
 * earlier entries with the same hash are found before any later one. */
static inline size_t find(const same_space *s, uint64_t h) {
    size_t at = (size_t)(h ^ (h >> 29)) & (s->cap - 1);
    while (s->slot[at] >= 0 && s->h[s->slot[at]] != h) at = (at + 1) & (s->cap - 1);
    return at;
}

/* pid[p] = the first pixel of the group's Cg channels equal to pixel p, bit for
 * bit (p itself if none, or if a hash collision hid it); returns the class of an
 * all-zero pixel (the padding's), or -1 if the image has none. */
static int32_t pixel_classes(same_space *s, const real *in, int Cg, size_t HW) {
    uint64_t *h = s->h;
    for (size_t p = 0; p < HW; p++) h[p] = FNV_BASIS;
    for (int c = 0; c < Cg; c++) {
        const real *row = in + (size_t)c * HW;
        for (size_t p = 0; p < HW; p++) h[p] = (h[p] ^ bits_of(row + p)) * FNV_PRIME;
    }
    uint64_t hz = FNV_BASIS;
    for (int c = 0; c < Cg; c++) hz = hz * FNV_PRIME; /* (hz ^ 0) * prime */

    for (size_t i = 0; i < s->cap; i++) s->slot[i] = -1;
    size_t repeats = 0;
    for (size_t p = 0; p < HW; p++) {
        const size_t at = find(s, h[p]);
        if (s->slot[at] < 0) {
            s->slot[at] = (int32_t)p;
            s->pid[p] = (int32_t)p;
        } else {
            s->pid[p] = s->slot[at];
            s->list[repeats++] = (int32_t)p;
        }
    }
    const size_t az = find(s, hz);
    int32_t zero = s->slot[az];
    /* Confirm, a channel at a time; a failed entry becomes -1 - p. */
    for (int c = 0; c < Cg; c++) {
        const real *row = in + (size_t)c * HW;
        for (size_t t = 0; t < repeats; t++) {
            const int32_t p = s->list[t];
            if (p >= 0 && bits_of(row + p) != bits_of(row + s->pid[p])) s->list[t] = -1 - p;
        }
        if (zero >= 0 && bits_of(row + zero) != 0) zero = -1;
    }
    for (size_t t = 0; t < repeats; t++)
        if (s->list[t] < 0) s->pid[-1 - s->list[t]] = -1 - s->list[t];
    return zero;
}

/* The class of the pixel under tap (ky, kx) of output (oy, ox), or pad's. */
static inline int32_t tap(const same_space *s, const sal_layer *L, int oy, int ox, int ky,
                          int kx, int32_t pad) {
    const int y = oy * L->sh - L->ph + ky, x = ox * L->sw - L->pw + kx;
    if (y < 0 || y >= L->in_h || x < 0 || x >= L->in_w) return pad;
    return s->pid[(size_t)y * L->in_w + x];
}

/* rep[q] = the first output whose window holds the same pixel classes as output
 * q's (q itself if none); the repeats go to list. Returns their number. */
static size_t patch_classes(same_space *s, const sal_layer *L, int32_t pad) {
    const int OH = L->out_h, OW = L->out_w, kh = L->kh, kw = L->kw;
    const size_t P = (size_t)OH * OW;
    uint64_t *h = s->h;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            uint64_t v = FNV_BASIS;
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    v = (v ^ (uint32_t)tap(s, L, oy, ox, ky, kx, pad)) * FNV_PRIME;
            h[(size_t)oy * OW + ox] = v;
        }
    for (size_t i = 0; i < s->cap; i++) s->slot[i] = -1;
    size_t repeats = 0;
    for (size_t q = 0; q < P; q++) {
        const size_t at = find(s, h[q]);
        s->rep[q] = (int32_t)q;
        if (s->slot[at] < 0) {
            s->slot[at] = (int32_t)q;
            continue;
        }
        const int32_t f = s->slot[at];
        const int fy = f / OW, fx = f % OW, qy = (int)(q / OW), qx = (int)(q % OW);
        int same = 1;
        for (int ky = 0; ky < kh && same; ky++)
            for (int kx = 0; kx < kw && same; kx++)
                same = tap(s, L, fy, fx, ky, kx, pad) == tap(s, L, qy, qx, ky, kx, pad);
        if (same) {
            s->rep[q] = f;
            s->list[repeats++] = (int32_t)q;
        }
    }
    return repeats;
}

long R(same_outputs)(real *out, const real *in, const sal_layer *L, void *scratch) {
    const int G = L->groups, Cg = L->in_c / G, OCg = L->out_c / G;
    const size_t HW = (size_t)L->in_h * L->in_w, P = (size_t)L->out_h * L->out_w;
    same_space s = carve(scratch, L);
    long total = 0;
    for (int grp = 0; grp < G; grp++) {
        const int32_t pad = pixel_classes(&s, in + (size_t)grp * Cg * HW, Cg, HW);
        const size_t repeats = patch_classes(&s, L, pad);
        for (int oc = 0; oc < OCg; oc++) {
            real *y = out + ((size_t)grp * OCg + oc) * P;
            for (size_t t = 0; t < repeats; t++) y[s.list[t]] = y[s.rep[s.list[t]]];
        }
        total += (long)repeats;
    }
    return total;
}
