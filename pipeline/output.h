/*
 * The output file (SPEC §4): one HDF5 file written by one rank (rank 0, or with
 * [output] writers = K each writer rank's part file; parts.h). Maps arrive
 * already compressed (sp_chunk_compress, run on the worker that computed them) and
 * are written as they are with H5Dwrite_chunk.
 *
 * Crash safety: after sp_output_flush returns, everything written so far is on disk
 * in a consistent file; a kill at any later moment loses at most what was written
 * since. Status of an image is set to done only in the same flush as its maps. A
 * kill during a flush leaves the previous state or the new one (the next
 * sp_output_open completes an interrupted flush); docs/output-format.md.
 *
 * The layout's strings need to live only during sp_output_open. One thread at a
 * time may call these functions on one sp_output, not necessarily the one that
 * opened it.
 */
#ifndef SP_OUTPUT_H
#define SP_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "salcore.h"

enum { SP_OUT_OK = 0, SP_OUT_MISMATCH = 2, SP_OUT_IOERR = 3 }; /* = exit codes */

typedef struct sp_output_lock sp_output_lock;

/* One parameter of a method, stored as a root attribute named `name` (scalar). */
typedef enum { SP_PARAM_INT = 0, SP_PARAM_UINT64, SP_PARAM_DOUBLE, SP_PARAM_STRING }
    sp_param_kind;
typedef struct {
    const char *name;            /* "smoothgrad_samples", ... (output-format.md)  */
    sp_param_kind kind;          /* stored as int32, uint64, float64 or a string  */
    int64_t i;                   /* INT                                          */
    uint64_t u;                  /* UINT64                                       */
    double d;                    /* DOUBLE                                       */
    const char *s;               /* STRING                                       */
    const char *absent;          /* STRING: what a file without the attribute was
                                  * made with (one from before the parameter
                                  * existed); NULL: such a file is refused        */
} sp_output_param;

#define SP_OUTPUT_MAX_PARAMS 16

typedef struct {
    int nimages, ntargets;
    int nmethods;                /* /saliency's methods: all asked but gradcam (0:
                                  * only gradcam; no /saliency then)             */
    int gradcam;                 /* 1: gradcam asked, /gradcam (image, target, y, x) */
    int ig_gap;                  /* 1: integrated_gradients asked,
                                  * /integrated_gradients_gap (image, target)     */
    int channels, height, width;
    sal_precision precision;     /* dtype of /saliency, /gradcam and /activation */
    int compression;             /* deflate level; shuffle too when > 0          */
    const char *const *images;   /* nimages display paths                        */
    const char *const *target_layers; /* ntargets                                */
    const int32_t *target_units; /* ntargets, 1-based                            */
    const char *const *methods;  /* nmethods names                               */
    const sp_output_param *params; /* the methods' parameters (only those of the
                                  * methods asked for), nparams <= SP_OUTPUT_MAX_PARAMS */
    int nparams;
    /* provenance, stored as root attributes */
    const char *salpipe_version, *config_path, *config_text;
    const char *model_path, *model_sha256, *model_name;
    const sal_preprocess *preprocess; /* with the resize mode in effect          */
    /* [output] writers = K (docs/output-format.md, "Part files"): */
    int writers;                 /* K; 0 or 1: one plain file, nothing below     */
    int part;                    /* 0: the job's file; with writers > 1 its per-
                                  * image datasets are virtual datasets over the
                                  * parts. k >= 1: part file k of writers, an
                                  * ordinary output of images first_image ..     */
    int first_image;             /* part: the job's index of images[0]           */
    const char *const *part_files; /* job's file, writers > 1: each part's file
                                  * name, relative to the job file's directory   */
    const int32_t *part_first;   /* job's file, writers > 1: writers + 1 image
                                  * bounds, part k holds [part_first[k-1], part_first[k]) */
    sp_output_lock *lock;        /* the writer's lock, taken by the caller (who
                                  * releases it after sp_output_close); NULL:
                                  * sp_output_open takes it, sp_output_close
                                  * releases it                                 */
} sp_output_layout;

typedef struct sp_output sp_output;

/* One writer per output (output_lock.c): takes an exclusive lock on PATH.lock,
 * which records "salpipe pid N on host H since T", before anything of PATH is
 * touched. Returns SP_OUT_OK with *lock set (err[0] == 0, or a warning in err
 * when the file system has no locks and the run goes on unlocked), or
 * SP_OUT_IOERR with err naming the file and, when another salpipe holds the
 * lock, its host and pid. A lock dies with its holder: it is never stale. */
int sp_output_lock_take(const char *path, sp_output_lock **lock, char *err,
                        size_t errlen);

/* Removes PATH.lock and releases the lock (NULL: nothing). */
void sp_output_lock_release(sp_output_lock *lock);

/* Creates the file, or (overwrite == 0 and the file exists) opens it to resume.
 * Refuses (SP_OUT_IOERR) while another salpipe holds the lock (see lay->lock), or
 * another program has PATH open for writing (an existing PATH is then neither
 * resumed nor replaced).
 * On resume, refuses (SP_OUT_MISMATCH) a file made for another model (SHA-256),
 * image list, targets, methods (including a /gradcam or /integrated_gradients_gap
 * present or absent against the plan), method parameters, precision or
 * preprocessing, with a message that
 * says which differs and to use --overwrite. status[nimages] receives /status
 * (all 0 for a new file). Returns SP_OUT_OK, SP_OUT_MISMATCH or SP_OUT_IOERR. */
int sp_output_open(const char *path, const sp_output_layout *lay, int overwrite,
                   sp_output **out, int8_t *status, char *err, size_t errlen);

/* Writes image i's maps: chunks[t * nmethods + m] of chunk_bytes[...] bytes as
 * sp_chunk_compress made them, when gradcam its Grad-CAM maps cams[t] of
 * cam_bytes[t] bytes (else NULL), its ntargets activations (precision's type) and,
 * when ig_gap, its ntargets completeness gaps (doubles, may be unaligned; else NULL).
 * Sets status 1 (flushed with the next sp_output_flush, like the activations and
 * the gaps). */
int sp_output_write_image(sp_output *o, int image, const void *const *chunks,
                          const size_t *chunk_bytes, const void *const *cams,
                          const size_t *cam_bytes, const void *activations,
                          const void *gaps, char *err, size_t errlen);

/* Records image i as failed (status -1) with a message for /error. */
int sp_output_fail_image(sp_output *o, int image, const char *message, char *err,
                         size_t errlen);

/* Makes everything written so far durable and consistent on disk. */
int sp_output_flush(sp_output *o, char *err, size_t errlen);

/* Flushes and closes; o is freed even on error. */
int sp_output_close(sp_output *o, char *err, size_t errlen);

/* Compresses one map chunk as HDF5's shuffle + deflate filters would (level 0:
 * copied unchanged). out must hold sp_chunk_bound(nbytes) bytes. Returns the
 * compressed size, or 0 on failure. scratch holds nbytes bytes (for the shuffle).
 * Thread-safe, no HDF5 calls. */
size_t sp_chunk_bound(size_t nbytes);
size_t sp_chunk_compress(void *out, const void *in, size_t nbytes, size_t elem_size,
                         int level, void *scratch);

/* SHA-256 of a file as 64 hex digits + NUL into hex[65]. */
int sp_sha256_file(const char *path, char hex[65], char *err, size_t errlen);
/* Whether sp_sha256_file may use the CPU's SHA instructions (the default when it
 * has them); returns whether it will. For tests, which check both ways. */
int sp_sha256_hardware(int allow);

#endif
