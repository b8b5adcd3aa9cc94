/*
 * The graph side of the model loader: node names, aliases and the inputs each node
 * names, resolved to node indices. Pure functions over the names the loader read
 * (no HDF5), so every way a graph can be wrong (a missing input, a cycle, a node
 * stored before its input, a name used twice) ends in one sentence the loader
 * prefixes with the file and the node group.
 */
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

/* Names are used in configs ("layer:unit") and output files: keep them plain. */
int graph_name_ok(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int graph_check_names(const sal_layer *nodes, int i, char *msg, size_t len) {
    const sal_layer *L = &nodes[i];
    const char *own[2] = {L->name, L->alias};
    for (int k = 0; k < 2; k++) {
        const char *s = own[k], *what = k ? "alias" : "name";
        if (k == 1 && !s[0]) break;
        if (!graph_name_ok(s)) {
            snprintf(msg, len, "%s '%s' must be 1 to %d characters from letters, digits, "
                     "'_', '-', '.'", what, s, SAL_NAME_LEN - 1);
            return -1;
        }
        if (!strcmp(s, SAL_INPUT_NAME)) {
            snprintf(msg, len, "%s '%s' is reserved for the network input", what, s);
            return -1;
        }
        if (k == 1 && !strcmp(s, L->name)) {
            snprintf(msg, len, "alias '%s' is the node's own name", s);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(nodes[j].name, s) || (nodes[j].alias[0] && !strcmp(nodes[j].alias, s))) {
                snprintf(msg, len, "%s '%s' is already used by /layers/%03d ('%s')", what, s,
                         j, nodes[j].name);
                return -1;
            }
    }
    return 0;
}

/* Index of the node named `s` among all `count` nodes, or -1. */
static int find_name(const graph_names *g, const char *s) {
    for (int j = 0; j < g->count; j++)
        if (!strcmp(g->name[j], s)) return j;
    return -1;
}

static int find_alias(const graph_names *g, const char *s) {
    for (int j = 0; j < g->count; j++)
        if (g->alias[j][0] && !strcmp(g->alias[j], s)) return j;
    return -1;
}

/* Whether following inputs from node `from` reaches node `to`; when it does, the
 * path (from, ..., to) is written to path and its length to *plen. Depth-first with
 * a visited mark per node, so it ends on any graph. */
static int reaches(const graph_names *g, int from, int to, unsigned char *seen, int *path,
                   int depth, int *plen) {
    path[depth] = from;
    if (from == to) {
        *plen = depth + 1;
        return 1;
    }
    if (seen[from]) return 0;
    seen[from] = 1;
    for (int k = 0; k < g->nin[from]; k++) {
        int j = find_name(g, g->in[from * SAL_MAX_INPUTS + k]);
        if (j >= 0 && reaches(g, j, to, seen, path, depth + 1, plen)) return 1;
    }
    return 0;
}

int graph_resolve(const graph_names *g, int i, int32_t *inputs, unsigned char *seen,
                  int *path, char *msg, size_t len) {
    for (int k = 0; k < g->nin[i]; k++) {
        const char *s = g->in[i * SAL_MAX_INPUTS + k];
        if (!strcmp(s, SAL_INPUT_NAME)) {
            inputs[k] = -1;
            continue;
        }
        int j = find_name(g, s);
        if (j < 0) {
            int a = find_alias(g, s);
            if (a >= 0)
                snprintf(msg, len, "reads '%s', which is the alias of /layers/%03d; inputs "
                         "name nodes by their name ('%s')", s, a, g->name[a]);
            else
                snprintf(msg, len, "reads '%s', which is no node of the file (nor '"
                         SAL_INPUT_NAME "', the network input)", s);
            return -1;
        }
        if (j >= i) {
            int plen = 0;
            memset(seen, 0, (size_t)g->count);
            if (reaches(g, j, i, seen, path, 0, &plen)) {
                int off = snprintf(msg, len, "cycle: '%s'", g->name[i]);
                for (int p = 0; p < plen && off > 0 && (size_t)off < len; p++)
                    off += snprintf(msg + off, len - off, " reads '%s'", g->name[path[p]]);
            } else {
                snprintf(msg, len, "reads '%s' (/layers/%03d), which comes after it in the "
                         "file; store every node after its inputs", s, j);
            }
            return -1;
        }
        inputs[k] = j;
    }
    return 0;
}
