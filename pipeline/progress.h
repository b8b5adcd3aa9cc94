/*
 * Progress on rank 0's stderr: images done of total, maps per second, ETA. On a
 * terminal one line is redrawn in place; otherwise (SLURM logs) a line is printed
 * every few seconds. Quiet mode prints nothing but the notes.
 */
#ifndef SP_PROGRESS_H
#define SP_PROGRESS_H

typedef struct {
    int total, start_done;   /* images in the job, done before this run      */
    int tty, quiet, drawn;   /* stderr is a terminal; a line is on screen    */
    double t0, last;         /* start of this run, last line printed         */
} sp_progress;

void sp_progress_init(sp_progress *p, int total, int already_done, int quiet);
/* images: finished (done or failed) in this run; maps: computed in this run. */
void sp_progress_update(sp_progress *p, int images, double maps);
/* A message on its own line (clears a redrawn line first). */
void sp_progress_note(sp_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The closing line: images and maps of this run, with the rate. */
void sp_progress_finish(sp_progress *p, int images, double maps);

#endif
