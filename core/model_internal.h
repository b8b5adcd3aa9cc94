/*
 * The model as the loader fills it and the engine reads it. Private to core/.
 *
 * Parameters live in one block per precision, laid out layer by layer in model
 * order: for each layer with parameters, its weight then its bias, at the element
 * offsets recorded in sal_layer.weight_off / bias_off. Conv weight is
 * (out_c, in_c / groups, kh, kw), linear weight (out, in), batch norm weight/bias
 * slots hold the eval-mode scale and shift per channel.
 */
#ifndef SAL_MODEL_INTERNAL_H
#define SAL_MODEL_INTERNAL_H

#include "salcore.h"

struct sal_model {
    char *path;               /* as given to sal_model_open                       */
    char name[SAL_NAME_LEN];  /* model name attribute, e.g. "alexnet"             */
    int nlayers;
    sal_layer *layers;        /* nlayers entries, shapes resolved at open time    */
    sal_preprocess pre;
    int64_t param_count;      /* elements in one parameter block                  */
    void *params[2];          /* per sal_precision; NULL until loaded or attached */
    int owns_params[2];       /* 1 when sal_model_load_params allocated it        */
    /* Winograd weights every engine of one convolution mode borrows
     * (sal_model_attach_wino): the caller's block, and each layer's offset in it in
     * bytes, -1 when the layer is not in it; NULL when none is attached. */
    void *wino_block;
    sal_conv_mode wino_mode;
    int64_t *wino_off;
};

/* The reserved input name of the network input (format 2 `inputs`). */
#define SAL_INPUT_NAME "input"

/* What the loader's first pass read of every node, for resolving inputs: names,
 * aliases ("" if none), and each node's input names, SAL_MAX_INPUTS slots per node. */
typedef struct {
    int count;
    const char (*name)[SAL_NAME_LEN];
    const char (*alias)[SAL_NAME_LEN];
    const char (*in)[SAL_NAME_LEN];
    const int *nin;
} graph_names;

/* model_graph.c. Each returns 0, or -1 with one sentence in msg. */
int graph_name_ok(const char *s);
/* Node i's name and alias: well-formed, not reserved, unused by nodes 0..i-1. */
int graph_check_names(const sal_layer *nodes, int i, char *msg, size_t len);
/* Node i's input names to indices (-1: the network input), each an earlier node;
 * seen (count bytes) and path (count ints) are scratch for the cycle report. */
int graph_resolve(const graph_names *g, int i, int32_t *inputs, unsigned char *seen,
                  int *path, char *msg, size_t len);

#endif
