/*
 * Replays saved inputs through a fuzz harness's LLVMFuzzerTestOneInput without
 * libFuzzer, so the committed corpora and regression inputs run in every build
 * (release with gcc, and under ASan + UBSan). Arguments are files or directories
 * (every regular file in them, sorted by name); an input that crashes the harness
 * crashes this program, which is the test's failure.
 *     fuzz_replay_model tests/fuzz/corpus/model tests/fuzz/regressions/model/x
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "replay: cannot open %s\n", path), -1;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return fprintf(stderr, "replay: out of memory for %s\n", path), -1;
    /* an exact-size copy, so a read past the input is caught as under libFuzzer */
    unsigned char *in = malloc(n ? n : 1);
    if (!in) return free(buf), -1;
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "replay: %s: not found\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= replay_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        int n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, sizeof *names * (n + 1));
            if (!nn) break;
            names = nn;
            names[n++] = strdup(e->d_name);
        }
        if (d) closedir(d);
        qsort(names, n, sizeof *names, by_name);
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            bad |= replay_file(path) != 0;
            files++;
            free(names[k]);
        }
        free(names);
    }
    printf("replayed %d input%s without a finding\n", files, files == 1 ? "" : "s");
    return bad || files == 0;
}
