/*
 * Reading the PyTorch reference file of tests/test_reference.c (layout: the top of
 * tests/reference/make_reference.py). Every HDF5 call is checked; a failure prints
 * file:line, the call, the dataset, a hint and HDF5's own message, then exits 2.
 */
#include "reference_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *file, int line, const char *what, const char *path) {
    fprintf(stderr, "%s:%d: %s failed for %s\n", file, line, what, path);
    fprintf(stderr, "hint: re-run tests/reference/make_reference.py (ctest -L reference "
                    "runs it as a fixture)\n");
    H5Eprint2(H5E_DEFAULT, stderr);
    exit(2);
}

/* Aborts with file:line, the call and HDF5's own message when `call` is negative. */
#define H5_TRY(call, path)                                                           \
    do {                                                                              \
        if ((call) < 0) die(__FILE__, __LINE__, #call, path);                          \
    } while (0)

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

void *read_dataset(hid_t f, const char *name, hid_t memtype, size_t elsize,
                   hsize_t *dims, int *rank) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    H5_TRY(d, name);
    hid_t s = H5Dget_space(d);
    H5_TRY(s, name);
    *rank = H5Sget_simple_extent_ndims(s);
    if (*rank < 1 || *rank > 8) die(__FILE__, __LINE__, "rank 1..8", name);
    H5_TRY(H5Sget_simple_extent_dims(s, dims, NULL), name);
    size_t count = 1;
    for (int i = 0; i < *rank; i++) count *= dims[i];
    void *buf = xmalloc(count * elsize);
    H5_TRY(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), name);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

double read_dataset_double_attr(hid_t f, const char *path, const char *attr) {
    double v = NAN;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    H5_TRY(d, path);
    if (H5Aexists(d, attr) > 0) {
        hid_t a = H5Aopen(d, attr, H5P_DEFAULT);
        H5_TRY(a, path);
        H5_TRY(H5Aread(a, H5T_NATIVE_DOUBLE, &v), path);
        H5Aclose(a);
    }
    H5Dclose(d);
    return v;
}

/* The attribute `name` of obj, an array of strings, as a malloc'd array of malloc'd
 * strings; *count gets their number. A scalar string reads as one. */
static char **read_strings(hid_t obj, const char *name, int *count) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    H5_TRY(a, name);
    hid_t s = H5Aget_space(a);
    H5_TRY(s, name);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    if (n < 1 || n > 100000) die(__FILE__, __LINE__, "1..100000 strings", name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5_TRY(H5Tset_size(t, H5T_VARIABLE), name);
    H5_TRY(H5Tset_cset(t, H5T_CSET_UTF8), name);
    char **vals = xmalloc(sizeof(char *) * n), **out = xmalloc(sizeof(char *) * n);
    H5_TRY(H5Aread(a, t, vals), name);
    for (hssize_t i = 0; i < n; i++) {
        out[i] = xmalloc(strlen(vals[i]) + 1);
        strcpy(out[i], vals[i]);
        H5free_memory(vals[i]);
    }
    free(vals);
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    *count = (int)n;
    return out;
}

static void free_strings(char **s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

/* The int array attribute `name` of obj, malloc'd; *count gets its length. */
static int *read_ints(hid_t obj, const char *name, int *count) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    H5_TRY(a, name);
    hid_t s = H5Aget_space(a);
    H5_TRY(s, name);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    if (n < 1 || n > 100000) die(__FILE__, __LINE__, "a short int array", name);
    int *v = xmalloc(sizeof(int) * n);
    H5_TRY(H5Aread(a, H5T_NATIVE_INT, v), name);
    H5Sclose(s);
    H5Aclose(a);
    *count = (int)n;
    return v;
}

/* DNNBrain's names and maps, present for graph networks. */
static void read_dnnbrain(reference *r, hid_t f) {
    hsize_t dims[8];
    int rank, k;
    if (H5Aexists(f, "dnnbrain_names") > 0) {
        r->dn_names = read_strings(f, "dnnbrain_names", &r->npairs);
        r->dn_nodes = read_strings(f, "dnnbrain_nodes", &k);
        if (k != r->npairs) die(__FILE__, __LINE__, "one node per name", "dnnbrain_nodes");
    }
    if (H5Lexists(f, "dnnbrain", H5P_DEFAULT) <= 0) return;
    hid_t g = H5Gopen2(f, "dnnbrain", H5P_DEFAULT);
    H5_TRY(g, "/dnnbrain");
    r->dn_target = read_ints(g, "targets", &r->ndn);
    r->dn_methods = read_strings(g, "methods", &r->dn_nmethods);
    r->dn_expect = read_strings(g, "expect", &k);
    if (k != r->ndn * r->dn_nmethods) die(__FILE__, __LINE__, "(D*M) entries", "expect");
    r->dn_why = read_strings(g, "why", &k);
    if (k != r->ndn * r->dn_nmethods) die(__FILE__, __LINE__, "(D*M) entries", "why");
    for (int d = 0; d < r->ndn; d++)
        if (r->dn_target[d] < 0 || r->dn_target[d] >= r->ntargets)
            die(__FILE__, __LINE__, "target indices", "/dnnbrain targets");
    r->dn_maps = read_dataset(g, "maps", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    if (rank != 5 || dims[0] != (hsize_t)r->ndn || dims[1] != (hsize_t)r->dn_nmethods ||
        dims[2] * dims[3] * dims[4] != r->image_elems)
        die(__FILE__, __LINE__, "(D,M,C,H,W)", "/dnnbrain/maps");
    r->dn_explained = read_dataset(g, "explained", H5T_NATIVE_DOUBLE, sizeof(double), dims,
                                   &rank);
    if (rank != 5 || dims[0] != (hsize_t)r->ndn)
        die(__FILE__, __LINE__, "(D,M,C,H,W)", "/dnnbrain/explained");
    H5Gclose(g);
}

void reference_read(reference *r, hid_t f) {
    hsize_t dims[8];
    int rank, k;
    char **arch = read_strings(f, "arch", &k);
    r->arch = arch[0];
    for (int i = 1; i < k; i++) free(arch[i]);
    free(arch);

    r->inputs = read_strings(f, "inputs", &r->n);
    r->nfile = r->n;
    r->tlayer = read_strings(f, "target_layers", &r->ntargets);
    r->tunit = read_ints(f, "target_units", &k);
    if (k != r->ntargets) die(__FILE__, __LINE__, "one unit per target", "target_units");
    r->methods = read_strings(f, "methods", &r->nmethods);
    r->layers = read_strings(f, "layer_names", &r->nlayers);

    r->input64 = read_dataset(f, "input_f64", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    if (rank != 4 || dims[0] != (hsize_t)r->n) die(__FILE__, __LINE__, "(N,C,H,W)", "input_f64");
    r->c = (int)dims[1], r->h = (int)dims[2], r->w = (int)dims[3];
    r->image_elems = (size_t)r->c * r->h * r->w;
    r->input32 = read_dataset(f, "input_f32", H5T_NATIVE_FLOAT, sizeof(float), dims, &rank);
    r->maps64 = read_dataset(f, "maps_f64", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    if (rank != 6 || dims[0] != (hsize_t)r->n || dims[1] != (hsize_t)r->ntargets ||
        dims[2] != (hsize_t)r->nmethods)
        die(__FILE__, __LINE__, "(N,T,M,C,H,W)", "maps_f64");
    r->maps32 = read_dataset(f, "maps_f32", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    r->act64 = read_dataset(f, "act_f64", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    r->act32 = read_dataset(f, "act_f32", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    r->act_scale = read_dataset(f, "act_scale", H5T_NATIVE_DOUBLE, sizeof(double), dims, &rank);
    read_dnnbrain(r, f);
}

void reference_free(reference *r) {
    free(r->arch);
    free_strings(r->inputs, r->nfile);
    free_strings(r->tlayer, r->ntargets);
    free(r->tunit);
    free_strings(r->methods, r->nmethods);
    free_strings(r->layers, r->nlayers);
    free(r->input64);
    free(r->input32);
    free(r->maps64);
    free(r->maps32);
    free(r->act64);
    free(r->act32);
    free(r->act_scale);
    free_strings(r->dn_names, r->npairs);
    free_strings(r->dn_nodes, r->npairs);
    free(r->dn_target);
    free_strings(r->dn_methods, r->dn_nmethods);
    free_strings(r->dn_expect, r->ndn * r->dn_nmethods);
    free_strings(r->dn_why, r->ndn * r->dn_nmethods);
    free(r->dn_maps);
    free(r->dn_explained);
}
