/*
 * salpipe: the command line (SPEC §2). Rank 0 reads the config and the model
 * header, checks everything that can be checked before any work, opens the output,
 * and broadcasts the plan; then every rank runs it (run.c). All ranks leave with
 * the exit code rank 0 decides.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blas_note.h"
#include "check.h"
#include "config.h"
#include "fit.h"
#include "output.h"
#include "peers.h"
#include "plan.h"
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

typedef struct {
    pthread_t thread;
    int threaded;
    const char *path;
    char hex[65], err[SAL_ERR_LEN];
    int rc;
} hash_job;

static void *hash_model(void *arg) {
    hash_job *h = arg;
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

/* Rank 0's setup, first part: config, model header and plan, all checked, and
 * (unless only checking) the output's lock taken and its disk space checked. Starts
 * hashing the model file (hj), which the output records; rank 0 then loads the
 * weights (share_weights) while the hash runs, and open_output joins it. Returns an
 * exit code. */
static int setup_rank0(const options *o, int ranks, sp_config *cfg, sal_model **model,
                       sp_plan *plan, hash_job *hj, sp_output_lock **lock) {
    char err[SAL_ERR_LEN];
    if (sp_config_load(o->file, cfg, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    if (sal_model_open(cfg->model_path, model, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s:%d:%d: model.path: %s\n", cfg->config_path,
                cfg->model_line, cfg->model_col, err);
        return SP_EXIT_CONFIG;
    }
    if (sp_plan_build(plan, cfg, *model, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    if (sp_fit_sizes(cfg, plan, ranks, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_CONFIG;
    }
    /* The disk check comes before the lock, which creates the output's directory: a
     * job that cannot fit leaves nothing behind. */
    sp_fit_disk disk;
    sp_fit_disk_estimate(cfg, plan, o->overwrite, &disk);
    if (o->check) {
        sp_fit_print_plan(cfg, *model, plan, &disk);
        if (ranks == 1 && sp_fit_sizes(cfg, plan, 2, err, sizeof err))
            printf("note      with more than one rank: %s\n", err);
        char blas[512];
        int slow = sp_blas_note(blas, sizeof blas);
        printf("%s%s\n", slow ? "note      " : "blas      ", blas);
    }
    if (sp_fit_disk_check(cfg, &disk, err, sizeof err)) {
        fprintf(stderr, "salpipe: %s\n", err);
        return SP_EXIT_IO;
    }
    if (o->check) return SP_EXIT_OK;
    int rc = lock_output(cfg->output_path, lock);
    if (rc) return rc;
    /* Hashing the model file (for provenance and resume checks) takes about as long
     * as loading it: do both at once. */
    hj->path = cfg->model_path;
    hj->rc = -1;
    hj->threaded = !pthread_create(&hj->thread, NULL, hash_model, hj);
    if (!hj->threaded) hash_model(hj);
    return SP_EXIT_OK;
}

/* Rank 0's setup, second part, once the weights are loaded: the output file (and
 * the previews directory). Returns an exit code. */
static int open_output(const options *o, const sp_config *cfg, const sal_model *model,
                       sp_plan *plan, hash_job *hj, sp_output_lock *lock, sp_output **out,
                       int8_t **status) {
    char err[SAL_ERR_LEN];
    if (hj->threaded) pthread_join(hj->thread, NULL);
    hj->threaded = 0;
    if (hj->rc) {
        fprintf(stderr, "salpipe: %s\n", hj->err);
        return SP_EXIT_CONFIG;
    }
    const sp_provenance prov = {SALPIPE_VERSION, cfg->config_path, cfg->config_text, hj->hex,
                                sal_model_name(model), lock};
    sp_output_layout lay;
    void *store;
    *status = calloc(plan->nimages, 1);
    if (sp_plan_output_layout(plan, &prov, &lay, &store) || !*status) {
        free(store);
        fprintf(stderr, "salpipe: out of memory\n");
        return SP_EXIT_CONFIG;
    }
    int rc = sp_output_open(cfg->output_path, &lay, o->overwrite, out, *status, err, sizeof err);
    free(store);
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

/* Puts the weights in one MPI-3 shared-memory window per node, so a node running
 * 64 ranks holds one copy, not 64: the first rank of every node reads the file
 * straight into its node's window, the other ranks attach. Rank 0 opened (and
 * checked) the model before; the others open it here. A load error on rank 0 is an
 * ordinary error (exit 2), elsewhere it aborts the job. Returns an exit code;
 * *model is set, and *win must be freed with MPI_Win_free, either way. */
static int share_weights(int rank, const sp_plan *plan, sal_model **model, MPI_Win *win) {
    char err[SAL_ERR_LEN];
    if (rank != 0 && sal_model_open(plan->model_path, model, err, sizeof err)) {
        fprintf(stderr, "salpipe: rank %d: %s\n", rank, err);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
    }
    sal_model *m = *model;
    MPI_Comm node;
    int node_rank, rc = SP_EXIT_OK;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                  &node));
    MPI_CHECK(MPI_Comm_rank(node, &node_rank));
    size_t bytes = sal_model_params_bytes(m, plan->precision);
    void *base = NULL;
    MPI_CHECK(MPI_Win_allocate_shared(node_rank == 0 ? (MPI_Aint)bytes : 0, 1, MPI_INFO_NULL,
                                      node, &base, win));
    if (node_rank == 0) {
        if (sal_model_load_params(m, plan->precision, base, err, sizeof err)) {
            if (rank != 0) {
                fprintf(stderr, "salpipe: rank %d: %s\n", rank, err);
                MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
            }
            fprintf(stderr, "salpipe: %s\n", err);
            rc = SP_EXIT_CONFIG;
        }
    } else {
        MPI_Aint size;
        int unit;
        MPI_CHECK(MPI_Win_shared_query(*win, 0, &size, &unit, &base));
    }
    /* The node's other ranks wait for its leader's load without spinning; the fence
     * then finds everyone there and makes the leader's writes visible. */
    MPI_Request req;
    MPI_CHECK(MPI_Ibarrier(node, &req));
    sp_wait_patiently(&req);
    MPI_CHECK(MPI_Win_fence(0, *win));
    if (rc == SP_EXIT_OK) sal_model_attach_params(m, plan->precision, base);
    MPI_CHECK(MPI_Comm_free(&node));
    return rc;
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

    sp_config cfg = {0};
    sp_plan plan = {0};
    sal_model *model = NULL;
    sp_output *out = NULL;
    int8_t *status = NULL;
    hash_job hj = {0};
    sp_output_lock *lock = NULL;
    if (rank == 0) rc = setup_rank0(&o, size, &cfg, &model, &plan, &hj, &lock);
    if (rank == 0 && cfg.output_path) sp_peers_set_output(cfg.output_path);
    if (o.check) rc = rc ? rc : -1; /* nothing to compute: others stop */
    rc = share_plan(rank, rc, &plan);
    if (rc == -1) rc = SP_EXIT_OK;
    else if (rc == SP_EXIT_OK) {
        MPI_Win win;
        rc = share_weights(rank, &plan, &model, &win);
        /* Rank 0's verdict on the weights and the output, which the others wait
         * for without spinning. */
        if (rank == 0 && rc == SP_EXIT_OK)
            rc = open_output(&o, &cfg, model, &plan, &hj, lock, &out, &status);
        bcast_patiently(&rc, 1, MPI_INT);
        if (rc == SP_EXIT_OK) {
            char blas[512];
            if (rank == 0 && !o.quiet && sp_blas_note(blas, sizeof blas))
                fprintf(stderr, "salpipe: note: %s\n", blas);
            sp_run_ctx ctx = {rank, size, &plan, model, out, status, o.quiet, &stop_signal};
            rc = sp_run(&ctx);
            if (rank == 0) {
                char err[SAL_ERR_LEN];
                if (sp_output_close(out, err, sizeof err) && rc != SP_EXIT_IO) {
                    fprintf(stderr, "salpipe: output error: %s\n", err);
                    rc = SP_EXIT_IO;
                }
                out = NULL;
                /* A dead rank cannot take part in the collective end. */
                if (sp_peers_lost()) {
                    sp_output_lock_release(lock);
                    MPI_Abort(MPI_COMM_WORLD, rc);
                }
            }
            bcast_patiently(&rc, 1, MPI_INT);
        }
        /* Past the last wait: from here ranks leave, which is not a death. */
        sp_peers_disarm();
        sal_model_attach_params(model, plan.precision, NULL);
        MPI_CHECK(MPI_Win_free(&win));
    }
    if (hj.threaded) pthread_join(hj.thread, NULL);
    if (out) {
        char err[SAL_ERR_LEN];
        sp_output_close(out, err, sizeof err);
    }
    sp_output_lock_release(lock);
    free(status);
    sal_model_free(model);
    sp_plan_free(&plan);
    sp_config_free(&cfg);
    sp_peers_disarm();
    MPI_Finalize();
    return rc;
}
