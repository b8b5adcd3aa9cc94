/* Scratch files and byte cursor for the fuzz harnesses (fuzz_common.h). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_common.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[512];

/* rm -r of our own scratch directory: one level of files and one of subdirectories
 * is all the harnesses make. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void cleanup(void) {
    if (scratch[0]) remove_tree(scratch);
}

const char *fz_dir(void) {
    if (scratch[0]) return scratch;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(scratch, sizeof scratch, "%s/salpipe-fuzz-%ld", base, (long)getpid());
    if (mkdir(scratch, 0700) && access(scratch, W_OK))
        fz_die("cannot make the scratch directory %s", scratch);
    atexit(cleanup);
    return scratch;
}

char *fz_path(char *buf, const char *name) {
    snprintf(buf, 4096, "%s/%s", fz_dir(), name);
    return buf;
}

void fz_write(const char *name, const void *data, size_t n, char *path_out) {
    char path[4096];
    fz_path(path, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f)) fz_die("cannot write %s", path);
    if (path_out) strcpy(path_out, path);
}

void fz_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz harness: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

void fz_note(const char *fmt, ...) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("SALPIPE_FUZZ_VERBOSE") != NULL;
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

uint8_t fz_u8(fz_bytes *b) {
    if (!b->left) return 0;
    b->left--;
    return *b->p++;
}

uint32_t fz_u32(fz_bytes *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(b) << (8 * i);
    return v;
}

uint64_t fz_u64(fz_bytes *b) {
    return fz_u32(b) | (uint64_t)fz_u32(b) << 32;
}
