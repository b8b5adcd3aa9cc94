/*
 * Small HDF5 read helpers for the model loader, private to core/. Each one checks
 * what it reads (presence, type class, element count, range) and on failure writes
 * one message naming the file, the object being read (`where`) and the problem.
 *
 * The caller silences HDF5's own error printing (mh5_quiet) around these calls;
 * messages come only through `err`.
 */
#ifndef SAL_MODEL_H5_H
#define SAL_MODEL_H5_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

/* Appended to messages about a file's contents: what to do next. */
#define MH5_HINT "re-run scripts/export_torchvision.py, or see docs/model-format.md"

typedef struct {
    const char *path; /* the model file, first word of every message          */
    char where[160];  /* object being read, e.g. "/layers/003 (conv2)"         */
    char *err;        /* caller's message buffer; may be NULL                  */
    size_t errlen;
    char *bounce;     /* mh5_read_rows' staging buffer, or NULL: read in place */
    size_t bounce_bytes;
} mh5;

/* HDF5's automatic error printing, saved so it can be restored. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} mh5_quiet_state;

/* strdup, which strict C11 lacks; NULL when out of memory. */
char *mh5_strdup(const char *s);

/* Turns HDF5's stderr error stack off; mh5_loud restores what was there. */
void mh5_quiet(mh5_quiet_state *s);
void mh5_loud(const mh5_quiet_state *s);

/* Formats "path: where: message; hint" into c->err and returns -1. */
int mh5_fail(mh5 *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Copies the most specific message on HDF5's current error stack into buf ("" if
 * none), so a refusal can say why the library failed. */
void mh5_last_error(char *buf, size_t len);

/* Reads string attribute `name` of obj into buf (NUL-terminated, trailing blanks
 * dropped). Fixed-length (MATLAB, numpy bytes) and variable-length (h5py str)
 * strings are both accepted. Returns 0 on success, 1 when the attribute is absent
 * and !required (buf untouched), -1 on error. */
int mh5_attr_str(mh5 *c, hid_t obj, const char *name, char *buf, size_t len,
                 int required);

/* Reads attribute `name`, 1..maxn strings (variable or fixed length, as
 * mh5_attr_str), into buf: string i at buf + i*each, NUL-terminated, each shorter
 * than `each`. Sets *n. Returns 0, 1 (absent, !required) or -1. */
int mh5_attr_str_array(mh5 *c, hid_t obj, const char *name, char *buf, size_t each,
                       int maxn, int *n, int required);

/* Reads exactly n integers from attribute `name` into v, each within [lo, hi].
 * Integer types of any width are accepted, and floating-point values that are
 * whole numbers (MATLAB's default double). Returns 0, 1 (absent, !required) or -1. */
int mh5_attr_ints(mh5 *c, hid_t obj, const char *name, int64_t *v, int n, int64_t lo,
                  int64_t hi, int required);

/* Reads exactly n finite numbers (float or integer type) from attribute `name`.
 * Returns 0, 1 (absent, !required) or -1. */
int mh5_attr_doubles(mh5 *c, hid_t obj, const char *name, double *v, int n,
                     int required);

/* Checks that dataset `name` of group g exists, holds float32 or float64 values and
 * has exactly the given rank and dims. Returns 0 or -1. */
int mh5_check_dataset(mh5 *c, hid_t g, const char *name, int rank, const int64_t *dims);

/* Reads dataset `name` (already checked to hold `count` elements) into buf as
 * native double (as_double) or float, then refuses any non-finite element.
 * Returns 0 or -1. */
int mh5_read_dataset(mh5 *c, hid_t g, const char *name, int as_double, void *buf,
                     int64_t count);

/* The same for elements [lo, hi) only, which must be whole rows of the dataset's first
 * dimension (hi may be count): buf is where element 0 goes, and only buf[lo .. hi) is
 * written. With c->bounce, a contiguous dataset is read in slabs of whole rows through
 * that buffer, checked there and copied on: memory written for the first time is slow
 * on some virtual machines, and this touches the destination once instead of twice
 * (the kernel's copy, then the check). A message names the element by its index in
 * the whole dataset. */
int mh5_read_rows(mh5 *c, hid_t g, const char *name, int as_double, void *buf, int64_t count,
                  int64_t lo, int64_t hi);

#endif
