/*
 * Unit tests of the config checker (pipeline/config.c, docs/config.md). Each case
 * writes its config and fixture files into its own directory under DIR, loads it
 * and checks either the values or the error: its file:line:col prefix and that it
 * names the key.
 *
 *     test_config DIR            every case
 *     test_config DIR CASE...    the named cases (CTest runs one per test)
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#define TEST_NAME "test_config"
#include "test_util.h"


#define CHECK_STR(got, want)                                                          \
    CHECK((got) && !strcmp((got), (want)), "got \"%s\", want \"%s\"",                  \
          (got) ? (got) : "(null)", (want))

/* ---- fixtures ------------------------------------------------------------------- */


static void mkdirs(const char *path) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) && errno != EEXIST) die("cannot create", p);
            *s = '/';
        }
    if (mkdir(p, 0755) && errno != EEXIST) die("cannot create", p);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Writes `text` to dir/rel, creating directories on the way. */
static void put(const char *dir, const char *rel, const char *text) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f)) die("cannot write", path);
}

/* The directory of one case, emptied. */
static void case_dir(char *out, size_t len, const char *base, const char *name) {
    if (snprintf(out, len, "%s/%s", base, name) >= (int)len) die("path too long:", base);
    nftw(out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdirs(out);
}

static int is_zero(const sp_config *c) {
    static const sp_config zero;
    return !memcmp(c, &zero, sizeof zero);
}

/* Writes dir/job.toml and loads it, expecting the error to start with
 * "dir/job.toml:line:col: " and to contain each of the NULL-terminated strings. */
static int expect_error(const char *dir, const char *toml, int line, int col, ...) {
    char cfgpath[PATH_MAX], prefix[PATH_MAX + 32], err[SAL_ERR_LEN];
    put(dir, "job.toml", toml);
    snprintf(cfgpath, sizeof cfgpath, "%s/job.toml", dir);
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", cfgpath, line, col);
    sp_config cfg;
    memset(&cfg, 0xab, sizeof cfg);
    int rc = sp_config_load(cfgpath, &cfg, err, sizeof err);
    CHECK(rc == -1, "loaded a bad config:\n%s", toml);
    CHECK(is_zero(&cfg), "config not emptied after an error");
    printf("  error: %s\n", err);
    CHECK(!strncmp(err, prefix, strlen(prefix)), "want the prefix \"%s\"", prefix);
    va_list ap;
    va_start(ap, col);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err, s)) {
            va_end(ap);
            CHECK(0, "the message lacks \"%s\"", s);
        }
    va_end(ap);
    return 0;
}

/* Writes dir/job.toml and loads it into *cfg, which must succeed. */
static int load_ok(const char *dir, const char *toml, sp_config *cfg) {
    char cfgpath[PATH_MAX], err[SAL_ERR_LEN];
    put(dir, "job.toml", toml);
    snprintf(cfgpath, sizeof cfgpath, "%s/job.toml", dir);
    CHECK(sp_config_load(cfgpath, cfg, err, sizeof err) == 0, "%s", err);
    return 0;
}

/* dir + "/" + rel, in a static ring of buffers for use in CHECK_STR. */
static const char *in(const char *dir, const char *rel) {
    static char buf[8][PATH_MAX];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", dir, rel);
    return b;
}

#define MODEL "[model]\npath = \"m.h5\"\n"
#define IMAGES "[images]\nfiles = [\"a.jpg\"]\n"
#define TARGETS "[[targets]]\nlayer = \"fc3\"\nunits = [1]\n"
#define OUTPUT "[output]\npath = \"o.h5\"\n"

/* ---- errors -------------------------------------------------------------------- */

static int case_syntax_error(const char *d) {
    return expect_error(d, MODEL "[images\nfiles = []\n", 3, 8, "TOML syntax error",
                        "expected ']'", NULL) ||
           expect_error(d, "[model]\npath = \"m.h5\n", 2, 13, "TOML syntax error", NULL) ||
           expect_error(d, "[model]\npath = \"a\"\npath = \"b\"\n", 3, 8, "path", NULL);
}

static int case_unknown_key(const char *d) {
    return expect_error(d, MODEL "pth = \"x.h5\"\n" IMAGES TARGETS OUTPUT, 3, 1, "'model.pth'",
                        "did you mean 'path'", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS "[output]\npath = \"o.h5\"\nbatch = 4\n", 10, 1,
                        "'output.batch'", "belongs in [run]", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"fc3\"\nunit = [1]\n" OUTPUT, 7,
                        1, "'targets[0].unit'", "did you mean 'units'", NULL) ||
           expect_error(d, "verbose = true\n" MODEL IMAGES TARGETS OUTPUT, 1, 1,
                        "unknown key 'verbose'", NULL);
}

static int case_unknown_section(const char *d) {
    return expect_error(d, MODEL IMAGES TARGETS OUTPUT "[ouput]\ncompression = 2\n", 10, 2,
                        "unknown section 'ouput'", "did you mean [output]", NULL);
}

static int case_wrong_type(const char *d) {
    return expect_error(d, MODEL IMAGES TARGETS OUTPUT "compression = \"high\"\n", 10, 15,
                        "'output.compression'", "expected an integer from 0 to 9",
                        "found a string \"high\"", NULL) ||
           expect_error(d, MODEL "[images]\nfiles = \"a.jpg\"\n" TARGETS OUTPUT, 4, 9,
                        "'images.files'", "expected an array", "found a string", NULL) ||
           expect_error(d, MODEL IMAGES "[targets]\nlayer = \"fc3\"\nunits = [1]\n" OUTPUT, 5,
                        1, "'targets'", "expected an array of tables", "found a table", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"fc3\"\nunits = 3.5\n" OUTPUT, 7,
                        9, "'targets[0].units'", "found a float 3.5", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nbatch = 1979-05-27\n", 11, 9,
                        "'run.batch'", "found a date/time", NULL) ||
           expect_error(d, "model = \"m.h5\"\n" IMAGES TARGETS OUTPUT, 1, 9, "'model'",
                        "expected a table [model]", NULL);
}

static int case_missing_model(const char *d) {
    return expect_error(d, IMAGES TARGETS OUTPUT, 1, 1, "missing required section [model]",
                        NULL) ||
           expect_error(d, "# job\n\n[model]\n" IMAGES TARGETS OUTPUT, 3, 1,
                        "missing required key 'model.path'", NULL);
}

static int case_missing_output(const char *d) {
    return expect_error(d, MODEL IMAGES TARGETS, 1, 1, "missing required section [output]",
                        NULL) ||
           expect_error(d, MODEL IMAGES TARGETS "\n[output]\ncompression = 1\n", 9, 1,
                        "missing required key 'output.path'", NULL);
}

static int case_no_targets(const char *d) {
    return expect_error(d, MODEL IMAGES OUTPUT, 1, 1, "no targets", "[[targets]]", NULL) ||
           expect_error(d, "targets = []\n" MODEL IMAGES OUTPUT, 1, 11, "'targets'",
                        "no targets", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"fc3\"\nunits = []\n" OUTPUT, 7,
                        9, "'targets[0].units'", "at least one unit", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nunits = [1]\n" OUTPUT, 5, 1,
                        "missing required key 'targets[0].layer'", NULL);
}

static int case_unit_zero(const char *d) {
    return expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"fc3\"\nunits = [3, 0]\n" OUTPUT,
                        7, 13, "'targets[0].units[1]'", "at least 1", "found an integer 0",
                        NULL) ||
           expect_error(d, MODEL IMAGES TARGETS "[[targets]]\nlayer = \"fc2\"\nunits = -2\n"
                        OUTPUT, 10, 9, "'targets[1].units'", "found an integer -2", NULL);
}

static int case_bad_range(const char *d) {
    const char *pre = MODEL IMAGES "[[targets]]\nlayer = \"conv5\"\nunits = ";
    char t[512];
#define RANGE(r) (snprintf(t, sizeof t, "%s\"%s\"\n" OUTPUT, pre, r), t)
    return expect_error(d, RANGE("5-2"), 7, 9, "'targets[0].units'", "\"5-2\" is empty",
                        NULL) ||
           expect_error(d, RANGE("a-b"), 7, 9, "'targets[0].units'", "like \"1-16\"",
                        "found a string \"a-b\"", NULL) ||
           expect_error(d, RANGE("1-"), 7, 9, "'targets[0].units'", "like \"1-16\"", NULL) ||
           expect_error(d, RANGE("0-3"), 7, 9, "'targets[0].units'", "1-based",
                        "\"0-3\" starts at 0", NULL) ||
           expect_error(d, RANGE("1-99999999999"), 7, 9, "'targets[0].units'", "too large",
                        NULL);
#undef RANGE
}

static int case_empty_files(const char *d) {
    return expect_error(d, MODEL "[images]\nfiles = []\n" TARGETS OUTPUT, 4, 9,
                        "'images.files'", "no images", NULL);
}

static int case_empty_list(const char *d) {
    put(d, "lists/empty.txt", "# nothing yet\n\n   \n  # still nothing\n");
    return expect_error(d, MODEL "[images]\nlist = \"lists/empty.txt\"\n" TARGETS OUTPUT, 4, 8,
                        "'images.list'", "no images", in(d, "lists/empty.txt"), NULL);
}

static int case_dir_no_match(const char *d) {
    put(d, "stim/a.jpg", "x");
    put(d, "stim/sub.png/x", "x"); /* a directory that matches is not an image */
    return expect_error(d, MODEL "[images]\ndir = \"stim\"\npattern = \"*.png\"\n" TARGETS
                        OUTPUT, 4, 7, "'images.dir'", "no images", "\"*.png\"", in(d, "stim"),
                        NULL) ||
           expect_error(d, MODEL "[images]\ndir = \"stim\"\npattern = \"x/*.png\"\n" TARGETS
                        OUTPUT, 5, 11, "'images.pattern'", "'/'", NULL);
}

static int case_two_sources(const char *d) {
    return expect_error(d, MODEL "[images]\nfiles = [\"a.jpg\"]\ndir = \"stim\"\n" TARGETS
                        OUTPUT, 5, 1, "two image sources", "images.files (line 4)",
                        "images.dir", NULL) ||
           expect_error(d, MODEL "[images]\nfiles = [\"a.jpg\"]\npattern = \"*.jpg\"\n"
                        TARGETS OUTPUT, 5, 1, "'images.pattern'", "images.dir", NULL);
}

static int case_no_source(const char *d) {
    return expect_error(d, MODEL "[images]\n" TARGETS OUTPUT, 3, 1, "no image source",
                        "files, list, dir, stim_csv", NULL) ||
           expect_error(d, MODEL TARGETS OUTPUT, 1, 1, "missing required section [images]",
                        NULL);
}

static int case_missing_source_file(const char *d) {
    return expect_error(d, MODEL "[images]\nlist = \"nope.txt\"\n" TARGETS OUTPUT, 4, 8,
                        "'images.list'", in(d, "nope.txt"), strerror(ENOENT), NULL) ||
           expect_error(d, MODEL "[images]\ndir = \"nodir\"\n" TARGETS OUTPUT, 4, 7,
                        "'images.dir'", in(d, "nodir"), strerror(ENOENT), NULL) ||
           expect_error(d, MODEL "[images]\nstim_csv = \"no.stim.csv\"\n" TARGETS OUTPUT, 4,
                        12, "'images.stim_csv'", in(d, "no.stim.csv"), strerror(ENOENT),
                        NULL);
}

static int case_bad_values(const char *d) {
    return expect_error(d, MODEL IMAGES TARGETS OUTPUT "compression = 10\n", 10, 15,
                        "'output.compression'", "from 0 to 9", "found an integer 10", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nbatch = 0\n", 11, 9,
                        "'run.batch'", "from 1 to 4096", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nbatch = 5000\n", 11, 9,
                        "'run.batch'", "from 1 to 4096", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nthreads = 0\n", 11, 11,
                        "'run.threads'", "from 1 to", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nprecision = \"float16\"\n", 11,
                        13, "'run.precision'", "float32, float64", "\"float16\"", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[run]\nconvolution = \"drect\"\n", 11,
                        15, "'run.convolution'", "did you mean \"direct\"", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT
                        "[saliency]\nmethods = [\"vanilla\", \"gided\"]\n", 11, 23,
                        "'saliency.methods[1]'", "did you mean \"guided\"", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT
                        "[saliency]\nmethods = [\"guided\", \"guided\"]\n", 11, 22,
                        "'saliency.methods[1]'", "listed twice", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[saliency]\nmethods = []\n", 11, 11,
                        "'saliency.methods'", "non-empty array", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "[preprocess]\nresize = \"fit\"\n", 11,
                        10, "'preprocess.resize'", "stretch, crop", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"\"\nunits = [1]\n" OUTPUT, 6,
                        9, "'targets[0].layer'", "empty string", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = 3\nunits = [1]\n" OUTPUT, 6, 9,
                        "'targets[0].layer'", "found an integer 3", NULL) ||
           expect_error(d, MODEL IMAGES TARGETS OUTPUT "previews = 5\n", 10, 12,
                        "'output.previews'", NULL) ||
           expect_error(d, "[model]\npath = \"\"\n" IMAGES TARGETS OUTPUT, 2, 8, "'model.path'",
                        "empty string", NULL);
}

static int case_duplicate_target(const char *d) {
    return expect_error(d, MODEL IMAGES
                        "[[targets]]\nlayer = \"fc3\"\nunits = [540, 23]\n"
                        "[[targets]]\nlayer = \"conv5\"\nunits = [540]\n"
                        "[[targets]]\nlayer = \"fc3\"\nunits = \"539-541\"\n" OUTPUT,
                        13, 9, "'targets[2].units'", "duplicate target fc3:540",
                        "line 7, column 10", "targets[0]", NULL) ||
           expect_error(d, MODEL IMAGES "[[targets]]\nlayer = \"fc3\"\nunits = [1, 2, 1]\n"
                        OUTPUT, 7, 16, "'targets[0].units'", "fc3:1", "line 7, column 10",
                        NULL);
}

static int case_stim_csv_errors(const char *d) {
    put(d, "video.stim.csv", "type=video\npath=.\ndata=stimID\n1\n");
    put(d, "nodata.stim.csv", "type=image\npath=stim\n");
    put(d, "noid.stim.csv", "type=image\npath=stim\ndata=file,label\na.jpg,1\n");
    put(d, "nopath.stim.csv", "type=image\n\ndata=stimID\na.jpg\n");
    return expect_error(d, MODEL "[images]\nstim_csv = \"video.stim.csv\"\n" TARGETS OUTPUT, 4,
                        12, "'images.stim_csv'", "video.stim.csv:1:", "type=video", NULL) ||
           expect_error(d, MODEL "[images]\nstim_csv = \"nodata.stim.csv\"\n" TARGETS OUTPUT,
                        4, 12, "'images.stim_csv'", "nodata.stim.csv:2:", "no data=", NULL) ||
           expect_error(d, MODEL "[images]\nstim_csv = \"noid.stim.csv\"\n" TARGETS OUTPUT, 4,
                        12, "noid.stim.csv:3:", "stimID", NULL) ||
           expect_error(d, MODEL "[images]\nstim_csv = \"nopath.stim.csv\"\n" TARGETS OUTPUT,
                        4, 12, "nopath.stim.csv:3:", "path=", NULL);
}

/* ---- values -------------------------------------------------------------------- */

static int case_defaults(const char *d) {
    const char *text = MODEL IMAGES TARGETS OUTPUT;
    sp_config c;
    if (load_ok(d, text, &c)) return 1;
    CHECK_STR(c.config_path, in(d, "job.toml"));
    CHECK_STR(c.config_text, text);
    CHECK(c.model_line == 2 && c.model_col == 8, "model at %d:%d", c.model_line, c.model_col);
    CHECK(c.nmethods == 2 && c.methods[0] == SAL_METHOD_VANILLA &&
          c.methods[1] == SAL_METHOD_GUIDED, "default methods");
    CHECK(c.resize == SP_RESIZE_MODEL, "resize %d", c.resize);
    CHECK(c.compression == 4, "compression %d", c.compression);
    CHECK(c.previews_dir == NULL, "previews set");
    CHECK(c.batch == 8 && c.threads == 1, "batch %d threads %d", c.batch, c.threads);
    CHECK(c.precision == SAL_F32, "precision %d", c.precision);
    CHECK(c.convolution == SAL_CONV_FAST, "convolution %d", c.convolution);
    CHECK(c.ntargets == 1 && !strcmp(c.targets[0].layer, "fc3") && c.targets[0].unit == 1,
          "targets");
    sp_config_free(&c);
    CHECK(is_zero(&c), "sp_config_free leaves the struct zeroed");
    sp_config_free(&c); /* twice is harmless */
    return 0;
}

static int case_full(const char *d) {
    sp_config c;
    if (load_ok(d, "# every key\n" MODEL IMAGES TARGETS
                "[saliency]\nmethods = [\"deconvnet\", \"vanilla\"]\n"
                "[preprocess]\nresize = \"crop\"\n"
                "[output]\npath = \"out/s.h5\"\ncompression = 0\npreviews = \"out/prev\"\n"
                "[run]\nbatch = 32\nthreads = 4\nprecision = \"float64\"\n"
                "convolution = \"direct\"\n", &c))
        return 1;
    CHECK(c.nmethods == 2 && c.methods[0] == SAL_METHOD_DECONVNET &&
          c.methods[1] == SAL_METHOD_VANILLA, "methods in config order");
    CHECK(c.resize == SP_RESIZE_CROP, "resize %d", c.resize);
    CHECK(c.compression == 0, "compression %d", c.compression);
    CHECK_STR(c.output_path, in(d, "out/s.h5"));
    CHECK_STR(c.previews_dir, in(d, "out/prev"));
    CHECK(c.batch == 32 && c.threads == 4 && c.precision == SAL_F64 &&
          c.convolution == SAL_CONV_DIRECT, "run section");
    sp_config_free(&c);
    static const struct {
        const char *name;
        sal_conv_mode mode;
    } convs[] = {{"fast", SAL_CONV_FAST}, {"winograd", SAL_CONV_FAST},
                 {"fastest", SAL_CONV_FASTEST}, {"direct", SAL_CONV_DIRECT}};
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 MODEL IMAGES TARGETS "[output]\npath = \"o.h5\"\n[run]\nconvolution = \"%s\"\n",
                 convs[i].name);
        if (load_ok(d, text, &c)) return 1;
        CHECK(c.convolution == convs[i].mode, "convolution = \"%s\": %d", convs[i].name,
              c.convolution);
        sp_config_free(&c);
    }
    return 0;
}

static int case_targets_forms(const char *d) {
    sp_config c;
    if (load_ok(d, MODEL IMAGES
                "[[targets]]\nlayer = \"fc3\"\nunits = [540, 23]\n"  /* line 7  */
                "[[targets]]\nlayer = \"conv5\"\nunits = \" 3 - 5 \"\n" /* line 10 */
                "[[targets]]\nlayer = \"fc1\"\nunits = 7\n"          /* line 13 */
                "[[targets]]\nlayer = \"conv1\"\nunits = \"2\"\n"    /* line 16 */
                "[[targets]]\nlayer = \"fc3\"\nunits = [541]\n" OUTPUT, &c))
        return 1;
    static const struct { const char *layer; int unit, line, col; } want[] = {
        {"fc3", 540, 7, 10}, {"fc3", 23, 7, 15}, {"conv5", 3, 10, 9}, {"conv5", 4, 10, 9},
        {"conv5", 5, 10, 9}, {"fc1", 7, 13, 9},  {"conv1", 2, 16, 9}, {"fc3", 541, 19, 10},
    };
    CHECK(c.ntargets == 8, "ntargets %d", c.ntargets);
    for (int t = 0; t < 8; t++) {
        const sp_target *g = &c.targets[t];
        CHECK(!strcmp(g->layer, want[t].layer) && g->unit == want[t].unit &&
              g->line == want[t].line && g->col == want[t].col,
              "target %d: %s:%d at %d:%d", t, g->layer, g->unit, g->line, g->col);
    }
    sp_config_free(&c);
    return 0;
}

static int case_source_files(const char *d) {
    sp_config c;
    if (load_ok(d, MODEL "[images]\nfiles = [\"a.jpg\", \"sub/b.png\", \"/abs/c.jpg\"]\n"
                TARGETS OUTPUT, &c))
        return 1;
    CHECK_STR(c.images_source, "files");
    CHECK(c.nimages == 3, "nimages %d", c.nimages);
    CHECK_STR(c.images[0].display, "a.jpg");
    CHECK_STR(c.images[1].display, "sub/b.png");
    CHECK_STR(c.images[2].display, "/abs/c.jpg");
    CHECK_STR(c.images[0].path, in(d, "a.jpg"));
    CHECK_STR(c.images[1].path, in(d, "sub/b.png"));
    CHECK_STR(c.images[2].path, "/abs/c.jpg");
    sp_config_free(&c);
    return 0;
}

static int case_source_list(const char *d) {
    put(d, "lists/imgs.txt", "# made by hand\na.jpg\n\n  sub/b.png \r\n   # indented comment\n"
                             "/abs/c.jpg\r\nlast.jpg");
    sp_config c;
    if (load_ok(d, MODEL "[images]\nlist = \"lists/imgs.txt\"\n" TARGETS OUTPUT, &c)) return 1;
    CHECK_STR(c.images_source, "list");
    CHECK(c.nimages == 4, "nimages %d", c.nimages);
    CHECK_STR(c.images[0].display, "a.jpg");
    CHECK_STR(c.images[1].display, "sub/b.png");
    CHECK_STR(c.images[2].display, "/abs/c.jpg");
    CHECK_STR(c.images[3].display, "last.jpg");
    CHECK_STR(c.images[0].path, in(d, "lists/a.jpg"));
    CHECK_STR(c.images[1].path, in(d, "lists/sub/b.png"));
    CHECK_STR(c.images[2].path, "/abs/c.jpg");
    CHECK_STR(c.images[3].path, in(d, "lists/last.jpg"));
    sp_config_free(&c);
    return 0;
}

static int case_source_dir(const char *d) {
    const char *names[] = {"stim/b.jpg", "stim/B.jpg", "stim/a.jpg", "stim/a.txt",
                           "stim/.hidden.jpg", "stim/c.jpg/inner.jpg"};
    for (int i = 0; i < 6; i++) put(d, names[i], "x");
    if (symlink("a.jpg", in(d, "stim/d.jpg")) || symlink("gone.jpg", in(d, "stim/e.jpg")))
        die("cannot link in", d);
    sp_config c;
    if (load_ok(d, MODEL "[images]\ndir = \"stim/\"\npattern = \"*.jpg\"\n" TARGETS OUTPUT, &c))
        return 1;
    CHECK_STR(c.images_source, "dir");
    /* strcmp order; no hidden file, directory or dangling link; a link to a file is kept */
    const char *want[] = {"B.jpg", "a.jpg", "b.jpg", "d.jpg"};
    CHECK(c.nimages == 4, "nimages %d", c.nimages);
    for (int i = 0; i < 4; i++) {
        char disp[64], rel[64];
        snprintf(disp, sizeof disp, "stim/%s", want[i]);
        snprintf(rel, sizeof rel, "stim/%s", want[i]);
        CHECK_STR(c.images[i].display, disp);
        CHECK_STR(c.images[i].path, in(d, rel));
    }
    sp_config_free(&c);
    /* default pattern "*" */
    if (load_ok(d, MODEL "[images]\ndir = \"stim\"\n" TARGETS OUTPUT, &c)) return 1;
    CHECK(c.nimages == 5, "nimages %d", c.nimages);
    CHECK_STR(c.images[2].display, "stim/a.txt");
    sp_config_free(&c);
    return 0;
}

static int case_source_stim_csv(const char *d) {
    put(d, "csv/sub-01.stim.csv",
        "type=image\r\npath=../stimuli\r\ntitle=ImageNet test\r\n\r\n"
        "data=stimID,label\r\nn01/x1.JPEG,0\r\n\r\nn02/x2.JPEG,1\r\n");
    put(d, "csv/abs.stim.csv", "type=image\npath=/data/stim\ndata=label,stimID,onset\n"
                               "0,b.png,1.5\n1,a.png,3\n");
    sp_config c;
    if (load_ok(d, MODEL "[images]\nstim_csv = \"csv/sub-01.stim.csv\"\n" TARGETS OUTPUT, &c))
        return 1;
    CHECK_STR(c.images_source, "stim_csv");
    CHECK(c.nimages == 2, "nimages %d", c.nimages);
    CHECK_STR(c.images[0].display, "n01/x1.JPEG");
    CHECK_STR(c.images[1].display, "n02/x2.JPEG");
    CHECK_STR(c.images[0].path, in(d, "csv/../stimuli/n01/x1.JPEG"));
    CHECK_STR(c.images[1].path, in(d, "csv/../stimuli/n02/x2.JPEG"));
    sp_config_free(&c);
    if (load_ok(d, MODEL "[images]\nstim_csv = \"csv/abs.stim.csv\"\n" TARGETS OUTPUT, &c))
        return 1;
    CHECK(c.nimages == 2, "nimages %d", c.nimages);
    CHECK_STR(c.images[0].display, "b.png");
    CHECK_STR(c.images[0].path, "/data/stim/b.png");
    CHECK_STR(c.images[1].path, "/data/stim/a.png");
    sp_config_free(&c);
    return 0;
}

static int case_relative_paths(const char *d) {
    char cwd[PATH_MAX], err[SAL_ERR_LEN];
    if (!getcwd(cwd, sizeof cwd)) die("getcwd", "");
    put(d, "sub/job.toml", "[model]\npath = \"/models/alexnet.h5\"\n[images]\n"
                           "files = [\"img/a.jpg\"]\n" TARGETS
                           "[output]\npath = \"out/o.h5\"\npreviews = \"prev\"\n");
    if (chdir(d)) die("cannot enter", d);
    sp_config c;
    int rc = sp_config_load("sub/job.toml", &c, err, sizeof err);
    int bad = rc || strcmp(c.model_path, "/models/alexnet.h5") ||
              strcmp(c.output_path, "sub/out/o.h5") || strcmp(c.previews_dir, "sub/prev") ||
              strcmp(c.images[0].path, "sub/img/a.jpg") ||
              strcmp(c.images[0].display, "img/a.jpg") || strcmp(c.config_path, "sub/job.toml");
    if (!rc) sp_config_free(&c);
    /* a bare file name: paths stay relative to the working directory */
    if (!bad && chdir("sub") == 0) {
        rc = sp_config_load("job.toml", &c, err, sizeof err);
        bad = rc || strcmp(c.output_path, "out/o.h5") || strcmp(c.images[0].path, "img/a.jpg");
        if (!rc) sp_config_free(&c);
    }
    if (chdir(cwd)) die("cannot return to", cwd);
    CHECK(!bad, "relative paths resolved wrongly (rc %d: %s)", rc, rc ? err : "");
    CHECK(sp_config_load(in(d, "none.toml"), &c, err, sizeof err) == -1 && is_zero(&c),
          "a missing config file");
    printf("  error: %s\n", err);
    CHECK(strstr(err, in(d, "none.toml")) && strstr(err, strerror(ENOENT)), "%s", err);
    return 0;
}

/* ---- issue 12: the methods' parameters ------------------------------------------ */

#define BASE MODEL IMAGES TARGETS OUTPUT /* 9 lines: what follows starts on line 10 */

static int case_method_params_defaults(const char *d) {
    sp_config c;
    if (load_ok(d, BASE, &c)) return 1;
    CHECK(c.smoothgrad.samples == 50 && c.smoothgrad.noise == 0.15 &&
          c.smoothgrad.base == SAL_METHOD_VANILLA && c.smoothgrad.statistic == SP_SG_MEAN &&
          c.smoothgrad.seed == 0, "smoothgrad defaults");
    CHECK(c.integrated_gradients.steps == 50 &&
          c.integrated_gradients.rule == SP_IG_GAUSSLEGENDRE &&
          c.integrated_gradients.baseline == SP_IG_BASELINE_ZERO, "integrated gradients defaults");
    CHECK(c.gradcam_layer[0] == 0, "no Grad-CAM layer by default");
    CHECK(c.method_line[0] == 0, "the default method list has no position");
    sp_config_free(&c);
    /* tables present but empty: still the defaults */
    if (load_ok(d, BASE "[saliency.smoothgrad]\n[saliency.integrated_gradients]\n", &c))
        return 1;
    CHECK(c.smoothgrad.samples == 50 && c.integrated_gradients.steps == 50, "empty tables");
    sp_config_free(&c);
    return 0;
}

static int case_method_params_values(const char *d) {
    sp_config c;
    if (load_ok(d, BASE "[saliency]\nmethods = [\"vanilla\", \"smoothgrad\", "
                "\"integrated_gradients\", \"gradcam\", \"guided_gradcam\", "
                "\"gradient_x_input\", \"guided\", \"deconvnet\"]\n"
                "[saliency.smoothgrad]\nsamples = 7\nnoise = 0\nbase = \"guided\"\n"
                "statistic = \"variance\"\nseed = 9223372036854775807\n"
                "[saliency.integrated_gradients]\nsteps = 1\nrule = \"riemann_trapezoid\"\n"
                "baseline = \"black\"\n[saliency.gradcam]\nlayer = \"conv5_relu\"\n", &c))
        return 1;
    CHECK(c.nmethods == 8, "eight methods, got %d", c.nmethods);
    static const sal_method want[8] = {
        SAL_METHOD_VANILLA, SAL_METHOD_SMOOTHGRAD, SAL_METHOD_INTEGRATED_GRADIENTS,
        SAL_METHOD_GRADCAM, SAL_METHOD_GUIDED_GRADCAM, SAL_METHOD_GRADIENT_X_INPUT,
        SAL_METHOD_GUIDED, SAL_METHOD_DECONVNET};
    for (int i = 0; i < 8; i++)
        CHECK(c.methods[i] == want[i] && c.method_line[i] == 11, "method %d: %d at line %d", i,
              (int)c.methods[i], c.method_line[i]);
    CHECK(c.method_col[0] == 12 && c.method_col[1] == 23, "columns %d %d", c.method_col[0],
          c.method_col[1]);
    CHECK(c.smoothgrad.samples == 7 && c.smoothgrad.noise == 0 &&
          c.smoothgrad.base == SAL_METHOD_GUIDED && c.smoothgrad.statistic == SP_SG_VARIANCE &&
          c.smoothgrad.seed == UINT64_C(9223372036854775807), "smoothgrad values");
    CHECK(c.integrated_gradients.steps == 1 &&
          c.integrated_gradients.rule == SP_IG_RIEMANN_TRAPEZOID &&
          c.integrated_gradients.baseline == SP_IG_BASELINE_BLACK, "integrated gradients values");
    CHECK_STR(c.gradcam_layer, "conv5_relu");
    CHECK(c.gradcam_line == 23 && c.gradcam_col == 9, "gradcam layer at %d:%d", c.gradcam_line,
          c.gradcam_col);
    sp_config_free(&c);
    if (load_ok(d, BASE "[saliency.smoothgrad]\nnoise = 0.3\nstatistic = \"mean_square\"\n"
                "base = \"deconvnet\"\n", &c))
        return 1;
    CHECK(c.smoothgrad.noise == 0.3 && c.smoothgrad.statistic == SP_SG_MEAN_SQUARE &&
          c.smoothgrad.base == SAL_METHOD_DECONVNET, "float noise, mean_square, deconvnet");
    sp_config_free(&c);
    return 0;
}

/* Every bad parameter of issue 12 is an error at its line and column that names the
 * key; each expectation fails if its check is removed. */
static int case_method_params_errors(const char *d) {
#define SG BASE "[saliency.smoothgrad]\n" /* its keys on line 11 */
#define IG BASE "[saliency.integrated_gradients]\n"
#define CAM BASE "[saliency.gradcam]\n"
    return expect_error(d, SG "samples = 0\n", 11, 11, "'saliency.smoothgrad.samples'",
                        "from 1 to 100000", "found an integer 0", NULL) ||
           expect_error(d, SG "samples = 100001\n", 11, 11, "'saliency.smoothgrad.samples'",
                        NULL) ||
           expect_error(d, SG "samples = \"50\"\n", 11, 11, "'saliency.smoothgrad.samples'",
                        NULL) ||
           expect_error(d, SG "noise = -0.1\n", 11, 9, "'saliency.smoothgrad.noise'",
                        "at least 0", "found a float -0.1", NULL) ||
           expect_error(d, SG "noise = -1\n", 11, 9, "'saliency.smoothgrad.noise'", NULL) ||
           expect_error(d, SG "noise = nan\n", 11, 9, "'saliency.smoothgrad.noise'", "finite",
                        NULL) ||
           expect_error(d, SG "noise = inf\n", 11, 9, "'saliency.smoothgrad.noise'", NULL) ||
           expect_error(d, SG "noise = \"0.1\"\n", 11, 9, "'saliency.smoothgrad.noise'", NULL) ||
           expect_error(d, SG "base = \"gradcam\"\n", 11, 8, "'saliency.smoothgrad.base'",
                        "vanilla, guided, deconvnet", NULL) ||
           expect_error(d, SG "base = \"guidd\"\n", 11, 8, "'saliency.smoothgrad.base'",
                        "did you mean \"guided\"", NULL) ||
           expect_error(d, SG "statistic = \"median\"\n", 11, 13,
                        "'saliency.smoothgrad.statistic'", "mean, mean_square, variance",
                        NULL) ||
           expect_error(d, SG "seed = -1\n", 11, 8, "'saliency.smoothgrad.seed'",
                        "from 0 to", NULL) ||
           expect_error(d, SG "seed = 1.5\n", 11, 8, "'saliency.smoothgrad.seed'",
                        "found a float 1.5", NULL) ||
           expect_error(d, SG "seed = \"7\"\n", 11, 8, "'saliency.smoothgrad.seed'", NULL) ||
           expect_error(d, SG "steps = 5\n", 11, 1, "unknown key 'saliency.smoothgrad.steps'",
                        "[saliency.smoothgrad] takes: samples, noise, base, statistic, seed",
                        NULL) ||
           expect_error(d, IG "steps = 0\n", 11, 9, "'saliency.integrated_gradients.steps'",
                        "from 1 to 100000", NULL) ||
           expect_error(d, IG "rule = \"simpson\"\n", 11, 8,
                        "'saliency.integrated_gradients.rule'",
                        "gausslegendre, riemann_trapezoid", NULL) ||
           expect_error(d, IG "baseline = \"gray\"\n", 11, 12,
                        "'saliency.integrated_gradients.baseline'", "zero, black", NULL) ||
           expect_error(d, IG "samples = 3\n", 11, 1,
                        "unknown key 'saliency.integrated_gradients.samples'", NULL) ||
           expect_error(d, CAM "layer = \"\"\n", 11, 9, "'saliency.gradcam.layer'",
                        "empty string", NULL) ||
           expect_error(d, CAM "layer = 5\n", 11, 9, "'saliency.gradcam.layer'", NULL) ||
           expect_error(d, CAM "layr = \"conv5\"\n", 11, 1,
                        "unknown key 'saliency.gradcam.layr'", "did you mean 'layer'", NULL) ||
           expect_error(d, CAM, 10, 1, "'saliency.gradcam.layer'", NULL) ||
           expect_error(d, BASE "[saliency]\nsmoothgrad = 3\n", 11, 14, "'saliency.smoothgrad'",
                        "a table [saliency.smoothgrad]", NULL) ||
           expect_error(d, BASE "[saliency]\nmethods = [\"vanilla\", \"gradcam\"]\n", 11, 23,
                        "'saliency.methods[1]'", "\"gradcam\" needs", "[saliency.gradcam]",
                        NULL) ||
           expect_error(d, BASE "[saliency]\nmethods = [\"guided_gradcam\"]\n", 11, 12,
                        "'saliency.methods[0]'", "\"guided_gradcam\" needs", NULL) ||
           expect_error(d, BASE "[saliency]\nmethods = [\"smoothgrad\", \"smoothgrad\"]\n", 11,
                        26, "listed twice", NULL);
#undef SG
#undef IG
#undef CAM
}

/* ---- driver ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(const char *dir);
} cases[] = {
    {"syntax_error", case_syntax_error},
    {"unknown_key", case_unknown_key},
    {"unknown_section", case_unknown_section},
    {"wrong_type", case_wrong_type},
    {"missing_model", case_missing_model},
    {"missing_output", case_missing_output},
    {"no_targets", case_no_targets},
    {"unit_zero", case_unit_zero},
    {"bad_range", case_bad_range},
    {"empty_files", case_empty_files},
    {"empty_list", case_empty_list},
    {"dir_no_match", case_dir_no_match},
    {"two_sources", case_two_sources},
    {"no_source", case_no_source},
    {"missing_source_file", case_missing_source_file},
    {"bad_values", case_bad_values},
    {"duplicate_target", case_duplicate_target},
    {"stim_csv_errors", case_stim_csv_errors},
    {"defaults", case_defaults},
    {"full", case_full},
    {"targets_forms", case_targets_forms},
    {"source_files", case_source_files},
    {"source_list", case_source_list},
    {"source_dir", case_source_dir},
    {"source_stim_csv", case_source_stim_csv},
    {"relative_paths", case_relative_paths},
    {"method_params_defaults", case_method_params_defaults},
    {"method_params_values", case_method_params_values},
    {"method_params_errors", case_method_params_errors},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static int run_case(const char *base, int i) {
    char dir[PATH_MAX];
    case_dir(dir, sizeof dir, base, cases[i].name);
    printf("case %s\n", cases[i].name);
    int rc = cases[i].fn(dir);
    printf("%s %s\n", rc ? "FAIL" : "ok", cases[i].name);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_config DIR [CASE...]\n");
        return 2;
    }
    char base[PATH_MAX];
    mkdirs(argv[1]);
    if (!realpath(argv[1], base)) die("cannot resolve", argv[1]);
    int failed = 0;
    if (argc == 2)
        for (int i = 0; i < NCASES; i++) failed += run_case(base, i);
    for (int a = 2; a < argc; a++) {
        int i = 0;
        while (i < NCASES && strcmp(cases[i].name, argv[a])) i++;
        if (i == NCASES) {
            fprintf(stderr, "test_config: no case '%s'\n", argv[a]);
            return 2;
        }
        failed += run_case(base, i);
    }
    printf("%d failed\n", failed);
    return failed ? 1 : 0;
}
