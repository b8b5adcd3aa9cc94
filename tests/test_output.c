/*
 * Tests of the output file (pipeline/output.h), checked from C and, through
 * check_output.py, with h5py and xarray as users read it.
 *
 *   test_output basic  DIR PYTHON CHECK_PY   write, read back, resume, refusals
 *   test_output sha256 DIR PYTHON CHECK_PY   FIPS vectors and hashlib
 *   test_output bench  DIR [MAP.raw]         compression and write throughput
 *
 * Crashes are test_output_crash.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "output_check.h"

/* ---- basic ------------------------------------------------------------------- */

static int expect(int rc, int want, const char *err, const char *substr, const char *what) {
    int ok = rc == want && (!substr || strstr(err, substr));
    CHECK(ok, "%s: rc %d (want %d), message '%s' (want '%s')", what, rc, want, err,
          substr ? substr : "");
    if (ok && rc) printf("  ok %-28s %s\n", what, err);
    return ok;
}

static void test_write_resume(const char *dir, const char *py, const char *script) {
    char path[1024], err[1024];
    for (int f64 = 0; f64 < 2; f64++)
        for (int level = 0; level <= 4; level += 4) {
            fixture f;
            fixture_init(&f, 3, 3, 8, 8, f64 ? SAL_F64 : SAL_F32, level);
            snprintf(path, sizeof path, "%s/basic_%s_%d.h5", dir, f64 ? "f64" : "f32", level);
            unlink(path);
            sp_output *o;
            int8_t st[3] = {9, 9, 9};
            int rc = sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err);
            CHECK(rc == SP_OUT_OK, "create %s: %s", path, err);
            if (rc) continue;
            CHECK(st[0] == 0 && st[1] == 0 && st[2] == 0, "new file status");
            CHECK(write_image(o, &f.lay, 0, err) == 0, "write: %s", err);
            CHECK(sp_output_fail_image(o, 1, FAIL_MESSAGE, err, sizeof err) == 0, "fail: %s", err);
            CHECK(sp_output_flush(o, err, sizeof err) == 0, "flush: %s", err);
            /* Readable by h5py and xarray while still open for writing. */
            CHECK(run_check(py, script, path, f64, level, "1,-1,0") == 0, "%s while open", path);
            CHECK(sp_output_close(o, err, sizeof err) == 0, "close: %s", err);
            CHECK(run_check(py, script, path, f64, level, "1,-1,0") == 0, "%s closed", path);

            rc = sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err);
            CHECK(rc == SP_OUT_OK, "resume %s: %s", path, err);
            if (rc) continue;
            CHECK(st[0] == 1 && st[1] == -1 && st[2] == 0, "resumed status %d %d %d", st[0],
                  st[1], st[2]);
            CHECK(write_image(o, &f.lay, 2, err) == 0, "write: %s", err);
            CHECK(write_image(o, &f.lay, 1, err) == 0, "write: %s", err);
            CHECK(sp_output_close(o, err, sizeof err) == 0, "close: %s", err);
            CHECK(run_check(py, script, path, f64, level, "1,1,1") == 0, "%s complete", path);
            char partial[1100];
            snprintf(partial, sizeof partial, "%s.partial", path);
            CHECK(access(partial, F_OK) != 0, "%s left behind", partial);
            fixture_free(&f);
        }
}

typedef struct {
    const char *what, *substr;
    void (*mutate)(fixture *f);
} mutation;

static void m_image(fixture *f) { free(f->names[1]); f->names[1] = strdup("c.jpg"); }
static void m_count(fixture *f) { f->lay.nimages = 2; }
static void m_target(fixture *f) { f->units[1] = 541; }
static void m_method(fixture *f) { f->methods[1] = "deconvnet"; }
static void m_model(fixture *f) { f->lay.model_sha256 = "ffff456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; }
static void m_precision(fixture *f) { f->lay.precision = SAL_F64; }
static void m_mean(fixture *f) { f->pp.mean[2] = 0.5; }
static void m_resize(fixture *f) { f->pp.resize_crop = 1; }
static void m_size(fixture *f) { f->pp.height = f->pp.width = 227; }
static void m_level(fixture *f) { f->lay.compression = 0; }
static void m_shape(fixture *f) { f->lay.height = 9; }

static void test_refusals(const char *dir) {
    static const mutation muts[] = {
        {"image name", "another image list (/image[1] is 'b.jpg' in the file, 'c.jpg' in this config)", m_image},
        {"image count", "another image list (3 images in the file, 2 in this config)", m_count},
        {"target", "another target list (/target[1] is 'fc3:540' in the file, 'fc3:541'", m_target},
        {"method", "another method list (/method[1] is 'guided' in the file, 'deconvnet'", m_method},
        {"model", "another model (SHA-256 0123456789abcdef... in the file, ffff456789abcdef...", m_model},
        {"precision", "precision float32; this config asks for float64", m_precision},
        {"normalization", "another normalization", m_mean},
        {"resize mode", "another resize mode ('stretch' in the file, 'crop' in this config)", m_resize},
        {"input size", "another input size (224x224 in the file, 227x227", m_size},
        {"compression on/off", "was made with compression and this config asks for compression = 0", m_level},
        {"map shape", "holds maps of 3x8x8, this run makes 3x9x8", m_shape},
    };
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/basic_f32_4.h5", dir);
    int8_t st[3];
    sp_output *o = NULL;
    for (size_t k = 0; k < sizeof muts / sizeof *muts; k++) {
        fixture f;
        fixture_init(&f, 3, 3, 8, 8, SAL_F32, 4);
        muts[k].mutate(&f);
        int rc = sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err);
        if (expect(rc, SP_OUT_MISMATCH, err, muts[k].substr, muts[k].what))
            CHECK(strstr(err, path) && strstr(err, "use --overwrite"), "hint: %s", err);
        if (rc == SP_OUT_OK) sp_output_close(o, err, sizeof err);
        f.lay.nimages = 3;
        fixture_free(&f);
    }
    /* Another deflate level is fine: readers do not care. The file is intact. */
    fixture f;
    fixture_init(&f, 3, 3, 8, 8, SAL_F32, 6);
    int rc = sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err);
    CHECK(rc == 0 && st[0] == 1 && st[1] == 1 && st[2] == 1, "level 6 resume: %s", err);
    if (rc == 0) sp_output_close(o, err, sizeof err);

    /* Files that are not salpipe outputs are refused and left untouched. */
    char other[1100];
    snprintf(other, sizeof other, "%s/notes.h5", dir);
    FILE *t = fopen(other, "w");
    fputs("my notes\n", t);
    fclose(t);
    expect(sp_output_open(other, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_MISMATCH, err,
           "exists and is not an HDF5 file; use --overwrite", "text file");
    t = fopen(other, "r");
    char line[32] = "";
    CHECK(fgets(line, sizeof line, t) && strcmp(line, "my notes\n") == 0, "text file changed");
    fclose(t);
    snprintf(other, sizeof other, "%s/plain.h5", dir);
    hid_t h = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(h, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(h);
    expect(sp_output_open(other, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_MISMATCH, err,
           "is an HDF5 file but not a salpipe output", "plain HDF5 file");
    /* A damaged copy: the superblock survives, the rest is cut off. */
    snprintf(other, sizeof other, "%s/damaged.h5", dir);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "head -c 1500 '%s' > '%s'", path, other);
    CHECK(system(cmd) == 0, "%s", cmd);
    expect(sp_output_open(other, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_MISMATCH, err,
           "use --overwrite", "damaged file");
    fixture_free(&f);
}

static void test_io_errors(const char *dir) {
    fixture f;
    fixture_init(&f, 3, 3, 8, 8, SAL_F32, 4);
    char path[1024], err[1024];
    int8_t st[3];
    sp_output *o = NULL;
    snprintf(path, sizeof path, "%s/no/such/dir/out.h5", dir);
    expect(sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_IOERR, err,
           "does not exist", "missing directory");
    snprintf(path, sizeof path, "%s/basic_f32_4.h5/out.h5", dir);
    expect(sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err), SP_OUT_IOERR, err,
           "Not a directory", "parent is a file");
    expect(sp_output_open(dir, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_IOERR, err,
           "Is a directory", "path is a directory");
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/readonly", dir);
        mkdir(path, 0755);
        chmod(path, 0555);
        snprintf(path, sizeof path, "%s/readonly/out.h5", dir);
        expect(sp_output_open(path, &f.lay, 0, &o, st, err, sizeof err), SP_OUT_IOERR, err,
               "Permission denied", "read-only directory");
    }
    /* A full disk, as a file size limit: writes fail with EFBIG in a child. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fixture g;
        fixture_init(&g, 200, 3, 64, 64, SAL_F32, 0);
        snprintf(path, sizeof path, "%s/full.h5", dir);
        unlink(path);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {256 << 10, 256 << 10};
        setrlimit(RLIMIT_FSIZE, &rl);
        int8_t s[200];
        if (sp_output_open(path, &g.lay, 1, &o, s, err, sizeof err)) _exit(2);
        int rc = 0;
        for (int i = 0; i < 200 && !rc; i++) {
            rc = write_image(o, &g.lay, i, err);
            if (!rc && i % 4 == 3) rc = sp_output_flush(o, err, sizeof err);
        }
        printf("  child: rc %d: %s\n", rc, err);
        int ok = rc == SP_OUT_IOERR && strstr(err, "File too large") && strstr(err, path);
        sp_output_close(o, err, sizeof err);
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    int ws;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "disk full: child status %d", ws);

    /* A second writer of the same file is refused while the first one runs. */
    snprintf(path, sizeof path, "%s/locked.h5", dir);
    sp_output *o2 = NULL;
    int rc = sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err);
    CHECK(rc == 0, "lock test create: %s", err);
    expect(sp_output_open(path, &f.lay, 0, &o2, st, err, sizeof err), SP_OUT_IOERR, err,
           "another salpipe run is writing this file", "second writer");
    expect(sp_output_open(path, &f.lay, 1, &o2, st, err, sizeof err), SP_OUT_IOERR, err,
           "another salpipe run is writing this file", "second writer, overwrite");
    if (rc == 0) CHECK(sp_output_close(o, err, sizeof err) == 0, "%s", err);
    fixture_free(&f);
}

static void test_overwrite(const char *dir, const char *py, const char *script) {
    fixture f;
    fixture_init(&f, 3, 3, 8, 8, SAL_F32, 4);
    f.units[1] = 541; /* differs from the file: --overwrite replaces it anyway */
    char path[1024], err[1024];
    int8_t st[3] = {9, 9, 9};
    sp_output *o;
    snprintf(path, sizeof path, "%s/basic_f32_4.h5", dir);
    int rc = sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err);
    CHECK(rc == 0 && st[0] == 0 && st[1] == 0 && st[2] == 0, "overwrite: %s", err);
    if (rc == 0) sp_output_close(o, err, sizeof err);
    f.units[1] = 540;
    rc = sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err);
    CHECK(rc == 0, "overwrite: %s", err);
    if (rc == 0) sp_output_close(o, err, sizeof err);
    CHECK(run_check(py, script, path, 0, 4, "0,0,0") == 0, "%s after overwrite", path);
    snprintf(path, sizeof path, "%s/notes.h5", dir);
    rc = sp_output_open(path, &f.lay, 1, &o, st, err, sizeof err);
    CHECK(rc == 0, "overwrite a text file: %s", err);
    if (rc == 0) sp_output_close(o, err, sizeof err);
    fixture_free(&f);
}

/* sp_chunk_compress must produce the bytes HDF5's own filters store. */
static void test_chunk_bytes(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/filters.h5", dir);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t types[3] = {H5T_NATIVE_FLOAT, H5T_NATIVE_DOUBLE, H5T_NATIVE_SHORT};
    const int n = 3 * 40 * 40;
    for (int ti = 0; ti < 3; ti++)
        for (int level = 1; level <= 9; level += 4) {
            size_t es = H5Tget_size(types[ti]), nb = es * n;
            unsigned char *data = malloc(nb), *mine = malloc(sp_chunk_bound(nb)),
                          *theirs = malloc(2 * nb + 64), *scratch = malloc(nb);
            unsigned rng = 12345;
            for (int k = 0; k < n; k++) {
                rng = rng * 1103515245u + 12345u;
                double v = sin(k * 0.01) * 1e-3 + (double)(rng >> 8) * 1e-12;
                if (ti == 0) ((float *)data)[k] = (float)v;
                else if (ti == 1) ((double *)data)[k] = v;
                else ((short *)data)[k] = (short)(v * 3e7);
            }
            hsize_t dims[2] = {2, (hsize_t)n}, chunk[2] = {1, (hsize_t)n};
            hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 2, chunk);
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)level);
            char name[32];
            snprintf(name, sizeof name, "t%d_l%d", ti, level);
            hid_t ds = H5Dcreate2(file, name, types[ti], space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            hsize_t start[2] = {1, 0};
            hid_t ms = H5Screate_simple(2, chunk, NULL);
            H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, chunk, NULL);
            H5Dwrite(ds, types[ti], ms, space, H5P_DEFAULT, data);
            H5Dflush(ds);
            hsize_t off[2] = {1, 0}, stored = 0;
            uint32_t mask = 99;
            H5Dget_chunk_storage_size(ds, off, &stored);
            H5Dread_chunk(ds, H5P_DEFAULT, off, &mask, theirs);
            /* Ours need not be HDF5's bytes (we store the random low byte planes
             * uncompressed), but HDF5 must decode it to the same data and it must
             * not be much larger than HDF5's own. */
            size_t got = sp_chunk_compress(mine, data, nb, es, level, scratch);
            hsize_t off0[2] = {0, 0};
            herr_t wr = got ? H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off0, got, mine) : -1;
            unsigned char *back = malloc(nb);
            hsize_t start0[2] = {0, 0};
            H5Sselect_hyperslab(space, H5S_SELECT_SET, start0, NULL, chunk, NULL);
            herr_t rd = wr >= 0 ? H5Dread(ds, types[ti], ms, space, H5P_DEFAULT, back) : -1;
            CHECK(mask == 0 && wr >= 0 && rd >= 0 && memcmp(back, data, nb) == 0 &&
                      got <= stored + stored / 20 + 64,
                  "elem %zu level %d: %zu bytes (HDF5's own %llu), HDF5 decodes it to the data",
                  es, level, got, (unsigned long long)stored);
            free(back);
            size_t raw = sp_chunk_compress(mine, data, nb, es, 0, NULL);
            CHECK(raw == nb && memcmp(mine, data, nb) == 0, "level 0 is a copy");
            H5Sclose(ms);
            H5Dclose(ds);
            H5Pclose(dcpl);
            H5Sclose(space);
            free(data);
            free(mine);
            free(theirs);
            free(scratch);
        }
    H5Fclose(file);
}

/* ---- sha256 ------------------------------------------------------------------- */

static void test_sha256(const char *dir, const char *py, const char *script) {
    static const struct { const char *name; long len; const char *text, *hex; } v[] = {
        {"empty", 0, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 3, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"448bits", 56, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"million_a", 1000000, NULL, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    static const long lens[] = {1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 65535, 65536, 65537,
                                300001, 1048575, 1048576, 1048577, 2500003};
    char path[1024], manifest[1024], hex[65], hex_c[65], err[1024];
    /* The SHA-instruction path when the CPU has it, checked against the portable C
     * function on every file as well as against the vectors and hashlib. */
    int hw = sp_sha256_hardware(1);
    printf("sha256: %s\n", hw ? "SHA instructions and portable C" : "portable C only");
    snprintf(manifest, sizeof manifest, "%s/sha256_manifest.txt", dir);
    FILE *man = fopen(manifest, "w");
    int nv = sizeof v / sizeof *v, nl = sizeof lens / sizeof *lens;
    unsigned rng = 7;
    for (int k = 0; k < nv + nl; k++) {
        snprintf(path, sizeof path, "%s/sha_%d.bin", dir, k);
        FILE *f = fopen(path, "wb");
        long len = k < nv ? v[k].len : lens[k - nv];
        for (long i = 0; i < len; i++) {
            rng = rng * 1103515245u + 12345u;
            fputc(k < nv ? (v[k].text ? v[k].text[i] : 'a') : (int)(rng >> 16) & 255, f);
        }
        fclose(f);
        CHECK(sp_sha256_file(path, hex, err, sizeof err) == 0, "%s", err);
        sp_sha256_hardware(0);
        CHECK(sp_sha256_file(path, hex_c, err, sizeof err) == 0, "%s", err);
        sp_sha256_hardware(1);
        CHECK(strcmp(hex, hex_c) == 0, "length %ld: %s with the SHA instructions, %s without",
              len, hex, hex_c);
        if (k < nv) CHECK(strcmp(hex, v[k].hex) == 0, "%s: %s", v[k].name, hex);
        fprintf(man, "%s %s\n", hex, path);
    }
    fclose(man);
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s' '%s' sha256 '%s'", py, script, manifest);
    CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/no_such_model.h5", dir);
    CHECK(sp_sha256_file(path, hex, err, sizeof err) != 0 && strstr(err, path) &&
              strstr(err, "No such file"), "missing file: %s", err);
}

/* ---- bench -------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void bench(const char *dir, const char *raw_path) {
    const size_t n = 3 * 224 * 224, nb = n * 4;
    float *map = malloc(nb);
    FILE *f = raw_path ? fopen(raw_path, "rb") : NULL;
    if (!f || fread(map, 4, n, f) != n) {
        printf("bench: %s; using a synthetic map\n", raw_path ? "cannot read map" : "no map given");
        unsigned rng = 1;
        for (size_t k = 0; k < n; k++) {
            rng = rng * 1103515245u + 12345u;
            map[k] = (float)(sin(k * 0.003) * 1e-3 + ((double)(rng >> 8) / 16777216.0 - 0.5) * 1e-4);
        }
    }
    if (f) fclose(f);
    unsigned char *out = malloc(sp_chunk_bound(nb)), *scratch = malloc(nb);
    size_t csize = 0;
    for (int level = 1; level <= 6; level += (level == 1 ? 3 : 2)) {
        int reps = 0;
        double t0 = now_s(), t;
        do {
            csize = sp_chunk_compress(out, map, nb, 4, level, scratch);
            reps++;
        } while ((t = now_s() - t0) < 2.0);
        printf("bench: compress level %d: %.1f MB/s, %.1f chunks/s, ratio %.3f (%zu -> %zu bytes)\n",
               level, reps * nb / t / 1e6, reps / t, (double)csize / nb, nb, csize);
    }
    csize = sp_chunk_compress(out, map, nb, 4, 4, scratch);
    /* Rank 0's part: H5Dwrite_chunk of compressed maps, flushing every 8 images. */
    fixture fx;
    const int nimg = 400;
    fixture_init(&fx, nimg, 3, 224, 224, SAL_F32, 4);
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/bench.h5", dir);
    int8_t *st = malloc(nimg);
    sp_output *o;
    if (sp_output_open(path, &fx.lay, 1, &o, st, err, sizeof err)) {
        printf("bench: %s\n", err);
        return;
    }
    const void *chunks[4] = {out, out, out, out};
    size_t bytes[4] = {csize, csize, csize, csize};
    float act[2] = {1, 2};
    double t0 = now_s(), tflush = 0;
    for (int i = 0; i < nimg; i++) {
        if (sp_output_write_image(o, i, chunks, bytes, NULL, NULL, act, NULL, err, sizeof err)) printf("%s\n", err);
        if (i % 8 == 7) {
            double a = now_s();
            sp_output_flush(o, err, sizeof err);
            tflush += now_s() - a;
        }
    }
    sp_output_close(o, err, sizeof err);
    double t = now_s() - t0;
    printf("bench: H5Dwrite_chunk: %d chunks of %zu bytes in %.2f s: %.0f chunks/s, %.0f MB/s "
           "(%.0f%% of it in %d flushes, %.1f ms each)\n",
           4 * nimg, csize, t, 4 * nimg / t, 4.0 * nimg * csize / t / 1e6, 100 * tflush / t,
           nimg / 8, 1e3 * tflush / (nimg / 8));
    unlink(path);
    fixture_free(&fx);
    free(st);
    free(map);
    free(out);
    free(scratch);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_output basic|sha256|bench DIR [PYTHON CHECK_PY]\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2];
    const char *py = argc > 3 ? argv[3] : "python3", *script = argc > 4 ? argv[4] : "check_output.py";
    mkdir_p(dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (strcmp(mode, "basic") == 0) {
        test_chunk_bytes(dir);
        test_write_resume(dir, py, script);
        test_refusals(dir);
        test_io_errors(dir);
        test_overwrite(dir, py, script);
    } else if (strcmp(mode, "sha256") == 0) {
        test_sha256(dir, py, script);
    } else if (strcmp(mode, "bench") == 0) {
        bench(dir, argc > 3 ? argv[3] : NULL);
        return 0;
    } else {
        fprintf(stderr, "test_output: unknown mode '%s'\n", mode);
        return 2;
    }
    printf("test_output %s: %s (%d failures)\n", mode, failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}

