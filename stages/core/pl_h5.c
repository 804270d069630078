// HDF5 error translation (see pl_h5.h).
#include "pl_h5.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pl_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct H5ErrorText { char text[1024]; size_t used; int count; } H5ErrorText;

static herr_t h5_collect_error(unsigned n, const H5E_error2_t *err, void *data) {
    H5ErrorText *t = data;
    if (t->count >= 3 || !err->desc) return 0;   // innermost few are the informative ones
    int w = snprintf(t->text + t->used, sizeof t->text - t->used, "%s%s (%s)", t->count ? "; " : "", err->desc,
                     err->func_name ? err->func_name : "?");
    if (w > 0) t->used += (size_t)w < sizeof t->text - t->used ? (size_t)w : sizeof t->text - t->used - 1;
    t->count++;
    return 0;
}

PlStatus pl_h5_fail(const char *file, int line, const char *fmt, ...) {
    char context[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    H5ErrorText t;
    memset(&t, 0, sizeof t);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_collect_error, &t);
    H5Eclear2(H5E_DEFAULT);
    if (t.count) return pl_error_set(PL_ERR_HDF5, file, line, "%s: HDF5: %s", context, t.text);
    return pl_error_set(PL_ERR_HDF5, file, line, "%s", context);
}
