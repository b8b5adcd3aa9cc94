/*
 * Shared by config.c (sections, keys, values) and sources.c (the four [images]
 * sources): the checker's context and its error and path helpers.
 */
#ifndef SP_CONFIG_INTERNAL_H
#define SP_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"
#include "toml_shim.h"

typedef struct {
    const char *config_path; /* as given: every message starts with it          */
    char *dir;               /* its directory, "" when it has none               */
    char *err;
    size_t errlen;
} sp_cfg_ctx;

/* Writes "CONFIG:LINE:COL: " and the formatted message into ctx->err; returns -1. */
int sp_cfg_fail(sp_cfg_ctx *ctx, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "a string \"abc\"", "an integer 0", ...: what the user wrote, for "found X". */
const char *sp_cfg_found(const sp_toml_node *v, char *buf, size_t len);

/* "key 'NAME': expected EXPECTED, found ..." at v's position; returns -1. */
int sp_cfg_wrong(sp_cfg_ctx *ctx, const sp_toml_node *v, const char *name, const char *expected);

/* 0 when v is a non-empty string without NUL bytes, else an error naming `name`
 * and `what` was expected; returns -1. */
int sp_cfg_want_string(sp_cfg_ctx *ctx, const sp_toml_node *v, const char *name,
                       const char *what);

/* "out of memory" at 1:1; returns -1. */
int sp_cfg_oom(sp_cfg_ctx *ctx);

/* `p` unchanged when absolute or when `dir` is "", else dir + "/" + p. NULL when
 * out of memory. */
char *sp_path_join(const char *dir, const char *p);

/* The directory part of `path` ("" for a bare name, "/" for "/x"). NULL when out
 * of memory. */
char *sp_path_dir(const char *path);

/* Reads a whole file of at most `max` bytes into a NUL-terminated buffer (*len
 * excludes the NUL). On failure returns -1 with errno set (EFBIG: longer than max,
 * which also ends a device like /dev/zero) and *buf NULL. */
int sp_read_file(const char *path, size_t max, char **buf, size_t *len);

/* Reads the image source `src` ("files", "list", "dir" or "stim_csv", the node of
 * that key in [images]; `pattern` only with "dir", may be NULL) into
 * cfg->images / cfg->nimages. Errors name the key and the file involved; an empty
 * result is the error "no images". */
int sp_images_load(sp_cfg_ctx *ctx, const sp_toml_node *src, const sp_toml_node *pattern,
                   sp_config *cfg);

/* Frees cfg->image_strings, the blocks every image's display and path live in. */
void sp_image_strings_free(void *blocks);

#endif
