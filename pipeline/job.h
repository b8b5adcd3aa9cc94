/*
 * Rank 0's side of a job before and after the work: the config, the model header
 * and the plan, checked (and printed by --check), then the output's lock, the
 * model's hash and the output file. main.c runs these around the MPI steps (sharing
 * the plan and the weights, run.c's work loop); other ranks hold only the plan and
 * the model of an sp_job.
 */
#ifndef SP_JOB_H
#define SP_JOB_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "output.h"
#include "plan.h"

typedef struct {
    pthread_t thread;
    int threaded;             /* a thread is hashing (join it)                    */
    const char *path;
    char hex[65], err[SAL_ERR_LEN];
    int rc;
} sp_job_hash;

typedef struct {
    sp_config cfg;            /* rank 0                                           */
    sp_plan plan;             /* every rank (rank 0 builds it, the others unpack) */
    sal_model *model;         /* every rank                                       */
    sp_job_hash hash;         /* rank 0: the model file's SHA-256, for the output */
    sp_output_lock *lock;     /* rank 0: the output's writer lock                 */
    sp_output *out;           /* rank 0, once opened                              */
    int8_t *status;           /* rank 0: /status as it is on disk (writers > 1:
                               * every part's, gathered); writer ranks: their part's */
    int resume;               /* rank 0: the output exists and is resumed         */
} sp_job;

/* Rank 0, first part: config, model header and plan, all checked; with `check` the
 * plan is printed and nothing else done. Otherwise the output's lock is taken (its
 * directory created) after its disk space is checked, and the model file's hash is
 * started on a thread (it takes about as long as loading the weights, which the
 * caller does meanwhile). Returns an exit code (run.h); messages go to stderr. */
int sp_job_prepare(sp_job *j, const char *config_file, int ranks, int check, int overwrite);

/* Rank 0, second part, once the weights are loaded: joins the hash, opens (creates
 * or resumes) the output with the layout the plan gives (sp_plan_output_layout),
 * and creates the previews directory. Returns an exit code. With writers > 1 the
 * output is only checked when it exists (j->resume), then closed: the parts are
 * opened next (sp_parts_open), and a new OUT.h5 is made after them. */
int sp_job_open_output(sp_job *j, int overwrite);

/* Rank 0, writers > 1 (parts.h), once every part file exists: creates OUT.h5 with
 * its virtual datasets (atomically: PATH.partial renamed). Returns an exit code. */
int sp_job_create_virtual(sp_job *j);

/* Frees whatever of the job a rank holds (joins the hash thread, closes the output
 * without caring for errors, releases the lock). */
void sp_job_free(sp_job *j);

#endif
