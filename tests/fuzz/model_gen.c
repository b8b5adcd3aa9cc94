/*
 * The file half of the fuzz model writer (model_gen.h): from the network
 * (model_gen_internal.h, model_spec.c) a consistent file description is derived
 * (mfile: groups, attributes, datasets, every shape as the graph gives it), changed
 * by the file operations, and written with HDF5's C API, as any tool would write
 * it; HDF5 converts the values to each attribute's or dataset's type.
 */
#include "model_gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "fuzz_common.h"
#include "model_gen_internal.h"

#define MG_MAX_VALUES 8
#define MG_MAX_WRITE (1 << 16) /* datasets larger than this are declared, not written */

enum { T_I64, T_I32, T_I8, T_U8, T_U64, T_F64, T_F32, T_STR, T_STR_SPACE, T_VSTR, T_COUNT };
enum { D_F32, D_F64, D_F32BE, D_F64BE, D_I32, D_LDBL, D_COUNT };

typedef struct {
    char name[24];
    int present, type, n;      /* n: -1 scalar dataspace, 0 null dataspace, else 1-D */
    int64_t iv[MG_MAX_VALUES];
    double dv[MG_MAX_VALUES];
    char s[96];
    char (*sv)[MG_SLEN];       /* `inputs`: the strings, one per element, else NULL */
} mattr;

typedef struct {
    char name[16];
    int present, as_group, type, rank, positive;
    int64_t dims[5];
    double scale;
    int nbad;
    uint64_t bad_idx[4];
    double bad_val[4];
} mdset;

typedef struct {
    char group[16];
    int present;
    mattr a[14];
    int na;
    mdset d[4];
    int nd;
    char in[MG_MAX_IN][MG_SLEN]; /* the `inputs` strings */
} mlayer;

typedef struct {
    mattr root[11];
    int nroot;
    mattr count;
    mlayer L[MG_MAX_LAYERS];
    int n;
    int extra;                 /* an extra member of /layers                       */
} mfile;

/* A string for file operation 4: a kind, a name, near misses, invalid ones, or
 * another node's name or alias (duplicates). */
static const char *pick_str(uint8_t c, const mfile *f) {
    static const char *const table[] = {
        "", "conv2d", "batchnorm2d", "relu", "maxpool2d", "adaptive_avgpool2d", "flatten",
        "dropout", "linear", "Conv2d", "conv1", "fc1", "conv1_relu", "bad name!", "a b",
        "salpipe-model", "salpipe-model   ", "salpipe-model2", "crop", "stretch", "CROP",
        "\xc3\xa9t\xc3\xa9", "x\ty",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm",   /* 65 */
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",     /* 63 */
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl",    /* 64 */
        "add", "concat", "avgpool2d", "channel_affine", "input", "Input", "input ",
        "relu.", "layer1.0.add",
    };
    const int nt = (int)(sizeof table / sizeof table[0]);
    if (c < nt) return table[c];
    /* another layer's name (or, for odd c, its alias): duplicates */
    int i = (c - nt) / 2 % (f->n ? f->n : 1);
    const char *want = (c - nt) % 2 ? "alias" : "name";
    for (int k = 0; f->n && k < f->L[i].na; k++)
        if (!strcmp(f->L[i].a[k].name, want)) return f->L[i].a[k].s;
    return "x";
}

/* ---- the file, consistent with the spec ---------------------------------------- */

static mattr *add_attr(mattr *v, int *n, const char *name, int type) {
    mattr *a = &v[(*n)++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->present = 1;
    a->type = type;
    a->n = -1;
    return a;
}

static void set_ints(mattr *a, int n, const int64_t *v) {
    a->n = n;
    for (int i = 0; i < n && i < MG_MAX_VALUES; i++) a->iv[i] = v[i], a->dv[i] = (double)v[i];
}

static mattr *ints(mattr *v, int *n, const char *name, int count, const int64_t *vals) {
    mattr *a = add_attr(v, n, name, T_I64);
    set_ints(a, count, vals);
    if (count == 1) a->n = -1;
    return a;
}

static void str(mattr *v, int *n, const char *name, const char *s) {
    snprintf(add_attr(v, n, name, T_VSTR)->s, sizeof v->s, "%s", s);
}

static mdset *dset(mlayer *g, const char *name, int rank, const int64_t *dims, double scale) {
    mdset *d = &g->d[g->nd++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->present = 1;
    d->rank = rank;
    for (int i = 0; i < rank; i++) d->dims[i] = dims[i] < 0 ? 0 : dims[i];
    d->scale = scale;
    return d;
}

/* Shapes are computed on values clamped so that no sum or product overflows
 * (sizes to 2^20, kernels, strides and paddings to +-2^24); the attributes keep
 * the drawn values. */
static int64_t sat(int64_t v) {
    return v < -((int64_t)1 << 24) ? -((int64_t)1 << 24)
           : v > ((int64_t)1 << 24) ? ((int64_t)1 << 24) : v;
}

static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t ceil) {
    if (s <= 0) return 1;
    k = sat(k), s = sat(s), p = sat(p), in = sat(in);
    int64_t num = in + 2 * p - k + (ceil ? s - 1 : 0);
    int64_t out = num / s + 1;
    if (ceil && (out - 1) * s >= in + p) out--;
    return out;
}

static int64_t clampdim(int64_t v) { return v < 0 ? 0 : v > (1 << 20) ? (1 << 20) : v; }

/* Index of the node named s, -1 for the network input or a name of no node. */
static int node_of(const mspec *m, const char *s) {
    for (int j = 0; j < m->n; j++)
        if (!strcmp(m->L[j].name, s)) return j;
    return -1;
}

/* Node i's k-th input: a node index, or -1 for the network input (also when the
 * name is of no node: the loader refuses that file before any shape matters). */
static int input_of(const mspec *m, int i, int k) {
    if (!m->L[i].nin) return i - 1;
    return node_of(m, m->L[i].in[k < m->L[i].nin ? k : 0]);
}

static void build(mfile *f, const mspec *m) {
    memset(f, 0, sizeof *f);
    mattr *R = f->root;
    int *nr = &f->nroot;
    int64_t size[2] = {m->h, m->w};
    str(R, nr, "format", "salpipe-model");
    ints(R, nr, "format_version", 1, &m->version);
    str(R, nr, "name", "fuzz");
    ints(R, nr, "input_channels", 1, &m->ch);
    ints(R, nr, "input_size", 2, size);
    int nc = m->ch >= 1 && m->ch <= MG_MAX_VALUES ? (int)m->ch : 3;
    mattr *mean = add_attr(R, nr, "mean", T_F64), *std = add_attr(R, nr, "std", T_F64);
    mean->n = std->n = nc;
    for (int i = 0; i < nc; i++) mean->dv[i] = 0.4 + 0.05 * i, std->dv[i] = 0.25 - 0.01 * i;
    str(R, nr, "resize", m->crop ? "crop" : "stretch");
    ints(R, nr, "resize_size", 1, &m->rsize);
    f->count = *add_attr(&f->count, &(int){0}, "count", T_I64);
    f->count.iv[0] = m->n, f->count.dv[0] = m->n;
    f->n = m->n;
    /* each node's output shape; [0] is the network input, node i is [i + 1] */
    int64_t C[MG_MAX_LAYERS + 1], H[MG_MAX_LAYERS + 1], W[MG_MAX_LAYERS + 1];
    C[0] = clampdim(m->ch), H[0] = clampdim(m->h), W[0] = clampdim(m->w);
    for (int i = 0; i < m->n; i++) {
        const lspec *l = &m->L[i];
        mlayer *g = &f->L[i];
        int j = input_of(m, i, 0);
        /* an input stored later has no shape yet: the loader refuses it anyway */
        int64_t c = j < i ? C[j + 1] : C[0], h = j < i ? H[j + 1] : H[0];
        int64_t w = j < i ? W[j + 1] : W[0];
        snprintf(g->group, sizeof g->group, "%03d", i);
        g->present = 1;
        str(g->a, &g->na, "kind", mg_kind_str[l->kind]);
        str(g->a, &g->na, "name", l->name);
        switch (l->kind) {
        case K_CONV: {
            int64_t gr = l->groups > 0 ? l->groups : 1, k0 = sat(l->k[0]), k1 = sat(l->k[1]);
            ints(g->a, &g->na, "in_channels", 1, &c);
            ints(g->a, &g->na, "out_channels", 1, &l->out);
            ints(g->a, &g->na, "kernel_size", 2, l->k);
            ints(g->a, &g->na, "stride", 2, l->s);
            ints(g->a, &g->na, "padding", 2, l->p);
            ints(g->a, &g->na, "groups", 1, &l->groups);
            int64_t wd[4] = {l->out, c / gr, l->k[0], l->k[1]};
            double fan = (double)(c / gr) * (double)k0 * (double)k1;
            dset(g, "weight", 4, wd, fan > 0 ? 1 / sqrt(fan) : 1);
            dset(g, "bias", 1, &l->out, 0.1);
            int64_t s0 = l->s[0] > 0 ? l->s[0] : 1, s1 = l->s[1] > 0 ? l->s[1] : 1;
            h = (h + 2 * sat(l->p[0]) - k0) / s0 + 1;
            w = (w + 2 * sat(l->p[1]) - k1) / s1 + 1;
            c = l->out;
            break;
        }
        case K_BN: {
            mattr *e = add_attr(g->a, &g->na, "eps", T_F64);
            e->dv[0] = l->eps;
            dset(g, "weight", 1, &c, 1);
            dset(g, "bias", 1, &c, 0.5);
            dset(g, "running_mean", 1, &c, 0.5);
            dset(g, "running_var", 1, &c, 1)->positive = 1;
            break;
        }
        case K_MAXPOOL:
        case K_AVGPOOL2D: {
            ints(g->a, &g->na, "kernel_size", 2, l->k);
            ints(g->a, &g->na, "stride", 2, l->s);
            ints(g->a, &g->na, "padding", 2, l->p);
            ints(g->a, &g->na, "ceil_mode", 1, &l->ceil);
            if (l->kind == K_AVGPOOL2D) ints(g->a, &g->na, "count_include_pad", 1, &l->cip);
            h = pool_out(h, l->k[0], l->s[0], l->p[0], l->ceil);
            w = pool_out(w, l->k[1], l->s[1], l->p[1], l->ceil);
            break;
        }
        case K_AVGPOOL:
            ints(g->a, &g->na, "output_size", 2, l->o);
            h = l->o[0], w = l->o[1];
            break;
        case K_FLATTEN: c = c * h * w, h = w = 1; break;
        case K_LINEAR: {
            int64_t in = c * h * w;
            ints(g->a, &g->na, "in_features", 1, &in);
            ints(g->a, &g->na, "out_features", 1, &l->out);
            int64_t wd[2] = {l->out, in};
            dset(g, "weight", 2, wd, in > 0 ? 1 / sqrt((double)in) : 1);
            dset(g, "bias", 1, &l->out, 0.1);
            c = l->out, h = w = 1;
            break;
        }
        case K_CONCAT: { /* channels add up; height and width are the first input's */
            int64_t one = 1;
            ints(g->a, &g->na, "dim", 1, &one);
            for (int k = 1; k < l->nin; k++) {
                int jk = input_of(m, i, k);
                c = clampdim(c + (jk < i ? C[jk + 1] : C[0]));
            }
            break;
        }
        case K_AFFINE:
            dset(g, "scale", 1, &c, 1)->positive = 1;
            dset(g, "shift", 1, &c, 0.5);
            break;
        default: break; /* relu, dropout, add: the first input's shape */
        }
        if (l->alias[0]) str(g->a, &g->na, "alias", l->alias);
        if (l->nin) {
            mattr *in = add_attr(g->a, &g->na, "inputs", T_VSTR);
            in->n = l->nin;
            in->sv = g->in;
            memcpy(g->in, l->in, sizeof g->in);
        }
        C[i + 1] = clampdim(c), H[i + 1] = clampdim(h), W[i + 1] = clampdim(w);
    }
}

/* ---- operations on the written form --------------------------------------------- */

/* The attribute list an operation addresses: 0 root, 1 /layers, else a layer. */
static mattr *attr_of(mfile *f, uint8_t t, uint8_t b, int *is_count) {
    *is_count = 0;
    if (t % 4 == 0) return &f->root[b % f->nroot];
    if (t % 4 == 1 || !f->n) return *is_count = 1, &f->count;
    mlayer *g = &f->L[(t >> 2) % f->n];
    return g->na ? &g->a[b % g->na] : NULL;
}

static void file_op(mfile *f, uint8_t op, uint8_t a, uint8_t b, uint8_t c) {
    int is_count;
    op = (uint8_t)(op - 0x40) % 11;
    mattr *at = op <= 4 ? attr_of(f, a, b & 15, &is_count) : NULL;
    mlayer *g = f->n ? &f->L[a % f->n] : NULL;
    mdset *d = g && g->nd ? &g->d[b % g->nd] : NULL;
    switch (op) {
    case 0: /* one value */
        if (!at) return;
        {
            int e = (b >> 4) % MG_MAX_VALUES;
            at->iv[e] = mg_pick_int(c);
            at->dv[e] = c & 0x80 ? mg_pick_double(c & 0x7f) : (double)at->iv[e];
        }
        break;
    case 1: if (at) at->type = c % T_COUNT; break;
    case 2:
        if (at) {
            static const int counts[] = {-1, 0, 1, 2, 3, 4, 8};
            at->n = counts[c % 7];
            for (int i = 1; i < MG_MAX_VALUES; i++)
                if (c & 0x80) at->iv[i] = at->iv[0], at->dv[i] = at->dv[0];
        }
        break;
    case 3: if (at) at->present = !at->present; break;
    case 4: /* a string; of `inputs`, element b >> 4 */
        if (at && at->sv) snprintf(at->sv[(b >> 4) % MG_MAX_IN], MG_SLEN, "%s", pick_str(c, f));
        else if (at) snprintf(at->s, sizeof at->s, "%s", pick_str(c, f));
        break;
    case 5: /* a dataset's shape */
        if (!d) return;
        switch (c % 6) {
        case 0: if (d->dims[(c >> 3) % 5] < INT64_MAX) d->dims[(c >> 3) % 5]++; break;
        case 1: if (d->dims[(c >> 3) % 5] > 0) d->dims[(c >> 3) % 5]--; break;
        case 2: if (d->rank < 5) d->dims[d->rank++] = 1; break;
        case 3: if (d->rank > 0) d->rank--; break;
        case 4: d->dims[(c >> 3) % 5] = (int64_t)1 << ((c >> 3) % 33); break;
        default: d->dims[(c >> 3) % 5] = 0; break;
        }
        break;
    case 6: if (d) d->type = c % D_COUNT; break;
    case 7: /* one element */
        if (d && d->nbad < 4) {
            d->bad_idx[d->nbad] = (uint64_t)b * 131 + c;
            d->bad_val[d->nbad++] = mg_pick_double(c);
        }
        break;
    case 8: /* dataset gone, or a group in its place */
        if (d) {
            if (c & 1) d->as_group = 1;
            else d->present = 0;
        }
        break;
    case 9: /* the layer group: renamed, removed */
        if (!g) return;
        {
            static const char *const names[] = {"0", "00", "0000", "1000", "x", "999", "-01"};
            if (c % 8 == 7) g->present = 0;
            else snprintf(g->group, sizeof g->group, "%s", names[c % 8]);
        }
        break;
    default: f->extra = 1 + c % 3; break;
    }
}

/* ---- writing ----------------------------------------------------------------------- */

static hid_t fixed_str_type(size_t size, int space) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size ? size : 1);
    H5Tset_strpad(t, space ? H5T_STR_SPACEPAD : H5T_STR_NULLTERM);
    return t;
}

static void write_attr(hid_t obj, const mattr *a) {
    if (!a->present) return;
    const int is_str = a->type >= T_STR;
    /* numbers: at most the 8 held; strings of `inputs`: one each, up to 17 */
    const int cap = a->sv && is_str ? MG_MAX_IN : MG_MAX_VALUES;
    int n = a->n < 0 ? 1 : a->n > cap ? cap : a->n;
    hsize_t dim = (hsize_t)n;
    hid_t sp = a->n < 0 ? H5Screate(H5S_SCALAR)
               : a->n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, &dim, NULL);
    hid_t ft = -1, mt = -1;
    const void *data = NULL;
    char fixed[MG_MAX_IN * 100];
    const char *vs[MG_MAX_IN];
    for (int i = 0; i < n; i++) vs[i] = a->sv ? a->sv[i] : a->s;
    int own_types = 0;
    switch (a->type) {
    case T_I64: ft = H5T_STD_I64LE, mt = H5T_NATIVE_INT64, data = a->iv; break;
    case T_I32: ft = H5T_STD_I32BE, mt = H5T_NATIVE_INT64, data = a->iv; break;
    case T_I8: ft = H5T_STD_I8LE, mt = H5T_NATIVE_INT64, data = a->iv; break;
    case T_U8: ft = H5T_STD_U8LE, mt = H5T_NATIVE_INT64, data = a->iv; break;
    case T_U64: ft = H5T_STD_U64LE, mt = H5T_NATIVE_INT64, data = a->iv; break;
    case T_F64: ft = H5T_IEEE_F64LE, mt = H5T_NATIVE_DOUBLE, data = a->dv; break;
    case T_F32: ft = H5T_IEEE_F32BE, mt = H5T_NATIVE_DOUBLE, data = a->dv; break;
    case T_STR:
    case T_STR_SPACE: { /* one size for all: the longest string's */
        size_t len = 0;
        for (int i = 0; i < n; i++) len = strlen(vs[i]) > len ? strlen(vs[i]) : len;
        size_t size = len + (a->type == T_STR_SPACE ? 3 : 1);
        if (size > 100) size = 100;
        for (int i = 0; i < n; i++) {
            size_t li = strlen(vs[i]);
            memset(fixed + i * size, a->type == T_STR_SPACE ? ' ' : 0, size);
            memcpy(fixed + i * size, vs[i], li < size ? li : size);
        }
        ft = mt = fixed_str_type(size, a->type == T_STR_SPACE);
        own_types = 1;
        data = fixed;
        break;
    }
    default:
        ft = mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, H5T_VARIABLE);
        H5Tset_cset(ft, H5T_CSET_UTF8);
        own_types = 1;
        data = vs;
        break;
    }
    hid_t at = H5Acreate2(obj, a->name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (at >= 0 && a->n != 0) H5Awrite(at, mt, data);
    if (at >= 0) H5Aclose(at);
    if (own_types) H5Tclose(ft);
    H5Sclose(sp);
}

static void write_dset(hid_t g, const mdset *d) {
    if (!d->present) return;
    if (d->as_group) {
        hid_t x = H5Gcreate2(g, d->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (x >= 0) H5Gclose(x);
        return;
    }
    hsize_t dims[5];
    uint64_t n = 1;
    for (int i = 0; i < d->rank; i++) {
        dims[i] = (hsize_t)d->dims[i];
        n = n > UINT64_MAX / (dims[i] + 1) ? UINT64_MAX : n * dims[i];
    }
    static const hid_t *const types[D_COUNT] = {&H5T_IEEE_F32LE_g, &H5T_IEEE_F64LE_g,
                                                &H5T_IEEE_F32BE_g, &H5T_IEEE_F64BE_g,
                                                &H5T_STD_I32LE_g, &H5T_NATIVE_LDOUBLE_g};
    H5open();
    hid_t sp = d->rank ? H5Screate_simple(d->rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
    hid_t ds = sp >= 0 ? H5Dcreate2(g, d->name, *types[d->type], sp, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT) : -1;
    if (ds >= 0 && n <= MG_MAX_WRITE) {
        double *v = malloc(sizeof *v * (n ? n : 1));
        if (v) {
            for (uint64_t i = 0; i < n; i++) {
                double u = (double)((i * 2654435761u) % 1000) / 1000.0 - 0.5;
                v[i] = d->positive ? 0.5 + u : u * 2 * d->scale;
            }
            for (int k = 0; k < d->nbad && n; k++) v[d->bad_idx[k] % n] = d->bad_val[k];
            H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
}

static int write_file(const mfile *f, const char *path) {
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fid < 0) return -1;
    for (int i = 0; i < f->nroot; i++) write_attr(fid, &f->root[i]);
    hid_t layers = H5Gcreate2(fid, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (layers >= 0) {
        write_attr(layers, &f->count);
        for (int i = 0; i < f->n; i++) {
            const mlayer *g = &f->L[i];
            if (!g->present) continue;
            hid_t x = H5Gcreate2(layers, g->group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (x < 0) continue; /* a renamed group that collides */
            for (int k = 0; k < g->na; k++) write_attr(x, &g->a[k]);
            for (int k = 0; k < g->nd; k++) write_dset(x, &g->d[k]);
            H5Gclose(x);
        }
        if (f->extra == 1) {
            hid_t x = H5Gcreate2(layers, "extra", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (x >= 0) H5Gclose(x);
        } else if (f->extra == 2) {
            mdset d = {.name = "notes", .present = 1, .rank = 1, .dims = {3}, .scale = 1};
            write_dset(layers, &d);
        } else if (f->extra == 3) {
            H5Lcreate_soft("/layers/000", layers, "link", H5P_DEFAULT, H5P_DEFAULT);
        }
        H5Gclose(layers);
    }
    return H5Fclose(fid) < 0 ? -1 : 0;
}

int mg_write(const uint8_t *data, size_t size, const char *path) {
    fz_bytes in = {data, size};
    static mspec spec; /* about 60 KiB */
    mg_template(&spec, fz_u8(&in));
    /* Operations 0x00-0x3f change the network, 0x40-0xff the written file. */
    fz_bytes ops = in;
    while (ops.left >= 4) {
        uint8_t op = fz_u8(&ops), a = fz_u8(&ops), b = fz_u8(&ops), c = fz_u8(&ops);
        if (op < 0x40) mg_spec_op(&spec, op, a, b, c);
    }
    static mfile f; /* about 210 KiB */
    build(&f, &spec);
    ops = in;
    while (ops.left >= 4) {
        uint8_t op = fz_u8(&ops), a = fz_u8(&ops), b = fz_u8(&ops), c = fz_u8(&ops);
        if (op >= 0x40) file_op(&f, op, a, b, c);
    }
    H5E_auto2_t func;
    void *cd;
    H5Eget_auto2(H5E_DEFAULT, &func, &cd);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = write_file(&f, path);
    H5Eset_auto2(H5E_DEFAULT, func, cd);
    return rc;
}
