/*
 * [output] writers = K: which images each part holds, the part files' names, the
 * checks and --check lines, and the collective opening of the parts (parts.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "parts.h"
#include "run.h"

#ifndef SALPIPE_VERSION
#define SALPIPE_VERSION "unknown"
#endif

static int batches(const sp_plan *p) { return (p->nimages + p->batch - 1) / p->batch; }

int sp_parts_first_batch(const sp_plan *p, int k) {
    return (int)((int64_t)k * batches(p) / p->writers);
}

int sp_parts_first_image(const sp_plan *p, int k) {
    int64_t i = (int64_t)sp_parts_first_batch(p, k) * p->batch;
    return i < p->nimages ? (int)i : p->nimages;
}

/* The largest k with first_batch(k) <= b: k * nb < (b + 1) * K. */
int sp_parts_of_batch(const sp_plan *p, int b) {
    const int64_t nb = batches(p);
    return (int)((((int64_t)b + 1) * p->writers + nb - 1) / nb - 1);
}

char *sp_parts_path(const char *out, int k, int writers) {
    size_t n = strlen(out), stem = n;
    if (n > 3 && !strcmp(out + n - 3, ".h5") && out[n - 4] != '/') stem = n - 3;
    char *s = malloc(n + 48);
    if (s) snprintf(s, n + 48, "%.*s.part-%d-of-%d.h5", (int)stem, out, k + 1, writers);
    return s;
}

/* "rank 1" or "ranks 1..K-1": the writers that do not compute. */
static void only_writers(char *buf, size_t len, int K) {
    if (K == 2) snprintf(buf, len, "rank 1");
    else snprintf(buf, len, "ranks 1..%d", K - 1);
}

int sp_parts_check(const sp_config *c, const sp_plan *p, int ranks, char *err, size_t errlen) {
    const int K = p->writers;
    if (K <= 1) return 0;
    char where[4200];
    if (c->writers_line > 0)
        snprintf(where, sizeof where, "%s:%d:%d: ", c->config_path, c->writers_line,
                 c->writers_col);
    else
        snprintf(where, sizeof where, "%s: ", c->config_path);
    if (batches(p) < K) {
        snprintf(err, errlen, "%skey 'output.writers': %d writers need at least %d batches (each "
                 "part file holds whole batches), and %d images at batch = %d make %d; lower "
                 "writers or [run] batch", where, K, K, p->nimages, p->batch, batches(p));
        return -1;
    }
    if (ranks > 0 && ranks <= K) {
        char only[48];
        only_writers(only, sizeof only, K);
        snprintf(err, errlen, "%skey 'output.writers': %d writers need at least %d ranks (%s "
                 "only write, rank 0 and ranks %d.. compute), this run has %d; run under "
                 "mpirun -n %d or more, or lower writers", where, K, K + 1, only, K, ranks,
                 K + 1);
        return -1;
    }
    return 0;
}

void sp_parts_print(const sp_config *c, const sp_plan *p) {
    const int K = p->writers;
    if (K <= 1) {
        printf("writers   1: rank 0 writes %s\n", c->output_path);
        return;
    }
    char only[48];
    only_writers(only, sizeof only, K);
    printf("writers   %d: ranks 0..%d write a part file each (rank 0 also computes and hands "
           "out batches, %s only write%s); %s holds virtual datasets over them\n",
           K, K - 1, only, K == 2 ? "s" : "", c->output_path);
    for (int k = 0; k < K && k < 64; k++) {
        char *name = sp_parts_path(c->output_path, k, K);
        int a = sp_parts_first_image(p, k), b = sp_parts_first_image(p, k + 1);
        printf("  part %d  rank %d: images %d..%d (%d), batches %d..%d, %s\n", k + 1, k, a,
               b - 1, b - a, sp_parts_first_batch(p, k), sp_parts_first_batch(p, k + 1) - 1,
               name ? name : "?");
        free(name);
    }
    if (K > 64) printf("  ... (first 64 parts listed)\n");
}

/* ---- opening ------------------------------------------------------------------ */

/* What the writer ranks need besides the plan: strings rank 0 alone has. */
enum { PROV_OUT, PROV_CONFIG_PATH, PROV_CONFIG_TEXT, PROV_SHA, PROV_MODEL_NAME, NPROV };

static void bcast_patiently(void *buf, int count, MPI_Datatype type) {
    MPI_Request req;
    MPI_CHECK(MPI_Ibcast(buf, count, type, 0, MPI_COMM_WORLD, &req));
    sp_wait_patiently(&req);
}

/* Broadcasts rank 0's strings s[NPROV] and resume flag; other ranks get copies in
 * one block *store. */
static void share_prov(int rank, const char **s, int *resume, char **store) {
    int32_t len[NPROV + 1];
    if (rank == 0) {
        for (int i = 0; i < NPROV; i++) len[i] = (int32_t)strlen(s[i] ? s[i] : "") + 1;
        len[NPROV] = *resume;
    }
    bcast_patiently(len, NPROV + 1, MPI_INT32_T);
    size_t total = 0;
    for (int i = 0; i < NPROV; i++) total += (size_t)len[i];
    char *buf = malloc(total);
    if (!buf) {
        fprintf(stderr, "salpipe: rank %d: out of memory for the output's provenance\n", rank);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
    }
    if (rank == 0)
        for (size_t i = 0, o = 0; i < NPROV; o += (size_t)len[i], i++)
            memcpy(buf + o, s[i] ? s[i] : "", (size_t)len[i]);
    MPI_CHECK(MPI_Bcast(buf, (int)total, MPI_BYTE, 0, MPI_COMM_WORLD));
    for (size_t i = 0, o = 0; i < NPROV; o += (size_t)len[i], i++) {
        buf[o + (size_t)len[i] - 1] = 0;
        if (rank != 0) s[i] = buf + o;
    }
    *resume = len[NPROV];
    *store = buf;
}

/* Part k's layout: the job's narrowed to its images, lock taken by sp_output_open. */
static void part_layout(const sp_plan *p, const sp_output_layout *whole, int k,
                        sp_output_layout *part) {
    *part = *whole;
    part->first_image = sp_parts_first_image(p, k);
    part->nimages = sp_parts_first_image(p, k + 1) - part->first_image;
    part->images = whole->images + part->first_image;
    part->part = k + 1;
    part->part_files = NULL;
    part->part_first = NULL;
    part->lock = NULL;
}

/* Writer rank k: creates or resumes part k. An exit code. */
static int open_part(sp_job *j, int k, const char **s, int resume, int overwrite) {
    const sp_plan *p = &j->plan;
    char err[SAL_ERR_LEN];
    const sp_provenance prov = {SALPIPE_VERSION, s[PROV_CONFIG_PATH],
                                s[PROV_CONFIG_TEXT], s[PROV_SHA], s[PROV_MODEL_NAME], NULL};
    sp_output_layout whole, part;
    void *store = NULL;
    char *path = sp_parts_path(s[PROV_OUT], k, p->writers);
    if (!j->status) j->status = calloc((size_t)p->nimages, 1);
    if (!path || !j->status || sp_plan_output_layout(p, &prov, &whole, &store)) {
        free(path);
        free(store);
        fprintf(stderr, "salpipe: rank %d: out of memory\n", k);
        return SP_EXIT_IO;
    }
    part_layout(p, &whole, k, &part);
    struct stat st;
    int rc = SP_OUT_OK;
    if (resume && stat(path, &st) != 0) {
        snprintf(err, sizeof err, "%s: part %d of %d of %s (images %d..%d) is missing (%s); "
                 "restore it, or use --overwrite to start the job again", path, k + 1,
                 p->writers, s[PROV_OUT], part.first_image, part.first_image + part.nimages - 1,
                 strerror(errno));
        rc = SP_OUT_MISMATCH;
    } else {
        rc = sp_output_open(path, &part, overwrite || !resume, &j->out,
                            j->status + part.first_image, err, sizeof err);
    }
    if (rc) fprintf(stderr, "salpipe: %s\n", err);
    free(path);
    free(store);
    return rc == SP_OUT_OK ? SP_EXIT_OK : rc == SP_OUT_MISMATCH ? SP_EXIT_CONFIG : SP_EXIT_IO;
}

int sp_parts_open(sp_job *j, int rank, int overwrite) {
    const sp_plan *p = &j->plan;
    const int K = p->writers;
    const char *s[NPROV] = {0};
    int resume = j->resume;
    if (rank == 0) {
        s[PROV_OUT] = j->cfg.output_path;
        s[PROV_CONFIG_PATH] = j->cfg.config_path;
        s[PROV_CONFIG_TEXT] = j->cfg.config_text;
        s[PROV_SHA] = j->hash.hex;
        s[PROV_MODEL_NAME] = sal_model_name(j->model);
    }
    char *store = NULL;
    share_prov(rank, s, &resume, &store);
    int rc = rank < K ? open_part(j, rank, s, resume, overwrite) : SP_EXIT_OK, all = rc;
    MPI_Request req;
    MPI_CHECK(MPI_Iallreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req));
    sp_wait_patiently(&req);
    /* Every part's /status to rank 0, which schedules from it. */
    if (all == SP_EXIT_OK && rank > 0 && rank < K) {
        int a = sp_parts_first_image(p, rank), b = sp_parts_first_image(p, rank + 1);
        MPI_CHECK(MPI_Isend(j->status + a, b - a, MPI_INT8_T, 0, 0, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
    }
    if (all == SP_EXIT_OK && rank == 0) {
        for (int k = 1; k < K; k++) {
            int a = sp_parts_first_image(p, k), b = sp_parts_first_image(p, k + 1);
            MPI_CHECK(MPI_Irecv(j->status + a, b - a, MPI_INT8_T, k, 0, MPI_COMM_WORLD, &req));
            sp_wait_patiently(&req);
        }
        /* A new job's OUT.h5 comes last, once every part exists. */
        if (!resume) all = sp_job_create_virtual(j);
    }
    bcast_patiently(&all, 1, MPI_INT);
    free(store);
    return all;
}
