/*
 * The layout of the output file (SPEC §4, docs/output-format.md): creating the
 * datasets, dimension scales and provenance attributes of a new file, and checking
 * on resume that an existing file was made for the same job.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5_hl.h>

#include "output_internal.h"

#define OVERWRITE_HINT "; use --overwrite to replace it, or another [output] path"

hid_t spo_vlen_str(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

const char *const spo_dset_names[SPO_NDSETS] = {
    "saliency", "activation", "status", "error", "gradcam", "integrated_gradients_gap"};

hid_t *spo_dset_ids(spo_dsets *d, int i) {
    hid_t *ids[SPO_NDSETS] = {&d->saliency, &d->activation, &d->status,
                              &d->error,    &d->gradcam,    &d->ig_gap};
    return ids[i];
}

static void dsets_none(spo_dsets *d) {
    for (int i = 0; i < SPO_NDSETS; i++) *spo_dset_ids(d, i) = -1;
}

void spo_dsets_close(spo_dsets *d) {
    for (int i = 0; i < SPO_NDSETS; i++) {
        hid_t *id = spo_dset_ids(d, i);
        if (*id >= 0) H5Dclose(*id);
        *id = -1;
    }
}

/* ---- creation --------------------------------------------------------------- */

/* A dataset, chunked when chunk != NULL (and then deflated at level > 0, with the
 * shuffle before it), with an explicit fill value when fill != NULL. */
static hid_t create_ds(hid_t file, const char *name, hid_t type, int rank,
                       const hsize_t *dims, const hsize_t *chunk, const void *fill,
                       int level) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    if (space < 0 || dcpl < 0) goto done;
    /* No timestamps: nothing in an object header changes when data is written. */
    if (H5Pset_obj_track_times(dcpl, 0) < 0) goto done;
    if (chunk) {
        if (H5Pset_chunk(dcpl, rank, chunk) < 0) goto done;
        if (level > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)level) < 0))
            goto done;
    }
    if (fill && H5Pset_fill_value(dcpl, type, fill) < 0) goto done;
    ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return ds;
}

/* With writers > 1 the job's file holds its per-image datasets as virtual
 * datasets: part k's whole dataset of the same name maps onto the rows
 * [part_first[k-1], part_first[k]) (one hyperslab block each), the parts are named
 * relative to the job's file, so HDF5 finds them beside it wherever the set is
 * moved. Unmapped or unreadable parts read as the fill value (NaN, status 0). */
static hid_t create_vds(hid_t file, const char *name, hid_t type, int rank,
                        const hsize_t *dims, const void *fill, const sp_output_layout *lay) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    char src[80];
    snprintf(src, sizeof src, "/%s", name);
    if (space < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) goto done;
    for (int k = 0; k < lay->writers; k++) {
        hsize_t start[6] = {0}, count[6];
        memcpy(count, dims, sizeof *dims * (size_t)rank);
        start[0] = (hsize_t)lay->part_first[k];
        count[0] = (hsize_t)(lay->part_first[k + 1] - lay->part_first[k]);
        hid_t sspace = H5Screate_simple(rank, count, NULL);
        int bad = sspace < 0 ||
                  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                  H5Pset_virtual(dcpl, space, lay->part_files[k], src, sspace) < 0;
        if (sspace >= 0) H5Sclose(sspace);
        if (bad) goto done;
    }
    H5Sselect_all(space);
    if (fill && H5Pset_fill_value(dcpl, type, fill) < 0) goto done;
    ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return ds;
}

/* The job's file of writers > 1 (virtual), else an ordinary dataset. */
static int is_vds(const sp_output_layout *lay) { return lay->writers > 1 && lay->part == 0; }
static hid_t create_data(hid_t file, const char *name, hid_t type, int rank,
                         const hsize_t *dims, const hsize_t *chunk, const void *fill,
                         int level, const sp_output_layout *lay) {
    return is_vds(lay) ? create_vds(file, name, type, rank, dims, fill, lay)
                       : create_ds(file, name, type, rank, dims, chunk, fill, level);
}

/* A 1-D contiguous label or coordinate dataset holding n values of `type`. */
static hid_t create_labels(hid_t file, const char *name, hid_t type, hsize_t n,
                           const void *values) {
    hid_t ds = create_ds(file, name, type, 1, &n, NULL, NULL, 0);
    if (ds < 0) return -1;
    if (n > 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        H5Dclose(ds);
        return -1;
    }
    return ds;
}

static hid_t create_coord(hid_t file, const char *name, int n) {
    int32_t *v = malloc(sizeof *v * (size_t)n);
    if (!v) return -1;
    for (int i = 0; i < n; i++) v[i] = i;
    hid_t ds = create_labels(file, name, H5T_NATIVE_INT32, (hsize_t)n, v);
    free(v);
    return ds;
}

static int attr_write(hid_t loc, const char *name, hid_t type, hsize_t n,
                      const void *value) {
    hid_t space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    if (space < 0) return -1;
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, type, value) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

static int attr_str(hid_t loc, hid_t vstr, const char *name, const char *value) {
    const char *v = value ? value : "";
    return attr_write(loc, name, vstr, 0, &v);
}

static const char *resize_name(int crop) { return crop ? "crop" : "stretch"; }
static const char *precision_name(sal_precision p) {
    return p == SAL_F64 ? "float64" : "float32";
}

static int write_root_attrs(hid_t file, hid_t vstr, const sp_output_layout *lay) {
    const sal_preprocess *pp = lay->preprocess;
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int32_t version = SPO_FORMAT_VERSION;
    int32_t size[2] = {pp->height, pp->width};
    int nch = pp->channels >= 1 && pp->channels <= 3 ? pp->channels : 3;
    int rc = 0;
    rc |= attr_str(file, vstr, "salpipe_format", SPO_FORMAT_NAME);
    rc |= attr_write(file, "salpipe_format_version", H5T_NATIVE_INT32, 0, &version);
    rc |= attr_str(file, vstr, "salpipe_version", lay->salpipe_version);
    rc |= attr_str(file, vstr, "config", lay->config_text);
    rc |= attr_str(file, vstr, "config_path", lay->config_path);
    rc |= attr_str(file, vstr, "model_path", lay->model_path);
    rc |= attr_str(file, vstr, "model_sha256", lay->model_sha256);
    rc |= attr_str(file, vstr, "model_name", lay->model_name);
    rc |= attr_write(file, "input_size", H5T_NATIVE_INT32, 2, size);
    rc |= attr_write(file, "input_channels", H5T_NATIVE_INT32, 0, &pp->channels);
    rc |= attr_write(file, "mean", H5T_NATIVE_DOUBLE, (hsize_t)nch, pp->mean);
    rc |= attr_write(file, "std", H5T_NATIVE_DOUBLE, (hsize_t)nch, pp->std);
    rc |= attr_str(file, vstr, "resize", resize_name(pp->resize_crop));
    rc |= attr_write(file, "resize_size", H5T_NATIVE_INT32, 0, &pp->resize_size);
    rc |= attr_str(file, vstr, "precision", precision_name(lay->precision));
    rc |= attr_str(file, vstr, "created", created);
    for (int i = 0; i < lay->nparams; i++) {
        const sp_output_param *q = &lay->params[i];
        int32_t i32 = (int32_t)q->i;
        switch (q->kind) {
        case SP_PARAM_INT: rc |= attr_write(file, q->name, H5T_NATIVE_INT32, 0, &i32); break;
        case SP_PARAM_UINT64: rc |= attr_write(file, q->name, H5T_NATIVE_UINT64, 0, &q->u); break;
        case SP_PARAM_DOUBLE: rc |= attr_write(file, q->name, H5T_NATIVE_DOUBLE, 0, &q->d); break;
        case SP_PARAM_STRING: rc |= attr_str(file, vstr, q->name, q->s); break;
        }
    }
    if (lay->writers > 1) {
        int32_t k = lay->writers, part = lay->part, first = lay->first_image;
        rc |= attr_write(file, "writers", H5T_NATIVE_INT32, 0, &k);
        if (lay->part) {
            rc |= attr_write(file, "writer_part", H5T_NATIVE_INT32, 0, &part);
            rc |= attr_write(file, "first_image", H5T_NATIVE_INT32, 0, &first);
        } else {
            rc |= attr_write(file, "part_files", vstr, (hsize_t)k, lay->part_files);
            rc |= attr_write(file, "part_first_image", H5T_NATIVE_INT32, (hsize_t)k + 1,
                             lay->part_first);
        }
    }
    return rc;
}

/* "layer:unit" for every target, as one malloc'ed block of pointers and text. */
static char **target_labels(const sp_output_layout *lay) {
    size_t n = (size_t)lay->ntargets, bytes = n * sizeof(char *);
    for (size_t t = 0; t < n; t++) bytes += strlen(lay->target_layers[t]) + 13;
    char **v = malloc(bytes);
    if (!v) return NULL;
    char *p = (char *)(v + n);
    for (size_t t = 0; t < n; t++) {
        v[t] = p;
        p += sprintf(p, "%s:%d", lay->target_layers[t], (int)lay->target_units[t]) + 1;
    }
    return v;
}

int spo_layout_create(hid_t file, const char *path, const sp_output_layout *lay,
                      spo_dsets *d, char *err, size_t errlen) {
    enum { IMAGE, TARGET, METHOD, CHANNEL, Y, X, TLAYER, TUNIT, NLABEL };
    hid_t lab[NLABEL];
    for (int i = 0; i < NLABEL; i++) lab[i] = -1;
    dsets_none(d);
    const char *what = "labels";
    int rc = SP_OUT_IOERR;
    char **tl = target_labels(lay);
    hid_t vstr = spo_vlen_str();
    hid_t ftype = lay->precision == SAL_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
    if (!tl || vstr < 0) {
        snprintf(err, errlen, "%s: out of memory while creating the file", path);
        goto done;
    }
    hsize_t N = (hsize_t)lay->nimages, T = (hsize_t)lay->ntargets,
            M = (hsize_t)lay->nmethods;
    lab[IMAGE] = create_labels(file, "image", vstr, N, lay->images);
    lab[TARGET] = create_labels(file, "target", vstr, T, tl);
    lab[METHOD] = create_labels(file, "method", vstr, M, lay->methods);
    lab[CHANNEL] = create_coord(file, "channel", lay->channels);
    lab[Y] = create_coord(file, "y", lay->height);
    lab[X] = create_coord(file, "x", lay->width);
    lab[TLAYER] = create_labels(file, "target_layer", vstr, T, lay->target_layers);
    lab[TUNIT] = create_labels(file, "target_unit", H5T_NATIVE_INT32, T, lay->target_units);
    for (int i = 0; i < NLABEL; i++)
        if (lab[i] < 0) goto h5fail;
    /* [output] channels = "max_abs" (the "channels" parameter): say so on the
     * one-element channel coordinate too, where xarray shows it. */
    for (int i = 0; i < lay->nparams; i++)
        if (!strcmp(lay->params[i].name, "channels") && lay->params[i].s &&
            !strcmp(lay->params[i].s, "max_abs") &&
            attr_str(lab[CHANNEL], vstr, "long_name",
                     "max_abs: the largest |map| over the input channels") < 0)
            goto h5fail;

    what = "/saliency";
    double nan64 = NAN;
    float nan32 = NAN;
    const void *nan = lay->precision == SAL_F64 ? (const void *)&nan64 : (const void *)&nan32;
    size_t esize = lay->precision == SAL_F64 ? 8 : 4;
    hsize_t sdims[6] = {N, T, M, (hsize_t)lay->channels, (hsize_t)lay->height,
                        (hsize_t)lay->width};
    hsize_t schunk[6] = {1, 1, 1, sdims[3], sdims[4], sdims[5]};
    if (M > 0) { /* a job of Grad-CAM alone has no /saliency */
        d->saliency = create_data(file, "saliency", ftype, 6, sdims, schunk, nan, lay->compression, lay);
        if (d->saliency < 0) goto h5fail;
    }
    what = "/gradcam";
    hsize_t gdims[4] = {N, T, sdims[4], sdims[5]}, gchunk[4] = {1, 1, sdims[4], sdims[5]};
    if (lay->gradcam &&
        (d->gradcam = create_data(file, "gradcam", ftype, 4, gdims, gchunk, nan,
                                  lay->compression, lay)) < 0)
        goto h5fail;

    /* Small per-image datasets: chunks of up to 1024 images (at most ~1 MiB), so a
     * flush rewrites a few small chunks, not the whole dataset. */
    what = "/activation";
    hsize_t rows = N < SPO_ROWS_PER_CHUNK ? N : SPO_ROWS_PER_CHUNK;
    hsize_t acols = T < (1u << 17) ? T : (1u << 17);
    hsize_t arows = ((hsize_t)1 << 20) / (acols * esize);
    arows = arows < 1 ? 1 : arows > rows ? rows : arows;
    hsize_t adims[2] = {N, T}, achunk[2] = {arows, acols};
    d->activation = create_data(file, "activation", ftype, 2, adims, achunk, nan, 0, lay);
    if (d->activation < 0) goto h5fail;
    what = "/integrated_gradients_gap"; /* float64 whatever the precision */
    hsize_t grows = ((hsize_t)1 << 20) / (acols * 8);
    hsize_t gapchunk[2] = {grows < 1 ? 1 : grows > rows ? rows : grows, acols};
    if (lay->ig_gap &&
        ((d->ig_gap = create_data(file, "integrated_gradients_gap", H5T_NATIVE_DOUBLE, 2,
                                  adims, gapchunk, &nan64, 0, lay)) < 0 ||
         attr_str(d->ig_gap, vstr, "definition", SPO_GAP_DEFINITION) < 0))
        goto h5fail;
    what = "/status";
    int8_t zero = 0;
    d->status = create_data(file, "status", H5T_NATIVE_INT8, 1, &N, &rows, &zero, 0, lay);
    if (d->status < 0) goto h5fail;
    what = "/error";
    d->error = create_data(file, "error", vstr, 1, &N, &rows, NULL, 0, lay);
    if (d->error < 0) goto h5fail;

    what = "dimension scales";
    static const char *const scale_names[6] = {"image", "target", "method",
                                               "channel", "y", "x"};
    for (int i = 0; i < 6; i++)
        if (H5DSset_scale(lab[i], scale_names[i]) < 0) goto h5fail;
    for (unsigned i = 0; i < 6 && d->saliency >= 0; i++)
        if (H5DSattach_scale(d->saliency, lab[i], i) < 0) goto h5fail;
    static const int gscales[4] = {IMAGE, TARGET, Y, X};
    for (unsigned i = 0; i < 4 && d->gradcam >= 0; i++)
        if (H5DSattach_scale(d->gradcam, lab[gscales[i]], i) < 0) goto h5fail;
    if (d->ig_gap >= 0 && (H5DSattach_scale(d->ig_gap, lab[IMAGE], 0) < 0 ||
                           H5DSattach_scale(d->ig_gap, lab[TARGET], 1) < 0))
        goto h5fail;
    if (H5DSattach_scale(d->activation, lab[IMAGE], 0) < 0 ||
        H5DSattach_scale(d->activation, lab[TARGET], 1) < 0 ||
        H5DSattach_scale(d->status, lab[IMAGE], 0) < 0 ||
        H5DSattach_scale(d->error, lab[IMAGE], 0) < 0 ||
        H5DSattach_scale(lab[TLAYER], lab[TARGET], 0) < 0 ||
        H5DSattach_scale(lab[TUNIT], lab[TARGET], 0) < 0)
        goto h5fail;

    what = "root attributes";
    if (write_root_attrs(file, vstr, lay) < 0) goto h5fail;
    rc = SP_OUT_OK;
    goto done;
h5fail:
    spo_h5err(err, errlen, SP_OUT_IOERR, "%s: cannot create %s", path, what);
    spo_dsets_close(d);
done:
    for (int i = 0; i < NLABEL; i++)
        if (lab[i] >= 0) H5Dclose(lab[i]);
    if (vstr >= 0) H5Tclose(vstr);
    free(tl);
    return rc;
}

/* ---- checking an existing file ---------------------------------------------- */

static int refuse(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s" OVERWRITE_HINT, path, why);
    return SP_OUT_MISMATCH;
}

/* A string attribute of the root group (variable or fixed length), malloc'ed;
 * NULL when absent or not a string. */
static char *attr_read_str(hid_t file, const char *name) {
    if (H5Aexists(file, name) <= 0) return NULL;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    char *out = NULL;
    if (t < 0 || H5Tget_class(t) != H5T_STRING) goto done;
    if (H5Tis_variable_str(t) > 0) {
        hid_t m = spo_vlen_str();
        char *s = NULL;
        if (m >= 0 && H5Aread(a, m, &s) >= 0 && s) {
            out = strdup(s);
            H5free_memory(s);
        }
        if (m >= 0) H5Tclose(m);
    } else {
        size_t n = H5Tget_size(t);
        hid_t m = H5Tcopy(t);
        out = calloc(n + 1, 1);
        if (out && (m < 0 || H5Aread(a, m, out) < 0)) {
            free(out);
            out = NULL;
        }
        if (m >= 0) H5Tclose(m);
    }
done:
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return out;
}

/* n values of a numeric root attribute, converted to `mem`; -1 when absent or of
 * another element count. */
static int attr_read_num(hid_t file, const char *name, hid_t mem, hssize_t n,
                         void *out) {
    if (H5Aexists(file, name) <= 0) return -1;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    int rc = -1;
    if (s >= 0 && H5Sget_simple_extent_npoints(s) == n && H5Aread(a, mem, out) >= 0)
        rc = 0;
    if (s >= 0) H5Sclose(s);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Length of a 1-D dataset, or -1. */
static hssize_t ds_len(hid_t ds) {
    hid_t s = H5Dget_space(ds);
    if (s < 0) return -1;
    hssize_t n = H5Sget_simple_extent_ndims(s) == 1 ? H5Sget_simple_extent_npoints(s) : -1;
    H5Sclose(s);
    return n;
}

/* Compares the string dataset /name with want[n]; 0 if equal, else SP_OUT_MISMATCH
 * with "another <what> (...)". */
static int check_strings(hid_t file, const char *path, const char *name,
                         const char *what, const char *unit,
                         const char *const *want, int n, char *err, size_t errlen) {
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return refuse(err, errlen, path, "has no /%s dataset: not a complete salpipe output", name);
    hssize_t have = ds_len(ds);
    int rc = SP_OUT_MISMATCH;
    char **got = NULL;
    hid_t m = spo_vlen_str(), t = H5Dget_type(ds);
    if (have != n) {
        refuse(err, errlen, path, "was made with another %s (%lld %s in the file, %d in this config)",
               what, (long long)have, unit, n);
        goto done;
    }
    if (t < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) <= 0) {
        refuse(err, errlen, path, "/%s is not a variable-length string dataset: not a salpipe output", name);
        goto done;
    }
    got = calloc(n ? (size_t)n : 1, sizeof *got);
    if (!got || m < 0 || H5Dread(ds, m, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) < 0) {
        spo_h5err(err, errlen, SP_OUT_MISMATCH, "%s: cannot read /%s", path, name);
        free(got);
        got = NULL;
        goto done;
    }
    rc = SP_OUT_OK;
    for (int i = 0; i < n && rc == SP_OUT_OK; i++) {
        const char *g = got[i] ? got[i] : "";
        if (strcmp(g, want[i]) != 0)
            rc = refuse(err, errlen, path,
                        "was made with another %s (/%s[%d] is '%s' in the file, '%s' in this config)",
                        what, name, i, g, want[i]);
    }
    hid_t space = H5Dget_space(ds);
    if (space >= 0) {
        H5Dvlen_reclaim(m, space, H5P_DEFAULT, got);
        H5Sclose(space);
    }
done:
    free(got);
    if (t >= 0) H5Tclose(t);
    if (m >= 0) H5Tclose(m);
    H5Dclose(ds);
    return rc;
}

static void fmt_doubles(char *buf, size_t len, const double *v, int n) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < len; i++) {
        char one[32];
        snprintf(one, sizeof one, "%.15g", v[i]);
        if (strtod(one, NULL) != v[i]) snprintf(one, sizeof one, "%.17g", v[i]);
        k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? " " : "", one);
    }
}

static int check_preprocess(hid_t file, const char *path, const sp_output_layout *lay,
                            char *err, size_t errlen) {
    const sal_preprocess *pp = lay->preprocess;
    int32_t size[2], ch, rsize;
    double mean[3], std[3];
    if (attr_read_num(file, "input_size", H5T_NATIVE_INT32, 2, size) < 0 ||
        attr_read_num(file, "input_channels", H5T_NATIVE_INT32, 1, &ch) < 0 ||
        attr_read_num(file, "resize_size", H5T_NATIVE_INT32, 1, &rsize) < 0)
        return refuse(err, errlen, path, "lacks the preprocessing attributes of a salpipe output");
    if (size[0] != pp->height || size[1] != pp->width)
        return refuse(err, errlen, path,
                      "was made with another input size (%dx%d in the file, %dx%d in this run)",
                      size[0], size[1], pp->height, pp->width);
    if (ch != pp->channels)
        return refuse(err, errlen, path,
                      "was made with another number of input channels (%d in the file, %d in this run)",
                      ch, pp->channels);
    int nch = ch >= 1 && ch <= 3 ? ch : 3;
    if (attr_read_num(file, "mean", H5T_NATIVE_DOUBLE, nch, mean) < 0 ||
        attr_read_num(file, "std", H5T_NATIVE_DOUBLE, nch, std) < 0)
        return refuse(err, errlen, path, "lacks the mean/std attributes of a salpipe output");
    for (int c = 0; c < nch; c++) {
        if (mean[c] != pp->mean[c] || std[c] != pp->std[c]) {
            char a[128], b[128], x[128], y[128];
            fmt_doubles(a, sizeof a, mean, nch);
            fmt_doubles(b, sizeof b, pp->mean, nch);
            fmt_doubles(x, sizeof x, std, nch);
            fmt_doubles(y, sizeof y, pp->std, nch);
            return refuse(err, errlen, path,
                          "was made with another normalization (mean %s, std %s in the file; "
                          "mean %s, std %s in this run)", a, x, b, y);
        }
    }
    char *resize = attr_read_str(file, "resize");
    int same = resize && strcmp(resize, resize_name(pp->resize_crop)) == 0;
    if (!same) {
        int rc = refuse(err, errlen, path,
                        "was made with another resize mode ('%s' in the file, '%s' in this config)",
                        resize ? resize : "?", resize_name(pp->resize_crop));
        free(resize);
        return rc;
    }
    free(resize);
    if (pp->resize_crop && rsize != pp->resize_size)
        return refuse(err, errlen, path,
                      "was made with another resize size (Resize(%d) in the file, Resize(%d) in this run)",
                      rsize, pp->resize_size);
    return SP_OUT_OK;
}

/* A parameter's value as text: "50", "0.15", "guided". */
static void fmt_param(char *buf, size_t len, const sp_output_param *q) {
    switch (q->kind) {
    case SP_PARAM_INT: snprintf(buf, len, "%lld", (long long)q->i); break;
    case SP_PARAM_UINT64: snprintf(buf, len, "%llu", (unsigned long long)q->u); break;
    case SP_PARAM_DOUBLE: fmt_doubles(buf, len, &q->d, 1); break;
    case SP_PARAM_STRING: snprintf(buf, len, "'%.200s'", q->s); break;
    }
}

/* The methods' parameters (run after the method lists agreed, so the file was made
 * for the same methods and holds the same attributes unless it was made otherwise). */
static int check_params(hid_t file, const char *path, const sp_output_layout *lay,
                        char *err, size_t errlen) {
    for (int i = 0; i < lay->nparams; i++) {
        const sp_output_param *q = &lay->params[i];
        sp_output_param got = *q;
        char *s = NULL;
        int32_t i32 = 0;
        int absent = 0;
        switch (q->kind) {
        case SP_PARAM_INT:
            absent = attr_read_num(file, q->name, H5T_NATIVE_INT32, 1, &i32) < 0;
            got.i = i32;
            break;
        case SP_PARAM_UINT64:
            absent = attr_read_num(file, q->name, H5T_NATIVE_UINT64, 1, &got.u) < 0;
            break;
        case SP_PARAM_DOUBLE:
            absent = attr_read_num(file, q->name, H5T_NATIVE_DOUBLE, 1, &got.d) < 0;
            break;
        case SP_PARAM_STRING:
            absent = !(s = attr_read_str(file, q->name));
            got.s = s;
            break;
        }
        if (absent && q->kind == SP_PARAM_STRING && q->absent) {
            absent = 0;
            got.s = q->absent;
        }
        int same = !absent && got.i == q->i && got.u == q->u &&
                   (q->kind != SP_PARAM_DOUBLE || got.d == q->d) &&
                   (q->kind != SP_PARAM_STRING || !strcmp(got.s, q->s));
        char a[256] = "", b[256];
        if (!same && !absent) fmt_param(a, sizeof a, &got);
        fmt_param(b, sizeof b, q);
        free(s);
        if (absent)
            return refuse(err, errlen, path, "was made without the method parameter %s (%s in "
                          "this config)", q->name, b);
        if (!same)
            return refuse(err, errlen, path, "was made with another %s (%s in the file, %s in "
                          "this config)", q->name, a, b);
    }
    return SP_OUT_OK;
}

/* The file's identity and the settings that change what a map is. */
static int check_header(hid_t file, const char *path, const sp_output_layout *lay,
                        char *err, size_t errlen) {
    char *fmt = attr_read_str(file, "salpipe_format");
    int is_ours = fmt && strcmp(fmt, SPO_FORMAT_NAME) == 0;
    free(fmt);
    if (!is_ours)
        return refuse(err, errlen, path,
                      "is an HDF5 file but not a salpipe output (no salpipe_format = '"
                      SPO_FORMAT_NAME "' attribute)");
    int32_t version = 0;
    if (attr_read_num(file, "salpipe_format_version", H5T_NATIVE_INT32, 1, &version) < 0 ||
        version != SPO_FORMAT_VERSION)
        return refuse(err, errlen, path,
                      "has salpipe output format version %d; this salpipe writes version %d",
                      (int)version, SPO_FORMAT_VERSION);

    char *sha = attr_read_str(file, "model_sha256");
    int same = sha && lay->model_sha256 && strcmp(sha, lay->model_sha256) == 0;
    if (!same) {
        int rc = refuse(err, errlen, path,
                        "was made with another model (SHA-256 %.16s... in the file, %.16s... for %s)",
                        sha ? sha : "?", lay->model_sha256 ? lay->model_sha256 : "?",
                        lay->model_path ? lay->model_path : "this config's model");
        free(sha);
        return rc;
    }
    free(sha);
    /* The precision before the parameters: a float64 run records its convolutions as
     * direct, and the precision is what the user changed. (/saliency's type is
     * checked too, for files whose attribute is missing.) */
    char *prec = attr_read_str(file, "precision");
    int other = prec && strcmp(prec, precision_name(lay->precision)) != 0;
    if (other) {
        int rc = refuse(err, errlen, path, "was made with precision %s; this config asks for %s",
                        prec, precision_name(lay->precision));
        free(prec);
        return rc;
    }
    free(prec);
    return check_preprocess(file, path, lay, err, errlen);
}

/* /saliency's type, shape and filters against the layout. */
static int check_saliency(hid_t ds, const char *path, const sp_output_layout *lay,
                          char *err, size_t errlen) {
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    int rc = SP_OUT_OK;
    hsize_t dims[6] = {0};
    size_t want_size = lay->precision == SAL_F64 ? 8 : 4;
    if (t < 0 || s < 0 || dcpl < 0 || H5Sget_simple_extent_ndims(s) != 6) {
        rc = refuse(err, errlen, path, "/saliency is not 6-dimensional: not a salpipe output");
        goto done;
    }
    H5Sget_simple_extent_dims(s, dims, NULL);
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != want_size) {
        rc = refuse(err, errlen, path,
                    "was made with precision %s; this config asks for %s",
                    H5Tget_size(t) == 8 ? "float64" : "float32", precision_name(lay->precision));
        goto done;
    }
    if (dims[3] != (hsize_t)lay->channels || dims[4] != (hsize_t)lay->height ||
        dims[5] != (hsize_t)lay->width) {
        rc = refuse(err, errlen, path,
                    "holds maps of %llux%llux%llu, this run makes %dx%dx%d",
                    (unsigned long long)dims[3], (unsigned long long)dims[4],
                    (unsigned long long)dims[5], lay->channels, lay->height, lay->width);
        goto done;
    }
    if (dims[0] != (hsize_t)lay->nimages || dims[1] != (hsize_t)lay->ntargets ||
        dims[2] != (hsize_t)lay->nmethods) {
        rc = refuse(err, errlen, path, "/saliency's shape does not match its labels");
        goto done;
    }
    /* Chunks arrive compressed or not according to this run's level, so the
     * dataset's filter pipeline (fixed at creation) must agree on on/off; the
     * level itself does not matter to readers. */
    int filtered = H5Pget_nfilters(dcpl) > 0;
    if (H5Pget_layout(dcpl) != H5D_VIRTUAL && filtered != (lay->compression > 0))
        rc = refuse(err, errlen, path,
                    "was made %s compression and this config asks for compression = %d "
                    "(the filters of /saliency are fixed when the file is created)",
                    filtered ? "with" : "without", lay->compression);
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Whether /name exists as it should (want 1) or not (want 0), for the datasets a
 * method brings: a file made with or without that method is another job. */
static int check_presence(hid_t file, const char *path, const char *name, const char *method,
                          int want, char *err, size_t errlen) {
    htri_t have = H5Lexists(file, name, H5P_DEFAULT);
    if (have < 0) have = 0;
    if (have && !want)
        return refuse(err, errlen, path, "has a /%s dataset: it was made with %s, which this "
                      "config does not ask for", name, method);
    if (!have && want)
        return refuse(err, errlen, path, "has no /%s dataset: it was made without %s, which "
                      "this config asks for", name, method);
    return SP_OUT_OK;
}

/* /gradcam or the gap: floats of `size` bytes, dims want[rank], the filters on
 * exactly when `filtered` (-1: not checked). */
static int check_extra(hid_t ds, const char *path, const char *name, size_t size, int rank,
                       const hsize_t *want, int filtered, char *err, size_t errlen) {
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    hsize_t dims[4] = {0};
    int rc = SP_OUT_OK, same = t >= 0 && s >= 0 && dcpl >= 0 &&
                              H5Sget_simple_extent_ndims(s) == rank;
    if (same) H5Sget_simple_extent_dims(s, dims, NULL);
    for (int i = 0; same && i < rank; i++) same = dims[i] == want[i];
    if (!same)
        rc = refuse(err, errlen, path, "/%s does not have the shape this run writes", name);
    else if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != size)
        rc = refuse(err, errlen, path, "/%s is not of %s: it was made with another precision",
                    name, size == 8 ? "float64" : "float32");
    else if (filtered >= 0 && H5Pget_layout(dcpl) != H5D_VIRTUAL &&
             (H5Pget_nfilters(dcpl) > 0) != filtered)
        rc = refuse(err, errlen, path, "/%s was made %s compression and this config asks for "
                    "it %s", name, filtered ? "without" : "with", filtered ? "on" : "off");
    if (dcpl >= 0) H5Pclose(dcpl);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* [output] writers and, in a part file, which part of the job it is. */
static int check_writers(hid_t file, const char *path, const sp_output_layout *lay,
                         char *err, size_t errlen) {
    int32_t k = 1, part = 0, first = 0;
    attr_read_num(file, "writers", H5T_NATIVE_INT32, 1, &k); /* absent: one file */
    const int want = lay->writers > 1 ? lay->writers : 1;
    if (k != want)
        return refuse(err, errlen, path, "was made with [output] writers = %d%s; this config "
                      "has writers = %d (a resume keeps the writers of the run that made it)",
                      (int)k, lay->part ? " (it is a part file)" : "", want);
    if (k == 1) return SP_OUT_OK;
    attr_read_num(file, "writer_part", H5T_NATIVE_INT32, 1, &part);
    attr_read_num(file, "first_image", H5T_NATIVE_INT32, 1, &first);
    if (part != lay->part || (lay->part && first != lay->first_image)) {
        if (!lay->part)
            return refuse(err, errlen, path, "is part %d of %d of a job's output, not the job's "
                          "file", (int)part, (int)k);
        if (!part)
            return refuse(err, errlen, path, "is the job's file of a job with %d writers, not "
                          "its part %d", (int)k, lay->part);
        return refuse(err, errlen, path, "is part %d of %d (images from %d), but this job's part "
                      "%d holds images from %d: it belongs to another job, or was renamed "
                      "or swapped", (int)part, (int)k, (int)first, lay->part, lay->first_image);
    }
    return SP_OUT_OK;
}

int spo_layout_check(hid_t file, const char *path, const sp_output_layout *lay,
                     spo_dsets *d, char *err, size_t errlen) {
    dsets_none(d);
    int rc = check_header(file, path, lay, err, errlen);
    if (rc) return rc;
    char **tl = target_labels(lay);
    if (!tl) {
        snprintf(err, errlen, "%s: out of memory", path);
        return SP_OUT_IOERR;
    }
    if (!rc) rc = check_strings(file, path, "image", "image list", "images", lay->images,
                                lay->nimages, err, errlen);
    if (!rc) rc = check_strings(file, path, "target", "target list", "targets",
                                (const char *const *)tl, lay->ntargets, err, errlen);
    if (!rc) rc = check_strings(file, path, "method", "method list", "methods",
                                lay->methods, lay->nmethods, err, errlen);
    if (!rc) rc = check_presence(file, path, "saliency", "a method other than gradcam",
                                 lay->nmethods > 0, err, errlen);
    if (!rc) rc = check_presence(file, path, "gradcam", "gradcam", lay->gradcam, err, errlen);
    if (!rc) rc = check_presence(file, path, "integrated_gradients_gap", "integrated_gradients",
                                 lay->ig_gap, err, errlen);
    if (!rc) rc = check_params(file, path, lay, err, errlen);
    if (!rc) rc = check_writers(file, path, lay, err, errlen);
    free(tl);
    if (rc) return rc;

    const int want[SPO_NDSETS] = {lay->nmethods > 0, 1, 1, 1, lay->gradcam, lay->ig_gap};
    for (int i = 0; i < SPO_NDSETS; i++) {
        hid_t *id = spo_dset_ids(d, i);
        if (!want[i]) continue;
        *id = H5Dopen2(file, spo_dset_names[i], H5P_DEFAULT);
        if (*id < 0) {
            spo_dsets_close(d);
            return refuse(err, errlen, path, "has no /%s dataset: not a complete salpipe output",
                          spo_dset_names[i]);
        }
    }
    if (d->saliency >= 0) rc = check_saliency(d->saliency, path, lay, err, errlen);
    const hsize_t N = (hsize_t)lay->nimages, T = (hsize_t)lay->ntargets;
    const hsize_t gdims[4] = {N, T, (hsize_t)lay->height, (hsize_t)lay->width};
    if (!rc && d->gradcam >= 0)
        rc = check_extra(d->gradcam, path, "gradcam", lay->precision == SAL_F64 ? 8 : 4, 4,
                         gdims, lay->compression > 0, err, errlen);
    if (!rc && d->ig_gap >= 0)
        rc = check_extra(d->ig_gap, path, "integrated_gradients_gap", 8, 2, gdims, -1, err,
                         errlen);
    if (!rc && (ds_len(d->status) != lay->nimages || ds_len(d->error) != lay->nimages))
        rc = refuse(err, errlen, path, "/status or /error does not have one entry per image");
    if (rc) spo_dsets_close(d);
    return rc;
}
