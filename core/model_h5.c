/*
 * HDF5 read helpers for the model loader (see model_h5.h). They exist so that
 * every way a file can be wrong ends in one message that names the file, the
 * object and the expectation, instead of an HDF5 error stack on stderr.
 */
#include "model_h5.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MH5_MAX_ATTR_VALUES 8
#define MH5_MAX_STRING 4096
#define MH5_MSG_LEN 768

char *mh5_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void mh5_quiet(mh5_quiet_state *s) {
    s->func = NULL;
    s->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &s->func, &s->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void mh5_loud(const mh5_quiet_state *s) { H5Eset_auto2(H5E_DEFAULT, s->func, s->data); }

int mh5_fail(mh5 *c, const char *fmt, ...) {
    if (!c->err || !c->errlen) return -1;
    char msg[MH5_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->where[0])
        snprintf(c->err, c->errlen, "%s: %s: %s; %s", c->path, c->where, msg, MH5_HINT);
    else
        snprintf(c->err, c->errlen, "%s: %s; %s", c->path, msg, MH5_HINT);
    return -1;
}

typedef struct {
    char *buf;
    size_t len;
} last_error;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    last_error *le = data;
    if (n == 0 && e->desc) snprintf(le->buf, le->len, "%s", e->desc);
    return 0;
}

void mh5_last_error(char *buf, size_t len) {
    if (!len) return;
    buf[0] = '\0';
    last_error le = {buf, len};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &le);
}

/* A short human name for an HDF5 type: "int32", "float64", "string", ... */
static void type_name(hid_t t, char *buf, size_t len) {
    size_t size = H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%s%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int",
                 8 * size);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", 8 * size); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_ENUM: snprintf(buf, len, "enum (e.g. boolean)"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    default: snprintf(buf, len, "HDF5 type class %d", (int)H5Tget_class(t)); break;
    }
}

/* Opens attribute `name` and checks it holds n elements. Returns 0 (a, t open),
 * 1 (absent and !required), -1 (error; nothing open). */
static int attr_open(mh5 *c, hid_t obj, const char *name, int n, int required, hid_t *a,
                     hid_t *t) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return mh5_fail(c, "cannot query attribute '%s'", name);
    if (ex == 0) {
        if (!required) return 1;
        return mh5_fail(c, "missing attribute '%s'", name);
    }
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) return mh5_fail(c, "cannot open attribute '%s'", name);
    *t = H5Aget_type(*a);
    hid_t sp = H5Aget_space(*a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    if (*t < 0 || np != n) {
        if (*t >= 0) H5Tclose(*t);
        H5Aclose(*a);
        if (n == 1) return mh5_fail(c, "attribute '%s' has %lld values, expected one",
                                    name, (long long)np);
        return mh5_fail(c, "attribute '%s' has %lld values, expected %d", name,
                        (long long)np, n);
    }
    return 0;
}

int mh5_attr_str(mh5 *c, hid_t obj, const char *name, char *buf, size_t len,
                 int required) {
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID;
    int r = attr_open(c, obj, name, 1, required, &a, &t);
    if (r) return r;
    char *s = NULL;
    int ok = 0;
    if (H5Tget_class(t) != H5T_STRING) {
        char tn[64];
        type_name(t, tn, sizeof tn);
        r = mh5_fail(c, "attribute '%s' is %s, expected a string", name, tn);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char *v = NULL;
        if (H5Aread(a, mt, &v) >= 0 && v) {
            s = mh5_strdup(v);
            ok = s != NULL;
        }
        if (v) H5free_memory(v);
        H5Tclose(mt);
    } else {
        /* Fixed length: read the raw bytes, then drop NUL or space padding. */
        size_t size = H5Tget_size(t);
        if (size > 0 && size <= MH5_MAX_STRING && (s = calloc(1, size + 1))) {
            ok = H5Aread(a, t, s) >= 0;
            size_t k = strlen(s); /* s[size] is NUL */
            while (k > 0 && s[k - 1] == ' ') k--;
            s[k] = '\0';
        }
    }
    H5Tclose(t);
    H5Aclose(a);
    if (r) {
        free(s);
        return r;
    }
    if (!ok) {
        free(s);
        return mh5_fail(c, "cannot read string attribute '%s'", name);
    }
    if (strlen(s) >= len) {
        r = mh5_fail(c, "attribute '%s' is %zu characters long, at most %zu allowed", name,
                     strlen(s), len - 1);
        free(s);
        return r;
    }
    memcpy(buf, s, strlen(s) + 1);
    free(s);
    return 0;
}

int mh5_attr_str_array(mh5 *c, hid_t obj, const char *name, char *buf, size_t each,
                       int maxn, int *n, int required) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return mh5_fail(c, "cannot query attribute '%s'", name);
    if (ex == 0) return required ? mh5_fail(c, "missing attribute '%s'", name) : 1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return mh5_fail(c, "cannot open attribute '%s'", name);
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    int r = 0;
    char *raw = NULL, **v = NULL;
    if (t < 0) {
        r = mh5_fail(c, "cannot read the type of attribute '%s'", name);
    } else if (H5Tget_class(t) != H5T_STRING) {
        char tn[64];
        type_name(t, tn, sizeof tn);
        r = mh5_fail(c, "attribute '%s' is %s, expected strings", name, tn);
    } else if (np < 1 || np > maxn) {
        r = mh5_fail(c, "attribute '%s' holds %lld strings, expected 1 to %d", name,
                     (long long)np, maxn);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        v = calloc((size_t)np, sizeof *v);
        if (!v || H5Aread(a, mt, v) < 0) r = mh5_fail(c, "cannot read attribute '%s'", name);
        for (hssize_t i = 0; !r && i < np; i++) {
            if (!v[i] || strlen(v[i]) >= each)
                r = mh5_fail(c, "attribute '%s' string %lld is %s, at most %zu characters "
                             "allowed", name, (long long)i, v[i] ? "too long" : "unreadable",
                             each - 1);
            else
                memcpy(buf + (size_t)i * each, v[i], strlen(v[i]) + 1);
        }
        for (hssize_t i = 0; v && i < np; i++)
            if (v[i]) H5free_memory(v[i]);
        H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(t);
        if (size < 1 || size > MH5_MAX_STRING || !(raw = calloc((size_t)np, size + 1)) ||
            H5Aread(a, t, raw) < 0)
            r = mh5_fail(c, "cannot read attribute '%s'", name);
        for (hssize_t i = 0; !r && i < np; i++) {
            char one[MH5_MAX_STRING + 1];
            memcpy(one, raw + (size_t)i * size, size);
            one[size] = '\0';
            size_t k = strlen(one);
            while (k > 0 && one[k - 1] == ' ') k--;
            one[k] = '\0';
            if (k >= each)
                r = mh5_fail(c, "attribute '%s' string %lld is %zu characters long, at most "
                             "%zu allowed", name, (long long)i, k, each - 1);
            else
                memcpy(buf + (size_t)i * each, one, k + 1);
        }
    }
    free(v);
    free(raw);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    if (!r) *n = (int)np;
    return r;
}

/* Reads n numbers of attribute `name` as double, noting whether the stored type
 * was an integer. Returns 0, 1 (absent, !required) or -1. */
static int attr_numbers(mh5 *c, hid_t obj, const char *name, double *v, int64_t *iv,
                        int n, int required, int *is_int) {
    hid_t a = H5I_INVALID_HID, t = H5I_INVALID_HID;
    if (n > MH5_MAX_ATTR_VALUES) return mh5_fail(c, "internal: attribute '%s' too long", name);
    int r = attr_open(c, obj, name, n, required, &a, &t);
    if (r) return r;
    H5T_class_t cls = H5Tget_class(t);
    if (cls == H5T_INTEGER) {
        *is_int = 1;
        if (H5Aread(a, H5T_NATIVE_INT64, iv) < 0)
            r = mh5_fail(c, "cannot read attribute '%s'", name);
        for (int i = 0; i < n && !r; i++) v[i] = (double)iv[i];
    } else if (cls == H5T_FLOAT) {
        *is_int = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0)
            r = mh5_fail(c, "cannot read attribute '%s'", name);
    } else {
        char tn[64];
        type_name(t, tn, sizeof tn);
        r = mh5_fail(c, "attribute '%s' is %s, expected a number", name, tn);
    }
    H5Tclose(t);
    H5Aclose(a);
    return r;
}

int mh5_attr_ints(mh5 *c, hid_t obj, const char *name, int64_t *v, int n, int64_t lo,
                  int64_t hi, int required) {
    double d[MH5_MAX_ATTR_VALUES];
    int64_t iv[MH5_MAX_ATTR_VALUES];
    int is_int = 0;
    int r = attr_numbers(c, obj, name, d, iv, n, required, &is_int);
    if (r) return r;
    for (int i = 0; i < n; i++) {
        if (!is_int) {
            /* Whole-valued doubles are accepted for MATLAB, whose literals are double. */
            if (!isfinite(d[i]) || d[i] != floor(d[i]))
                return mh5_fail(c, "attribute '%s' holds %g, expected an integer", name,
                                d[i]);
            if (d[i] < (double)lo || d[i] > (double)hi)
                return mh5_fail(c, "attribute '%s' is %g, expected %lld..%lld", name, d[i],
                                (long long)lo, (long long)hi);
            iv[i] = (int64_t)d[i];
        }
        if (iv[i] < lo || iv[i] > hi)
            return mh5_fail(c, "attribute '%s' is %lld, expected %lld..%lld", name,
                            (long long)iv[i], (long long)lo, (long long)hi);
        v[i] = iv[i];
    }
    return 0;
}

int mh5_attr_doubles(mh5 *c, hid_t obj, const char *name, double *v, int n,
                     int required) {
    int64_t iv[MH5_MAX_ATTR_VALUES];
    int is_int = 0;
    int r = attr_numbers(c, obj, name, v, iv, n, required, &is_int);
    if (r) return r;
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return mh5_fail(c, "attribute '%s' holds %g, expected a finite number", name,
                            v[i]);
    return 0;
}

/* "(64, 3, 11, 11)" */
static void dims_text(char *buf, size_t len, int rank, const int64_t *d) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < rank && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (k < len) snprintf(buf + k, len - k, ")");
}

int mh5_check_dataset(mh5 *c, hid_t g, const char *name, int rank, const int64_t *dims) {
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex <= 0) return mh5_fail(c, "missing dataset '%s'", name);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return mh5_fail(c, "'%s' is not a dataset", name);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int r = 0;
    if (t < 0 || sp < 0) {
        r = mh5_fail(c, "cannot read the type or shape of dataset '%s'", name);
    } else if (H5Tget_class(t) != H5T_FLOAT ||
               (H5Tget_size(t) != 4 && H5Tget_size(t) != 8)) {
        char tn[64];
        type_name(t, tn, sizeof tn);
        r = mh5_fail(c, "dataset '%s' is %s, expected float32 or float64", name, tn);
    } else {
        int fr = H5Sget_simple_extent_ndims(sp);
        hsize_t fd[H5S_MAX_RANK];
        int64_t got[H5S_MAX_RANK];
        int same = fr == rank;
        if (fr >= 0 && H5Sget_simple_extent_dims(sp, fd, NULL) >= 0) {
            for (int i = 0; i < fr; i++) {
                got[i] = fd[i] > INT64_MAX ? INT64_MAX : (int64_t)fd[i];
                if (same && got[i] != dims[i]) same = 0;
            }
        } else {
            fr = 0;
            same = 0;
        }
        if (!same) {
            char want[160], have[160];
            dims_text(want, sizeof want, rank, dims);
            dims_text(have, sizeof have, fr, got);
            r = mh5_fail(c, "dataset '%s' has shape %s, expected %s", name, have, want);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return r;
}

/* Whether no element is NaN or infinite: all exponent bits set. An integer test
 * the compiler vectorises, since this runs over every weight at every start; the
 * loop below finds and names the first bad element only when there is one. */
static int all_finite(const void *buf, int64_t count, int as_double) {
    const unsigned char *p = buf;
    int bad = 0;
    if (as_double) {
        const uint64_t e = 0x7ff0000000000000u;
        for (int64_t i = 0; i < count; i++) {
            uint64_t u;
            memcpy(&u, p + 8 * i, 8);
            bad |= (u & e) == e;
        }
    } else {
        const uint32_t e = 0x7f800000u;
        for (int64_t i = 0; i < count; i++) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            bad |= (u & e) == e;
        }
    }
    return !bad;
}

/* Names the first non-finite element of buf (elements first .. first + n - 1 of the
 * dataset) in c->err and returns -1. */
static int name_bad_element(mh5 *c, const char *name, const void *buf, int64_t first,
                            int64_t n, int64_t count, int as_double, size_t fsize) {
    for (int64_t i = 0; i < n; i++) {
        double v = as_double ? ((const double *)buf)[i] : (double)((const float *)buf)[i];
        if (isfinite(v)) continue;
        long long at = (long long)(first + i), of = (long long)count;
        if (isnan(v))
            return mh5_fail(c, "dataset '%s' element %lld (of %lld, row-major) is NaN", name,
                            at, of);
        if (!as_double && fsize == 8)
            return mh5_fail(c, "dataset '%s' element %lld (of %lld, row-major) is %s in "
                            "float32 (infinite, or beyond float32 range in the float64 "
                            "file)", name, at, of, v > 0 ? "+Inf" : "-Inf");
        return mh5_fail(c, "dataset '%s' element %lld (of %lld, row-major) is %s", name, at,
                        of, v > 0 ? "+Inf" : "-Inf");
    }
    return mh5_fail(c, "dataset '%s': a non-finite element vanished on a second look", name);
}

int mh5_read_rows(mh5 *c, hid_t g, const char *name, int as_double, void *buf, int64_t count,
                  int64_t lo, int64_t hi) {
    if (lo >= hi) return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return mh5_fail(c, "cannot open dataset '%s'", name);
    hid_t t = H5Dget_type(d), fs = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    size_t fsize = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0) H5Tclose(t);
    const size_t rs = as_double ? sizeof(double) : sizeof(float);
    hsize_t dims[8] = {0}, start[8] = {0}, cnt[8];
    int rank = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    if (rank < 1 || rank > 8 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0) rank = 0;
    int64_t row = 1;
    for (int k = 1; k < rank; k++) row *= (int64_t)dims[k];
    /* Slabs of whole rows through the small buffer when the dataset is contiguous on
     * disk (a chunked one is read in one go: slabs would inflate its chunks again and
     * again); the whole range in one read otherwise. */
    int64_t per = hi - lo;
    int staged = 0;
    if (c->bounce && dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
        (int64_t)(c->bounce_bytes / rs) >= row) {
        per = (int64_t)(c->bounce_bytes / rs) / row * row;
        staged = 1;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    int r = rank ? 0 : mh5_fail(c, "cannot read the shape of dataset '%s'", name);
    if (!r && (lo % row || (hi % row && hi != count)))
        r = mh5_fail(c, "dataset '%s': elements %lld..%lld are not whole rows", name,
                     (long long)lo, (long long)hi);
    hid_t type = as_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    for (int64_t at = lo; !r && at < hi; at += per) {
        int64_t n = hi - at < per ? hi - at : per;
        char *dst = (char *)buf + rs * (size_t)at;
        char *into = staged ? c->bounce : dst;
        for (int k = 0; k < rank; k++) start[k] = 0, cnt[k] = dims[k];
        start[0] = (hsize_t)(at / row);
        cnt[0] = (hsize_t)(n / row);
        hsize_t mdim = (hsize_t)n;
        hid_t ms = H5Screate_simple(1, &mdim, NULL);
        herr_t st = ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt,
                                                  NULL) < 0
                        ? -1
                        : H5Dread(d, type, ms, fs, H5P_DEFAULT, into);
        if (ms >= 0) H5Sclose(ms);
        if (st < 0) {
            char why[256];
            mh5_last_error(why, sizeof why);
            r = mh5_fail(c, "cannot read dataset '%s' (%s; truncated or damaged file?)",
                         name, why[0] ? why : "HDF5 read error");
            break;
        }
        if (!all_finite(into, n, as_double))
            r = name_bad_element(c, name, into, at, n, count, as_double, fsize);
        else if (into != dst)
            memcpy(dst, into, rs * (size_t)n);
    }
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return r;
}

int mh5_read_dataset(mh5 *c, hid_t g, const char *name, int as_double, void *buf,
                     int64_t count) {
    return mh5_read_rows(c, g, name, as_double, buf, count, 0, count);
}
