// Levelled logging to stderr with timestamps and, under MPI, a "[rank r/n]" prefix. Data never goes here.
#ifndef PL_LOG_H
#define PL_LOG_H

typedef enum PlLogLevel { PL_LOG_ERROR = 0, PL_LOG_WARN = 1, PL_LOG_INFO = 2, PL_LOG_DEBUG = 3 } PlLogLevel;

void pl_log_set_level(PlLogLevel level);   // default PL_LOG_INFO; -q → WARN, -v → DEBUG
PlLogLevel pl_log_get_level(void);
void pl_log_set_rank(int rank, int size);  // size <= 1 removes the prefix
void pl_log(PlLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A byte count for people: "512 B", "64.0 KiB", "235.4 MiB", "11.0 GiB" (written into buf, returned).
#include <stddef.h>
const char *pl_log_format_bytes(double bytes, char *buf, size_t size);

#define pl_log_error(...) pl_log(PL_LOG_ERROR, __VA_ARGS__)
#define pl_log_warn(...) pl_log(PL_LOG_WARN, __VA_ARGS__)
#define pl_log_info(...) pl_log(PL_LOG_INFO, __VA_ARGS__)
#define pl_log_debug(...) pl_log(PL_LOG_DEBUG, __VA_ARGS__)

#endif
