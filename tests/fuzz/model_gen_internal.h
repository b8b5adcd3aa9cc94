/*
 * Shared by the two halves of the fuzz model writer (model_gen.h): model_spec.c
 * builds and changes the network description (templates, hyper-parameters, the
 * graph: each node's inputs and alias), model_gen.c derives the file from it,
 * changes the written form and writes it with HDF5.
 */
#ifndef FUZZ_MODEL_GEN_INTERNAL_H
#define FUZZ_MODEL_GEN_INTERNAL_H

#include <stdint.h>

#define MG_MAX_LAYERS 40
#define MG_MAX_IN 17  /* one more than a node may name (SAL_MAX_INPUTS): "too many" */
#define MG_SLEN 72    /* names and input names, up to the 65-character test string */

enum { K_CONV, K_BN, K_RELU, K_MAXPOOL, K_AVGPOOL, K_FLATTEN, K_DROPOUT, K_LINEAR,
       K_ADD, K_CONCAT, K_AVGPOOL2D, K_AFFINE, K_COUNT };

extern const char *const mg_kind_str[K_COUNT];

/* One node. nin = 0: no `inputs` attribute (the node reads the previous node);
 * else in[0..nin) are written as the attribute, as they are (they may name no node,
 * the node itself, a later node, an alias...). alias "" = none. */
typedef struct {
    int kind;
    char name[MG_SLEN], alias[MG_SLEN];
    int nin;
    char in[MG_MAX_IN][MG_SLEN];
    int64_t out, k[2], s[2], p[2], groups, ceil, cip, o[2];
    double eps;
} lspec;

typedef struct {
    int64_t ch, h, w, crop, rsize, version;
    int n;
    lspec L[MG_MAX_LAYERS];
} mspec;

/* The template network picked by byte t (always a model that loads). */
void mg_template(mspec *m, int t);

/* Operations 0x00-0x3f on the network: 0x00-0x2f layers and input (op % 6),
 * 0x30-0x3f the graph (inputs, aliases, node order, kinds). */
void mg_spec_op(mspec *m, uint8_t op, uint8_t a, uint8_t b, uint8_t c);

/* Edge values the operations draw from. */
int64_t mg_pick_int(uint8_t c);
double mg_pick_double(uint8_t c);

#endif
