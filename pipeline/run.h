/*
 * Running a plan over the ranks of MPI_COMM_WORLD. Images go out in fixed batches
 * (batch k = images [k*B, (k+1)*B) of the whole list, so a map never depends on
 * which rank computed it or on how often the run was resumed) by self-scheduling:
 * a rank that finishes a batch sends its results to rank 0 and gets the next one.
 * Rank 0 writes every result; it computes too, while a coordinator thread answers
 * the other ranks. With [output] writers = K > 1 (parts.h) results go to the writer
 * rank of their batch's part instead, and the rank then asks rank 0 for work.
 */
#ifndef SP_RUN_H
#define SP_RUN_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "output.h"
#include "plan.h"

/* Exit codes (SPEC §2), plus 4: stopped by a signal before every image was done. */
enum { SP_EXIT_OK = 0, SP_EXIT_FAILED_IMAGES = 1, SP_EXIT_CONFIG = 2, SP_EXIT_IO = 3,
       SP_EXIT_STOPPED = 4 };

typedef struct {
    int rank, size;
    const sp_plan *plan;
    sal_model *model;             /* opened and loaded in plan->precision           */
    sp_output *out;               /* rank 0 only                                    */
    int8_t *status;               /* rank 0 only: /status as it is on disk now      */
    int quiet;
    volatile sig_atomic_t *stop;  /* set by SIGTERM/SIGUSR1/SIGINT                  */
} sp_run_ctx;

/* Computes every batch that still has an image not done. Returns an exit code;
 * on rank 0 it says how the whole job went, on other ranks it is SP_EXIT_OK unless
 * this rank could not start. Failures of single images are recorded, not fatal. */
int sp_run(sp_run_ctx *ctx);

/* Waits for req by polling with short sleeps. Open MPI's blocking calls spin, and a
 * rank spinning while another works (rank 0's setup, writing and last batch, a node
 * leader's loading of the weights) takes a core from it when ranks fill the node.
 * Only for small messages and synchronisations: a large transfer over a transport
 * that needs the waiting side to progress it would be slowed down. */
void sp_wait_patiently(MPI_Request *req);

#endif
