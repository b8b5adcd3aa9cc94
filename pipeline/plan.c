/*
 * Packing the plan into bytes for MPI_Bcast and back. Layout: a sequence of
 * little records, int32s and length-prefixed strings, in the order of sp_plan.
 */
#include <stdlib.h>
#include <string.h>

#include "plan.h"

typedef struct {
    char *buf;
    size_t len, cap;
    const char *rd;
    size_t left;
    int bad;
} packer;

static void put(packer *k, const void *p, size_t n) {
    if (k->bad) return;
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4096;
        while (cap < k->len + n) cap *= 2;
        char *b = realloc(k->buf, cap);
        if (!b) {
            k->bad = 1;
            return;
        }
        k->buf = b;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
}

static void put_i32(packer *k, int32_t v) { put(k, &v, sizeof v); }
static void put_str(packer *k, const char *s) {
    int32_t n = s ? (int32_t)strlen(s) : -1;
    put_i32(k, n);
    if (n > 0) put(k, s, (size_t)n);
}

static void get(packer *k, void *p, size_t n) {
    if (k->bad || n > k->left) {
        k->bad = 1;
        memset(p, 0, n);
        return;
    }
    memcpy(p, k->rd, n);
    k->rd += n;
    k->left -= n;
}

static int32_t get_i32(packer *k) {
    int32_t v;
    get(k, &v, sizeof v);
    return v;
}

static char *get_str(packer *k) {
    int32_t n = get_i32(k);
    if (k->bad || n < 0) return NULL;
    if ((size_t)n > k->left) {
        k->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        k->bad = 1;
        return NULL;
    }
    get(k, s, (size_t)n);
    s[n] = 0;
    return s;
}

/* Like get_str, but into *block (advanced past the string and its NUL). */
static char *get_str_into(packer *k, char **block) {
    int32_t n = get_i32(k);
    if (k->bad || n < 0 || (size_t)n > k->left) {
        k->bad = 1;
        return NULL;
    }
    char *s = *block;
    get(k, s, (size_t)n);
    s[n] = 0;
    *block += (size_t)n + 1;
    return s;
}

char *sp_plan_pack(const sp_plan *p, size_t *bytes) {
    packer k = {0};
    /* One allocation of the right size: a million image paths are not copied over
     * and over while the buffer doubles. */
    size_t need = 4096 + sizeof *p->targets * (size_t)p->ntargets;
    for (int i = 0; i < p->nimages; i++) {
        need += 4 + strlen(p->image_paths[i]);
        if (p->image_labels) need += 4 + strlen(p->image_labels[i]);
    }
    if (!(k.buf = malloc(need))) return NULL;
    k.cap = need;
    put_str(&k, p->model_path);
    put(&k, &p->pre, sizeof p->pre);
    put_i32(&k, p->precision);
    put_i32(&k, p->batch);
    put_i32(&k, p->threads);
    put_i32(&k, p->compression);
    put_i32(&k, p->ntargets);
    put(&k, p->targets, sizeof *p->targets * p->ntargets);
    put_i32(&k, p->nmethods);
    for (int i = 0; i < p->nmethods; i++) put_i32(&k, p->methods[i]);
    put_str(&k, p->previews_dir);
    put_i32(&k, p->preview_gray);
    put_i32(&k, p->nimages);
    for (int i = 0; i < p->nimages; i++) put_str(&k, p->image_paths[i]);
    put_i32(&k, p->image_labels != NULL);
    for (int i = 0; p->image_labels && i < p->nimages; i++) put_str(&k, p->image_labels[i]);
    if (k.bad) {
        free(k.buf);
        return NULL;
    }
    *bytes = k.len;
    return k.buf;
}

int sp_plan_unpack(sp_plan *p, const char *buf, size_t bytes) {
    packer k = {.rd = buf, .left = bytes};
    memset(p, 0, sizeof *p);
    p->model_path = get_str(&k);
    get(&k, &p->pre, sizeof p->pre);
    p->precision = (sal_precision)get_i32(&k);
    p->batch = get_i32(&k);
    p->threads = get_i32(&k);
    p->compression = get_i32(&k);
    p->ntargets = get_i32(&k);
    if (!k.bad && p->ntargets > 0 && (size_t)p->ntargets <= k.left / sizeof *p->targets) {
        p->targets = malloc(sizeof *p->targets * p->ntargets);
        if (p->targets) get(&k, p->targets, sizeof *p->targets * p->ntargets);
    }
    if (!p->targets) k.bad = 1;
    p->nmethods = get_i32(&k);
    if (p->nmethods < 1 || p->nmethods > SAL_METHOD_COUNT) k.bad = 1;
    for (int i = 0; !k.bad && i < p->nmethods; i++) p->methods[i] = (sal_method)get_i32(&k);
    p->previews_dir = get_str(&k);
    p->preview_gray = get_i32(&k);
    p->nimages = get_i32(&k);
    if (!k.bad && p->nimages > 0 && (size_t)p->nimages <= k.left / 4)
        p->image_paths = calloc((size_t)p->nimages, sizeof *p->image_paths);
    if (!p->image_paths) k.bad = 1;
    /* Every string takes its bytes + 4 in the buffer and its bytes + 1 here. */
    char *block = k.bad ? NULL : (p->strings = malloc(k.left ? k.left : 1));
    if (!block) k.bad = 1;
    for (int i = 0; !k.bad && i < p->nimages; i++) p->image_paths[i] = get_str_into(&k, &block);
    if (get_i32(&k) && !k.bad) {
        p->image_labels = calloc((size_t)p->nimages, sizeof *p->image_labels);
        if (!p->image_labels) k.bad = 1;
        for (int i = 0; !k.bad && i < p->nimages; i++)
            p->image_labels[i] = get_str_into(&k, &block);
    }
    if (k.bad) {
        sp_plan_free(p);
        return -1;
    }
    return 0;
}

void sp_plan_free(sp_plan *p) {
    free(p->model_path);
    free(p->targets);
    free(p->previews_dir);
    for (int i = 0; !p->borrowed && !p->strings && i < p->nimages; i++) {
        if (p->image_paths) free(p->image_paths[i]);
        if (p->image_labels) free(p->image_labels[i]);
    }
    free(p->strings);
    free(p->image_paths);
    free(p->image_labels);
    memset(p, 0, sizeof *p);
}
