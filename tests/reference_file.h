/*
 * The PyTorch reference file of tests/test_reference.c (written by
 * tests/reference/make_reference.py), read into memory: inputs, maps, activations,
 * names, and for graph networks DNNBrain's names and its own maps. Node outputs
 * (/layers/NAME) stay in the file and are read one at a time.
 * A file that cannot be read ends the test program (exit 2) with file:line, the
 * HDF5 call, the dataset and a hint: it is a test, not the core.
 */
#ifndef SAL_REFERENCE_FILE_H
#define SAL_REFERENCE_FILE_H

#include <stddef.h>

#include <hdf5.h>

typedef struct {
    char *arch;
    int n, ntargets, nmethods, nlayers;   /* images, targets, methods, ref layers    */
    int nfile;                            /* inputs in the file (n may be fewer)     */
    char **inputs;                        /* input names                             */
    char **tlayer;                        /* per target: node name or alias          */
    int *tunit;                           /* 1-based, as DNNBrain numbers units      */
    char **methods;
    char **layers;                        /* every node PyTorch computed             */
    size_t image_elems;                   /* C*H*W of one input                      */
    int c, h, w;
    double *input64;                      /* (n,C,H,W)                               */
    float *input32;                       /* (n,C,H,W)                               */
    double *maps64, *maps32;              /* (n,T,M,C,H,W); maps32 widened           */
    double *act64, *act32, *act_scale;    /* (n,T)                                   */
    /* Graph networks (0 / NULL otherwise). */
    int npairs;                           /* DNNBrain names, each with the node that */
    char **dn_names, **dn_nodes;          /* carries it (checked by forward hooks)   */
    int ndn, dn_nmethods;                 /* DNNBrain's own maps of input 0          */
    int *dn_target;                       /* (ndn) index into tlayer                 */
    char **dn_methods;                    /* (dn_nmethods) vanilla, guided           */
    char **dn_expect, **dn_why;           /* (ndn, dn_nmethods): salpipe method or "" */
    double *dn_maps, *dn_explained;       /* (ndn, dn_nmethods, C, H, W)             */
} reference;

void reference_read(reference *r, hid_t f);
void reference_free(reference *r);

/* Reads dataset `name` of f whole, converted to `memtype` (elements of `elsize`
 * bytes). Fills dims (up to 8) and *rank; the caller frees the result. */
void *read_dataset(hid_t f, const char *name, hid_t memtype, size_t elsize,
                   hsize_t *dims, int *rank);

/* Reads dataset attribute `attr` of /layers/NAME as a double; NAN when absent. */
double read_dataset_double_attr(hid_t f, const char *path, const char *attr);

void *xmalloc(size_t bytes);

#endif
