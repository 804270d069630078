// Error codes and messages: library functions return PlStatus and record a "file:line: message" text.
//
// Convention (used everywhere in protloc):
//   - a fallible function returns PlStatus (PL_OK == 0) and never calls exit();
//   - on failure it records the reason with PL_FAIL(code, fmt, ...) which stores
//     "<file>:<line>: <message>" in a thread-local buffer and evaluates to `code`;
//   - callers that add context use pl_error_wrap("reading %s", path), which prepends
//     "reading x: " to the recorded message, then return the same code;
//   - only main() prints pl_error_message() and decides the exit status / MPI_Abort.
// The message buffer is thread-local: each thread sees its own last error.
#ifndef PL_ERROR_H
#define PL_ERROR_H

#include <stddef.h>

typedef enum PlStatus {
    PL_OK = 0,
    PL_ERR_ARG = 1,         // bad argument / option / usage
    PL_ERR_IO = 2,          // file system or read/write failure
    PL_ERR_FORMAT = 3,      // malformed input data (file contents)
    PL_ERR_NOMEM = 4,       // allocation failed
    PL_ERR_UNSUPPORTED = 5, // valid input we do not handle
    PL_ERR_LIMIT = 6,       // input exceeds a configured limit (bomb protection, sizes)
    PL_ERR_MPI = 7,         // MPI call failed
    PL_ERR_HDF5 = 8,        // HDF5 call failed
    PL_ERR_NUMERIC = 9,     // NaN/Inf or other numeric problem
    PL_ERR_INTERNAL = 10,   // invariant broken (a bug)
    PL_ERR_EMPTY = 11,      // nothing to do / no result (e.g. no cells found)
    PL_ERR_BUSY = 12,       // a resource is held by another process (e.g. a locked output)
    PL_ERR_INTERRUPTED = 13 // stopped on request (SIGTERM / SIGINT / SIGHUP)
} PlStatus;

#define PL_ERROR_MESSAGE_MAX 4096

// Record a failure and return `code`. Use as: return PL_FAIL(PL_ERR_IO, "cannot open %s", path);
#define PL_FAIL(code, ...) pl_error_set((code), __FILE__, __LINE__, __VA_ARGS__)

// Propagate: evaluate `expr` (a PlStatus); on failure return it from the current function.
#define PL_TRY(expr)                          \
    do {                                      \
        PlStatus pl_try_status_ = (expr);     \
        if (pl_try_status_ != PL_OK)          \
            return pl_try_status_;            \
    } while (0)

PlStatus pl_error_set(PlStatus code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Prepend context to the current message ("context: old message"); returns the last code.
PlStatus pl_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *pl_error_message(void);   // last message of this thread ("" when none)
PlStatus pl_error_code(void);         // last code of this thread
void pl_error_clear(void);
const char *pl_status_name(PlStatus code); // "io", "format", ...

// Allocation helpers that record PL_ERR_NOMEM with the requested size; they return NULL on failure.
void *pl_malloc(size_t n);
void *pl_calloc(size_t count, size_t size);
char *pl_strdup(const char *s);
// The one grow-only buffer helper: make *buf hold at least `count` elements of `elem` bytes, keeping its
// contents (realloc); *cap counts elements and only grows. On failure *buf and *cap are unchanged and
// PL_ERR_NOMEM / PL_ERR_LIMIT is recorded with the size.
PlStatus pl_grow(void **buf, size_t *cap, size_t count, size_t elem);
// Overflow-checked count*size; returns 0 and sets PL_ERR_LIMIT on overflow.
int pl_mul_overflows(size_t a, size_t b, size_t *out);

#endif
