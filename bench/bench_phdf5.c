/*
 * bench_phdf5: K ranks writing the same maps either into one shared file with
 * parallel HDF5 (MPI-IO) or each into its own part file, on the same machine
 * (issue 14: compare before choosing). Built only where Debian's
 * libhdf5-openmpi-dev is installed (bench/CMakeLists.txt); linked against that
 * library alone, so every mode runs the same HDF5.
 *
 *   mpirun -n K bench_phdf5 --chunks SALPIPE_OUTPUT.h5 --mode MODE [--maps N]
 *          [--batch 8] [--dir DIR] [--reps 1]
 *
 * Every rank writes N maps (3x224x224 float32 for AlexNet), `batch` per write call,
 * into a dataset (K*N, C, H, W) chunked by map; rank r owns maps r*N .. r*N+N-1.
 * The maps are the real ones of a salpipe output: raw values read with H5Dread,
 * and salpipe's own compressed chunks (shuffle + deflate) read with H5Dread_chunk.
 *
 * Modes:
 *   parts-direct   own file, H5Dwrite_chunk of the precompressed chunks (salpipe's
 *                  way: the computing ranks compressed them)
 *   parts-filter   own file, H5Dwrite of raw maps, shuffle+deflate by HDF5
 *   parts-raw      own file, H5Dwrite, no filters
 *   shared-coll-filter  one file, collective H5Dwrite, shuffle+deflate (the only
 *                  way parallel HDF5 1.10 writes filtered data)
 *   shared-coll-raw     one file, collective H5Dwrite, no filters
 *   shared-indep-raw    one file, independent H5Dwrite, no filters
 *   shared-direct  one file, H5Dwrite_chunk (to see whether 1.10 allows it)
 * Writes end with H5Fclose; time is barrier to barrier around create, writes and
 * close. Prints one JSON line per run from rank 0.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

static void die(int rank, const char *what) {
    fprintf(stderr, "bench_phdf5: rank %d: %s\n", rank, what);
    H5Eprint2(H5E_DEFAULT, stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2); /* not reached */
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    int n, C, H, W, level;
    float **raw;               /* n raw maps                                      */
    unsigned char **zip;       /* the same maps as salpipe stored them            */
    size_t *zbytes;
} maps;

/* Up to n stored maps of /saliency (every rank reads the same ones). */
static void load(maps *m, const char *path, int n, int rank) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "/saliency", H5P_DEFAULT);
    if (d < 0) die(rank, "cannot open /saliency of the --chunks file");
    hid_t s = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t dims[6];
    if (H5Sget_simple_extent_ndims(s) != 6) die(rank, "/saliency is not 6-D");
    H5Sget_simple_extent_dims(s, dims, NULL);
    m->C = (int)dims[3], m->H = (int)dims[4], m->W = (int)dims[5];
    m->level = 0;
    for (int k = 0; k < H5Pget_nfilters(dcpl); k++) {
        unsigned flags, cd[4];
        size_t ncd = 4;
        if (H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL) ==
                H5Z_FILTER_DEFLATE && ncd > 0)
            m->level = (int)cd[0];
    }
    if (m->level == 0) die(rank, "the --chunks file must be compressed (compression > 0)");
    size_t raw = (size_t)m->C * m->H * m->W;
    m->raw = calloc((size_t)n, sizeof *m->raw);
    m->zip = calloc((size_t)n, sizeof *m->zip);
    m->zbytes = calloc((size_t)n, sizeof *m->zbytes);
    hsize_t mdims[1] = {raw};
    hid_t ms = H5Screate_simple(1, mdims, NULL);
    hsize_t off[6] = {0}, cnt[6] = {1, 1, 1, dims[3], dims[4], dims[5]};
    m->n = 0;
    for (off[0] = 0; off[0] < dims[0] && m->n < n; off[0]++)
        for (off[1] = 0; off[1] < dims[1] && m->n < n; off[1]++)
            for (off[2] = 0; off[2] < dims[2] && m->n < n; off[2]++) {
                hsize_t nb = 0;
                if (H5Dget_chunk_storage_size(d, off, &nb) < 0 || nb == 0) continue;
                uint32_t mask;
                m->zip[m->n] = malloc(nb);
                m->raw[m->n] = malloc(raw * sizeof(float));
                if (!m->zip[m->n] || !m->raw[m->n]) die(rank, "out of memory");
                if (H5Dread_chunk(d, H5P_DEFAULT, off, &mask, m->zip[m->n]) < 0)
                    die(rank, "H5Dread_chunk");
                m->zbytes[m->n] = nb;
                H5Sselect_hyperslab(s, H5S_SELECT_SET, off, NULL, cnt, NULL);
                if (H5Dread(d, H5T_NATIVE_FLOAT, ms, s, H5P_DEFAULT, m->raw[m->n]) < 0)
                    die(rank, "H5Dread");
                m->n++;
            }
    if (m->n == 0) die(rank, "the --chunks file holds no maps");
    H5Sclose(ms);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
}

/* Maps that do not read back as written: file maps 0 .. owners*N-1, map i of
 * owner r being pool map (r * 31 + i) % n (rank r's choice below). */
static long check(const maps *m, const char *path, int owners, int N, int rank, int direct) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "/saliency", H5P_DEFAULT);
    if (d < 0) return (long)owners * N;
    size_t raw = (size_t)m->C * m->H * m->W;
    float *v = malloc(raw * sizeof(float) + 1024 * 1024 * 4);
    hsize_t cnt[4] = {1, (hsize_t)m->C, (hsize_t)m->H, (hsize_t)m->W};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(4, cnt, NULL);
    long bad = 0;
    for (int o = 0; o < owners; o++)
        for (int i = 0; i < N; i++) {
            int r = owners > 1 ? o : rank, k = (r * 31 + i) % m->n;
            hsize_t off[4] = {(hsize_t)o * N + i, 0, 0, 0}, nb = 0;
            uint32_t mask = 0;
            int ok;
            if (direct)
                ok = H5Dget_chunk_storage_size(d, off, &nb) >= 0 && nb == m->zbytes[k] &&
                     H5Dread_chunk(d, H5P_DEFAULT, off, &mask, v) >= 0 &&
                     !memcmp(v, m->zip[k], nb);
            else {
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
                ok = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) >= 0 &&
                     !memcmp(v, m->raw[k], raw * sizeof(float));
            }
            bad += !ok;
        }
    free(v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    return bad;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, K;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &K);
    const char *chunks = NULL, *mode = NULL, *dir = ".";
    int N = 200, batch = 8, reps = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--chunks")) chunks = argv[i + 1];
        else if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
        else if (!strcmp(argv[i], "--maps")) N = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (!chunks || !mode || N < 1 || batch < 1 || N % batch || reps < 1) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -n K bench_phdf5 --chunks OUT.h5 --mode MODE "
                            "[--maps N (a multiple of batch)] [--batch 8] [--dir D] [--reps R]\n");
        MPI_Finalize();
        return 2;
    }
    int shared = !strncmp(mode, "shared", 6);
    int direct = strstr(mode, "direct") != NULL, filter = direct || strstr(mode, "filter");
    int coll = strstr(mode, "coll") != NULL;
    maps m;
    load(&m, chunks, 64, rank);
    size_t raw = (size_t)m.C * m.H * m.W;
    float *buf = malloc((size_t)batch * raw * sizeof(float));
    if (!buf) die(rank, "out of memory");

    for (int rep = 0; rep < reps; rep++) {
        char path[4096];
        if (shared) snprintf(path, sizeof path, "%s/shared.h5", dir);
        else snprintf(path, sizeof path, "%s/part-%d.h5", dir, rank);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (shared) H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
        hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (f < 0) die(rank, "H5Fcreate");
        hsize_t total = shared ? (hsize_t)K * N : (hsize_t)N;
        hsize_t dims[4] = {total, (hsize_t)m.C, (hsize_t)m.H, (hsize_t)m.W};
        hsize_t chunk[4] = {1, (hsize_t)m.C, (hsize_t)m.H, (hsize_t)m.W};
        hid_t space = H5Screate_simple(4, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 4, chunk);
        if (filter) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, (unsigned)m.level);
        }
        /* Parallel HDF5 needs space allocated at creation for unfiltered data
         * written independently; early allocation for all shared modes alike. */
        if (shared && !filter) H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
        hid_t d = H5Dcreate2(f, "/saliency", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl,
                             H5P_DEFAULT);
        if (d < 0) die(rank, "H5Dcreate2");
        hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
        if (shared) H5Pset_dxpl_mpio(dxpl, coll ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
        hsize_t base = shared ? (hsize_t)rank * N : 0;
        double bytes = 0;
        int failed = 0;
        for (int i = 0; i < N && !failed; i += batch) {
            if (direct) {
                for (int b = 0; b < batch; b++) {
                    int k = (rank * 31 + i + b) % m.n;
                    hsize_t off[4] = {base + i + b, 0, 0, 0};
                    if (H5Dwrite_chunk(d, dxpl, 0, off, m.zbytes[k], m.zip[k]) < 0) {
                        failed = 1;
                        break;
                    }
                    bytes += (double)m.zbytes[k];
                }
                continue;
            }
            for (int b = 0; b < batch; b++) {
                int k = (rank * 31 + i + b) % m.n;
                memcpy(buf + (size_t)b * raw, m.raw[k], raw * sizeof(float));
                bytes += (double)m.zbytes[k];
            }
            hsize_t start[4] = {base + i, 0, 0, 0};
            hsize_t count[4] = {(hsize_t)batch, (hsize_t)m.C, (hsize_t)m.H, (hsize_t)m.W};
            hid_t fs = H5Dget_space(d), ms = H5Screate_simple(4, count, NULL);
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
            if (H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, dxpl, buf) < 0) failed = 1;
            H5Sclose(ms);
            H5Sclose(fs);
        }
        if (failed) {
            fprintf(stderr, "bench_phdf5: rank %d: mode %s: the write failed:\n", rank, mode);
            H5Eprint2(H5E_DEFAULT, stderr);
        }
        H5Pclose(dxpl);
        H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(space);
        H5Fclose(f);
        H5Pclose(fapl);
        MPI_Barrier(MPI_COMM_WORLD);
        double t = now() - t0;
        int any = 0;
        MPI_Reduce(&failed, &any, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
        double tot = 0;
        MPI_Reduce(&bytes, &tot, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0)
            printf("{\"mode\": \"%s\", \"ranks\": %d, \"maps_per_rank\": %d, \"batch\": %d, "
                   "\"seconds\": %.3f, \"maps_per_s\": %.1f, \"MB_per_s_compressed\": %.1f, "
                   "\"failed\": %d}\n",
                   mode, K, N, batch, t, any ? 0 : (double)K * N / t, any ? 0 : tot / t / 1e6,
                   any);
        fflush(stdout);
        /* Read back: every map of this rank (shared: all of them, on rank 0, with
         * the plain driver), bytes of the chunks for direct writes, values else. */
        long bad = 0;
        if (!any && (shared ? rank == 0 : 1)) bad = check(&m, path, shared ? K : 1, N, rank,
                                                          direct);
        long bad_all = 0;
        MPI_Reduce(&bad, &bad_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0 && !any)
            printf("{\"mode\": \"%s\", \"ranks\": %d, \"read_back_bad_maps\": %ld}\n", mode, K,
                   bad_all);
        if (shared ? rank == 0 : 1) unlink(path);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    for (int k = 0; k < m.n; k++) free(m.raw[k]), free(m.zip[k]);
    free(m.raw), free(m.zip), free(m.zbytes), free(buf);
    MPI_Finalize();
    return 0;
}
