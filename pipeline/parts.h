/*
 * [output] writers = K (docs/output-format.md, "Part files"; docs/cluster.md): the
 * job's images are split into K contiguous ranges on batch boundaries, so a batch's
 * maps go to exactly one writer. Rank k < K holds part file k (OUT.part-k+1-of-K.h5
 * beside OUT.h5, an ordinary salpipe output of its images), and OUT.h5 holds the
 * labels and attributes and presents every per-image dataset as a virtual dataset
 * over the parts. Rank 0 also hands out batches and computes the batches of its own
 * part; ranks 1..K-1 only write; ranks K.. compute.
 */
#ifndef SP_PARTS_H
#define SP_PARTS_H

#include "job.h"
#include "plan.h"

/* The first batch of part k (0-based; k == writers: the batch count). Parts hold
 * floor(k * batches / K) .. : they differ by at most one batch. */
int sp_parts_first_batch(const sp_plan *p, int k);

/* The first image of part k (k == writers: nimages). */
int sp_parts_first_image(const sp_plan *p, int k);

/* The part (0-based) that holds batch b. */
int sp_parts_of_batch(const sp_plan *p, int b);

/* Part k's file beside the output `out`: "DIR/NAME.part-<k+1>-of-<K>.h5" for
 * "DIR/NAME.h5" (any other name gets the suffix appended). malloc'ed; NULL when out
 * of memory. */
char *sp_parts_path(const char *out, int k, int writers);

/* Checks [output] writers against the plan and the rank count: K > 1 needs at least
 * K batches and K + 1 ranks (ranks 1..K-1 do not compute). Returns 0, or -1 with err
 * "CONFIG:LINE:COL: key 'output.writers': ..." (exit 2). ranks = 0: the batch count
 * only. */
int sp_parts_check(const sp_config *c, const sp_plan *p, int ranks, char *err, size_t errlen);

/* --check: the writers and their image ranges, one line each. */
void sp_parts_print(const sp_config *c, const sp_plan *p);

/* writers > 1, every rank, after sp_job_open_output: rank 0 sends the output's
 * path and provenance to the writer ranks, each writer creates (a new job, or
 * --overwrite) or resumes its part file, refusing a part that is missing or belongs
 * to another job by naming it; rank 0 gathers every part's /status into j->status
 * and, for a new job, creates OUT.h5 last (so a kill before leaves no OUT.h5 and
 * the next run starts again). Writer ranks keep their part in j->out and their
 * images' status in j->status (nimages entries). Returns the job's verdict, the
 * same on every rank (an exit code, run.h); each failing rank prints its message. */
int sp_parts_open(sp_job *j, int rank, int overwrite);

#endif
