/*
 * salpipe: the command line (SPEC §2) and the MPI steps of a job. Rank 0 prepares
 * the job (job.c: config, model header, plan, checks, output) and broadcasts the
 * plan; the weights go into one shared window per node; then every rank runs the
 * plan (run.c). All ranks leave with the exit code rank 0 decides.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_note.h"
#include "check.h"
#include "fit.h"
#include "job.h"
#include "parts.h"
#include "peers.h"
#include "run.h"

#ifndef SALPIPE_VERSION
#define SALPIPE_VERSION "unknown"
#endif

static volatile sig_atomic_t stop_signal;

/* A stop request; when mpirun sends it because a rank died, the check names that
 * rank at once (mpirun's SIGKILL may follow before the work loop looks). */
static void on_signal(int sig) {
    stop_signal = sig;
    sp_peers_check();
}

static const char usage[] =
    "usage: salpipe CONFIG.toml              run the job (alone or under mpirun)\n"
    "       salpipe --check CONFIG.toml      validate config, model and images; print the plan\n"
    "       salpipe --layers MODEL.h5        list layers (names, DNNBrain aliases, inputs),\n"
    "                                        output shapes, unit counts, preprocessing\n"
    "       salpipe --overwrite CONFIG.toml  replace an existing output instead of resuming\n"
    "       salpipe --version | --help\n"
    "options: --quiet (no progress lines)\n"
    "exit status: 0 all images done, 1 some images failed (recorded in the output),\n"
    "             2 usage/config/model error, 3 output I/O error or output in use by\n"
    "             another job or program, 4 stopped by SIGTERM/SIGUSR1/SIGINT or because\n"
    "             a rank died, before the end (run again to resume)\n";

typedef struct {
    int check, layers, overwrite, quiet;
    const char *file;
} options;

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 'h';
        if (!strcmp(a, "--version")) return 'v';
        if (!strcmp(a, "--check")) o->check = 1;
        else if (!strcmp(a, "--layers")) o->layers = 1;
        else if (!strcmp(a, "--overwrite")) o->overwrite = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o->quiet = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "salpipe: unknown option '%s'\n%s", a, usage);
            return 'e';
        } else if (o->file) {
            fprintf(stderr, "salpipe: one file expected, got '%s' and '%s'\n%s", o->file, a,
                    usage);
            return 'e';
        } else {
            o->file = a;
        }
    }
    if (!o->file) {
        fprintf(stderr, "%s", usage);
        return 'e';
    }
    if (o->check + o->layers + o->overwrite > 1) {
        fprintf(stderr, "salpipe: --check, --layers and --overwrite exclude each other\n");
        return 'e';
    }
    return 0;
}

/* --layers: every node with its index, name, alias (DNNBrain's name), kind, output
 * shape, unit count and inputs, after the input size and preprocessing the model
 * file states. Columns are as wide as the model's longest name. */
static int list_layers(const char *path) {
    char err[SAL_ERR_LEN];
    sal_model *m;
    if (sal_model_open(path, &m, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    const sal_preprocess *pp = sal_model_preprocess(m);
    const int n = sal_model_num_layers(m);
    int wname = 4, walias = 5, wkind = 4, naliases = 0;
    for (int i = 0; i < n; i++) {
        const sal_layer *L = sal_model_layer(m, i);
        int ln = (int)strlen(L->name), la = (int)strlen(L->alias);
        int lk = (int)strlen(sal_layer_kind_name(L->kind));
        if (ln > wname) wname = ln;
        if (la > walias) walias = la;
        if (lk > wkind) wkind = lk;
        naliases += la > 0;
    }
    char rule[160];
    printf("%s: %s, %d layers", path, sal_model_name(m), n);
    if (naliases) printf(", %d of them also called by DNNBrain's name (alias)", naliases);
    printf("\n");
    printf("input       %dx%dx%d (channels x height x width)\n", pp->channels, pp->height,
           pp->width);
    printf("preprocess  %s, pixels / 255, mean", sp_fit_resize_rule(pp, rule, sizeof rule));
    for (int c = 0; c < pp->channels; c++) printf(" %g", pp->mean[c]);
    printf(", std");
    for (int c = 0; c < pp->channels; c++) printf(" %g", pp->std[c]);
    printf("\ntargets     a layer by its name or its alias; units are 1-based (1..units)\n\n");
    printf("%-4s %-*s %-*s %-*s %-14s %-6s %s\n", "#", wname, "name", walias, "alias", wkind,
           "kind", "output CxHxW", "units", "inputs");
    for (int i = 0; i < n; i++) {
        const sal_layer *L = sal_model_layer(m, i);
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        printf("%-4d %-*s %-*s %-*s %-14s %-6d ", i, wname, L->name, walias,
               L->alias[0] ? L->alias : "-", wkind, sal_layer_kind_name(L->kind), shape,
               L->out_c);
        for (int k = 0; k < L->ninputs; k++)
            printf("%s%s", k ? "," : "",
                   L->inputs[k] < 0 ? "input" : sal_model_layer(m, L->inputs[k])->name);
        printf("\n");
    }
    sal_model_free(m);
    return SP_EXIT_OK;
}

/* MPI_Bcast from rank 0 that waits without spinning. */
static void bcast_patiently(void *buf, int count, MPI_Datatype type) {
    MPI_Request req;
    MPI_CHECK(MPI_Ibcast(buf, count, type, 0, MPI_COMM_WORLD, &req));
    sp_wait_patiently(&req);
}

/* Broadcasts rank 0's verdict, then (when it is to go on) the plan. */
static int share_plan(int rank, int verdict, sp_plan *plan) {
    int32_t head[2] = {verdict, 0};
    char *buf = NULL;
    size_t bytes = 0;
    if (rank == 0 && verdict == SP_EXIT_OK) {
        buf = sp_plan_pack(plan, &bytes);
        if (!buf || bytes > INT32_MAX) {
            fprintf(stderr, "salpipe: the plan is too large to send (%zu bytes)\n", bytes);
            head[0] = verdict = SP_EXIT_CONFIG;
        }
        head[1] = (int32_t)bytes;
    }
    bcast_patiently(head, 2, MPI_INT32_T);
    if (head[0] != SP_EXIT_OK) {
        free(buf);
        return head[0];
    }
    if (rank != 0 && (head[1] < 0 || !(buf = malloc((size_t)head[1] + 1)))) {
        fprintf(stderr, "salpipe: rank %d: out of memory for the plan (%d bytes)\n", rank,
                (int)head[1]);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
    }
    MPI_CHECK(MPI_Bcast(buf, head[1], MPI_BYTE, 0, MPI_COMM_WORLD));
    char err[SAL_ERR_LEN];
    if (rank != 0 && sp_plan_unpack(plan, buf, (size_t)head[1], err, sizeof err)) {
        fprintf(stderr, "salpipe: rank %d: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
    }
    free(buf);
    return SP_EXIT_OK;
}

/* The Winograd weights of [run] convolution "fast" or "fastest" in float32
 * (salcore.h, sal_model_wino_bytes: VGG16's are 105 MB) in a second window of the
 * node, so that it too holds one copy and not one per rank, and the node's ranks
 * transform a share each instead of all of it each. Every rank computes the same
 * size from the plan and the model's header; a zero-sized window when no layer
 * uses Winograd. Called once the weights are in place on every rank. */
static void share_wino(const sp_plan *plan, sal_model *m, MPI_Comm node, int node_rank,
                       int node_size, MPI_Win *win) {
    const size_t bytes = plan->precision == SAL_F32
                             ? sal_model_wino_bytes(m, plan->convolution, plan->targets,
                                                    plan->ntargets)
                             : 0;
    void *base = NULL;
    MPI_CHECK(MPI_Win_allocate_shared(node_rank == 0 ? (MPI_Aint)bytes : 0, 1, MPI_INFO_NULL,
                                      node, &base, win));
    if (!bytes) return;
    if (node_rank != 0) {
        MPI_Aint size;
        int unit;
        MPI_CHECK(MPI_Win_shared_query(*win, 0, &size, &unit, &base));
    }
    char err[SAL_ERR_LEN];
    int failed = sal_model_wino_fill_part(m, plan->convolution, plan->targets, plan->ntargets,
                                          base, node_rank, node_size, err, sizeof err) != 0;
    MPI_CHECK(MPI_Win_fence(0, *win));
    /* The parameters are attached, so filling cannot fail; should it, or should the
     * model lack memory to attach, engines transform their own weights as before. */
    if (failed || sal_model_attach_wino(m, plan->convolution, plan->targets, plan->ntargets,
                                        base, err, sizeof err))
        fprintf(stderr, "salpipe: note: Winograd weights not shared: %s\n", err);
}

/* Puts the weights in one MPI-3 shared-memory window per node, so a node running
 * 64 ranks holds one copy, not 64: the ranks of a node each read their share of the
 * file (sal_model_load_params_part) straight into the window, in parallel, which on
 * hosts where memory written for the first time is slow divides that cost among
 * them. Rank 0 opened (and checked) the model before; the others open it here. A
 * load error anywhere is an ordinary error (the rank that met it prints it, every
 * rank returns exit 2). Returns an exit code; *model is set, and *win must be freed
 * with MPI_Win_free, either way. */
static int share_weights(int rank, const sp_plan *plan, sal_model **model, MPI_Win *win,
                         MPI_Win *wino_win) {
    char err[SAL_ERR_LEN];
    if (rank != 0 && sal_model_open(plan->model_path, model, err, sizeof err)) {
        fprintf(stderr, "salpipe: rank %d: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
    }
    sal_model *m = *model;
    MPI_Comm node;
    int node_rank, node_size;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                  &node));
    MPI_CHECK(MPI_Comm_rank(node, &node_rank));
    MPI_CHECK(MPI_Comm_size(node, &node_size));
    size_t bytes = sal_model_params_bytes(m, plan->precision);
    void *base = NULL;
    MPI_CHECK(MPI_Win_allocate_shared(node_rank == 0 ? (MPI_Aint)bytes : 0, 1, MPI_INFO_NULL,
                                      node, &base, win));
    if (node_rank != 0) {
        MPI_Aint size;
        int unit;
        MPI_CHECK(MPI_Win_shared_query(*win, 0, &size, &unit, &base));
    }
    int32_t failed = sal_model_load_params_part(m, plan->precision, base, node_rank,
                                                node_size, err, sizeof err) != 0;
    if (failed) fprintf(stderr, "salpipe: %s\n", err);
    /* Every rank learns whether any share failed; ranks that finish first wait
     * without spinning. The fence then makes every share visible to all. */
    int32_t any = 0;
    MPI_Request req;
    MPI_CHECK(MPI_Iallreduce(&failed, &any, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD, &req));
    sp_wait_patiently(&req);
    MPI_CHECK(MPI_Win_fence(0, *win));
    if (!any) sal_model_attach_params(m, plan->precision, base);
    *wino_win = MPI_WIN_NULL;
    if (!any) share_wino(plan, m, node, node_rank, node_size, wino_win);
    MPI_CHECK(MPI_Comm_free(&node));
    return any ? SP_EXIT_CONFIG : SP_EXIT_OK;
}

int main(int argc, char **argv) {
    int provided, rank, size;
    options o;
    /* OpenBLAS's kernel set is fixed when it loads: a better one for this CPU means
     * starting again (blas_note.h), before MPI or any thread exists. The stop signals
     * stay blocked until their handlers are in place (an exec keeps the blocked mask
     * and pending signals, not handlers), so one sent meanwhile is not lost. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGUSR1);
    sigaddset(&stops, SIGINT);
    sigprocmask(SIG_BLOCK, &stops, NULL);
    sp_blas_choose(argv);
    int parsed = parse_args(argc, argv, &o);
    /* From here on a stop request is remembered, even during MPI start-up (SLURM may
     * send its warning signal as a short job starts, and SIGUSR1's default action
     * would kill the rank): the run then computes nothing and exits 4, with the
     * output consistent. */
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigprocmask(SIG_UNBLOCK, &stops, NULL);
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rc = SP_EXIT_OK;
    if (parsed || o.layers) {
        if (rank == 0) {
            if (parsed == 'h') printf("salpipe %s\n%s", SALPIPE_VERSION, usage);
            else if (parsed == 'v') printf("salpipe %s\n", SALPIPE_VERSION);
            else if (parsed == 'e') rc = SP_EXIT_CONFIG;
            else rc = list_layers(o.file);
        }
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Finalize();
        return rc;
    }
    if (size > 1 && provided < MPI_THREAD_SERIALIZED) {
        if (rank == 0)
            fprintf(stderr, "salpipe: this MPI library does not offer MPI_THREAD_SERIALIZED, "
                            "which rank 0's coordinator thread needs\n");
        MPI_Finalize();
        return SP_EXIT_CONFIG;
    }

    sp_peers_init(rank, size);

    sp_job job = {0};
    if (rank == 0) rc = sp_job_prepare(&job, o.file, size, o.check, o.overwrite);
    if (rank == 0 && job.cfg.output_path) sp_peers_set_output(job.cfg.output_path);
    if (o.check) rc = rc ? rc : -1; /* nothing to compute: others stop */
    rc = share_plan(rank, rc, &job.plan);
    if (rc == -1) rc = SP_EXIT_OK;
    else if (rc == SP_EXIT_OK) {
        MPI_Win win, wino_win;
        rc = share_weights(rank, &job.plan, &job.model, &win, &wino_win);
        /* Rank 0's verdict on the weights and the output, which the others wait
         * for without spinning. */
        if (rank == 0 && rc == SP_EXIT_OK) rc = sp_job_open_output(&job, o.overwrite);
        bcast_patiently(&rc, 1, MPI_INT);
        /* [output] writers > 1: every writer rank opens its part (parts.h). */
        if (rc == SP_EXIT_OK && job.plan.writers > 1)
            rc = sp_parts_open(&job, rank, o.overwrite);
        if (rc == SP_EXIT_OK) {
            char blas[512];
            if (rank == 0 && !o.quiet && sp_blas_note(blas, sizeof blas))
                fprintf(stderr, "salpipe: note: %s\n", blas);
            sp_run_ctx ctx = {rank, size, &job.plan, job.model, job.out, job.status, o.quiet,
                              &stop_signal};
            rc = sp_run(&ctx);
            job.out = ctx.out; /* a writer rank's part is closed by sp_run */
            if (rank == 0) {
                char err[SAL_ERR_LEN];
                if (sp_output_close(job.out, err, sizeof err) && rc != SP_EXIT_IO) {
                    fprintf(stderr, "salpipe: output error: %s\n", err);
                    rc = SP_EXIT_IO;
                }
                job.out = NULL;
                /* A dead rank cannot take part in the collective end. */
                if (sp_peers_lost()) {
                    sp_output_lock_release(job.lock);
                    MPI_Abort(MPI_COMM_WORLD, rc);
                }
            }
            bcast_patiently(&rc, 1, MPI_INT);
        }
        /* Past the last wait: from here ranks leave, which is not a death. */
        sp_peers_disarm();
        sal_model_attach_params(job.model, job.plan.precision, NULL);
        sal_model_attach_wino(job.model, job.plan.convolution, NULL, 0, NULL, NULL, 0);
        if (wino_win != MPI_WIN_NULL) MPI_CHECK(MPI_Win_free(&wino_win));
        MPI_CHECK(MPI_Win_free(&win));
    }
    sp_job_free(&job);
    sp_peers_disarm();
    MPI_Finalize();
    return rc;
}
