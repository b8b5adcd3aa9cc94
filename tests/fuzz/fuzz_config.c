/*
 * Harness: the TOML config, through what `salpipe --check` does before it reads
 * any image or weight: sp_config_load (TOML parse, every section and key, the
 * image source: files, a list, a directory or a .stim.csv in the scratch
 * directory), sal_model_open on the model it names (the scratch directory holds
 * m.h5, model_gen's first template: conv1, conv1_relu, conv1_maxpool, flatten,
 * fc1), sp_plan_build, then sp_plan_pack and sp_plan_unpack, which must give the
 * same plan back.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz_common.h"
#include "model_gen.h"
#include "plan.h"

/* The files a config in the scratch directory can name. */
static void make_fixtures(void) {
    char p[4096];
    if (mg_write(NULL, 0, fz_path(p, "m.h5"))) fz_die("cannot write the model fixture");
    mkdir(fz_path(p, "imgs"), 0700);
    fz_write("imgs/a.png", "", 0, NULL);
    fz_write("imgs/b.JPEG", "", 0, NULL);
    fz_write("imgs/.hidden.png", "", 0, NULL);
    const char list[] = "imgs/a.png\n# comment\n\n  imgs/b.JPEG  \r\n";
    fz_write("list.txt", list, sizeof list - 1, NULL);
    const char csv[] = "type=image\npath=imgs\ntitle=x\ndata=stimID,label\na.png,1\nb.JPEG,2\n";
    fz_write("s.stim.csv", csv, sizeof csv - 1, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char cfg_path[4096];
    if (!cfg_path[0]) {
        make_fixtures();
        fz_path(cfg_path, "job.toml");
    }
    if (size > 16384) return 0;
    fz_write("job.toml", data, size, NULL);
    sp_config cfg;
    char err[SAL_ERR_LEN];
    if (sp_config_load(cfg_path, &cfg, err, sizeof err)) {
        fz_note("refused: %s", err);
        if (strncmp(err, cfg_path, strlen(cfg_path)))
            fz_die("config refusal does not start with the file name: %s", err);
        return 0;
    }
    sal_model *m;
    if (sal_model_open(cfg.model_path, &m, err, sizeof err) == 0) {
        sp_plan plan, back;
        if (sp_plan_build(&plan, &cfg, m, err, sizeof err) == 0) {
            size_t n = 0, n2 = 0;
            char *buf = sp_plan_pack(&plan, &n);
            if (!buf) fz_die("plan does not pack");
            if (sp_plan_unpack(&back, buf, n, err, sizeof err))
                fz_die("a plan built from a checked config is refused: %s", err);
            char *buf2 = sp_plan_pack(&back, &n2);
            if (!buf2 || n2 != n || memcmp(buf, buf2, n)) fz_die("plan changes in transit");
            free(buf);
            free(buf2);
            fz_note("plan of %d images, %d targets", plan.nimages, plan.ntargets);
            sp_plan_free(&back);
            sp_plan_free(&plan);
        } else if (fz_note("plan refused: %s", err), strncmp(err, cfg_path, strlen(cfg_path)) && strcmp(err, "out of memory")) {
            fz_die("target refusal does not start with the file name: %s", err);
        }
        sal_model_free(m);
    }
    sp_config_free(&cfg);
    return 0;
}
