/*
 * Keeping a second writer off an output file (output.h: sp_output_lock).
 *
 * Two salpipe jobs: every job takes an exclusive lock on PATH.lock, a small file
 * beside the output, before it touches PATH or PATH.partial, and holds it until
 * the output is closed. The lock is an open-file-description lock (F_OFD_SETLK)
 * on the whole lock file: the kernel drops it when the holder dies, however it
 * dies, so a lock is never stale; the file's text ("salpipe pid N on host H since
 * T") only tells the refused job whom it waits for. The holder unlinks the file
 * when it is done, still holding the lock; a job that locked an unlinked file
 * sees that its inode is no longer the one at PATH.lock, and tries again.
 *
 * Other programs: HDF5 (h5py, h5dump, ...) takes flock(LOCK_EX) on a file it
 * opens for writing and flock(LOCK_SH) for reading (unless HDF5_USE_FILE_LOCKING
 * is FALSE). salpipe takes flock(LOCK_SH) on the output: refused while an HDF5
 * writer has it, and held while it runs, so HDF5 writers are refused while
 * readers still open the file. A writer without HDF5's lock is found, on this
 * host, by looking through /proc for descriptors of the file open for writing.
 *
 * File systems: OFD and flock locks are kernel locks, exact on local disks. NFS
 * (v4, or v3 with lockd) forwards them to the server, so they hold across nodes;
 * Lustre does so only when mounted with -o flock (with localflock they keep out
 * jobs on the same node only, with noflock they fail: then salpipe warns and
 * runs unlocked). docs/running.md repeats this for users.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "output_internal.h"

struct sp_output_lock {
    int fd;
    char *path; /* PATH.lock */
};

/* Whole-file write lock: 0 taken, 1 held by someone else, -1 locks do not work
 * here (errno). Falls back to a process lock where the kernel has no OFD locks. */
static int lock_whole(int fd) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int rc = fcntl(fd, F_OFD_SETLK, &fl);
    if (rc < 0 && errno == EINVAL) rc = fcntl(fd, F_SETLK, &fl);
    if (rc == 0) return 0;
    return errno == EAGAIN || errno == EACCES ? 1 : -1;
}

/* The lock file's text without its newline, or "" when it has none. */
static void read_holder(int fd, char *buf, size_t n) {
    ssize_t k = pread(fd, buf, n - 1, 0);
    buf[k > 0 ? k : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
}

int sp_output_lock_take(const char *path, sp_output_lock **out, char *err, size_t errlen) {
    *out = NULL;
    err[0] = 0;
    sp_output_lock *l = calloc(1, sizeof *l);
    size_t n = strlen(path) + sizeof ".lock";
    if (!l || !(l->path = malloc(n))) {
        free(l);
        snprintf(err, errlen, "%s: out of memory", path);
        return SP_OUT_IOERR;
    }
    snprintf(l->path, n, "%s.lock", path);
    for (int attempt = 0;; attempt++) {
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (l->fd < 0) {
            int e = errno;
            char *dir = strdup(path);
            if (e == ENOENT && dir)
                snprintf(err, errlen, "%s: cannot create the output: directory '%s' does not "
                         "exist", path, dirname(dir));
            else
                snprintf(err, errlen, "%s: cannot create the lock file %s beside it (the "
                         "output's directory must be writable): %s", path, l->path,
                         strerror(e));
            free(dir);
            break;
        }
        int rc = lock_whole(l->fd);
        if (rc == 1) {
            char who[256];
            read_holder(l->fd, who, sizeof who);
            snprintf(err, errlen, "%s: another salpipe run is writing this file (%s, from "
                     "%s); wait for it to end, or use another [output] path", path,
                     who[0] ? who : "holder unknown", l->path);
            break;
        }
        if (rc < 0) {
            /* No locks on this file system: run, but say that nothing keeps a
             * second job out. */
            snprintf(err, errlen, "warning: %s: file locks do not work here (%s), so "
                     "nothing keeps a second job off this output; see docs/running.md",
                     path, strerror(errno));
        }
        struct stat a, b;
        if (fstat(l->fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            char host[256] = "?", text[512], when[32] = "?";
            gethostname(host, sizeof host - 1);
            time_t t = time(NULL);
            struct tm tm;
            if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
            int len = snprintf(text, sizeof text, "salpipe pid %ld on host %s since %s\n",
                               (long)getpid(), host, when);
            if (ftruncate(l->fd, 0) < 0 || pwrite(l->fd, text, (size_t)len, 0) != len) {
                /* The lock holds without its text; only a refused job's message
                 * loses the holder's name. */
            }
            /* Fail fast on an output another program is writing; sp_output_open
             * checks again, on the descriptor it keeps. */
            int fd = open(path, O_RDONLY | O_CLOEXEC), rc2 = SP_OUT_OK;
            char warning[SAL_ERR_LEN];
            snprintf(warning, sizeof warning, "%s", err);
            if (fd >= 0) {
                rc2 = spo_refuse_other_writers(fd, path, err, errlen);
                close(fd);
            }
            if (rc2) {
                sp_output_lock_release(l);
                return rc2;
            }
            snprintf(err, errlen, "%s", warning);
            *out = l;
            return SP_OUT_OK;
        }
        /* The holder removed the file between our open and our lock. */
        close(l->fd);
        l->fd = -1;
        if (attempt == 10) {
            snprintf(err, errlen, "%s: the lock file %s keeps changing", path, l->path);
            break;
        }
    }
    if (l->fd >= 0) close(l->fd);
    free(l->path);
    free(l);
    return SP_OUT_IOERR;
}

void sp_output_lock_release(sp_output_lock *l) {
    if (!l) return;
    unlink(l->path);
    close(l->fd);
    free(l->path);
    free(l);
}

/* ---- other programs ------------------------------------------------------------ */

/* A process on this host other than us with (dev, ino) open for writing: its pid
 * and name, or 0. Processes we may not look into are passed over. */
static long find_writer(dev_t dev, ino_t ino, char *comm, size_t commlen) {
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    long self = (long)getpid(), found = 0;
    struct dirent *p;
    while (!found && (p = readdir(proc))) {
        char *end;
        long pid = strtol(p->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self) continue;
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
        DIR *fds = opendir(dir);
        if (!fds) continue;
        struct dirent *f;
        while (!found && (f = readdir(fds))) {
            if (f->d_name[0] == '.') continue;
            char link[384], info[384], line[128];
            struct stat st;
            snprintf(link, sizeof link, "%s/%s", dir, f->d_name);
            if (stat(link, &st) || st.st_dev != dev || st.st_ino != ino) continue;
            snprintf(info, sizeof info, "/proc/%ld/fdinfo/%s", pid, f->d_name);
            FILE *fi = fopen(info, "r");
            unsigned long flags = 0;
            while (fi && fgets(line, sizeof line, fi))
                if (sscanf(line, "flags: %lo", &flags) == 1) break;
            if (fi) fclose(fi);
            if ((flags & O_ACCMODE) != O_RDONLY) found = pid;
        }
        closedir(fds);
    }
    closedir(proc);
    if (found) {
        char name[64];
        snprintf(name, sizeof name, "/proc/%ld/comm", found);
        FILE *c = fopen(name, "r");
        if (!c || !fgets(comm, (int)commlen, c)) snprintf(comm, commlen, "?");
        comm[strcspn(comm, "\n")] = 0;
        if (c) fclose(c);
    }
    return found;
}

int spo_refuse_other_writers(int fd, const char *path, char *err, size_t errlen) {
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        snprintf(err, errlen, "%s: another program has this file open for writing (it holds "
                 "HDF5's file lock); close it there, or use another [output] path", path);
        return SP_OUT_IOERR;
    }
    struct stat st;
    char comm[64];
    long pid = fstat(fd, &st) == 0 ? find_writer(st.st_dev, st.st_ino, comm, sizeof comm) : 0;
    if (pid) {
        snprintf(err, errlen, "%s: process %ld (%s) on this host has this file open for "
                 "writing; close it there, or use another [output] path", path, pid, comm);
        return SP_OUT_IOERR;
    }
    return SP_OUT_OK;
}
