/*
 * Telling a dead rank from a slow one. Open MPI's mpirun ends the whole job when a
 * rank dies (SIGTERM to the others, SIGKILL a second later) and says which rank;
 * other launchers (srun without --kill-on-bad-exit, mpirun --enable-recovery)
 * leave the others waiting for it for ever. So every rank learns at start where
 * the others run (host, pid, process start time), and watches the other ranks
 * of its node (and pid namespace); rank 0 acts on any death there, the others
 * only on rank 0's. A watched rank whose process is gone (or is another process
 * with the same pid) is dead. Ranks on other nodes are left to the launcher and
 * the MPI library.
 *
 * The check reads /proc/PID/stat with open/read/close only, so it runs in the
 * stop-signal handler too: mpirun's SIGTERM then comes with a message that names
 * the rank that died, even when mpirun's SIGKILL follows before the rank gets
 * back to its work loop. Only the first death a rank sees is reported (by rank 0,
 * or for rank 0 by the lowest rank of its node): what follows it is the job's end.
 *
 * The table is process-wide, like MPI_COMM_WORLD it describes: set once by
 * sp_peers_init before any wait, read-only after.
 */
#ifndef SP_PEERS_H
#define SP_PEERS_H

/* Collective over MPI_COMM_WORLD: exchanges the ranks' whereabouts and chooses
 * whom this rank watches. Without it (or when it fails) nobody is watched. */
void sp_peers_init(int rank, int size);

/* Rank 0: the output path, named in the message about a dead rank. Not while
 * signals may arrive on another thread: call before the run starts. */
void sp_peers_set_output(const char *path);

/* Checks the watched ranks; returns how many have been found dead so far (0:
 * none). The first call that finds one prints what happened with how to resume
 * (on rank 0; elsewhere only on the one rank chosen to report rank 0's death).
 * Thread-safe and async-signal-safe. */
int sp_peers_check(void);

/* sp_peers_check at most every half second (for wait loops), else the count of
 * the last check. Not async-signal-safe. */
int sp_peers_poll(void);

/* sp_peers_poll, and whether this rank should end the job: on rank 0 some
 * watched rank has died, elsewhere rank 0 has. */
int sp_peers_give_up(void);

/* Whether a check has found rank r dead. */
int sp_peers_dead(int r);

/* Prints which rank died (the first found dead), unless this process already
 * has: for a rank about to end the job. */
void sp_peers_say_why(void);

/* Stops the checks, for the job's end: ranks leave one by one from there on
 * (and mpirun sends SIGTERM to the others when one leaves with a code not 0),
 * which is not a death. Async-signal-safe. */
void sp_peers_disarm(void);

/* Whether a check has found any rank dead: then the job cannot end with
 * collective calls, and rank 0 ends it with MPI_Abort once its output is closed. */
int sp_peers_lost(void);

#endif
