/*
 * sp_team (team.h): helpers wait for a new generation of work, take items from a
 * shared atomic counter and report when they run out; the caller takes items too,
 * then waits until every helper has reported.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "team.h"

typedef struct {
    sp_team *team;
    int id;                 /* 1 .. helpers */
} helper;

struct sp_team {
    pthread_mutex_t lock;   /* guards everything down to `arg`                  */
    pthread_cond_t start;   /* a new loop, or quit                              */
    pthread_cond_t done;    /* the last helper has left the loop                */
    unsigned generation;    /* bumped by every sp_team_run                      */
    int busy;               /* helpers still inside the current loop            */
    int quit;
    sp_team_fn fn;
    void *arg;
    int n;
    atomic_int next;        /* next item to take                                */
    int helpers;            /* started                                          */
    pthread_t *tid;
    helper *h;
};

static void take_items(sp_team *t, int thread) {
    for (int i; (i = atomic_fetch_add(&t->next, 1)) < t->n;)
        t->fn(t->arg, i, thread);
}

static void *helper_main(void *p) {
    helper *h = p;
    sp_team *t = h->team;
    unsigned seen = 0;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->quit && t->generation == seen)
            pthread_cond_wait(&t->start, &t->lock);
        if (t->quit) break;
        seen = t->generation;
        pthread_mutex_unlock(&t->lock);
        take_items(t, h->id);
        pthread_mutex_lock(&t->lock);
        if (--t->busy == 0) pthread_cond_signal(&t->done);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

sp_team *sp_team_init(int threads) {
    sp_team *t = calloc(1, sizeof *t);
    int want = threads > 1 ? threads - 1 : 0;
    if (!t) return NULL;
    t->tid = calloc(want ? want : 1, sizeof *t->tid);
    t->h = calloc(want ? want : 1, sizeof *t->h);
    if (!t->tid || !t->h) {
        free(t->tid);
        free(t->h);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->start, NULL);
    pthread_cond_init(&t->done, NULL);
    atomic_init(&t->next, 0);
    for (; t->helpers < want; t->helpers++) {
        t->h[t->helpers] = (helper){t, t->helpers + 1};
        if (pthread_create(&t->tid[t->helpers], NULL, helper_main, &t->h[t->helpers])) break;
    }
    return t;
}

int sp_team_size(const sp_team *t) { return t ? t->helpers + 1 : 1; }

void sp_team_run(sp_team *t, int n, sp_team_fn fn, void *arg) {
    if (!t || t->helpers == 0 || n < 2) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->arg = arg;
    t->n = n;
    atomic_store(&t->next, 0);
    t->busy = t->helpers;
    t->generation++;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    take_items(t, 0);
    pthread_mutex_lock(&t->lock);
    while (t->busy > 0) pthread_cond_wait(&t->done, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

typedef struct {
    void (*body)(void *arg, int i);
    void *arg;
} plain_loop;

static void run_plain(void *arg, int i, int thread) {
    const plain_loop *p = arg;
    (void)thread;
    p->body(p->arg, i);
}

void sp_team_for(void *team, int n, void (*body)(void *arg, int i), void *arg) {
    plain_loop p = {body, arg};
    sp_team_run(team, n, run_plain, &p);
}

void sp_team_free(sp_team *t) {
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->quit = 1;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < t->helpers; i++) pthread_join(t->tid[i], NULL);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->start);
    pthread_cond_destroy(&t->done);
    free(t->tid);
    free(t->h);
    free(t);
}
