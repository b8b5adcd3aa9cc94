/*
 * The HDF5 file driver the output file is written through: POSIX I/O like HDF5's
 * sec2 driver, plus a write-ahead journal that makes each H5Fflush atomic.
 *
 * Why: HDF5 1.10 updates its metadata in place (B-tree nodes, heaps, the
 * superblock) and writes a flush as a sequence of separate writes, so a kill in
 * the middle of one leaves, say, a B-tree root pointing at children that were
 * never written, and every map in the file unreadable.
 *
 * How: `base` is the end of the space the on-disk state (the last completed flush)
 * may refer to. Writes at or past it go to new space nobody refers to yet and go
 * straight to the file. Writes below it change the on-disk state, so they are held
 * in memory (and served to reads) until the flush, which then
 *   1. appends them past the end of the file as a journal with a CRC-checked
 *      trailer and fdatasyncs (new space and journal are now durable),
 *   2. writes them in place (superblock first, raw data last) and fdatasyncs,
 *   3. truncates the journal away.
 * A kill before 1 completes leaves the previous flush's state (the journal is
 * ignored: its trailer does not check); a kill after it is repaired by replaying
 * the journal the next time the file is opened through this driver (writes of
 * absolute bytes, so replaying twice is harmless). Readers using HDF5's default
 * driver see the previous state until step 2, the new one after it.
 *
 * Journal layout at offset J (the end of the file when it was written):
 * records { u64 addr, u64 len, len bytes }..., then a 48-byte trailer
 * { "salpipe journal" NUL, u64 J, u64 body length, u64 records, u32 CRC-32 of
 * the body, u32 CRC-32 of the trailer's first 44 bytes }, all little-endian.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "output_internal.h"

#define MAXADDR (((haddr_t)1 << (8 * sizeof(off_t) - 1)) - 1)
#define TRAILER 48
static const char MAGIC[16] = "salpipe journal";

typedef struct {
    haddr_t addr;
    size_t len;
    H5FD_mem_t type;
    unsigned char *data;
} held_write;

typedef struct {
    H5FD_t pub;        /* must come first: HDF5 sees this part                   */
    int fd;
    haddr_t eoa;       /* end of allocated space, as HDF5 sets it                */
    haddr_t eof;       /* size of the file                                       */
    haddr_t base;      /* writes below it are held until the flush               */
    dev_t dev;
    ino_t ino;
    held_write *held;
    size_t nheld, capheld;
    int failed;        /* a write, flush or extend failed: from then on every call
                        * succeeds without touching the file, which keeps its last
                        * committed flush (what resume needs) and lets H5Fclose
                        * release everything (HDF5 1.10 crashes at exit on a file
                        * whose close failed)                                    */
} jfile;

#define PUSH(min, ...) \
    H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_VFL, min, __VA_ARGS__)

/* ---- plain I/O ---------------------------------------------------------------- */

static int pwrite_all(int fd, const void *buf, size_t n, haddr_t off) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += (haddr_t)k;
    }
    return 0;
}

/* Reads n bytes at off; bytes past the end of the file read as zeros. */
static int pread_all(int fd, void *buf, size_t n, haddr_t off) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            memset(p, 0, n);
            return 0;
        }
        p += k;
        n -= (size_t)k;
        off += (haddr_t)k;
    }
    return 0;
}

static int datasync(int fd) { return fdatasync(fd) == 0 || errno == EINVAL ? 0 : -1; }

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc(const unsigned char *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ---- journal ------------------------------------------------------------------ */

int spo_journal_recover(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    if (st.st_size < TRAILER) return 0;
    haddr_t size = (haddr_t)st.st_size;
    unsigned char t[TRAILER];
    if (pread_all(fd, t, TRAILER, size - TRAILER) < 0) return -1;
    uint64_t J = get64(t + 16), blen = get64(t + 24), nrec = get64(t + 32);
    if (memcmp(t, MAGIC, 16) != 0 || crc(t, 44) != get32(t + 44) || J > size ||
        blen != size - TRAILER - J)
        return 0; /* no journal, or one whose writing was cut short */
    unsigned char *body = malloc(blen ? blen : 1);
    if (!body) return -1;
    int rc = -1;
    if (pread_all(fd, body, blen, J) < 0) goto done;
    if (crc(body, blen) != get32(t + 40)) {
        rc = 0;
        goto done;
    }
    for (uint64_t r = 0, off = 0; r < nrec; r++) {
        if (blen - off < 16) goto corrupt;
        uint64_t addr = get64(body + off), len = get64(body + off + 8);
        off += 16;
        if (len > blen - off || addr + len > J) goto corrupt;
        if (pwrite_all(fd, body + off, len, addr) < 0) goto done;
        off += len;
    }
    if (datasync(fd) < 0 || ftruncate(fd, (off_t)J) < 0 || datasync(fd) < 0) goto done;
    rc = 1;
    goto done;
corrupt:
    errno = EINVAL;
done:
    free(body);
    return rc;
}

/* Superblock first, then other metadata, raw data (status among it) last, each
 * group in the order written: readers that look during step 2 see the new end of
 * file before anything that needs it. */
static int apply_rank(H5FD_mem_t t) {
    return t == H5FD_MEM_SUPER ? 0 : t == H5FD_MEM_DRAW ? 2 : 1;
}

static int commit(jfile *f) {
    haddr_t J = f->eoa > f->eof ? f->eoa : f->eof;
    size_t blen = 0;
    for (size_t i = 0; i < f->nheld; i++) blen += 16 + f->held[i].len;
    unsigned char *j = malloc(blen + TRAILER);
    held_write **order = malloc(f->nheld * sizeof *order);
    if (!j || !order) {
        free(j);
        free(order);
        PUSH(H5E_CANTFLUSH, "out of memory for the journal (%zu bytes)", blen + TRAILER);
        return -1;
    }
    /* The journal lists the writes in the order they are applied, so a replay cut
     * short leaves what an interrupted step 2 would. */
    size_t n = 0, off = 0;
    for (int rank = 0; rank < 3; rank++)
        for (size_t i = 0; i < f->nheld; i++)
            if (apply_rank(f->held[i].type) == rank) order[n++] = &f->held[i];
    for (size_t i = 0; i < n; i++) {
        put64(j + off, order[i]->addr);
        put64(j + off + 8, order[i]->len);
        memcpy(j + off + 16, order[i]->data, order[i]->len);
        off += 16 + order[i]->len;
    }
    unsigned char *t = j + blen;
    memcpy(t, MAGIC, 16);
    put64(t + 16, J);
    put64(t + 24, blen);
    put64(t + 32, n);
    put32(t + 40, crc(j, blen));
    put32(t + 44, crc(t, 44));
    int rc = pwrite_all(f->fd, j, blen + TRAILER, J) < 0 || datasync(f->fd) < 0 ? -1 : 0;
    free(j);
    if (rc < 0) {
        free(order);
        PUSH(H5E_WRITEERROR, "journal write failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        return -1;
    }
    f->eof = J + blen + TRAILER;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pwrite_all(f->fd, order[i]->data, order[i]->len, order[i]->addr);
    free(order);
    if (rc < 0 || datasync(f->fd) < 0 || ftruncate(f->fd, (off_t)J) < 0) {
        PUSH(H5E_WRITEERROR, "file write failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        return -1;
    }
    f->eof = J;
    for (size_t i = 0; i < f->nheld; i++) free(f->held[i].data);
    f->nheld = 0;
    return 0;
}

/* ---- the driver's callbacks --------------------------------------------------- */

static H5FD_t *j_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr) {
    (void)fapl;
    if (!name || !*name || maxaddr == 0 || maxaddr == HADDR_UNDEF || maxaddr > MAXADDR) {
        PUSH(H5E_CANTOPENFILE, "bad file name or address limit");
        return NULL;
    }
    int o = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & H5F_ACC_TRUNC) o |= O_TRUNC;
    if (flags & H5F_ACC_CREAT) o |= O_CREAT;
    if (flags & H5F_ACC_EXCL) o |= O_EXCL;
    int fd = open(name, o | O_CLOEXEC, 0666);
    if (fd < 0) {
        PUSH(H5E_CANTOPENFILE, "unable to open file: name = '%s', errno = %d, error message = '%s'",
             name, errno, strerror(errno));
        return NULL;
    }
    struct stat st;
    jfile *f = calloc(1, sizeof *f);
    if (!f || ((flags & H5F_ACC_RDWR) && spo_journal_recover(fd) < 0) || fstat(fd, &st) < 0) {
        PUSH(H5E_CANTOPENFILE, "unable to open file: name = '%s', errno = %d, error message = '%s'",
             name, errno, f ? strerror(errno) : "out of memory");
        free(f);
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = f->base = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return &f->pub;
}

static herr_t j_close(H5FD_t *file) {
    jfile *f = (jfile *)file;
    /* Held writes left here belong to a flush that failed: dropping them keeps
     * the file as the last completed flush left it. */
    for (size_t i = 0; i < f->nheld; i++) free(f->held[i].data);
    free(f->held);
    int rc = close(f->fd);
    free(f);
    if (rc < 0) {
        PUSH(H5E_CANTCLOSEFILE, "close failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        return -1;
    }
    return 0;
}

static int j_cmp(const H5FD_t *a, const H5FD_t *b) {
    const jfile *x = (const jfile *)a, *y = (const jfile *)b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t j_query(const H5FD_t *file, unsigned long *flags) {
    (void)file;
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_AGGREGATE_SMALLDATA |
             H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_POSIX_COMPAT_HANDLE |
             H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
}

static haddr_t j_get_eoa(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    return ((const jfile *)file)->eoa;
}

static herr_t j_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr) {
    (void)type;
    ((jfile *)file)->eoa = addr;
    return 0;
}

static haddr_t j_get_eof(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    return ((const jfile *)file)->eof;
}

static herr_t j_get_handle(H5FD_t *file, hid_t fapl, void **handle) {
    (void)fapl;
    *handle = &((jfile *)file)->fd;
    return 0;
}

static herr_t j_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                     void *buf) {
    (void)type;
    (void)dxpl;
    jfile *f = (jfile *)file;
    if (f->failed) return 0;
    if (addr == HADDR_UNDEF || addr + size > f->eoa) {
        PUSH(H5E_OVERFLOW, "addr overflow, addr = %llu, size = %zu, eoa = %llu",
             (unsigned long long)addr, size, (unsigned long long)f->eoa);
        return -1;
    }
    if (pread_all(f->fd, buf, size, addr) < 0) {
        PUSH(H5E_READERROR, "file read failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        return -1;
    }
    /* Held writes are newer than the file; later ones newer than earlier ones. */
    for (size_t i = 0; i < f->nheld; i++) {
        const held_write *h = &f->held[i];
        haddr_t lo = h->addr > addr ? h->addr : addr;
        haddr_t hi = h->addr + h->len < addr + size ? h->addr + h->len : addr + size;
        if (lo < hi) memcpy((unsigned char *)buf + (lo - addr), h->data + (lo - h->addr), hi - lo);
    }
    return 0;
}

static int hold(jfile *f, H5FD_mem_t type, haddr_t addr, size_t len, const void *buf) {
    /* A rewrite of the same bytes (an entry flushed twice) replaces the copy. */
    for (size_t i = f->nheld; i-- > 0 && i + 64 >= f->nheld;) {
        if (f->held[i].addr == addr && f->held[i].len == len) {
            memcpy(f->held[i].data, buf, len);
            return 0;
        }
    }
    if (f->nheld == f->capheld) {
        size_t cap = f->capheld ? 2 * f->capheld : 64;
        held_write *h = realloc(f->held, cap * sizeof *h);
        if (!h) return -1;
        f->held = h;
        f->capheld = cap;
    }
    unsigned char *d = malloc(len ? len : 1);
    if (!d) return -1;
    memcpy(d, buf, len);
    f->held[f->nheld++] = (held_write){addr, len, type, d};
    return 0;
}

static herr_t j_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                      const void *buf) {
    (void)dxpl;
    jfile *f = (jfile *)file;
    if (f->failed) return 0;
    if (addr == HADDR_UNDEF || addr + size > f->eoa) {
        PUSH(H5E_OVERFLOW, "addr overflow, addr = %llu, size = %zu, eoa = %llu",
             (unsigned long long)addr, size, (unsigned long long)f->eoa);
        return -1;
    }
    const unsigned char *p = buf;
    if (addr < f->base) {
        size_t n = f->base - addr < size ? (size_t)(f->base - addr) : size;
        if (hold(f, type, addr, n, p) < 0) {
            PUSH(H5E_WRITEERROR, "out of memory holding a write of %zu bytes", n);
            f->failed = 1;
            return -1;
        }
        addr += n;
        p += n;
        size -= n;
    }
    if (size == 0) return 0;
    if (pwrite_all(f->fd, p, size, addr) < 0) {
        PUSH(H5E_WRITEERROR, "file write failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        f->failed = 1;
        return -1;
    }
    if (addr + size > f->eof) f->eof = addr + size;
    return 0;
}

static herr_t j_flush(H5FD_t *file, hid_t dxpl, hbool_t closing) {
    (void)dxpl;
    (void)closing;
    jfile *f = (jfile *)file;
    if (f->failed) return 0;
    if (f->nheld > 0) {
        if (commit(f) < 0) return f->failed = 1, -1;
    } else if (datasync(f->fd) < 0) {
        PUSH(H5E_CANTFLUSH, "file sync failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        f->failed = 1;
        return -1;
    }
    if (f->eoa > f->base) f->base = f->eoa;
    return 0;
}

/* The file only grows: cutting it to the allocated size before the superblock
 * that records that size is on disk could cut off what the disk state uses.
 * Growing it to the allocated size is safe (nothing refers to the new zeros yet)
 * and needed: HDF5 refuses a file shorter than its recorded end. */
static herr_t j_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing) {
    (void)dxpl;
    (void)closing;
    jfile *f = (jfile *)file;
    if (f->failed || f->eoa <= f->eof) return 0;
    if (ftruncate(f->fd, (off_t)f->eoa) < 0) {
        PUSH(H5E_WRITEERROR, "file extend failed: errno = %d, error message = '%s'", errno,
             strerror(errno));
        f->failed = 1;
        return -1;
    }
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t journal_class = {
    .name = "salpipe_journal",
    .maxaddr = MAXADDR,
    .fc_degree = H5F_CLOSE_WEAK,
    .open = j_open,
    .close = j_close,
    .cmp = j_cmp,
    .query = j_query,
    .get_eoa = j_get_eoa,
    .set_eoa = j_set_eoa,
    .get_eof = j_get_eof,
    .get_handle = j_get_handle,
    .read = j_read,
    .write = j_write,
    .flush = j_flush,
    .truncate = j_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

int spo_use_journal_driver(hid_t fapl) {
    static hid_t id = -1;
    if (id < 0 || H5Iis_valid(id) <= 0) id = H5FDregister(&journal_class);
    return id < 0 ? -1 : (H5Pset_driver(fapl, id, NULL) < 0 ? -1 : 0);
}
