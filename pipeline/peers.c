/*
 * sp_peers (peers.h): whereabouts of every rank, and the dead-rank check that
 * the waits of run.c and main.c and the stop-signal handler run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

/* What one rank tells the others about itself. */
typedef struct {
    char host[64];      /* for messages                                          */
    char space[96];     /* boot id + pid namespace: equal = same /proc             */
    int32_t pid;
    int32_t pad;
    uint64_t start;     /* field 22 of /proc/PID/stat: a reused pid differs      */
} whereabouts;

typedef struct {
    int rank;
    int32_t pid;
    uint64_t start;
    char stat_path[32]; /* /proc/PID/stat                                        */
    char msg[640];      /* printed when it is found dead (empty: stay quiet)     */
    atomic_int dead;
} watched;

static struct {
    int rank;
    int reporter;         /* rank 0, or the rank that reports rank 0's death     */
    atomic_int printed;   /* this process has said which rank died               */
    watched *w;
    int n;
    atomic_int lost;      /* ranks found dead                                    */
    atomic_int disarmed;  /* the job is ending: check nothing                    */
    double next_poll;
} peers;

/* Async-signal-safe: state and start time of a process from /proc/PID/stat.
 * 1 alive, 0 gone (or a zombie), -1 unknown. */
static int read_stat(const char *path, char *state, uint64_t *start) {
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ESRCH ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = NULL;
    for (char *q = buf; *q; q++)
        if (*q == ')') p = q; /* the name may hold ')' itself: the last one ends it */
    if (!p || p[1] != ' ') return -1;
    p += 2;
    *state = *p;
    /* Field 3 is the state; the start time is field 22. */
    for (int field = 3; field < 22; field++) {
        while (*p && *p != ' ') p++;
        if (!*p) return -1;
        p++;
    }
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
    *start = v;
    return *state == 'Z' || *state == 'X' ? 0 : 1;
}

static void read_line(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    if (f && fgets(buf, (int)n, f)) buf[strcspn(buf, "\n")] = 0;
    if (f) fclose(f);
}

static void describe(watched *w, const whereabouts *who, const char *output) {
    if (w->rank == 0)
        snprintf(w->msg, sizeof w->msg,
                 "salpipe: rank 0 (pid %d on %s), which writes the output, died; the job "
                 "stops. The output keeps every image it had flushed (all but the last "
                 "second or so of work); run the same command again to resume.\n",
                 (int)who->pid, who->host);
    else
        snprintf(w->msg, sizeof w->msg,
                 "salpipe: rank %d (pid %d on %s) died; the job stops. %s keeps every image "
                 "it had flushed (all but the last second or so of work); run the same "
                 "command again to resume.\n",
                 w->rank, (int)who->pid, who->host, output ? output : "The output");
}

static whereabouts *all;

/* Async-signal-safe: prints w's message, once per process. */
static void say(const watched *w) {
    if (!w->msg[0] || atomic_exchange(&peers.printed, 1)) return;
    ssize_t len = (ssize_t)strlen(w->msg), off = 0;
    while (off < len) {
        ssize_t k = write(2, w->msg + off, (size_t)(len - off));
        if (k <= 0) break;
        off += k;
    }
}

void sp_peers_init(int rank, int size) {
    whereabouts me;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    char boot[64], ns[64] = "";
    read_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
    ssize_t k = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[k > 0 ? k : 0] = 0;
    snprintf(me.space, sizeof me.space, "%s %s", boot, ns);
    me.pid = (int32_t)getpid();
    char state;
    int known = read_stat("/proc/self/stat", &state, &me.start) == 1 && boot[0] && ns[0];
    all = malloc(sizeof *all * (size_t)size);
    int ok = all != NULL, every = 0;
    MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (!every) {
        free(all);
        all = NULL;
        return;
    }
    if (!known) me.space[0] = 0; /* matches nobody: not watched, watches nobody */
    MPI_Allgather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    int n = 0;
    for (int r = 0; r < size && me.space[0]; r++) n += r != rank && !strcmp(all[r].space, me.space);
    if (n == 0 || !(peers.w = calloc((size_t)n, sizeof *peers.w))) return;
    /* Who reports rank 0's death: the lowest other rank that can see it. */
    int reporter = -1;
    for (int r = 1; r < size && reporter < 0; r++)
        if (!strcmp(all[r].space, all[0].space)) reporter = r;
    /* Rank 0 last: found dead after another rank, its death is rank 0's abort. */
    for (int i = 1; i <= size; i++) {
        int r = i % size;
        if (r == rank || strcmp(all[r].space, me.space)) continue;
        watched *w = &peers.w[peers.n++];
        w->rank = r;
        w->pid = all[r].pid;
        w->start = all[r].start;
        snprintf(w->stat_path, sizeof w->stat_path, "/proc/%d/stat", (int)all[r].pid);
        if (rank == 0 || r == 0) describe(w, &all[r], NULL);
    }
    peers.rank = rank;
    peers.reporter = rank == 0 || rank == reporter;
}

void sp_peers_set_output(const char *path) {
    for (int i = 0; i < peers.n; i++)
        if (peers.w[i].msg[0]) describe(&peers.w[i], &all[peers.w[i].rank], path);
}

int sp_peers_check(void) {
    for (int i = 0; i < peers.n && !atomic_load(&peers.disarmed); i++) {
        watched *w = &peers.w[i];
        if (atomic_load(&w->dead)) continue;
        char state;
        uint64_t start = 0;
        int alive = read_stat(w->stat_path, &state, &start);
        if (alive < 0 || (alive == 1 && start == w->start)) continue;
        if (atomic_exchange(&w->dead, 1)) continue;
        /* Only the first death this rank sees is news: the ones after it follow
         * from it (rank 0 ends the job with MPI_Abort). */
        if (atomic_fetch_add(&peers.lost, 1) == 0 && peers.reporter) say(w);
    }
    return atomic_load(&peers.lost);
}

void sp_peers_say_why(void) {
    for (int i = 0; i < peers.n; i++)
        if (atomic_load(&peers.w[i].dead) && peers.w[i].msg[0]) {
            say(&peers.w[i]);
            return;
        }
}

int sp_peers_poll(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = ts.tv_sec + ts.tv_nsec * 1e-9;
    if (now < peers.next_poll) return atomic_load(&peers.lost);
    peers.next_poll = now + 0.5;
    return sp_peers_check();
}

int sp_peers_give_up(void) {
    return sp_peers_poll() && (peers.rank == 0 || sp_peers_dead(0));
}

int sp_peers_dead(int r) {
    for (int i = 0; i < peers.n; i++)
        if (peers.w[i].rank == r) return atomic_load(&peers.w[i].dead);
    return 0;
}

void sp_peers_disarm(void) { atomic_store(&peers.disarmed, 1); }

int sp_peers_lost(void) { return atomic_load(&peers.lost) > 0; }
