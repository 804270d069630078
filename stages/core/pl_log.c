// Logging implementation: one formatted line per call, written with a single fputs so ranks do not interleave.
#include "pl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static PlLogLevel log_level = PL_LOG_INFO;
static int log_rank = 0;
static int log_size = 1;

void pl_log_set_level(PlLogLevel level) { log_level = level; }
PlLogLevel pl_log_get_level(void) { return log_level; }

void pl_log_set_rank(int rank, int size) {
    log_rank = rank;
    log_size = size;
}

void pl_log(PlLogLevel level, const char *fmt, ...) {
    if (level > log_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[8192];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ld ", ts.tv_nsec / 1000000L);
    if (log_size > 1) n += snprintf(line + n, sizeof line - (size_t)n, "[rank %d/%d] ", log_rank, log_size);
    n += snprintf(line + n, sizeof line - (size_t)n, "%s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof line - 1) n = (int)sizeof line - 2;
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}

const char *pl_log_format_bytes(double bytes, char *buf, size_t size) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) bytes /= 1024.0, u++;
    if (u == 0) snprintf(buf, size, "%.0f B", bytes);
    else snprintf(buf, size, "%.1f %s", bytes, units[u]);
    return buf;
}
