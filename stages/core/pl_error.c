// Thread-local error message store and checked allocation helpers (see pl_error.h).
#include "pl_error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_message[PL_ERROR_MESSAGE_MAX];
static _Thread_local PlStatus error_code = PL_OK;

static const char *error_basename(const char *path) {
    // keep "module/file.c" so messages stay short but unambiguous
    const char *last = strrchr(path, '/');
    if (!last) return path;
    const char *p = last;
    while (p > path && p[-1] != '/') p--;
    return p;
}

PlStatus pl_error_set(PlStatus code, const char *file, int line, const char *fmt, ...) {
    char body[PL_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(error_message, sizeof error_message, "%s:%d: %s", error_basename(file), line, body);
    error_code = code;
    return code;
}

PlStatus pl_error_wrap(const char *fmt, ...) {
    char context[PL_ERROR_MESSAGE_MAX];
    char previous[PL_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    memcpy(previous, error_message, sizeof previous);
    snprintf(error_message, sizeof error_message, "%s: %s", context, previous);
    if (error_code == PL_OK) error_code = PL_ERR_INTERNAL;
    return error_code;
}

const char *pl_error_message(void) { return error_message; }
PlStatus pl_error_code(void) { return error_code; }

void pl_error_clear(void) {
    error_message[0] = '\0';
    error_code = PL_OK;
}

const char *pl_status_name(PlStatus code) {
    switch (code) {
    case PL_OK: return "ok";
    case PL_ERR_ARG: return "argument";
    case PL_ERR_IO: return "io";
    case PL_ERR_FORMAT: return "format";
    case PL_ERR_NOMEM: return "memory";
    case PL_ERR_UNSUPPORTED: return "unsupported";
    case PL_ERR_LIMIT: return "limit";
    case PL_ERR_MPI: return "mpi";
    case PL_ERR_HDF5: return "hdf5";
    case PL_ERR_NUMERIC: return "numeric";
    case PL_ERR_INTERNAL: return "internal";
    case PL_ERR_EMPTY: return "empty";
    case PL_ERR_BUSY: return "busy";
    case PL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

void *pl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) PL_FAIL(PL_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *pl_calloc(size_t count, size_t size) {
    size_t total;
    if (pl_mul_overflows(count, size, &total)) return NULL;
    void *p = calloc(total ? count : 1, total ? size : 1);
    if (!p) PL_FAIL(PL_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

char *pl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = pl_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

PlStatus pl_grow(void **buf, size_t *cap, size_t count, size_t elem) {
    if (*buf && count <= *cap) return PL_OK;
    size_t bytes;
    if (pl_mul_overflows(count ? count : 1, elem ? elem : 1, &bytes)) return PL_ERR_LIMIT;
    void *q = realloc(*buf, bytes);
    if (!q) return PL_FAIL(PL_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", bytes);
    *buf = q;
    *cap = count ? count : 1;
    return PL_OK;
}

int pl_mul_overflows(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) {
        PL_FAIL(PL_ERR_LIMIT, "size overflow: %zu x %zu", a, b);
        return 1;
    }
    *out = a * b;
    return 0;
}
