/*
 * Harness: image lists and DNNBrain .stim.csv files (pipeline/sources.c), read as
 * salpipe reads them: through sp_config_load of a fixed config whose [images]
 * names the file. Byte 0 chooses the source (even: list, odd: stim_csv), the rest
 * is the file. Every image of an accepted source must have a non-empty display
 * name and path without a newline, and a list's names no surrounding blanks.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz_common.h"

static const char *const configs[2] = {
    "[model]\npath = \"m.h5\"\n[images]\nlist = \"src.txt\"\n"
    "[[targets]]\nlayer = \"fc1\"\nunits = [1]\n[output]\npath = \"out.h5\"\n",
    "[model]\npath = \"m.h5\"\n[images]\nstim_csv = \"sub/src.stim.csv\"\n"
    "[[targets]]\nlayer = \"fc1\"\nunits = [1]\n[output]\npath = \"out.h5\"\n"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char cfg_path[2][4096];
    if (!cfg_path[0][0]) {
        char p[4096];
        fz_write("list.toml", configs[0], strlen(configs[0]), cfg_path[0]);
        fz_write("csv.toml", configs[1], strlen(configs[1]), cfg_path[1]);
        mkdir(fz_path(p, "sub"), 0700);
    }
    if (size < 1 || size > 65536) return 0;
    const int csv = data[0] & 1;
    fz_write(csv ? "sub/src.stim.csv" : "src.txt", data + 1, size - 1, NULL);
    sp_config cfg;
    char err[SAL_ERR_LEN];
    if (sp_config_load(cfg_path[csv], &cfg, err, sizeof err)) {
        fz_note("refused: %s", err);
        if (strncmp(err, cfg_path[csv], strlen(cfg_path[csv])))
            fz_die("refusal does not start with the config's name: %s", err);
        return 0;
    }
    if (cfg.nimages < 1) fz_die("accepted with no images");
    for (int i = 0; i < cfg.nimages; i++) {
        const sp_image *im = &cfg.images[i];
        if (!im->display[0] || !im->path[0] || strchr(im->display, '\n') ||
            strchr(im->path, '\n'))
            fz_die("image %d: display '%s', path '%s'", i, im->display, im->path);
        size_t n = strlen(im->display);
        if (!csv && (strchr(" \t", im->display[0]) || strchr(" \t", im->display[n - 1])))
            fz_die("list entry %d keeps blanks: '%s'", i, im->display);
    }
    fz_note("%d images, first '%s'", cfg.nimages, cfg.images[0].display);
    sp_config_free(&cfg);
    return 0;
}
