/*
 * Shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a private scratch directory
 * per process, writing a file there, and a cursor over the fuzzer's bytes. Each
 * harness defines LLVMFuzzerTestOneInput; libFuzzer calls it in the fuzz build
 * (-DSALPIPE_FUZZ=ON, clang), replay_main.c calls it on committed inputs in every
 * other build.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A directory of this process's own under /dev/shm (or $TMPDIR, /tmp), made on
 * first use and removed at exit. */
const char *fz_dir(void);

/* fz_dir()/name into buf (4096 bytes); returns buf. */
char *fz_path(char *buf, const char *name);

/* Writes n bytes to fz_dir()/name; returns the path (static per name slot) or
 * aborts: the harness cannot go on without its files. */
void fz_write(const char *name, const void *data, size_t n, char *path_out);

/* Aborts with a message: an invariant the harness checks failed (a finding). */
void fz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Prints what the harness did with an input ("refused: ...", "loaded") when
 * SALPIPE_FUZZ_VERBOSE is set: for checking seeds and triaging findings. */
void fz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A cursor over the input: reads past the end give 0. */
typedef struct {
    const uint8_t *p;
    size_t left;
} fz_bytes;

uint8_t fz_u8(fz_bytes *b);
uint32_t fz_u32(fz_bytes *b);
uint64_t fz_u64(fz_bytes *b);

#endif
