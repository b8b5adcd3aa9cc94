/*
 * A small C view of a TOML document, the only place salpipe touches C++
 * (tomlplusplus). The document is copied into a plain tree of tagged nodes that
 * remember where they were written, so the config checker can report line:column
 * for every key and value.
 *
 *     sp_toml_node *root;
 *     int line, col;
 *     if (sp_toml_parse(text, len, "job.toml", &root, msg, sizeof msg, &line, &col))
 *         printf("job.toml:%d:%d: %s\n", line, col, msg);
 *     const sp_toml_node *model = sp_toml_get(root, "model");
 *     ...
 *     sp_toml_free(root);
 */
#ifndef SP_TOML_SHIM_H
#define SP_TOML_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SP_TOML_TABLE = 0,
    SP_TOML_ARRAY,
    SP_TOML_STRING,
    SP_TOML_INTEGER,
    SP_TOML_FLOAT,
    SP_TOML_BOOL,
    SP_TOML_OTHER /* date, time or date-time: never valid in a salpipe config */
} sp_toml_kind;

typedef struct sp_toml_node sp_toml_node;
struct sp_toml_node {
    sp_toml_kind kind;
    int line, col;         /* 1-based start of the value; a table's header    */
    char *key;             /* name in the parent table; NULL in arrays, root   */
    int key_line, key_col; /* where that key is written                        */
    char *str;             /* STRING: UTF-8, NUL-terminated (may hold a NUL)   */
    size_t len;            /* STRING: bytes, excluding the terminating NUL     */
    int64_t integer;       /* INTEGER; BOOL as 0 or 1                          */
    double real;           /* FLOAT                                            */
    sp_toml_node *items;   /* TABLE: entries in source order; ARRAY: elements  */
    int nitems;
};

/* Parses `len` bytes of TOML. `name` is only used by tomlplusplus for its own
 * messages. On success returns 0 and *root (a TABLE, at 1:1) is owned by the
 * caller (sp_toml_free). On a syntax error returns -1, *root is NULL, `err` gets
 * tomlplusplus's description without position and *line, *col where it happened.
 * Out of memory also returns -1, with position 1:1. Never throws. */
int sp_toml_parse(const char *text, size_t len, const char *name, sp_toml_node **root,
                  char *err, size_t errlen, int *line, int *col);

/* Frees a tree from sp_toml_parse; NULL is fine. */
void sp_toml_free(sp_toml_node *root);

/* The entry `key` of a TABLE node, or NULL when absent (or `table` is no table). */
const sp_toml_node *sp_toml_get(const sp_toml_node *table, const char *key);

/* "a table", "an array", "a string", "an integer", "a float", "a boolean",
 * "a date/time": for messages like "expected X, found a string". */
const char *sp_toml_kind_name(sp_toml_kind kind);

#ifdef __cplusplus
}
#endif
#endif
