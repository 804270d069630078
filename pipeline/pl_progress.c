// Rank 0's progress display for `protloc run`: a bar on a terminal, periodic log lines otherwise.
#include <stdio.h>
#include <unistd.h>

#include "pl_log.h"
#include "pl_run_priv.h"

void run_progress_start(RunProgress *p, long total, int enabled) {
    p->total = total;
    p->start = p->last_draw = pl_clock_now();
    p->tty = isatty(STDERR_FILENO);
    p->enabled = enabled && pl_log_get_level() >= PL_LOG_INFO;
}

static void progress_eta(double seconds, char *buf, size_t n) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, n, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
}

void run_progress_update(RunProgress *p, long done, int force) {
    if (!p->enabled) return;
    double now = pl_clock_now();
    double every = p->tty ? 0.2 : 10.0;
    if (!force && now - p->last_draw < every) return;
    p->last_draw = now;
    double el = now - p->start;
    double rate = el > 0 ? (double)done / el : 0.0;
    char eta[32] = "?";
    if (rate > 0 && done <= p->total) progress_eta((double)(p->total - done) / rate, eta, sizeof eta);
    if (p->tty) {
        int width = 30, fill = p->total > 0 ? (int)((double)width * (double)done / (double)p->total) : width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %ld/%ld items  %.2f items/s  ETA %s ", bar, done, p->total, rate, eta);
        fflush(stderr);
    } else {
        pl_log_info("progress: %ld/%ld items, %.2f items/s, ETA %s", done, p->total, rate, eta);
    }
}

void run_progress_finish(RunProgress *p, long done) {
    if (!p->enabled) return;
    run_progress_update(p, done, 1);
    if (p->tty) fprintf(stderr, "\n");
}
