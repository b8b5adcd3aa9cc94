/*
 * Checked MPI calls for the pipeline: on failure print the rank, the call, file:line
 * and MPI's own message, then abort the whole job (never a lone exit() in one rank).
 */
#ifndef SP_CHECK_H
#define SP_CHECK_H

#include <mpi.h>
#include <stdio.h>

#define MPI_CHECK(call)                                                              \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ != MPI_SUCCESS) {                                                    \
            char msg_[MPI_MAX_ERROR_STRING];                                         \
            int len_ = 0, rank_ = -1;                                                \
            MPI_Error_string(rc_, msg_, &len_);                                      \
            MPI_Comm_rank(MPI_COMM_WORLD, &rank_);                                   \
            fprintf(stderr, "salpipe: rank %d: %s failed at %s:%d: %s\n", rank_,     \
                    #call, __FILE__, __LINE__, msg_);                                \
            MPI_Abort(MPI_COMM_WORLD, 3);                                            \
        }                                                                            \
    } while (0)

#endif
