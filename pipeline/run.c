/*
 * The work loop of every rank (see run.h for the scheduling rule).
 *
 * A computed batch travels as one batch message (batch.h), the same whether it goes
 * over MPI to rank 0 or is written by rank 0 itself: workers build it with
 * sp_batch_writer, compressing the maps straight into it, and rank 0 reads it with
 * sp_batch_unpack, which checks every field.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "batch.h"
#include "check.h"
#include "image.h"
#include "peers.h"
#include "previews.h"
#include "progress.h"
#include "run.h"
#include "team.h"

enum { TAG_WORK = 1, TAG_ASSIGN = 2 };

/* Per-rank compute state, sized once from the plan. */
typedef struct {
    const sp_plan *plan;
    sal_attrib *attrib;    /* every asked method (salcore.h)                  */
    int nmaps, ncams, ngaps; /* per target: maps, Grad-CAM maps (0/1), gaps     */
    size_t cam_bytes;      /* one Grad-CAM map: H * W * rs                      */
    size_t rs;             /* bytes per real                                   */
    size_t in_elems;       /* C*H*W of one input                               */
    size_t map_bytes;      /* one map: in_elems * rs                           */
    size_t stored_bytes;   /* one map as stored: map_bytes, or cam_bytes when
                            * [output] channels = "max_abs"                    */
    char *input;           /* (batch, C, H, W)                                 */
    char *maps;            /* (batch, T, nmaps, C, H, W)                       */
    char *acts;            /* (batch, T)                                       */
    char *cams;            /* (batch, T, H, W) when gradcam is asked            */
    double *gaps;          /* (batch, T) when integrated_gradients is asked     */
    int64_t *ids;          /* per engine row: the image's index in the job      */
    char *scratch;         /* shuffle scratch, map_bytes per team thread       */
    sp_team *team;         /* [run] threads: decodes and compresses in parallel */
    int *slot;             /* per batch position: engine row or -1 (failed)    */
    char (*errors)[SAL_ERR_LEN];
    sp_previews *previews; /* NULL when no previews are asked for              */
    sal_image *pixels;     /* per batch position, kept for previews            */
    int rank;
    sp_batch_writer msg;   /* the result of one batch (batch.h)                */
    int first;             /* the batch being computed: its first image        */
} worker;

/* Rank 0's shared state; `lock` guards everything below it. */
typedef struct {
    sp_run_ctx *ctx;
    pthread_mutex_t lock;
    int nbatches, next;    /* batches of the whole list; next to hand out      */
    int io_failed;
    char io_err[SAL_ERR_LEN];
    int done, failed, skipped, pending_images;
    int flushes;           /* the first batch is flushed at once, later ones at
                            * most once a second                               */
    double last_flush;
    sp_progress progress;
} coordinator;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int batch_first(const sp_plan *p, int k) { return k * p->batch; }
static int batch_count(const sp_plan *p, int k) {
    int left = p->nimages - k * p->batch;
    return left < p->batch ? left : p->batch;
}

/* ---- compute --------------------------------------------------------------- */

static void worker_free(worker *w) {
    sal_attrib_free(w->attrib);
    free(w->input);
    free(w->maps);
    free(w->acts);
    free(w->cams);
    free(w->gaps);
    free(w->ids);
    free(w->scratch);
    sp_team_free(w->team);
    free(w->slot);
    free(w->errors);
    sp_batch_writer_free(&w->msg);
    sp_previews_free(w->previews);
    free(w->pixels);
    memset(w, 0, sizeof *w);
}

static int worker_init(worker *w, int rank, const sp_plan *p, const sal_model *m,
                       char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    w->plan = p;
    w->rank = rank;
    sal_method_params par;
    sp_plan_method_params(p, &par);
    if (sal_attrib_init(&w->attrib, m, p->precision, p->batch, p->targets, p->ntargets,
                        p->methods, p->nmethods, &par, err, errlen))
        return -1;
    const sp_batch_shape shape = sp_plan_batch_shape(p);
    w->nmaps = shape.nmaps, w->ncams = shape.ncams, w->ngaps = shape.ngaps;
    const size_t B = p->batch, TM = (size_t)p->ntargets * w->nmaps;
    w->rs = p->precision == SAL_F64 ? sizeof(double) : sizeof(float);
    w->in_elems = (size_t)p->pre.channels * p->pre.height * p->pre.width;
    w->map_bytes = w->in_elems * w->rs;
    int msg_oom = sp_batch_writer_init(&w->msg, &shape, SAL_ERR_LEN);
    w->team = sp_team_init(p->threads);
    sal_attrib_set_parallel(w->attrib, sp_team_for, w->team);
    w->input = malloc(B * w->map_bytes);
    w->maps = malloc(B * TM * w->map_bytes);
    w->acts = malloc(B * p->ntargets * w->rs);
    w->cam_bytes = (size_t)p->pre.height * p->pre.width * w->rs;
    w->stored_bytes = p->max_abs ? w->cam_bytes : w->map_bytes;
    w->cams = w->ncams ? malloc(B * p->ntargets * w->cam_bytes) : NULL;
    w->gaps = w->ngaps ? malloc(B * p->ntargets * sizeof(double)) : NULL;
    w->ids = malloc(B * sizeof *w->ids);
    w->scratch = malloc(sp_team_size(w->team) * w->map_bytes);
    w->slot = malloc(B * sizeof *w->slot);
    w->errors = malloc(B * sizeof *w->errors);
    w->pixels = calloc(B, sizeof *w->pixels);
    if (p->previews_dir && sp_previews_init(&w->previews, p, m, err, errlen)) {
        worker_free(w);
        return -1;
    }
    if (!w->input || (TM && !w->maps) || !w->acts || !w->scratch || !w->team || msg_oom ||
        (w->ncams && !w->cams) || (w->ngaps && !w->gaps) || !w->ids ||
        !w->slot || !w->errors || !w->pixels) {
        snprintf(err, errlen, "out of memory for batch %d (%zu MiB of maps); lower [run] batch",
                 p->batch, (size_t)(B * TM * w->map_bytes) >> 20);
        worker_free(w);
        return -1;
    }
    return 0;
}

/* Team loop body: decodes and preprocesses image i of the batch into input row i;
 * slot[i] = 0, or -1 with errors[i] set. */
static void decode_one(void *arg, int i, int thread) {
    worker *w = arg;
    const sp_plan *p = w->plan;
    w->errors[i][0] = 0;
    sal_image *px = w->previews ? &w->pixels[i] : NULL;
    w->slot[i] = sal_image_preprocess(w->input + i * w->map_bytes, px,
                                      p->image_paths[w->first + i], &p->pre, p->precision, 0,
                                      w->errors[i], SAL_ERR_LEN) ? -1 : 0;
    (void)thread;
}

/* [output] channels = "max_abs": map (C, H, W) becomes (H, W) in place, each element
 * the largest |value| over the channels (NaN when one is NaN, as numpy's max). */
static void max_abs_in_place(void *map, int C, size_t plane, int f64) {
    for (size_t i = 0; i < plane; i++) {
        double best = 0;
        for (int c = 0; c < C; c++) {
            const double v = f64 ? fabs(((const double *)map)[c * plane + i])
                                 : fabs((double)((const float *)map)[c * plane + i]);
            if (v > best || isnan(v)) best = v;
            if (isnan(v)) break;
        }
        if (f64)
            ((double *)map)[i] = best;
        else
            ((float *)map)[i] = (float)best;
    }
}

/* Team loop body: compresses slot q of the batch message. The done images reserve
 * their slots in engine row order, each T * nmaps maps and then T Grad-CAM maps
 * (batch.h), so slot q belongs to row q / per_image. */
static void compress_one(void *arg, int q, int thread) {
    worker *w = arg;
    const int T = w->plan->ntargets, nm = T * w->nmaps, per = nm + T * w->ncams;
    const int row = q / per, r = q % per;
    const char *src;
    size_t bytes;
    if (r < nm) {
        char *map = w->maps + ((size_t)row * nm + r) * w->map_bytes;
        if (w->plan->max_abs)
            max_abs_in_place(map, w->plan->pre.channels, w->cam_bytes / w->rs,
                             w->rs == sizeof(double));
        src = map;
        bytes = w->stored_bytes;
    } else {
        src = w->cams + ((size_t)row * T + (r - nm)) * w->cam_bytes;
        bytes = w->cam_bytes;
    }
    sp_batch_slot_done(&w->msg, q,
                       sp_chunk_compress(sp_batch_slot(&w->msg, q), src, bytes, w->rs,
                                         w->plan->compression,
                                         w->scratch + thread * w->map_bytes));
}

/* Decodes, runs and compresses batch k into w->msg. Never fails as a whole:
 * an image that cannot be read, or a batch the engine refuses, is recorded as
 * failed images. Decoding and compression run on the team, the engine on
 * the team too (GEMM parts). */
static void compute_batch(worker *w, int k) {
    const sp_plan *p = w->plan;
    const int count = batch_count(p, k);
    const int TM = p->ntargets * w->nmaps;
    w->first = batch_first(p, k);
    sp_team_run(w->team, count, decode_one, w);
    int n = 0;
    for (int i = 0; i < count; i++) {
        if (w->slot[i] < 0) continue;
        if (i != n) memmove(w->input + n * w->map_bytes, w->input + i * w->map_bytes,
                            w->map_bytes);
        w->ids[n] = w->first + i;
        w->slot[i] = n++;
    }
    if (n > 0) {
        char err[SAL_ERR_LEN];
        if (sal_attrib_run(w->attrib, w->input, n, w->ids, w->maps, w->acts, w->cams,
                           w->gaps, err, sizeof err))
            for (int i = 0; i < count; i++)
                if (w->slot[i] >= 0) {
                    w->slot[i] = -1;
                    snprintf(w->errors[i], SAL_ERR_LEN, "%s", err);
                }
    }
    for (int i = 0; w->previews && i < count; i++) {
        char err[SAL_ERR_LEN];
        const size_t s = w->slot[i] >= 0 ? (size_t)w->slot[i] : 0;
        if (w->slot[i] >= 0 &&
            sp_previews_write(w->previews, w->first + i, &w->pixels[i],
                              w->maps + s * TM * w->map_bytes,
                              w->cams ? w->cams + s * p->ntargets * w->cam_bytes : NULL, err,
                              sizeof err))
            fprintf(stderr, "salpipe: rank %d: preview not written: %s\n", w->rank, err);
        sal_image_free(&w->pixels[i]);
    }
    sp_batch_begin(&w->msg, k, count);
    /* Engine rows run in image order, so image i's map slots are the engine's maps
     * slot[i]*TM .. slot[i]*TM+TM-1, and slot q of the message is engine map q. */
    for (int i = 0; i < count; i++) {
        int s = w->slot[i];
        sp_batch_put_image(&w->msg, w->first + i, s >= 0 ? 1 : -1, w->errors[i],
                           s >= 0 ? w->acts + (size_t)s * p->ntargets * w->rs : NULL,
                           s >= 0 && w->gaps ? w->gaps + (size_t)s * p->ntargets : NULL);
    }
    sp_team_run(w->team, w->msg.nslots, compress_one, w);
    sp_batch_end(&w->msg);
}

/* ---- rank 0: scheduling and writing ------------------------------------------ */

/* The next batch with an image not yet done, or -1 when there is none or the run
 * is stopping. Caller holds the lock. */
static int next_batch(coordinator *c) {
    const sp_plan *p = c->ctx->plan;
    if (*c->ctx->stop || c->io_failed) return -1;
    while (c->next < c->nbatches) {
        int k = c->next++;
        for (int i = 0; i < batch_count(p, k); i++)
            if (c->ctx->status[batch_first(p, k) + i] != 1) return k;
    }
    return -1;
}

static int next_batch_locked(coordinator *c) {
    pthread_mutex_lock(&c->lock);
    int k = next_batch(c);
    pthread_mutex_unlock(&c->lock);
    return k;
}

/* Writes one packed batch into the output. Caller holds the lock. Images already
 * done in the file (a resumed batch) are left as they are. */
static void write_batch(coordinator *c, const char *buf, size_t len) {
    sp_run_ctx *ctx = c->ctx;
    const sp_plan *p = ctx->plan;
    const sp_batch_shape shape = sp_plan_batch_shape(p);
    sp_batch b;
    char err[SAL_ERR_LEN];
    if (sp_batch_unpack(buf, len, &shape, &b, err, sizeof err)) {
        c->io_failed = 1;
        snprintf(c->io_err, sizeof c->io_err, "internal error: %.900s", err);
        return;
    }
    for (int i = 0; i < b.count && !c->io_failed; i++) {
        const int img = b.images[i].image, st = b.images[i].status;
        const int32_t elen = b.images[i].msg_len;
        const char *msg = b.images[i].msg;
        if (ctx->status[img] == 1) {
            c->skipped++;
            continue;
        }
        int rc;
        if (st == 1) {
            const sp_batch_image *im = &b.images[i];
            rc = sp_output_write_image(ctx->out, img, im->chunks, im->sizes, im->cams,
                                       im->cam_sizes, im->acts, im->gaps, err, sizeof err);
        } else {
            char text[SAL_ERR_LEN];
            snprintf(text, sizeof text, "%.*s", (int)elen, msg);
            rc = sp_output_fail_image(ctx->out, img, text, err, sizeof err);
            if (!rc && !ctx->quiet) sp_progress_note(&c->progress, "image failed: %s", text);
        }
        if (rc) {
            c->io_failed = 1;
            snprintf(c->io_err, sizeof c->io_err, "%s", err);
            break;
        }
        ctx->status[img] = st == 1 ? 1 : -1;
        if (st == 1) c->done++;
        else c->failed++;
    }
    if (!c->io_failed && (c->flushes == 0 || now() - c->last_flush >= 1.0)) {
        if (sp_output_flush(ctx->out, err, sizeof err)) {
            c->io_failed = 1;
            snprintf(c->io_err, sizeof c->io_err, "%s", err);
        }
        c->flushes++;
        c->last_flush = now();
    }
    if (!ctx->quiet)
        sp_progress_update(&c->progress, c->done + c->failed,
                           (double)c->done * p->ntargets * p->nmethods);
    sp_batch_free(&b);
}

static void sleep_briefly(void) {
    struct timespec ts = {0, 500000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* Waits for req, sleeping between tests when patient; ends the job when a rank
 * this one watches has died (peers.h), which would otherwise leave it waiting for
 * ever under a launcher that does not end the job itself. */
static void wait_for(MPI_Request *req, int patient) {
    for (int done = 0;;) {
        MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (done) return;
        if (sp_peers_give_up()) {
            sp_peers_say_why();
            /* Said here too: a launcher may not relay MPI_Abort's own message (Open
             * MPI 4.1's --enable-recovery sometimes fails to) or its code. */
            int me = -1;
            MPI_Comm_rank(MPI_COMM_WORLD, &me);
            fprintf(stderr, "salpipe: rank %d ends the job with MPI_Abort, exit code %d\n", me,
                    SP_EXIT_STOPPED);
            MPI_Abort(MPI_COMM_WORLD, SP_EXIT_STOPPED);
        }
        if (patient) sleep_briefly();
    }
}

void sp_wait_patiently(MPI_Request *req) { wait_for(req, 1); }

/* A rank of rank 0's node has died (peers.h) and the launcher has not ended the
 * job: makes what has been written durable and ends the job at once (its other
 * ranks may wait for the dead one; the batches in hand are lost, as when mpirun
 * ends a job). Runs on the coordinator thread; the main thread makes no MPI
 * calls while it runs. */
static void end_for_dead_rank(coordinator *c) {
    sp_run_ctx *ctx = c->ctx;
    char err[SAL_ERR_LEN];
    int left = 0;
    pthread_mutex_lock(&c->lock);
    if (!c->io_failed && sp_output_flush(ctx->out, err, sizeof err))
        fprintf(stderr, "salpipe: output error: %s\n", err);
    for (int i = 0; i < ctx->plan->nimages; i++) left += ctx->status[i] != 1;
    fprintf(stderr, "salpipe: ending the job because a rank died, with %d images left; run "
            "the same command again to resume\n", left);
    MPI_Abort(MPI_COMM_WORLD, SP_EXIT_STOPPED);
}

/* Rank 0's second thread: answers the other ranks until each has been told to stop. */
static void *coordinate(void *arg) {
    coordinator *c = arg;
    int active = c->ctx->size - 1;
    char *buf = NULL;
    size_t cap = 0;
    while (active > 0) {
        int flag = 0, count = 0;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_WORK, MPI_COMM_WORLD, &flag, &st));
        if (!flag) {
            if (sp_peers_give_up()) end_for_dead_rank(c);
            sleep_briefly();
            continue;
        }
        MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
        if ((size_t)count > cap) {
            free(buf);
            cap = (size_t)count;
            buf = malloc(cap);
            if (!buf) {
                fprintf(stderr, "salpipe: rank 0: out of memory receiving %d bytes\n", count);
                MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
            }
        }
        MPI_CHECK(MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, TAG_WORK, MPI_COMM_WORLD,
                           MPI_STATUS_IGNORE));
        /* Answer first, write after: the rank computes while rank 0 writes. */
        int k = next_batch_locked(c);
        MPI_CHECK(MPI_Send(&k, 1, MPI_INT, st.MPI_SOURCE, TAG_ASSIGN, MPI_COMM_WORLD));
        if (k < 0) active--;
        if (count > 8) {
            pthread_mutex_lock(&c->lock);
            write_batch(c, buf, (size_t)count);
            pthread_mutex_unlock(&c->lock);
        }
    }
    free(buf);
    return NULL;
}

static int run_rank0(sp_run_ctx *ctx, worker *w) {
    const sp_plan *p = ctx->plan;
    coordinator c = {.ctx = ctx};
    pthread_mutex_init(&c.lock, NULL);
    c.nbatches = (p->nimages + p->batch - 1) / p->batch;
    for (int i = 0; i < p->nimages; i++) c.pending_images += ctx->status[i] != 1;
    c.last_flush = now();
    int already = p->nimages - c.pending_images;
    sp_progress_init(&c.progress, p->nimages, already, ctx->quiet);
    if (already && !ctx->quiet)
        sp_progress_note(&c.progress, "resuming: %d of %d images already done", already,
                         p->nimages);

    pthread_t thread;
    int threaded = ctx->size > 1 && !pthread_create(&thread, NULL, coordinate, &c);
    if (ctx->size > 1 && !threaded) {
        fprintf(stderr, "salpipe: rank 0: cannot start the coordinator thread\n");
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
    }
    for (int k; (k = next_batch_locked(&c)) >= 0;) {
        compute_batch(w, k);
        pthread_mutex_lock(&c.lock);
        write_batch(&c, w->msg.buf, w->msg.len);
        pthread_mutex_unlock(&c.lock);
    }
    if (threaded) pthread_join(thread, NULL);

    char err[SAL_ERR_LEN];
    if (!c.io_failed && sp_output_flush(ctx->out, err, sizeof err)) {
        c.io_failed = 1;
        snprintf(c.io_err, sizeof c.io_err, "%s", err);
    }
    int left = 0, failed = 0;
    for (int i = 0; i < p->nimages; i++) {
        left += ctx->status[i] == 0;
        failed += ctx->status[i] == -1;
    }
    sp_progress_finish(&c.progress, c.done + c.failed,
                       (double)c.done * p->ntargets * p->nmethods);
    pthread_mutex_destroy(&c.lock);
    if (c.io_failed) {
        fprintf(stderr, "salpipe: output error: %s\n", c.io_err);
        return SP_EXIT_IO;
    }
    if (!ctx->quiet)
        fprintf(stderr, "salpipe: %d images done, %d failed, %d not done this run\n",
                p->nimages - left - failed, failed, left);
    if (left && sp_peers_lost()) {
        fprintf(stderr, "salpipe: stopped because a rank died, with %d images left; run the "
                "same command again to resume\n", left);
        return SP_EXIT_STOPPED;
    }
    if (left) {
        fprintf(stderr, "salpipe: stopped by signal %d with %d images left; run the same "
                "command again to resume\n", (int)*ctx->stop, left);
        return SP_EXIT_STOPPED;
    }
    return failed ? SP_EXIT_FAILED_IMAGES : SP_EXIT_OK;
}

static void run_worker(sp_run_ctx *ctx, worker *w) {
    int32_t hello[2] = {-1, 0};
    MPI_CHECK(MPI_Send(hello, sizeof hello, MPI_BYTE, 0, TAG_WORK, MPI_COMM_WORLD));
    for (;;) {
        /* The answer can wait for rank 0's lock while it writes its own batch. */
        int k;
        MPI_Request req;
        MPI_CHECK(MPI_Irecv(&k, 1, MPI_INT, 0, TAG_ASSIGN, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
        if (k < 0) break;
        if (k >= (ctx->plan->nimages + ctx->plan->batch - 1) / ctx->plan->batch) {
            fprintf(stderr, "salpipe: rank %d: rank 0 assigned batch %d, which the plan "
                    "does not have\n", ctx->rank, k);
            MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
        }
        compute_batch(w, k);
        /* A send that may never complete if rank 0 dies: wait for it watching rank 0,
         * spinning as MPI_Send would (a large message needs this side's progress). */
        MPI_CHECK(MPI_Isend(w->msg.buf, (int)w->msg.len, MPI_BYTE, 0, TAG_WORK,
                            MPI_COMM_WORLD, &req));
        wait_for(&req, 0);
    }
}

int sp_run(sp_run_ctx *ctx) {
    worker w;
    char err[SAL_ERR_LEN];
    openblas_set_num_threads(1); /* the team runs the engine's GEMM parts (team.h) */
    if (worker_init(&w, ctx->rank, ctx->plan, ctx->model, err, sizeof err)) {
        fprintf(stderr, "salpipe: rank %d: %s\n", ctx->rank, err);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_CONFIG);
    }
    int rc = SP_EXIT_OK;
    if (ctx->rank == 0)
        rc = run_rank0(ctx, &w);
    else
        run_worker(ctx, &w);
    worker_free(&w);
    return rc;
}
