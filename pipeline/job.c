/*
 * Rank 0's side of a job (job.h): from the config file to an open output.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas_note.h"
#include "fit.h"
#include "job.h"
#include "parts.h"
#include "run.h"

#ifndef SALPIPE_VERSION
#define SALPIPE_VERSION "unknown"
#endif

static void *hash_model(void *arg) {
    sp_job_hash *h = arg;
    h->rc = sp_sha256_file(h->path, h->hex, h->err, sizeof h->err);
    return NULL;
}

/* mkdir -p; 0 when the directory exists afterwards. */
static int make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, -1;
    for (char *s = buf + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *s = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode)) return errno = ENOTDIR, -1;
    return 0;
}

/* Takes the output's writer lock (creating its directory), so a second job on the
 * same output is refused at once, before anything is loaded or written. */
static int lock_output(const char *path, sp_output_lock **lock) {
    char dir[4096], err[SAL_ERR_LEN];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (make_dirs(dir)) {
            fprintf(stderr, "salpipe: %s: cannot create the output directory %s: %s\n", path,
                    dir, strerror(errno));
            return SP_EXIT_IO;
        }
    }
    if (sp_output_lock_take(path, lock, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_IO;
    }
    if (err[0]) fprintf(stderr, "salpipe: %s\n", err);
    return SP_EXIT_OK;
}

int sp_job_prepare(sp_job *j, const char *config_file, int ranks, int check, int overwrite) {
    char err[SAL_ERR_LEN];
    sp_config *cfg = &j->cfg;
    sp_plan *plan = &j->plan;
    if (sp_config_load(config_file, cfg, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    if (sal_model_open(cfg->model_path, &j->model, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s:%d:%d: model.path: %s\n", cfg->config_path,
                cfg->model_line, cfg->model_col, err);
        return SP_EXIT_CONFIG;
    }
    if (sp_plan_build(plan, cfg, j->model, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    if (sp_fit_sizes(cfg, plan, ranks, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    /* One process's --check does not know the run's rank count: a note then. */
    if (sp_parts_check(cfg, plan, check && ranks == 1 ? 0 : ranks, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    /* The disk check comes before the lock, which creates the output's directory: a
     * job that cannot fit leaves nothing behind. */
    sp_fit_disk disk;
    sp_fit_disk_estimate(cfg, plan, overwrite, &disk);
    if (check) {
        sp_fit_print_plan(cfg, j->model, plan, &disk);
        if (ranks == 1 && sp_fit_sizes(cfg, plan, 2, err, sizeof err))
            printf("note      with more than one rank: %s\n", err);
        sp_parts_print(cfg, plan);
        if (ranks == 1 && sp_parts_check(cfg, plan, 1, err, sizeof err))
            printf("note      the run needs more ranks: %s\n", err);
        char blas[512];
        int slow = sp_blas_note(blas, sizeof blas);
        printf("%s%s\n", slow ? "note      " : "blas      ", blas);
    }
    if (sp_fit_disk_check(cfg, &disk, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_IO;
    }
    if (check) return SP_EXIT_OK;
    int rc = lock_output(cfg->output_path, &j->lock);
    if (rc) return rc;
    /* Hashing the model file (for provenance and resume checks) takes about as long
     * as loading it: do both at once. */
    sp_job_hash *hj = &j->hash;
    hj->path = cfg->model_path;
    hj->rc = -1;
    hj->threaded = !pthread_create(&hj->thread, NULL, hash_model, hj);
    if (!hj->threaded) hash_model(hj);
    return SP_EXIT_OK;
}

/* The output's layout; with writers > 1 its parts' names (relative to its
 * directory) and image bounds too. *store holds what lay points to (free it). */
static int job_layout(sp_job *j, sp_output_layout *lay, void **store) {
    const sp_config *cfg = &j->cfg;
    const sp_plan *plan = &j->plan;
    const sp_provenance prov = {SALPIPE_VERSION, cfg->config_path, cfg->config_text,
                                j->hash.hex, sal_model_name(j->model), j->lock};
    *store = NULL;
    void *base = NULL;
    if (sp_plan_output_layout(plan, &prov, lay, &base)) return -1;
    const int K = plan->writers;
    if (K <= 1) {
        *store = base;
        return 0;
    }
    /* One block: [base pointer][K names][K + 1 bounds][name text]. */
    size_t text = 0;
    for (int k = 0; k < K; k++) {
        char *n = sp_parts_path(cfg->output_path, k, K);
        text += n ? strlen(n) + 1 : 0;
        free(n);
    }
    void **blk = malloc(sizeof(void *) * (1 + (size_t)K) + sizeof(int32_t) * (K + 1) + text);
    if (!blk) {
        free(base);
        return -1;
    }
    blk[0] = base;
    const char **names = (const char **)(blk + 1);
    int32_t *bounds = (int32_t *)(names + K);
    char *t = (char *)(bounds + K + 1);
    for (int k = 0; k <= K; k++) bounds[k] = sp_parts_first_image(plan, k);
    for (int k = 0; k < K; k++) {
        char *n = sp_parts_path(cfg->output_path, k, K);
        if (!n) {
            free(base);
            free(blk);
            return -1;
        }
        const char *slash = strrchr(n, '/');
        strcpy(t, slash ? slash + 1 : n);
        names[k] = t;
        t += strlen(t) + 1;
        free(n);
    }
    lay->writers = K;
    lay->part_files = names;
    lay->part_first = bounds;
    *store = blk;
    return 0;
}

static void free_layout(sp_job *j, void *store) {
    if (store && j->plan.writers > 1) free(((void **)store)[0]);
    free(store);
}

int sp_job_create_virtual(sp_job *j) {
    char err[SAL_ERR_LEN];
    sp_output_layout lay;
    void *store;
    int8_t *scratch = calloc(j->plan.nimages, 1);
    if (!scratch || job_layout(j, &lay, &store)) {
        free(scratch);
        fprintf(stderr, "salpipe: out of memory\n");
        return SP_EXIT_IO;
    }
    sp_output *o = NULL;
    int rc = sp_output_open(j->cfg.output_path, &lay, 1, &o, scratch, err, sizeof err);
    if (!rc) rc = sp_output_close(o, err, sizeof err);
    free_layout(j, store);
    free(scratch);
    if (rc) fprintf(stderr, "salpipe: %s\n", err);
    return rc == SP_OUT_OK ? SP_EXIT_OK : rc == SP_OUT_MISMATCH ? SP_EXIT_CONFIG : SP_EXIT_IO;
}

int sp_job_open_output(sp_job *j, int overwrite) {
    char err[SAL_ERR_LEN];
    const sp_config *cfg = &j->cfg;
    const sp_plan *plan = &j->plan;
    sp_job_hash *hj = &j->hash;
    if (hj->threaded) pthread_join(hj->thread, NULL);
    hj->threaded = 0;
    if (hj->rc) {
        fprintf(stderr, "salpipe: %s\n", hj->err);
        return SP_EXIT_CONFIG;
    }
    sp_output_layout lay;
    void *store = NULL;
    j->status = calloc(plan->nimages, 1);
    if (!j->status || job_layout(j, &lay, &store)) {
        free_layout(j, store);
        fprintf(stderr, "salpipe: out of memory\n");
        return SP_EXIT_CONFIG;
    }
    struct stat st;
    j->resume = !overwrite && stat(cfg->output_path, &st) == 0;
    int rc = SP_OUT_OK;
    if (plan->writers <= 1) {
        rc = sp_output_open(cfg->output_path, &lay, overwrite, &j->out, j->status, err,
                            sizeof err);
    } else if (j->resume) {
        /* Checked (the job, its writers) and closed: the parts come next. */
        rc = sp_output_open(cfg->output_path, &lay, 0, &j->out, j->status, err, sizeof err);
        if (!rc) rc = sp_output_close(j->out, err, sizeof err);
        j->out = NULL;
    }
    free_layout(j, store);
    if (rc) {
        fprintf(stderr, "salpipe: %s\n", err);
        return rc == SP_OUT_MISMATCH ? SP_EXIT_CONFIG : SP_EXIT_IO;
    }
    if (plan->previews_dir && make_dirs(plan->previews_dir)) {
        fprintf(stderr, "salpipe: %s: output.previews: cannot create directory %s: %s\n",
                cfg->config_path, plan->previews_dir, strerror(errno));
        return SP_EXIT_IO;
    }
    return SP_EXIT_OK;
}

void sp_job_free(sp_job *j) {
    if (j->hash.threaded) pthread_join(j->hash.thread, NULL);
    if (j->out) {
        char err[SAL_ERR_LEN];
        sp_output_close(j->out, err, sizeof err);
    }
    sp_output_lock_release(j->lock);
    free(j->status);
    sal_model_free(j->model);
    sp_plan_free(&j->plan);
    sp_config_free(&j->cfg);
    memset(j, 0, sizeof *j);
}
