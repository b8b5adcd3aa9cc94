/* Progress lines for rank 0 (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define LOG_INTERVAL 10.0 /* seconds between lines when stderr is not a terminal */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void sp_progress_init(sp_progress *p, int total, int already_done, int quiet) {
    p->total = total;
    p->start_done = already_done;
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
    p->drawn = 0;
    p->t0 = p->last = now();
}

static void draw(sp_progress *p, int images, double maps, int final) {
    double dt = now() - p->t0;
    int done = p->start_done + images, left = p->total - done;
    double rate = dt > 0 ? maps / dt : 0, img_rate = dt > 0 ? images / dt : 0;
    char eta[32] = "--:--:--";
    if (img_rate > 0 && left > 0) {
        long s = (long)(left / img_rate);
        snprintf(eta, sizeof eta, "%02ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    } else if (left == 0) {
        snprintf(eta, sizeof eta, "00:00:00");
    }
    fprintf(stderr, "%ssalpipe: %d/%d images (%.1f%%), %.1f maps/s, ETA %s%s",
            p->tty ? "\r" : "", done, p->total, p->total ? 100.0 * done / p->total : 100.0,
            rate, eta, p->tty && !final ? "\033[K" : "\n");
    p->drawn = p->tty && !final;
    fflush(stderr);
}

void sp_progress_update(sp_progress *p, int images, double maps) {
    if (p->quiet) return;
    double t = now();
    if (!p->tty && t - p->last < LOG_INTERVAL) return;
    if (p->tty && t - p->last < 0.2) return;
    p->last = t;
    draw(p, images, maps, 0);
}

void sp_progress_note(sp_progress *p, const char *fmt, ...) {
    if (p->drawn) fputs("\r\033[K", stderr);
    p->drawn = 0;
    va_list ap;
    va_start(ap, fmt);
    fputs("salpipe: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void sp_progress_finish(sp_progress *p, int images, double maps) {
    if (p->quiet) return;
    draw(p, images, maps, 1);
}
