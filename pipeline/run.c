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
#include "parts.h"
#include "peers.h"
#include "previews.h"
#include "progress.h"
#include "run.h"
#include "team.h"

/* TAG_WORK: to rank 0, a batch's results (writers = 1) or a request for work
 * (writers > 1: int32 {-1 hello | -2, images done, failed, writer failed});
 * TAG_ASSIGN: rank 0's answer, the next batch or -1; writers > 1 only:
 * TAG_RESULT: a batch's results to the writer of its part (8 bytes from rank 0:
 * stop), TAG_ACK: the writer's int answer (1: its part can no longer be written),
 * TAG_FINAL: a writer's int32 exit code and its part's /status, to rank 0. */
enum { TAG_WORK = 1, TAG_ASSIGN = 2, TAG_RESULT = 3, TAG_ACK = 4, TAG_FINAL = 5 };

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

/* Rank 0's shared state (and a writer rank's, which uses the writing part);
 * `lock` guards everything below it. */
typedef struct {
    sp_run_ctx *ctx;
    int base;              /* the job's index of the output's first image: the
                            * first image of this rank's part (writers > 1)     */
    int show;              /* progress lines: rank 0 unless quiet              */
    pthread_mutex_t lock;
    int nbatches, next;    /* batches of the whole list; next to hand out      */
    int *next_of;          /* writers > 1: per part, its next batch to hand out */
    int turn;              /* writers > 1: the part whose batch goes out next  */
    int remote;            /* images done or failed in other parts (reports)   */
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
static int pending_batch(const coordinator *c, int k) {
    const sp_plan *p = c->ctx->plan;
    for (int i = 0; i < batch_count(p, k); i++)
        if (c->ctx->status[batch_first(p, k) + i] != 1) return 1;
    return 0;
}

/* The next pending batch of part q (writers > 1), or -1. */
static int next_of_part(coordinator *c, int q) {
    const int end = sp_parts_first_batch(c->ctx->plan, q + 1);
    while (c->next_of[q] < end) {
        int k = c->next_of[q]++;
        if (pending_batch(c, k)) return k;
    }
    return -1;
}

/* With writers > 1 the parts take turns, so every writer gets its share of the
 * results from the start, not one part after the other. only_part >= 0: that
 * part's batches only (rank 0's own computing, which writes them itself). */
static int next_batch(coordinator *c, int only_part) {
    const sp_plan *p = c->ctx->plan;
    if (*c->ctx->stop || c->io_failed) return -1;
    if (p->writers > 1) {
        if (only_part >= 0) return next_of_part(c, only_part);
        for (int i = 0; i < p->writers; i++) {
            int q = (c->turn + i) % p->writers, k = next_of_part(c, q);
            if (k >= 0) {
                c->turn = (q + 1) % p->writers;
                return k;
            }
        }
        return -1;
    }
    while (c->next < c->nbatches) {
        int k = c->next++;
        if (pending_batch(c, k)) return k;
    }
    return -1;
}

static int next_batch_locked(coordinator *c, int only_part) {
    pthread_mutex_lock(&c->lock);
    int k = next_batch(c, only_part);
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
            rc = sp_output_write_image(ctx->out, img - c->base, im->chunks, im->sizes, im->cams,
                                       im->cam_sizes, im->acts, im->gaps, err, sizeof err);
        } else {
            char text[SAL_ERR_LEN];
            snprintf(text, sizeof text, "%.*s", (int)elen, msg);
            rc = sp_output_fail_image(ctx->out, img - c->base, text, err, sizeof err);
            if (!rc && c->show) sp_progress_note(&c->progress, "image failed: %s", text);
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
    if (c->show)
        sp_progress_update(&c->progress, c->done + c->failed + c->remote,
                           (double)(c->done + c->remote) * p->ntargets * p->nmethods);
    sp_batch_free(&b);
}

static void sleep_for(long ns) {
    struct timespec ts = {0, ns};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* Between probes of a thread that waits for messages while ranks compute (rank 0's
 * coordinator, which shares its rank's cores; a writer rank, which may share a node's
 * cores with computing ranks): SP_IDLE_MIN_NS (0.5 ms) after a message, doubling
 * while none comes, up to SP_IDLE_MAX_NS. Each wake-up takes a core from a
 * computing thread (a context switch and MPI's progress loop): at a fixed 0.5 ms,
 * rank 0 of a full node computed ~7 % slower than the other ranks
 * (docs/performance.md, "Rank 0's coordinator"). A rank that asks for work then
 * waits at most SP_IDLE_MAX_NS for the answer. */
enum { SP_IDLE_MIN_NS = 500000 };
#ifndef SP_IDLE_MAX_NS
#define SP_IDLE_MAX_NS 4000000L
#endif
static void sleep_idle(long *pause) {
    sleep_for(*pause);
    *pause = *pause * 2 < SP_IDLE_MAX_NS ? *pause * 2 : SP_IDLE_MAX_NS;
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
        if (patient) sleep_for(SP_IDLE_MIN_NS);
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

/* A message of up to `cap` bytes, received into *buf (grown as needed). */
static int recv_any(char **buf, size_t *cap, const MPI_Status *st, int tag) {
    int count = 0;
    MPI_CHECK(MPI_Get_count(st, MPI_BYTE, &count));
    if ((size_t)count > *cap) {
        free(*buf);
        *cap = (size_t)count;
        *buf = malloc(*cap);
        if (!*buf) {
            fprintf(stderr, "salpipe: out of memory receiving %d bytes\n", count);
            MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
        }
    }
    MPI_CHECK(MPI_Recv(*buf, count, MPI_BYTE, st->MPI_SOURCE, tag, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE));
    return count;
}

/* Writers > 1: one batch's results for this rank's part. Answer first, write after:
 * the sender computes its next batch while this rank writes, and sends no more
 * before the answer, so a writer holds one batch message at a time. */
static void take_result(coordinator *c, char *buf, int count, int source) {
    pthread_mutex_lock(&c->lock);
    int failed = c->io_failed;
    pthread_mutex_unlock(&c->lock);
    MPI_CHECK(MPI_Send(&failed, 1, MPI_INT, source, TAG_ACK, MPI_COMM_WORLD));
    pthread_mutex_lock(&c->lock);
    if (!c->io_failed) write_batch(c, buf, (size_t)count);
    pthread_mutex_unlock(&c->lock);
}

/* Rank 0's second thread: answers the other ranks until each has been told to stop;
 * with writers > 1 it also takes the results of part 0 (rank 0's part). */
static void *coordinate(void *arg) {
    coordinator *c = arg;
    const int K = c->ctx->plan->writers;
    int active = K > 1 ? c->ctx->size - K : c->ctx->size - 1;
    char *buf = NULL;
    size_t cap = 0;
    long pause = SP_IDLE_MIN_NS;
    while (active > 0) {
        int flag = 0, tag = TAG_WORK;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_WORK, MPI_COMM_WORLD, &flag, &st));
        if (!flag && K > 1) {
            tag = TAG_RESULT;
            MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st));
        }
        if (!flag) {
            if (sp_peers_give_up()) end_for_dead_rank(c);
            sleep_idle(&pause);
            continue;
        }
        pause = SP_IDLE_MIN_NS;
        int count = recv_any(&buf, &cap, &st, tag);
        if (tag == TAG_RESULT) {
            take_result(c, buf, count, st.MPI_SOURCE);
            continue;
        }
        if (K > 1 && count == 4 * (int)sizeof(int32_t)) {
            /* A request: what the rank's last batch of another part gave. */
            int32_t r[4];
            memcpy(r, buf, sizeof r);
            pthread_mutex_lock(&c->lock);
            if (r[0] == -2 && r[1] >= 0 && r[2] >= 0) c->remote += r[1] + r[2];
            if (r[0] == -2 && r[3] && !c->io_failed) {
                c->io_failed = 1;
                snprintf(c->io_err, sizeof c->io_err, "a writer rank cannot write its part "
                         "(its message is above)");
            }
            pthread_mutex_unlock(&c->lock);
        }
        /* Answer first, write after: the rank computes while rank 0 writes. */
        int k = next_batch_locked(c, -1);
        MPI_CHECK(MPI_Send(&k, 1, MPI_INT, st.MPI_SOURCE, TAG_ASSIGN, MPI_COMM_WORLD));
        if (k < 0) active--;
        if (K == 1 && count > 8) {
            pthread_mutex_lock(&c->lock);
            write_batch(c, buf, (size_t)count);
            pthread_mutex_unlock(&c->lock);
        }
    }
    free(buf);
    return NULL;
}

/* Writers > 1, rank 0 after the work: tells writers 1..K-1 to stop (every result
 * has been answered, so received, before the last rank asked for work) and
 * gathers their exit codes and /status. */
static void end_writers(coordinator *c) {
    const sp_plan *p = c->ctx->plan;
    int32_t stop[2] = {-1, 0};
    for (int k = 1; k < p->writers; k++) {
        MPI_Request req;
        MPI_CHECK(MPI_Isend(stop, sizeof stop, MPI_BYTE, k, TAG_RESULT, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
    }
    for (int k = 1; k < p->writers; k++) {
        const int a = sp_parts_first_image(p, k), n = sp_parts_first_image(p, k + 1) - a;
        char *msg = malloc(4 + (size_t)n);
        if (!msg) {
            fprintf(stderr, "salpipe: rank 0: out of memory\n");
            MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
        }
        MPI_Request req;
        MPI_CHECK(MPI_Irecv(msg, 4 + n, MPI_BYTE, k, TAG_FINAL, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
        int32_t rc;
        memcpy(&rc, msg, 4);
        memcpy(c->ctx->status + a, msg + 4, (size_t)n);
        if (rc && !c->io_failed) {
            c->io_failed = 1;
            snprintf(c->io_err, sizeof c->io_err, "rank %d could not write its part (its "
                     "message is above)", k);
        }
        free(msg);
    }
}

static int run_rank0(sp_run_ctx *ctx, worker *w) {
    const sp_plan *p = ctx->plan;
    coordinator c = {.ctx = ctx, .show = !ctx->quiet};
    pthread_mutex_init(&c.lock, NULL);
    c.nbatches = (p->nimages + p->batch - 1) / p->batch;
    if (p->writers > 1 && !(c.next_of = malloc(sizeof *c.next_of * p->writers))) {
        fprintf(stderr, "salpipe: rank 0: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
    }
    for (int k = 0; k < p->writers && p->writers > 1; k++)
        c.next_of[k] = sp_parts_first_batch(p, k);
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
    /* With writers > 1 rank 0 computes its own part's batches, which it writes
     * itself: its main thread makes no MPI call while the coordinator runs. */
    for (int k; (k = next_batch_locked(&c, p->writers > 1 ? 0 : -1)) >= 0;) {
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
    if (p->writers > 1) end_writers(&c);
    int left = 0, failed = 0;
    for (int i = 0; i < p->nimages; i++) {
        left += ctx->status[i] == 0;
        failed += ctx->status[i] == -1;
    }
    sp_progress_finish(&c.progress, c.done + c.failed + c.remote,
                       (double)(c.done + c.remote) * p->ntargets * p->nmethods);
    pthread_mutex_destroy(&c.lock);
    free(c.next_of);
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

/* Writers > 1, ranks 1..K-1: write the results of this rank's part as they come,
 * until rank 0 says stop; then close the part and report to rank 0. */
static void run_writer(sp_run_ctx *ctx) {
    const sp_plan *p = ctx->plan;
    coordinator c = {.ctx = ctx, .base = sp_parts_first_image(p, ctx->rank)};
    pthread_mutex_init(&c.lock, NULL);
    c.last_flush = now();
    char *buf = NULL;
    size_t cap = 0;
    long pause = SP_IDLE_MIN_NS;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st));
        if (!flag) {
            if (sp_peers_give_up()) {
                char err[SAL_ERR_LEN];
                if (!c.io_failed && sp_output_flush(ctx->out, err, sizeof err))
                    fprintf(stderr, "salpipe: rank %d: output error: %s\n", ctx->rank, err);
                sp_peers_say_why();
                MPI_Abort(MPI_COMM_WORLD, SP_EXIT_STOPPED);
            }
            sleep_idle(&pause);
            continue;
        }
        pause = SP_IDLE_MIN_NS;
        int count = recv_any(&buf, &cap, &st, TAG_RESULT);
        if (count <= 8 && st.MPI_SOURCE == 0) break;
        take_result(&c, buf, count, st.MPI_SOURCE);
    }
    free(buf);
    char err[SAL_ERR_LEN];
    int32_t rc = c.io_failed;
    if (rc) fprintf(stderr, "salpipe: rank %d: output error: %s\n", ctx->rank, c.io_err);
    if (sp_output_close(ctx->out, err, sizeof err) && !rc) {
        fprintf(stderr, "salpipe: rank %d: output error: %s\n", ctx->rank, err);
        rc = 1;
    }
    ctx->out = NULL;
    const int n = sp_parts_first_image(p, ctx->rank + 1) - c.base;
    char *msg = malloc(4 + (size_t)n);
    if (!msg) {
        fprintf(stderr, "salpipe: rank %d: out of memory\n", ctx->rank);
        MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
    }
    memcpy(msg, &rc, 4);
    memcpy(msg + 4, ctx->status + c.base, (size_t)n);
    MPI_Request req;
    MPI_CHECK(MPI_Isend(msg, 4 + n, MPI_BYTE, 0, TAG_FINAL, MPI_COMM_WORLD, &req));
    sp_wait_patiently(&req);
    free(msg);
    pthread_mutex_destroy(&c.lock);
}

/* A send that may never complete if its receiver dies: wait for it watching the
 * peers, spinning as MPI_Send would (a large message needs this side's progress). */
static void send_watching(const void *buf, int len, int to, int tag) {
    MPI_Request req;
    MPI_CHECK(MPI_Isend(buf, len, MPI_BYTE, to, tag, MPI_COMM_WORLD, &req));
    wait_for(&req, 0);
}

static void run_worker(sp_run_ctx *ctx, worker *w) {
    const sp_plan *p = ctx->plan;
    int32_t hello[4] = {-1, 0, 0, 0};
    MPI_CHECK(MPI_Send(hello, p->writers > 1 ? sizeof hello : 2 * sizeof *hello, MPI_BYTE, 0,
                       TAG_WORK, MPI_COMM_WORLD));
    for (;;) {
        /* The answer can wait for rank 0's lock while it writes its own batch. */
        int k;
        MPI_Request req;
        MPI_CHECK(MPI_Irecv(&k, 1, MPI_INT, 0, TAG_ASSIGN, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
        if (k < 0) break;
        if (k >= (p->nimages + p->batch - 1) / p->batch) {
            fprintf(stderr, "salpipe: rank %d: rank 0 assigned batch %d, which the plan "
                    "does not have\n", ctx->rank, k);
            MPI_Abort(MPI_COMM_WORLD, SP_EXIT_IO);
        }
        compute_batch(w, k);
        if (p->writers == 1) {
            send_watching(w->msg.buf, (int)w->msg.len, 0, TAG_WORK);
            continue;
        }
        /* Writers > 1: the results go to their part's writer; its answer comes
         * before this rank computes again (back-pressure), then rank 0 hears how
         * the batch went and hands out the next. */
        const int to = sp_parts_of_batch(p, k);
        int32_t req4[4] = {-2, 0, 0, 0};
        for (int i = 0; to != 0 && i < batch_count(p, k); i++)
            req4[w->slot[i] >= 0 ? 1 : 2]++;
        send_watching(w->msg.buf, (int)w->msg.len, to, TAG_RESULT);
        int failed = 0;
        MPI_CHECK(MPI_Irecv(&failed, 1, MPI_INT, to, TAG_ACK, MPI_COMM_WORLD, &req));
        sp_wait_patiently(&req);
        req4[3] = failed != 0;
        send_watching(req4, sizeof req4, 0, TAG_WORK);
    }
}

int sp_run(sp_run_ctx *ctx) {
    const sp_plan *p = ctx->plan;
    if (p->writers > 1 && ctx->rank > 0 && ctx->rank < p->writers) {
        run_writer(ctx); /* computes nothing */
        return SP_EXIT_OK;
    }
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
