// HDF5 error translation (see pl_h5.h).
#include "pl_h5.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "pl_fs.h"
#include "pl_mpi.h"

static int h5_close_failed;   // a file close failed: shutting the library down would crash (see pl_h5.h)

void pl_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void pl_h5_start(void) {
    H5dont_atexit();
    pl_h5_quiet();
}

void pl_h5_stop(void) {
    if (!h5_close_failed) H5close();
}

// Is `file` open through MPI-IO (a collective close: a rank whose close fails may leave the others inside it)?
static int h5_file_is_parallel(hid_t file) {
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl < 0) return 0;
    int parallel = H5Pget_driver(fapl) == H5FD_MPIO;
    H5Pclose(fapl);
    return parallel;
}

PlStatus pl_h5_close_file(hid_t file, const char *path) {
    int parallel = h5_file_is_parallel(file);
    if (H5Fclose(file) >= 0) return PL_OK;
    h5_close_failed = 1;
    if (parallel) pl_mpi_mark_desynced("a failed close of a parallel HDF5 file");
    return PL_H5_WRITE_FAIL(path, "cannot finish writing %s", path);
}

void pl_h5_discard_file(hid_t file) {
    if (h5_file_is_parallel(file)) {
        // A parallel file is discarded after an error that every rank agreed on, often a full file system: its
        // collective close would flush metadata, and HDF5 1.10 can fail that flush on one rank and leave the other
        // ranks waiting inside the close for ever. Nothing in the file is wanted (the caller removes it), so it is
        // left open for the kernel to release at exit, and the library is not shut down (pl_h5_stop).
        h5_close_failed = 1;
        return;
    }
    if (H5Fclose(file) < 0) {
        h5_close_failed = 1;
        H5Eclear2(H5E_DEFAULT);
    }
}

typedef struct H5ErrorText { char text[1024]; size_t used; int count; } H5ErrorText;

static herr_t h5_collect_error(unsigned n, const H5E_error2_t *err, void *data) {
    H5ErrorText *t = data;
    if (t->count >= 3 || !err->desc) return 0;   // innermost few are the informative ones
    int w = snprintf(t->text + t->used, sizeof t->text - t->used, "%s%s (%s)", t->count ? "; " : "", err->desc,
                     err->func_name ? err->func_name : "?");
    if (w > 0) {
        size_t end = t->used + ((size_t)w < sizeof t->text - t->used ? (size_t)w : sizeof t->text - t->used - 1);
        for (size_t i = t->used; i < end; i++)   // some HDF5 messages span lines: keep ours on one
            if (t->text[i] == '\n') t->text[i] = ' ';
        t->used = end;
    }
    t->count++;
    return 0;
}

static PlStatus h5_fail_context(const char *file, int line, const char *context) {
    H5ErrorText t;
    memset(&t, 0, sizeof t);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_collect_error, &t);
    H5Eclear2(H5E_DEFAULT);
    if (t.count) return pl_error_set(PL_ERR_HDF5, file, line, "%s: HDF5: %s", context, t.text);
    return pl_error_set(PL_ERR_HDF5, file, line, "%s", context);
}

PlStatus pl_h5_fail(const char *file, int line, const char *fmt, ...) {
    char context[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    return h5_fail_context(file, line, context);
}

PlStatus pl_h5_write_fail(const char *file, int line, const char *path, const char *fmt, ...) {
    char context[2048], note[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    pl_fs_space_note(path, note, sizeof note);
    if (n >= 0 && (size_t)n < sizeof context) snprintf(context + n, sizeof context - (size_t)n, "%s", note);
    return h5_fail_context(file, line, context);
}
