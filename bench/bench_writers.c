/*
 * bench_writers: how many maps per second K writer processes can store, fed by P
 * producer processes that stand for many salpipe ranks (issue 14's scaling model).
 *
 *   mpirun -n N bench_writers [options]     ranks 0..K-1 write, K..N-1 produce
 *
 * Producers do what a salpipe rank does after computing, without computing: every
 * batch (batch images x targets x methods compressed maps) goes in one message to the
 * writer of that producer (producer p -> writer p % K), and the producer waits for
 * the writer's answer before its next batch, as a rank waits for its next batch from
 * rank 0. A producer standing for R ranks at `rate` maps/s per rank sends on a
 * schedule of rate x R maps/s; a writer that cannot keep up makes it fall behind.
 *
 * Writers do what rank 0's writer does: receive one message at a time into one
 * buffer, answer, store each map with H5Dwrite_chunk through salpipe's own output
 * library (sp_output: the journaling driver, status, flush once a second), so the
 * cost measured is the cost salpipe pays. Each writer has its own file
 * (DIR/part-k.h5), the part files of issue 14.
 *
 * The maps are real: compressed chunks read with H5Dread_chunk from a salpipe
 * output (--chunks FILE.h5, /saliency), or, without it, synthetic maps compressed
 * with sp_chunk_compress. --verify reads every chunk back and compares it byte for
 * byte with what its producer sent (the smoke test, tests/bench.cmake).
 *
 * Output: one line per writer and a summary line, also as JSON with --json.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD; clock_gettime, nanosleep, strdup */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include <hdf5.h>
#include <mpi.h>

#include "output.h"

enum { TAG_BATCH = 1, TAG_ACK = 2 };

typedef struct {
    int writers;           /* K                                                   */
    int batches;           /* batches each producer sends                         */
    int batch;             /* images per batch                                    */
    int targets, methods;  /* maps per image = targets x methods                  */
    double rate;           /* maps/s of one simulated rank (0: as fast as possible) */
    int ranks;             /* simulated ranks per producer                        */
    const char *chunks;    /* salpipe output to take real chunks from, or NULL    */
    int pool;              /* distinct chunks to cycle through                    */
    const char *dir;       /* where the part files go                             */
    int verify, keep, json;
    int flip;              /* testing the test: a writer corrupts one byte        */
} opts;

/* Every rank fails the same way: message with rank, then abort the whole job. */
static void die(int rank, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_writers: rank %d: ", rank);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2); /* not reached */
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU seconds of the calling thread: what storing costs whatever else runs on
 * this shared machine (wall time there counts the waits for a core). */
static double cpu_now(void) {
    struct rusage u;
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static void sleep_until(double t) {
    double d = t - now();
    if (d <= 0) return;
    struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static void usage(void) {
    fprintf(stderr,
            "usage: mpirun -n N bench_writers [--writers K] [--batches B] [--batch 8]\n"
            "       [--targets 2] [--methods 2] [--rate MAPS_PER_S] [--ranks R]\n"
            "       [--chunks SALPIPE_OUTPUT.h5] [--pool 64] [--dir DIR] [--verify]\n"
            "       [--keep] [--json]\n");
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.writers = 1, .batches = 20, .batch = 8, .targets = 2, .methods = 2,
                .rate = 0, .ranks = 1, .pool = 64, .dir = "."};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--writers") && v) o->writers = atoi(v);
        else if (!strcmp(a, "--batches") && v) o->batches = atoi(v);
        else if (!strcmp(a, "--batch") && v) o->batch = atoi(v);
        else if (!strcmp(a, "--targets") && v) o->targets = atoi(v);
        else if (!strcmp(a, "--methods") && v) o->methods = atoi(v);
        else if (!strcmp(a, "--rate") && v) o->rate = atof(v);
        else if (!strcmp(a, "--ranks") && v) o->ranks = atoi(v);
        else if (!strcmp(a, "--chunks") && v) o->chunks = v;
        else if (!strcmp(a, "--pool") && v) o->pool = atoi(v);
        else if (!strcmp(a, "--dir") && v) o->dir = v;
        else {
            takes = 0;
            if (!strcmp(a, "--verify")) o->verify = 1;
            else if (!strcmp(a, "--keep")) o->keep = 1;
            else if (!strcmp(a, "--json")) o->json = 1;
            else if (!strcmp(a, "--flip-byte")) o->flip = 1;
            else return -1;
        }
        i += takes;
    }
    if (o->writers < 1 || o->batches < 1 || o->batch < 1 || o->targets < 1 ||
        o->methods < 1 || o->rate < 0 || o->ranks < 1 || o->pool < 1)
        return -1;
    return 0;
}

/* ---- the chunk pool: real compressed maps ---------------------------------- */

typedef struct {
    int n;
    size_t raw;            /* uncompressed map bytes (C x H x W x 4)              */
    int C, H, W, level;
    unsigned char **data;
    size_t *bytes;
} pool;

/* Up to o->pool chunks of /saliency that are stored (done maps), in file order. */
static void pool_from_file(pool *p, const opts *o, int rank) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our message names the file instead */
    hid_t f = H5Fopen(o->chunks, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) die(rank, "%s: cannot open as HDF5", o->chunks);
    hid_t d = H5Dopen2(f, "/saliency", H5P_DEFAULT);
    if (d < 0) die(rank, "%s: no /saliency: not a salpipe output", o->chunks);
    hid_t s = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t dims[6];
    if (H5Sget_simple_extent_ndims(s) != 6) die(rank, "%s: /saliency is not 6-D", o->chunks);
    H5Sget_simple_extent_dims(s, dims, NULL);
    p->C = (int)dims[3], p->H = (int)dims[4], p->W = (int)dims[5];
    p->raw = (size_t)p->C * p->H * p->W * 4;
    if (H5Tget_size(H5Dget_type(d)) != 4) die(rank, "%s: /saliency is not float32", o->chunks);
    p->level = 0;
    for (int k = 0; k < H5Pget_nfilters(dcpl); k++) {
        unsigned flags, cd[4];
        size_t ncd = 4;
        if (H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL) ==
                H5Z_FILTER_DEFLATE && ncd > 0)
            p->level = (int)cd[0];
    }
    p->data = calloc((size_t)o->pool, sizeof *p->data);
    p->bytes = calloc((size_t)o->pool, sizeof *p->bytes);
    if (!p->data || !p->bytes) die(rank, "out of memory");
    hsize_t off[6] = {0};
    for (off[0] = 0; off[0] < dims[0] && p->n < o->pool; off[0]++)
        for (off[1] = 0; off[1] < dims[1] && p->n < o->pool; off[1]++)
            for (off[2] = 0; off[2] < dims[2] && p->n < o->pool; off[2]++) {
                hsize_t nb = 0;
                if (H5Dget_chunk_storage_size(d, off, &nb) < 0 || nb == 0) continue;
                uint32_t mask = 0;
                unsigned char *buf = malloc(nb);
                if (!buf || H5Dread_chunk(d, H5P_DEFAULT, off, &mask, buf) < 0)
                    die(rank, "%s: cannot read a chunk of /saliency", o->chunks);
                p->data[p->n] = buf;
                p->bytes[p->n++] = nb;
            }
    if (p->n == 0) die(rank, "%s: /saliency holds no maps yet", o->chunks);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
}

/* Noisy 3x224x224 float32 maps (a smooth part plus noise, as gradients are),
 * compressed at level 4 as a salpipe rank would. */
static void pool_synthetic(pool *p, const opts *o, int rank) {
    p->C = 3, p->H = 224, p->W = 224, p->level = 4;
    p->raw = (size_t)p->C * p->H * p->W * 4;
    p->n = o->pool;
    p->data = calloc((size_t)p->n, sizeof *p->data);
    p->bytes = calloc((size_t)p->n, sizeof *p->bytes);
    float *map = malloc(p->raw);
    void *scratch = malloc(p->raw);
    if (!p->data || !p->bytes || !map || !scratch) die(rank, "out of memory");
    unsigned rng = 12345;
    for (int k = 0; k < p->n; k++) {
        for (size_t e = 0; e < p->raw / 4; e++) {
            rng = rng * 1103515245u + 12345u;
            map[e] = (float)(sin(e * 0.003 + k) * 1e-3 +
                             ((double)(rng >> 8) / 16777216.0 - 0.5) * 1e-4);
        }
        p->data[k] = malloc(sp_chunk_bound(p->raw));
        if (!p->data[k]) die(rank, "out of memory");
        p->bytes[k] = sp_chunk_compress(p->data[k], map, p->raw, 4, p->level, scratch);
        if (!p->bytes[k]) die(rank, "sp_chunk_compress failed");
    }
    free(map);
    free(scratch);
}

/* Which pool chunk map j of a producer's batch `seq` carries: a fixed function,
 * so the verifier knows what each map must hold. */
static int pool_pick(const pool *p, int producer, int seq, int j) {
    return (int)(((unsigned)producer * 7919u + (unsigned)seq * 104729u + (unsigned)j) %
                 (unsigned)p->n);
}

/* ---- messages ------------------------------------------------------------------ */

/* A batch message: int32 header {producer, seq, maps}, then maps sizes (uint64),
 * then the chunks back to back. */
typedef struct {
    int32_t producer, seq, maps;
    int32_t pad;
} header;

static size_t message_bound(const pool *p, int maps) {
    size_t big = 0;
    for (int k = 0; k < p->n; k++)
        if (p->bytes[k] > big) big = p->bytes[k];
    return sizeof(header) + (size_t)maps * (sizeof(uint64_t) + big);
}

static size_t pack(unsigned char *msg, const pool *p, int producer, int seq, int maps) {
    header h = {producer, seq, maps, 0};
    memcpy(msg, &h, sizeof h);
    uint64_t *sizes = (uint64_t *)(msg + sizeof h);
    unsigned char *at = msg + sizeof h + (size_t)maps * sizeof(uint64_t);
    for (int j = 0; j < maps; j++) {
        int k = pool_pick(p, producer, seq, j);
        sizes[j] = p->bytes[k];
        memcpy(at, p->data[k], p->bytes[k]);
        at += p->bytes[k];
    }
    return (size_t)(at - msg);
}

/* ---- producer ------------------------------------------------------------------- */

typedef struct {
    double seconds;    /* its start to the last answer                            */
    double lag;        /* how late the last batch left against the schedule       */
    double keep;       /* the time R ranks take to make its maps / the time they
                        * took to be stored: 1 (or a little more) when the writer
                        * keeps up, the fraction of the offer stored when not     */
    long maps;
} produced;

/* Waits for both requests without spinning: on this 2-core machine a producer
 * that busy-polls (as a blocking MPI call does) takes the core its writer needs,
 * whereas on a cluster the ranks it stands for wait on other nodes. */
static void wait_idle(MPI_Request *req) {
    int done = 0;
    for (;;) {
        MPI_Testall(2, req, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static produced producer(const opts *o, const pool *p, int rank, int me) {
    int maps = o->batch * o->targets * o->methods, writer = me % o->writers;
    unsigned char *msg = malloc(message_bound(p, maps));
    if (!msg) die(rank, "out of memory");
    /* R ranks at `rate` maps/s each: one batch every maps / (rate x R) seconds. */
    double every = o->rate > 0 ? maps / (o->rate * o->ranks) : 0;
    produced r = {0, 0, 0, 0};
    /* Producers start spread over one period, as ranks that started together drift
     * apart, so the writers do not see them in lockstep. */
    int producers = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &producers);
    producers -= o->writers;
    double t0 = now() + every * me / (producers > 0 ? producers : 1), last = t0;
    for (int seq = 0; seq < o->batches; seq++) {
        double due = t0 + seq * every;
        sleep_until(due);
        size_t n = pack(msg, p, me, seq, maps);
        last = now();
        int ack;
        MPI_Request req[2];
        MPI_Irecv(&ack, 1, MPI_INT, writer, TAG_ACK, MPI_COMM_WORLD, &req[0]);
        if (MPI_Isend(msg, (int)n, MPI_BYTE, writer, TAG_BATCH, MPI_COMM_WORLD, &req[1]) !=
            MPI_SUCCESS)
            die(rank, "MPI_Isend to writer %d failed", writer);
        wait_idle(req);
        r.maps += maps;
        if (seq == o->batches - 1) r.lag = last - due;
    }
    r.seconds = now() - t0;
    r.keep = every > 0 ? o->batches * every / r.seconds : 0;
    free(msg);
    return r;
}

/* ---- writer --------------------------------------------------------------------- */

typedef struct {
    double seconds;    /* first message received to the file closed               */
    long maps;
    double bytes;      /* compressed bytes stored                                 */
    double flush_s;    /* time in sp_output_flush                                 */
    double busy_s;     /* time storing (H5Dwrite_chunk and flushes), not receiving */
    double store_cpu;  /* CPU seconds storing, flushes excepted                   */
    int flushes;
    double offered;    /* maps/s its producers would send if never held back     */
    int producers;
} written;

/* The source of each image slot, for --verify: producer, batch and image in it. */
typedef struct {
    int32_t producer, seq, image;
} source;

static written writer(const opts *o, const pool *p, int rank, int size, source **src_out,
                      int *nimages_out) {
    int nprod = 0;
    for (int q = 0; q < size - o->writers; q++)
        if (q % o->writers == rank) nprod++;
    int per_image = o->targets * o->methods, maps = o->batch * per_image;
    int nimages = nprod * o->batches * o->batch;
    written w = {0};
    w.producers = nprod;
    w.offered = o->rate * o->ranks * nprod;
    *nimages_out = nimages;
    if (nimages == 0) return w;

    /* The part file's layout: a salpipe output of nimages images. */
    char **names = calloc((size_t)nimages, sizeof *names);
    const char **layers = calloc((size_t)o->targets, sizeof *layers);
    int32_t *units = calloc((size_t)o->targets, sizeof *units);
    const char **methods = calloc((size_t)o->methods, sizeof *methods);
    source *src = calloc((size_t)nimages, sizeof *src);
    if (!names || !layers || !units || !methods || !src) die(rank, "out of memory");
    for (int i = 0; i < nimages; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "img%07d.jpg", i);
        if (!(names[i] = strdup(buf))) die(rank, "out of memory");
    }
    static const char *const mnames[] = {"vanilla", "guided", "deconvnet",
                                         "gradient_x_input"};
    for (int t = 0; t < o->targets; t++) layers[t] = "fc3", units[t] = 540 + t;
    for (int m = 0; m < o->methods; m++) methods[m] = mnames[m % 4];
    sal_preprocess pp = {p->C, p->H, p->W, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, 0, 256};
    sp_output_layout lay = {
        .nimages = nimages, .ntargets = o->targets, .nmethods = o->methods,
        .channels = p->C, .height = p->H, .width = p->W, .precision = SAL_F32,
        .compression = p->level, .images = (const char *const *)names,
        .target_layers = layers, .target_units = units, .methods = methods,
        .salpipe_version = "bench_writers", .config_path = "bench.toml",
        .config_text = "# bench_writers\n", .model_path = "none",
        .model_sha256 = "0000000000000000000000000000000000000000000000000000000000000000",
        .model_name = "bench", .preprocess = &pp};
    char path[4096], err[2048];
    snprintf(path, sizeof path, "%s/part-%d.h5", o->dir, rank);
    int8_t *status = malloc((size_t)nimages);
    sp_output *out = NULL;
    if (!status || sp_output_open(path, &lay, 1, &out, status, err, sizeof err))
        die(rank, "%s", status ? err : "out of memory");

    unsigned char *msg = malloc(message_bound(p, maps));
    const void **chunks = malloc((size_t)per_image * sizeof *chunks);
    size_t *bytes = malloc((size_t)per_image * sizeof *bytes);
    float *act = calloc((size_t)o->targets, sizeof *act);
    if (!msg || !chunks || !bytes || !act) die(rank, "out of memory");
    int cap = (int)message_bound(p, maps), next = 0;
    double t0 = 0, last_flush = 0;
    for (int got = 0; got < nprod * o->batches; got++) {
        MPI_Status st;
        MPI_Recv(msg, cap, MPI_BYTE, MPI_ANY_SOURCE, TAG_BATCH, MPI_COMM_WORLD, &st);
        if (got == 0) t0 = last_flush = now();
        /* Answer first, then write: the producer goes on while we write, as a rank
         * computes its next batch while rank 0 writes its last one. */
        int ack = 1;
        MPI_Send(&ack, 1, MPI_INT, st.MPI_SOURCE, TAG_ACK, MPI_COMM_WORLD);
        header h;
        memcpy(&h, msg, sizeof h);
        if (h.maps != maps) die(rank, "message from rank %d has %d maps, expected %d",
                                st.MPI_SOURCE, h.maps, maps);
        const uint64_t *sizes = (const uint64_t *)(msg + sizeof h);
        unsigned char *at = msg + sizeof h + (size_t)maps * sizeof(uint64_t);
        if (o->flip && got == 0) at[sizes[0] / 2] ^= 1;
        double busy0 = now(), cpu0 = cpu_now();
        for (int b = 0; b < o->batch; b++, next++) {
            for (int j = 0; j < per_image; j++) {
                chunks[j] = at;
                bytes[j] = sizes[b * per_image + j];
                at += bytes[j];
                w.bytes += (double)bytes[j];
            }
            src[next] = (source){h.producer, h.seq, b};
            if (sp_output_write_image(out, next, chunks, bytes, NULL, NULL, act, NULL, err,
                                      sizeof err))
                die(rank, "%s", err);
            w.maps += per_image;
        }
        w.store_cpu += cpu_now() - cpu0;
        /* rank 0's cadence (pipeline/run.c): a flush at most once a second. */
        if (now() - last_flush >= 1.0) {
            double a = now();
            if (sp_output_flush(out, err, sizeof err)) die(rank, "%s", err);
            w.flush_s += now() - a;
            w.flushes++;
            last_flush = now();
        }
        w.busy_s += now() - busy0;
    }
    double a = now();
    if (sp_output_close(out, err, sizeof err)) die(rank, "%s", err);
    w.flush_s += now() - a;
    w.busy_s += now() - a;
    w.flushes++;
    w.seconds = now() - t0;
    for (int i = 0; i < nimages; i++) free(names[i]);
    free(names), free(layers), free(units), free(methods), free(status);
    free(msg), free(chunks), free(bytes), free(act);
    *src_out = src;
    return w;
}

/* Reads every map of the part file back with H5Dread_chunk and compares it with the
 * chunk its producer sent. Returns the number of maps that differ (or are missing). */
static long verify(const opts *o, const pool *p, int rank, const source *src, int nimages) {
    if (nimages == 0) return 0; /* a writer without producers makes no file */
    char path[4096];
    snprintf(path, sizeof path, "%s/part-%d.h5", o->dir, rank);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "/saliency", H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "verify: %s: cannot open /saliency\n", path);
        return nimages > 0 ? (long)nimages * o->targets * o->methods : 1;
    }
    long bad = 0;
    int per_image = o->targets * o->methods;
    unsigned char *buf = malloc(sp_chunk_bound(p->raw) + p->raw);
    for (int i = 0; i < nimages; i++)
        for (int t = 0; t < o->targets; t++)
            for (int m = 0; m < o->methods; m++) {
                hsize_t off[6] = {(hsize_t)i, (hsize_t)t, (hsize_t)m, 0, 0, 0}, nb = 0;
                int k = pool_pick(p, src[i].producer, src[i].seq,
                                  src[i].image * per_image + t * o->methods + m);
                uint32_t mask = 1;
                if (H5Dget_chunk_storage_size(d, off, &nb) < 0 || nb != p->bytes[k] ||
                    H5Dread_chunk(d, H5P_DEFAULT, off, &mask, buf) < 0 || mask != 0 ||
                    memcmp(buf, p->data[k], nb)) {
                    if (bad++ < 5)
                        fprintf(stderr,
                                "verify: %s: map (%d, %d, %d) differs from what producer "
                                "%d sent in batch %d (%llu bytes stored, %zu sent)\n",
                                path, i, t, m, src[i].producer, src[i].seq,
                                (unsigned long long)nb, p->bytes[k]);
                }
            }
    free(buf);
    H5Dclose(d);
    H5Fclose(f);
    return bad;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    opts o;
    if (parse(argc, argv, &o)) {
        if (rank == 0) usage();
        MPI_Finalize();
        return 2;
    }
    if (o.writers >= size) {
        if (rank == 0)
            fprintf(stderr, "bench_writers: %d writers need at least %d processes (-n)\n",
                    o.writers, o.writers + 1);
        MPI_Finalize();
        return 2;
    }
    pool p = {0};
    if (o.chunks) pool_from_file(&p, &o, rank);
    else pool_synthetic(&p, &o, rank);

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    written w = {0};
    produced pr = {0};
    source *src = NULL;
    int nimages = 0;
    if (rank < o.writers) w = writer(&o, &p, rank, size, &src, &nimages);
    else pr = producer(&o, &p, rank, rank - o.writers);
    MPI_Barrier(MPI_COMM_WORLD);
    double wall = now() - t0;

    long bad = 0;
    if (rank < o.writers && o.verify) bad = verify(&o, &p, rank, src, nimages);
    long sent = rank < o.writers ? 0 : pr.maps, stored = rank < o.writers ? w.maps : 0;
    long sent_all, stored_all, bad_all;
    double lag = pr.lag, lag_max, keep = rank < o.writers ? 1e300 : pr.keep, keep_min;
    MPI_Reduce(&keep, &keep_min, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&sent, &sent_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&stored, &stored_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&bad, &bad_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&lag, &lag_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    /* Each writer's line, gathered to rank 0 so they print in order. */
    double mine[9] = {w.seconds, (double)w.maps, w.bytes, w.flush_s, (double)w.flushes,
                      w.offered, (double)w.producers, w.busy_s, w.store_cpu};
    double *all = rank == 0 ? malloc(sizeof mine * (size_t)size) : NULL;
    MPI_Gather(mine, 9, MPI_DOUBLE, all, 9, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        double avg = 0;
        for (int k = 0; k < p.n; k++) avg += (double)p.bytes[k];
        avg /= p.n;
        int producers = size - o.writers;
        double offered = o.rate * o.ranks * producers;
        double total_maps = 0;
        for (int k = 0; k < o.writers; k++) {
            const double *x = all + 9 * k;
            double mps = x[0] > 0 ? x[1] / x[0] : 0;
            total_maps += x[1];
            if (o.json)
                printf("{\"writer\": %d, \"producers\": %.0f, \"seconds\": %.3f, \"maps\": %.0f, "
                       "\"maps_per_s\": %.1f, \"MB_per_s\": %.1f, \"offered_maps_per_s\": %.1f, "
                       "\"flushes\": %.0f, \"flush_s\": %.3f, \"busy_s\": %.3f, "
                       "\"maps_per_busy_s\": %.1f, \"store_cpu_s\": %.3f, "
                       "\"maps_per_store_cpu_and_flush_s\": %.1f}\n",
                       k, x[6], x[0], x[1], mps, x[0] > 0 ? x[2] / x[0] / 1e6 : 0, x[5], x[4],
                       x[3], x[7], x[7] > 0 ? x[1] / x[7] : 0, x[8],
                       x[8] + x[3] > 0 ? x[1] / (x[8] + x[3]) : 0);
            else
                printf("writer %d: %.0f producers, %.0f maps in %.2f s: %.0f maps/s, "
                       "%.0f MB/s (offered %.0f maps/s), %.0f flushes %.2f s, storing %.2f s "
                       "(%.0f maps/s)\n",
                       k, x[6], x[1], x[0], mps, x[0] > 0 ? x[2] / x[0] / 1e6 : 0, x[5],
                       x[4], x[3], x[7], x[7] > 0 ? x[1] / x[7] : 0);
        }
        double agg = wall > 0 ? total_maps / wall : 0;
        if (o.json)
            printf("{\"summary\": 1, \"writers\": %d, \"producers\": %d, \"ranks_each\": %d, "
                   "\"rate\": %.3f, \"batch\": %d, \"maps_per_image\": %d, \"chunk_bytes\": %.0f, "
                   "\"chunk_source\": \"%s\", \"offered\": %.1f, \"achieved\": %.1f, "
                   "\"keeps_up\": %.3f, \"max_lag_s\": %.3f, \"wall_s\": %.3f, "
                   "\"sent\": %ld, \"stored\": %ld, \"verify_bad\": %ld}\n",
                   o.writers, producers, o.ranks, o.rate, o.batch, o.targets * o.methods, avg,
                   o.chunks ? o.chunks : "synthetic", offered, agg,
                   offered > 0 ? keep_min : 0, lag_max, wall, sent_all, stored_all,
                   o.verify ? bad_all : -1L);
        else
            printf("%d writers, %d producers x %d ranks at %.2f maps/s: offered %.0f maps/s, "
                   "stored %.0f maps/s overall (%.0f B/chunk), slowest producer stored at %.0f%% "
                   "of its offer, last batch %.2f s late; sent %ld maps, stored %ld%s\n",
                   o.writers, producers, o.ranks, o.rate, offered, agg, avg,
                   offered > 0 ? 100 * keep_min : 0, lag_max, sent_all, stored_all,
                   o.verify ? (bad_all ? ", VERIFY FAILED" : ", verified byte for byte") : "");
        fflush(stdout);
    }
    free(all);
    int fail = 0;
    if (rank == 0) fail = sent_all != stored_all || (o.verify && bad_all != 0);
    MPI_Bcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank < o.writers && !o.keep) {
        char path[4096];
        snprintf(path, sizeof path, "%s/part-%d.h5", o.dir, rank);
        unlink(path);
    }
    free(src);
    for (int k = 0; k < p.n; k++) free(p.data[k]);
    free(p.data), free(p.bytes);
    MPI_Finalize();
    return fail ? 1 : 0;
}
