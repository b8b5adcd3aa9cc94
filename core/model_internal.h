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
};

#endif
