/*
 * Private to output.c and output_layout.c: the open output file and the helpers
 * both halves use to build error messages from HDF5's error stack.
 */
#ifndef SP_OUTPUT_INTERNAL_H
#define SP_OUTPUT_INTERNAL_H

#include <hdf5.h>

#include "output.h"

/* Magic name and version of the layout, root attributes salpipe_format and
 * salpipe_format_version. A change that old readers would misread bumps it. */
#define SPO_FORMAT_NAME "salpipe-saliency"
#define SPO_FORMAT_VERSION 1

/* Image rows per chunk of /status, /error and /activation. */
#define SPO_ROWS_PER_CHUNK 1024

/* The datasets sp_output writes after creation (-1: absent from this layout:
 * /saliency without map methods, /gradcam without gradcam, the gap without IG). */
#define SPO_NDSETS 6
typedef struct {
    hid_t saliency, activation, status, error, gradcam, ig_gap;
} spo_dsets;

/* Their names, in the order of the struct. */
extern const char *const spo_dset_names[SPO_NDSETS];
hid_t *spo_dset_ids(spo_dsets *d, int i);

/* The gap dataset's attribute "definition". */
#define SPO_GAP_DEFINITION "sum of the attributions - (F(x) - F(baseline))"

/* Creates every dataset, scale and attribute of SPEC §4 in a new file and writes
 * the labels. On failure returns SP_OUT_IOERR with err set; datasets opened so far
 * are closed. */
int spo_layout_create(hid_t file, const char *path, const sp_output_layout *lay,
                      spo_dsets *d, char *err, size_t errlen);

/* Checks that an existing file is a salpipe output made for `lay` (returns
 * SP_OUT_MISMATCH saying what differs) and opens its datasets. */
int spo_layout_check(hid_t file, const char *path, const sp_output_layout *lay,
                     spo_dsets *d, char *err, size_t errlen);

void spo_dsets_close(spo_dsets *d);

/* Formats "fmt: reason" into err, where reason is the innermost message on HDF5's
 * error stack (its OS error text when there is one). Returns code. Call right
 * after the failing HDF5 call: the next call clears the stack. */
int spo_h5err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Makes fapl use the journaling file driver of journal.c, under which every
 * H5Fflush reaches the disk as a whole or not at all. -1 on failure. */
int spo_use_journal_driver(hid_t fapl);

/* Completes the flush a kill interrupted, from the journal at the end of the file
 * open read-write on fd. 1 replayed, 0 nothing to do, -1 I/O error (errno). */
int spo_journal_recover(int fd);

/* SP_OUT_IOERR with err set when a program other than us has the file open on
 * fd open for writing: one holding HDF5's flock (LOCK_EX), or on this host any
 * descriptor open for writing. Else takes flock(LOCK_SH) on fd, which keeps HDF5
 * writers out (not readers) until fd is closed, and returns SP_OUT_OK. */
int spo_refuse_other_writers(int fd, const char *path, char *err, size_t errlen);

/* Variable-length UTF-8 string type (caller closes). */
hid_t spo_vlen_str(void);

#endif
