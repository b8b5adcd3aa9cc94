/*
 * The network half of the fuzz model writer (model_gen_internal.h): the template
 * networks, three chains (format 1) and two graphs (format 2: a residual network
 * and an inception-like one), and the operations on them. Nodes name their inputs
 * by name, so inserting, removing, moving or renaming nodes keeps or breaks the
 * wiring the way an edited file would.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_gen_internal.h"

const char *const mg_kind_str[K_COUNT] = {
    "conv2d", "batchnorm2d", "relu", "maxpool2d", "adaptive_avgpool2d", "flatten",
    "dropout", "linear", "add", "concat", "avgpool2d", "channel_affine"};

/* ---- templates --------------------------------------------------------------- */


/* Copies name src into dst (MG_SLEN bytes); they may be the same field (a node's
 * alias set from itself), so bytes move rather than snprintf's restrict copy. */
static void set_name(char *dst, const char *src) {
    size_t n = 0;
    while (n < MG_SLEN - 1 && src[n]) n++;
    memmove(dst, src, n);
    dst[n] = '\0';
}

static lspec layer(int kind, const char *name) {
    lspec l = {.kind = kind, .out = 2, .k = {2, 2}, .s = {2, 2}, .groups = 1, .cip = 1,
               .o = {2, 2}, .eps = 1e-5};
    snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

static lspec conv(const char *name, int64_t out, int64_t k, int64_t s, int64_t p,
                  int64_t groups) {
    lspec l = layer(K_CONV, name);
    l.out = out, l.k[0] = l.k[1] = k, l.s[0] = l.s[1] = s, l.p[0] = l.p[1] = p;
    l.groups = groups;
    return l;
}

static lspec pool(int kind, const char *name, int64_t k, int64_t s, int64_t p,
                  int64_t ceil, int64_t cip) {
    lspec l = layer(kind, name);
    l.k[0] = l.k[1] = k, l.s[0] = l.s[1] = s, l.p[0] = l.p[1] = p;
    l.ceil = ceil, l.cip = cip;
    return l;
}

/* Sets the node's inputs (NULL-terminated names) and returns it. */
static lspec *reads(lspec *l, const char *in0, const char *in1, const char *in2,
                    const char *in3) {
    const char *v[4] = {in0, in1, in2, in3};
    l->nin = 0;
    for (int k = 0; k < 4 && v[k]; k++) snprintf(l->in[l->nin++], MG_SLEN, "%s", v[k]);
    return l;
}

static void aka(lspec *l, const char *alias) { snprintf(l->alias, MG_SLEN, "%s", alias); }

/* ResNet's layout in miniature: stem, a basic block whose identity branch reads the
 * stem's relu (two readers), a strided block with a 1x1 downsample branch. */
static int residual(mspec *m) {
    lspec *L = m->L;
    int n = 0;
    m->ch = 3, m->h = m->w = 8;
    L[n] = conv("conv1", 4, 3, 1, 1, 1), aka(&L[n++], "conv");
    L[n] = layer(K_BN, "bn1"), aka(&L[n++], "bn");
    L[n++] = layer(K_RELU, "relu");
    L[n++] = conv("layer1.0.conv1", 4, 3, 1, 1, 1);
    L[n++] = layer(K_BN, "layer1.0.bn1");
    L[n++] = layer(K_RELU, "layer1.0.relu");
    L[n++] = conv("layer1.0.conv2", 4, 3, 1, 1, 1);
    L[n++] = layer(K_BN, "layer1.0.bn2");
    L[n] = layer(K_ADD, "layer1.0.add"), reads(&L[n++], "layer1.0.bn2", "relu", 0, 0);
    L[n] = layer(K_RELU, "layer1.0.relu_2"), aka(&L[n++], "layer1_basicblock0");
    L[n++] = conv("layer2.0.conv1", 8, 3, 2, 1, 1);
    L[n++] = layer(K_BN, "layer2.0.bn1");
    L[n++] = layer(K_RELU, "layer2.0.relu");
    L[n++] = conv("layer2.0.conv2", 8, 3, 1, 1, 1);
    L[n++] = layer(K_BN, "layer2.0.bn2");
    L[n] = conv("layer2.0.downsample.0", 8, 1, 2, 0, 1);
    reads(&L[n++], "layer1.0.relu_2", 0, 0, 0);
    L[n++] = layer(K_BN, "layer2.0.downsample.1");
    L[n] = layer(K_ADD, "layer2.0.add");
    reads(&L[n++], "layer2.0.bn2", "layer2.0.downsample.1", 0, 0);
    L[n] = layer(K_RELU, "layer2.0.relu_2"), aka(&L[n++], "layer2_basicblock0");
    L[n] = layer(K_AVGPOOL, "avgpool"), L[n].o[0] = L[n].o[1] = 1, n++;
    L[n++] = layer(K_FLATTEN, "flatten");
    L[n] = layer(K_LINEAR, "fc"), L[n++].out = 5;
    return n;
}

/* GoogLeNet's and Inception-v3's parts: transform_input, a ceil_mode max pool, four
 * branches (1x1; 1x1 then 3x3; 1x1 then 1x3 then 3x1; a padded 3x3 average pool
 * without the padding in its count, then 1x1) concatenated, an average pool with
 * ceil_mode counting the padding, then the classifier. */
static int inception(mspec *m) {
    lspec *L = m->L;
    int n = 0;
    m->ch = 3, m->h = m->w = 12;
    L[n++] = layer(K_AFFINE, "transform_input");
    L[n++] = conv("conv1.conv", 6, 3, 1, 1, 1);
    L[n] = layer(K_RELU, "conv1.relu"), aka(&L[n++], "conv1");
    L[n++] = pool(K_MAXPOOL, "maxpool1", 3, 2, 0, 1, 1);
    L[n++] = conv("inception3a.branch1.conv", 4, 1, 1, 0, 1);
    L[n++] = layer(K_RELU, "inception3a.branch1.relu");
    L[n] = conv("inception3a.branch2.0.conv", 3, 1, 1, 0, 1);
    reads(&L[n++], "maxpool1", 0, 0, 0);
    L[n++] = layer(K_RELU, "inception3a.branch2.0.relu");
    L[n++] = conv("inception3a.branch2.1.conv", 4, 3, 1, 1, 1);
    L[n++] = layer(K_RELU, "inception3a.branch2.1.relu");
    L[n] = conv("inception3a.branch3.0.conv", 3, 1, 1, 0, 1);
    reads(&L[n++], "maxpool1", 0, 0, 0);
    L[n] = conv("inception3a.branch3.1.conv", 4, 1, 1, 0, 1);
    L[n].k[1] = 3, L[n++].p[1] = 1;
    L[n] = conv("inception3a.branch3.2.conv", 4, 1, 1, 0, 1);
    L[n].k[0] = 3, L[n++].p[0] = 1;
    L[n++] = layer(K_RELU, "inception3a.branch3.2.relu");
    L[n] = pool(K_AVGPOOL2D, "inception3a.branch4.avgpool", 3, 1, 1, 1, 0);
    reads(&L[n++], "maxpool1", 0, 0, 0);
    L[n++] = conv("inception3a.branch4.1.conv", 2, 1, 1, 0, 1);
    L[n++] = layer(K_RELU, "inception3a.branch4.1.relu");
    L[n] = layer(K_CONCAT, "inception3a.cat"), aka(&L[n], "inception3a");
    reads(&L[n++], "inception3a.branch1.relu", "inception3a.branch2.1.relu",
          "inception3a.branch3.2.relu", "inception3a.branch4.1.relu");
    L[n++] = pool(K_AVGPOOL2D, "avgpool2", 3, 2, 1, 1, 1);
    L[n++] = pool(K_MAXPOOL, "maxpool2", 3, 2, 0, 1, 1);
    L[n] = layer(K_AVGPOOL, "avgpool"), L[n].o[0] = L[n].o[1] = 1, n++;
    L[n++] = layer(K_FLATTEN, "flatten");
    L[n++] = layer(K_DROPOUT, "dropout");
    L[n] = layer(K_LINEAR, "fc"), L[n++].out = 5;
    return n;
}

/* Bytes below 0x80 pick a chain (t % 3, format 1, the templates the corpus grew
 * from), bytes from 0x80 a graph (format 2): even the residual, odd the inception. */
void mg_template(mspec *m, int t) {
    memset(m, 0, sizeof *m);
    m->ch = 1, m->h = m->w = 8, m->rsize = 9, m->version = 1;
    lspec *L = m->L;
    int n = 0;
    if (t >= 0x80) {
        m->version = 2;
        m->n = t % 2 ? inception(m) : residual(m);
        return;
    }
    switch (t % 3) {
    case 0: /* the network of docs/model-format.md's MATLAB example */
        L[n++] = conv("conv1", 2, 3, 1, 1, 1);
        L[n++] = layer(K_RELU, "conv1_relu");
        L[n++] = layer(K_MAXPOOL, "conv1_maxpool");
        L[n++] = layer(K_FLATTEN, "flatten");
        L[n] = layer(K_LINEAR, "fc1"), L[n++].out = 10;
        break;
    case 1: /* tests/make_bad_models.py's tiny network: every kind */
        m->ch = 3, m->h = m->w = 7, m->crop = 1;
        L[n++] = conv("conv1", 4, 3, 1, 1, 1);
        L[n++] = layer(K_BN, "conv1_bn");
        L[n++] = layer(K_RELU, "conv1_relu");
        L[n] = layer(K_MAXPOOL, "conv1_maxpool"), L[n++].ceil = 1;
        L[n++] = layer(K_AVGPOOL, "avgpool");
        L[n++] = layer(K_FLATTEN, "flatten");
        L[n++] = layer(K_DROPOUT, "dropout1");
        L[n] = layer(K_LINEAR, "fc1"), L[n++].out = 5;
        L[n++] = layer(K_RELU, "fc1_relu");
        L[n] = layer(K_LINEAR, "fc2"), L[n++].out = 3;
        break;
    default: /* grouped and strided convolutions, an upsampling pool, no flatten */
        m->ch = 3, m->h = 9, m->w = 6;
        L[n++] = conv("conv1", 4, 3, 2, 1, 1);
        L[n++] = conv("conv2", 6, 1, 1, 0, 2);
        L[n++] = layer(K_RELU, "conv2_relu");
        L[n] = layer(K_MAXPOOL, "conv2_maxpool"), L[n].k[0] = 3, L[n].s[0] = 1;
        L[n].p[0] = 1, L[n].ceil = 1, n++;
        L[n] = layer(K_AVGPOOL, "avgpool"), L[n].o[0] = 3, L[n++].o[1] = 4;
        L[n] = layer(K_LINEAR, "fc1"), L[n++].out = 4;
        break;
    }
    m->n = n;
}

/* ---- values the operations draw from ------------------------------------------ */

int64_t mg_pick_int(uint8_t c) {
    static const int64_t table[] = {0, 1, 2, 3, 4, 5, 7, 8, 16, -1, -2, 1 << 20,
                                    (1 << 20) + 1, 1 << 30, INT32_MAX, INT32_MIN,
                                    (int64_t)1 << 32, INT64_MAX, INT64_MIN, 4096, 4097,
                                    255, 256, 1000, 33, 65536};
    const int nt = (int)(sizeof table / sizeof table[0]);
    return c < nt ? table[c] : (int64_t)(c - nt) - 8;
}

double mg_pick_double(uint8_t c) {
    static const double table[] = {NAN, INFINITY, -INFINITY, -1, 0, -0.0, 1e39, -1e39,
                                   1e-45, 1e308, 0.5, 2.5, 1e-300, 3.4028235e38, 1};
    const int nt = (int)(sizeof table / sizeof table[0]);
    return c < nt ? table[c] : (double)(c - nt) / 16;
}

/* ---- the graph ------------------------------------------------------------------- */

/* A name that is not a node's: the reserved one, near misses, invalid ones. */
static const char *other_name(uint8_t c) {
    static const char *const table[] = {
        "input", "", "nope", "Input", "input ", " input", "input.", "a/b", "bad name!",
        "x\ty", "\xc3\xa9t\xc3\xa9", "-", ".",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",   /* 63 */
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl",  /* 64 */
    };
    return table[c % (sizeof table / sizeof table[0])];
}

/* Gives a node without an `inputs` attribute the one it reads implicitly. */
static void explicit_inputs(mspec *m, int i) {
    if (m->L[i].nin) return;
    m->L[i].nin = 1;
    snprintf(m->L[i].in[0], MG_SLEN, "%s", i ? m->L[i - 1].name : "input");
}

static void graph_op(mspec *m, uint8_t op, uint8_t a, uint8_t b, uint8_t c) {
    if (!m->n) return;
    const int i = a % m->n;
    lspec *l = &m->L[i];
    const lspec *B = &m->L[b % m->n], *C = &m->L[c % m->n];
    switch (op % 11) {
    case 0: /* an input names node b: earlier, this node (a cycle) or a later one */
        explicit_inputs(m, i);
        set_name(l->in[c % l->nin], B->name);
        break;
    case 1: /* an input names the network input, no node, an alias, a bad name */
        explicit_inputs(m, i);
        set_name(l->in[c % l->nin], b & 1 ? other_name(b >> 1) : m->L[(b >> 1) % m->n].alias);
        break;
    case 2: { /* too many or too few names; new ones repeat the first */
        explicit_inputs(m, i);
        int want = c % (MG_MAX_IN + 1);
        for (int k = l->nin; k < want; k++) memcpy(l->in[k], l->in[0], MG_SLEN);
        l->nin = want;
        break;
    }
    case 3: /* the alias: another node's name or alias, reserved, invalid, own name */
        if (c % 4 == 0) set_name(l->alias, B->name);
        else if (c % 4 == 1) set_name(l->alias, B->alias);
        else if (c % 4 == 2) set_name(l->alias, other_name(b));
        else snprintf(l->alias, MG_SLEN, "alias%d_%d", i, b); /* a new, valid one */
        break;
    case 4: /* two inputs, nodes b and c: shape mismatches at add and concat */
        l->nin = 2;
        set_name(l->in[0], B->name);
        set_name(l->in[1], C->name);
        break;
    case 5: /* one more input, node b */
        explicit_inputs(m, i);
        if (l->nin < MG_MAX_IN) set_name(l->in[l->nin++], B->name);
        break;
    case 6: /* one input fewer */
        if (l->nin) {
            int k = c % l->nin;
            memmove(l->in[k], l->in[k + 1], MG_SLEN * (size_t)(l->nin - k - 1));
            l->nin--;
        }
        break;
    case 7: l->nin = 0; break; /* back to reading the previous node */
    case 8: { /* node i moved to position b: readers now before their inputs */
        int to = b % m->n;
        lspec t = *l;
        if (to < i) memmove(&m->L[to + 1], &m->L[to], sizeof t * (size_t)(i - to));
        else memmove(&m->L[i], &m->L[i + 1], sizeof t * (size_t)(to - i));
        m->L[to] = t;
        break;
    }
    case 9: l->kind = b % K_COUNT; break; /* another kind, same inputs */
    default: l->cip = mg_pick_int(c); break;
    }
}

/* ---- the network ------------------------------------------------------------------- */

void mg_spec_op(mspec *m, uint8_t op, uint8_t a, uint8_t b, uint8_t c) {
    if (op >= 0x30) {
        graph_op(m, op - 0x30, a, b, c);
        return;
    }
    int i = m->n ? a % m->n : 0;
    lspec *l = &m->L[i];
    switch (op % 6) {
    case 0: { /* a hyper-parameter */
        if (!m->n) return;
        int64_t v = mg_pick_int(c);
        switch (b % 12) {
        case 0: l->out = v; break;
        case 1: l->k[0] = v; break;
        case 2: l->k[1] = v; break;
        case 3: l->s[0] = v; break;
        case 4: l->s[1] = v; break;
        case 5: l->p[0] = v; break;
        case 6: l->p[1] = v; break;
        case 7: l->groups = v; break;
        case 8: l->ceil = v; break;
        case 9: l->o[0] = v; break;
        case 10: l->o[1] = v; break;
        default: l->eps = mg_pick_double(c); break;
        }
        break;
    }
    case 1: { /* insert a layer of kind b; an add reads the node before it twice */
        if (m->n == MG_MAX_LAYERS) return;
        int at = m->n ? a % (m->n + 1) : 0;
        memmove(&m->L[at + 1], &m->L[at], sizeof *m->L * (size_t)(m->n - at));
        char name[24];
        snprintf(name, sizeof name, "x%d_%d", at, c);
        m->L[at] = layer(b % K_COUNT, name);
        m->L[at].out = c % 9 + 1;
        if (m->L[at].kind == K_ADD) {
            const char *prev = at ? m->L[at - 1].name : "input";
            reads(&m->L[at], prev, prev, 0, 0);
        }
        m->n++;
        break;
    }
    case 2: /* remove: its readers now name no node */
        if (!m->n) return;
        memmove(&m->L[i], &m->L[i + 1], sizeof *m->L * (size_t)(m->n - i - 1));
        m->n--;
        break;
    case 3: { /* swap */
        if (!m->n) return;
        lspec t = m->L[i];
        m->L[i] = m->L[b % m->n];
        m->L[b % m->n] = t;
        break;
    }
    case 4: { /* the input */
        int64_t v = mg_pick_int(c);
        switch (b % 5) {
        case 0: m->ch = v; break;
        case 1: m->h = v; break;
        case 2: m->w = v; break;
        case 3: m->crop = v; break;
        default: m->rsize = v; break;
        }
        break;
    }
    default: /* duplicate (the copy is renamed unless b is even) */
        if (!m->n || m->n == MG_MAX_LAYERS) return;
        memmove(&m->L[i + 1], &m->L[i], sizeof *m->L * (size_t)(m->n - i));
        if (b & 1) snprintf(m->L[i + 1].name, MG_SLEN, "d%d_%d", i, c);
        m->n++;
        break;
    }
}
