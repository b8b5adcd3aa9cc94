/*
 * Shared by test_output.c and test_output_crash.c: a small job layout, map values
 * from a formula (check_output.py repeats it), writing one image, and reading a file
 * back with plain HDF5 the way a reader sees it.
 */
#ifndef OUTPUT_CHECK_H
#define OUTPUT_CHECK_H

#include <stdio.h>

#include "output.h"

extern int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

/* The message image 1 fails with; its \xff must come back as '?'. */
extern const char *const FAIL_MESSAGE;

/* Targets conv5:3 and fc3:540, methods vanilla and guided, ImageNet preprocessing;
 * images a.jpg, b.jpg, dir/ü.png when there are 3, else img00000.jpg ... */
typedef struct {
    char **names;
    const char *layers[2];
    int32_t units[2];
    const char *methods[2];
    sal_preprocess pp;
    sp_output_layout lay;
} fixture;

void fixture_init(fixture *f, int nimages, int C, int H, int W, sal_precision p, int level);
void fixture_free(fixture *f);
size_t map_bytes(const sp_output_layout *l);
/* Writes image i's 4 maps (compressed at the layout's level) and activations. */
int write_image(sp_output *o, const sp_output_layout *l, int i, char *err);
/* check_output.py check PATH f32|f64 LEVEL STATUS; its exit status. */
int run_check(const char *py, const char *script, const char *path, int f64, int level,
              const char *status);
/* Number of images with status 1 (all exact), or -1 if the file does not open;
 * *unreadable counts not-done images whose maps cannot be read. */
int verify_file(const char *path, const sp_output_layout *l, int *unreadable);
void mkdir_p(const char *dir);

#endif
