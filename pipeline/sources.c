/*
 * The four image sources of [images] (SPEC §3, docs/config.md): an inline array
 * (files), a list file (list), a directory and glob (dir + pattern) and a DNNBrain
 * stimulus file (stim_csv). Each yields, in order, the name to show (stored in
 * /image) and the path to open. Image files themselves are not opened here.
 *
 * A list may have millions of lines (docs/reliability.md, "Plans that cannot fit"):
 * the strings live in large blocks, not two mallocs per image, and the name shown
 * is the tail of the resolved path, so an image costs its path's bytes plus the
 * 16 bytes of its sp_image. Sources, image counts and path bytes have limits
 * (SP_MAX_*), refused with the key and line before memory is spent on them.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_internal.h"

#define SP_MAX_IMAGES (1 << 24)           /* images per job                     */
#define SP_MAX_PATH_LEN 4095              /* bytes of one resolved image path   */
#define SP_MAX_PATH_BYTES ((size_t)1 << 30) /* all resolved paths together      */
#define SP_MAX_SOURCE_BYTES ((size_t)1 << 30) /* a list or stim_csv file        */
#define SP_STRBLOCK ((size_t)1 << 20)     /* bytes per block of image strings   */

/* ---- paths and files ------------------------------------------------------------ */

/* a + "/" + b, without doubling a trailing slash of a. */
static char *join_slash(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *p = malloc(la + slash + lb + 1);
    if (!p) return NULL;
    memcpy(p, a, la);
    if (slash) p[la] = '/';
    memcpy(p + la + slash, b, lb + 1);
    return p;
}

char *sp_path_join(const char *dir, const char *p) {
    if (p[0] == '/' || dir[0] == '\0') return strdup(p);
    return join_slash(dir, p);
}

char *sp_path_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup("");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int sp_read_file(const char *path, size_t max, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    int e = 0;
    while (b) {
        n += fread(b + n, 1, cap - 1 - n, f);
        if (ferror(f)) break;
        if (n > max) { /* also what stops /dev/zero or a growing pipe */
            e = EFBIG;
            break;
        }
        if (feof(f)) {
            b[n] = '\0';
            fclose(f);
            *buf = b;
            *len = n;
            return 0;
        }
        if (n == cap - 1) {
            char *nb = realloc(b, cap * 2);
            if (!nb) break;
            b = nb;
            cap *= 2;
        }
    }
    if (!e) e = b ? errno : ENOMEM;
    free(b);
    fclose(f);
    errno = e ? e : EIO;
    return -1;
}

/* Cuts the next line out of buf (in place, without its \n or \r\n); NULL at the end. */
static char *next_line(char *buf, size_t len, size_t *pos) {
    if (*pos >= len) return NULL;
    char *s = buf + *pos, *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += n + (nl != NULL);
    s[n] = '\0';
    if (n > 0 && s[n - 1] == '\r') s[n - 1] = '\0';
    return s;
}

/* Spaces and tabs removed from both ends, in place. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* ---- the image list being built ------------------------------------------------ */

/* A block of image strings; cfg->image_strings is the chain of them. */
typedef struct strblock {
    struct strblock *next;
    size_t used, cap;
    char data[];
} strblock;

void sp_image_strings_free(void *blocks) {
    for (strblock *b = blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
}

typedef struct {
    sp_image *v;
    int n, cap;
    strblock *blocks;    /* newest first                                         */
    size_t bytes;        /* of all paths, against SP_MAX_PATH_BYTES              */
    const sp_toml_node *src; /* the [images] key, for messages                   */
} images_acc;

/* Room for n bytes in the newest block (or a new one); NULL when out of memory. */
static char *strings_room(images_acc *a, size_t n) {
    strblock *b = a->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > SP_STRBLOCK ? n : SP_STRBLOCK;
        if (!(b = malloc(sizeof *b + cap))) return NULL;
        b->next = a->blocks;
        b->used = 0;
        b->cap = cap;
        a->blocks = b;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Appends the image `display` whose path is sp_path_join(dir, display). The path
 * is stored once; the display name is its tail. `file` and `line` (line 0: none)
 * say where the name came from, for messages. */
static int push(sp_cfg_ctx *c, images_acc *a, const char *display, const char *dir,
                const char *file, int line) {
    const sp_toml_node *v = a->src;
    char where[4200] = "";
    size_t ld = strlen(display), lr = display[0] == '/' ? 0 : strlen(dir);
    int slash = lr > 0 && dir[lr - 1] != '/';
    size_t lp = lr + slash + ld;
    int over = a->n == SP_MAX_IMAGES ? 1 : lp > SP_MAX_PATH_LEN ? 2
             : a->bytes + lp + 1 > SP_MAX_PATH_BYTES ? 3 : 0;
    if (over && file) snprintf(where, sizeof where, "%s:%d: ", file, line);
    if (over == 1)
        return sp_cfg_fail(c, v->line, v->col, "key 'images.%s': %smore than %d images, the "
                           "limit of one job; split them into several jobs, each with its own "
                           "[output] path", v->key, where, SP_MAX_IMAGES);
    if (over == 2)
        return sp_cfg_fail(c, v->line, v->col, "key 'images.%s': %sthe path of image %d "
                           "('%.40s...') has %zu bytes, more than the %d a path can have",
                           v->key, where, a->n + 1, display, lp, SP_MAX_PATH_LEN);
    if (over == 3)
        return sp_cfg_fail(c, v->line, v->col, "key 'images.%s': %sthe paths of the first %d "
                           "images take more than %zu MiB, the limit of one job; split them "
                           "into several jobs", v->key, where, a->n + 1,
                           SP_MAX_PATH_BYTES >> 20);
    if (a->n == a->cap) {
        int cap = a->cap ? (a->cap < SP_MAX_IMAGES / 2 ? 2 * a->cap : SP_MAX_IMAGES) : 64;
        sp_image *nv = realloc(a->v, sizeof *nv * (size_t)cap);
        if (!nv) return sp_cfg_oom(c);
        a->v = nv;
        a->cap = cap;
    }
    char *p = strings_room(a, lp + 1);
    if (!p) return sp_cfg_oom(c);
    memcpy(p, dir, lr);
    if (slash) p[lr] = '/';
    memcpy(p + lr + slash, display, ld + 1);
    a->bytes += lp + 1;
    a->v[a->n++] = (sp_image){p + lr + slash, p};
    return 0;
}

/* Makes room for n more images at once (a list's line count), so a long list
 * is not copied over and over while it grows. */
static void reserve(images_acc *a, size_t n) {
    if (n > SP_MAX_IMAGES) n = SP_MAX_IMAGES;
    if ((size_t)a->cap >= n) return;
    sp_image *nv = realloc(a->v, sizeof *nv * n);
    if (nv) a->v = nv, a->cap = (int)n;
}

static void acc_free(images_acc *a) {
    free(a->v);
    sp_image_strings_free(a->blocks);
}

/* A source file read whole; errors name the key, the file and the OS's reason. */
static int read_source(sp_cfg_ctx *c, const sp_toml_node *v, const char *path, char **buf,
                       size_t *len) {
    if (sp_read_file(path, SP_MAX_SOURCE_BYTES, buf, len))
        return errno == EFBIG
                   ? sp_cfg_fail(c, v->line, v->col, "key 'images.%s': '%s' has more than the "
                                 "%zu MiB an image source can have; split it into several "
                                 "jobs", v->key, path, SP_MAX_SOURCE_BYTES >> 20)
                   : sp_cfg_fail(c, v->line, v->col, "key 'images.%s': cannot read '%s': %s",
                                 v->key, path, strerror(errno));
    if (memchr(*buf, '\0', *len)) {
        free(*buf);
        *buf = NULL;
        return sp_cfg_fail(c, v->line, v->col, "key 'images.%s': '%s' is not a text file (it "
                           "contains NUL bytes)", v->key, path);
    }
    return 0;
}

/* ---- the sources ----------------------------------------------------------------- */

static int from_files(sp_cfg_ctx *c, const sp_toml_node *v, images_acc *a) {
    const char *what = "an array of image paths (strings)";
    if (v->kind != SP_TOML_ARRAY) return sp_cfg_wrong(c, v, "images.files", what);
    for (int i = 0; i < v->nitems; i++) {
        const sp_toml_node *e = &v->items[i];
        char name[48];
        snprintf(name, sizeof name, "images.files[%d]", i);
        if (sp_cfg_want_string(c, e, name, "an image path (string)")) return -1;
        if (push(c, a, e->str, c->dir, NULL, 0)) return -1;
    }
    return 0;
}

/* One path per line, relative to the list's own directory; blank lines and lines
 * whose first non-blank character is '#' are skipped; surrounding blanks and a
 * trailing \r are not part of the path. */
static int from_list(sp_cfg_ctx *c, const sp_toml_node *v, const char *path, images_acc *a) {
    char *buf, *line, *dir = sp_path_dir(path);
    size_t len, pos = 0;
    if (!dir) return sp_cfg_oom(c);
    if (read_source(c, v, path, &buf, &len)) return free(dir), -1;
    size_t lines = 1;
    for (const char *s = buf; (s = memchr(s, '\n', len - (size_t)(s - buf))); s++) lines++;
    reserve(a, lines);
    int rc = 0, lineno = 0;
    while (!rc && (line = next_line(buf, len, &pos))) {
        lineno++;
        line = trim(line);
        if (line[0] && line[0] != '#') rc = push(c, a, line, dir, path, lineno);
    }
    free(buf);
    free(dir);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files (symbolic links followed) whose names match `pattern`, sorted by
 * name bytewise. As in a shell, a leading '.' must be matched explicitly. */
static int from_dir(sp_cfg_ctx *c, const sp_toml_node *v, const char *path,
                    const sp_toml_node *pat, images_acc *a) {
    const char *pattern = "*";
    if (pat) {
        if (sp_cfg_want_string(c, pat, "images.pattern", "a file name pattern like \"*.JPEG\""))
            return -1;
        if (strchr(pat->str, '/'))
            return sp_cfg_fail(c, pat->line, pat->col, "key 'images.pattern': the pattern "
                               "matches file names in images.dir, so it cannot contain '/'");
        pattern = pat->str;
    }
    DIR *d = opendir(path);
    if (!d)
        return sp_cfg_fail(c, v->line, v->col, "key 'images.dir': cannot open directory "
                           "'%s': %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    for (errno = 0; !rc && (de = readdir(d)); errno = 0) {
        if (fnmatch(pattern, de->d_name, FNM_PERIOD)) continue;
        char *full = join_slash(path, de->d_name);
        struct stat st;
        if (!full) rc = sp_cfg_oom(c);
        else if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (n == cap) {
                char **nn = realloc(names, sizeof *nn * (cap = cap ? 2 * cap : 64));
                if (nn) names = nn;
                else rc = sp_cfg_oom(c);
            }
            if (!rc && !(names[n] = strdup(de->d_name))) rc = sp_cfg_oom(c);
            if (!rc) n++;
        }
        free(full);
    }
    if (!rc && errno)
        rc = sp_cfg_fail(c, v->line, v->col, "key 'images.dir': cannot list directory '%s': %s",
                         path, strerror(errno));
    closedir(d);
    if (!rc && n == 0)
        rc = sp_cfg_fail(c, v->line, v->col, "key 'images.dir': no images: no regular file in "
                         "'%s' matches the pattern \"%s\"", path, pattern);
    if (!rc) qsort(names, n, sizeof *names, cmp_name);
    for (int i = 0; i < n; i++) {
        char *display = rc ? NULL : join_slash(v->str, names[i]);
        if (!rc) rc = display ? push(c, a, display, c->dir, NULL, 0) : sp_cfg_oom(c);
        free(display);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* A DNNBrain .stim.csv: "key=value" header lines (type=image and path=DIR needed,
 * others such as title= kept aside), then "data=stimID,...", then one CSV row per
 * stimulus whose stimID column is the file relative to DIR (DIR itself relative to
 * the csv's directory). Blank lines are skipped, as DNNBrain does. */
static int from_stim_csv(sp_cfg_ctx *c, const sp_toml_node *v, const char *path,
                         images_acc *a) {
    char *buf, *line, *type = NULL, *stimdir = NULL, *root = NULL;
    size_t len, pos = 0;
    int lineno = 0, type_line = 0, col = -1, rc = 0;
    if (read_source(c, v, path, &buf, &len)) return -1;
#define CSV_FAIL(...)                                                                    \
    (snprintf(msg, sizeof msg, __VA_ARGS__),                                             \
     sp_cfg_fail(c, v->line, v->col, "key 'images.stim_csv': %s:%d: %s", path, lineno, msg))
    char msg[256];
    while (!rc && col < 0 && (line = next_line(buf, len, &pos))) {
        lineno++;
        if (!trim(line)[0]) continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = CSV_FAIL("expected a header line key=value (type=, path=, title=, data=)");
            break;
        }
        *eq = '\0';
        char *key = trim(line), *val = trim(eq + 1);
        if (!strcmp(key, "type")) type = val, type_line = lineno;
        else if (!strcmp(key, "path")) stimdir = val;
        else if (!strcmp(key, "data")) {
            /* the column named stimID, counted among the comma-separated names */
            char *name = val;
            for (int k = 0; name && col < 0; k++) {
                char *comma = strchr(name, ',');
                if (comma) *comma = '\0';
                if (!strcmp(trim(name), "stimID")) col = k;
                name = comma ? comma + 1 : NULL;
            }
            if (col < 0) rc = CSV_FAIL("the data= line names no stimID column");
            else if (!type) rc = CSV_FAIL("missing type=image before data=");
            else if (strcmp(type, "image"))
                lineno = type_line, rc = CSV_FAIL("type=%s is not supported: salpipe reads "
                                                  "still images (type=image)", type);
            else if (!stimdir || !stimdir[0]) rc = CSV_FAIL("missing path=DIR before data=");
        }
    }
    if (!rc && col < 0) {
        lineno = lineno ? lineno : 1;
        rc = CSV_FAIL("no data=stimID,... line");
    }
    if (!rc) {
        char *csvdir = sp_path_dir(path);
        root = csvdir ? sp_path_join(csvdir, stimdir) : NULL;
        free(csvdir);
        if (!root) rc = sp_cfg_oom(c);
    }
    while (!rc && (line = next_line(buf, len, &pos))) {
        lineno++;
        if (!trim(line)[0]) continue;
        char *field = line;
        for (int k = 0; k < col && field; k++) {
            field = strchr(field, ',');
            if (field) field++;
        }
        if (!field) {
            rc = CSV_FAIL("the row has no column %d (stimID)", col + 1);
            break;
        }
        char *comma = strchr(field, ',');
        if (comma) *comma = '\0';
        field = trim(field);
        if (!field[0]) rc = CSV_FAIL("empty stimID");
        else rc = push(c, a, field, root, path, lineno);
    }
#undef CSV_FAIL
    free(root);
    free(buf);
    return rc;
}

int sp_images_load(sp_cfg_ctx *c, const sp_toml_node *src, const sp_toml_node *pattern,
                   sp_config *cfg) {
    images_acc a = {.src = src};
    char *path = NULL, name[32];
    int rc;
    snprintf(name, sizeof name, "images.%s", src->key);
    if (!(cfg->images_source = strdup(src->key))) return sp_cfg_oom(c);
    if (!strcmp(src->key, "files")) rc = from_files(c, src, &a);
    else if (sp_cfg_want_string(c, src, name, strcmp(src->key, "dir")
                                                  ? "a file path (string)"
                                                  : "a directory path (string)"))
        rc = -1;
    else if (!(path = sp_path_join(c->dir, src->str))) rc = sp_cfg_oom(c);
    else if (!strcmp(src->key, "list")) rc = from_list(c, src, path, &a);
    else if (!strcmp(src->key, "dir")) rc = from_dir(c, src, path, pattern, &a);
    else rc = from_stim_csv(c, src, path, &a);
    if (!rc && a.n == 0) {
        if (!path)
            rc = sp_cfg_fail(c, src->line, src->col, "key '%s': no images: the array is empty",
                             name);
        else if (!strcmp(src->key, "list"))
            rc = sp_cfg_fail(c, src->line, src->col, "key '%s': no images: '%s' has only blank "
                             "lines and comments", name, path);
        else
            rc = sp_cfg_fail(c, src->line, src->col, "key '%s': no images: '%s' has no rows "
                             "after its data= line", name, path);
    }
    free(path);
    if (rc) {
        acc_free(&a);
        return -1;
    }
    cfg->images = a.v;
    cfg->nimages = a.n;
    cfg->image_strings = a.blocks;
    cfg->images_line = src->line;
    cfg->images_col = src->col;
    return 0;
}
