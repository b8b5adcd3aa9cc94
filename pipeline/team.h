/*
 * A team of threads for a rank's parallel work: decoding and preprocessing the
 * images, the parts of the engine's matrix products (sp_team_for, lent to the engine
 * with sal_engine_set_parallel; OpenBLAS itself stays single-threaded, so the maps do
 * not depend on the thread count), compressing the maps. With `[run] threads = T` a
 * rank keeps T - 1 helper threads for the whole run; the calling thread is the T-th.
 * They sleep on a condition variable between loops.
 */
#ifndef SP_TEAM_H
#define SP_TEAM_H

typedef struct sp_team sp_team;

/* Body of a loop: handles item i on team thread `thread` (0 = the caller), which
 * indexes per-thread scratch. Items run in any order, each exactly once. */
typedef void (*sp_team_fn)(void *arg, int i, int thread);

/* Starts threads - 1 helpers. Never fails: when a helper cannot be created the team
 * is smaller (down to the caller alone); sp_team_size says how many it has. Returns
 * NULL only when out of memory. */
sp_team *sp_team_init(int threads);

/* Threads in the team, the caller included: at least 1 (1 for NULL). */
int sp_team_size(const sp_team *t);

/* Runs fn(arg, i, thread) for every i in [0, n) on the team and returns when all
 * are done. A NULL team runs the loop on the caller. Not reentrant. */
void sp_team_run(sp_team *t, int n, sp_team_fn fn, void *arg);

/* sp_team_run for bodies without a thread index, in the shape of salcore.h's
 * sal_parallel_for (team is an sp_team *). Not reentrant either. */
void sp_team_for(void *team, int n, void (*body)(void *arg, int i), void *arg);

/* Stops and joins the helpers. NULL is allowed. */
void sp_team_free(sp_team *t);

#endif
