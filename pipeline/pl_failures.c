// The one failures.tsv writer (pl_failures.h): header, one sanitised line per failed item, atomic commit.
#include "pl_failures.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl_log.h"

PlStatus pl_failures_open(PlFailureList *f, const char *path) {
    memset(f, 0, sizeof *f);
    PL_TRY(pl_atomic_open(&f->af, path));
    if (fputs("id\tline\tstage\tregression\tmessage\n", f->af.fp) < 0) {
        pl_atomic_abort(&f->af);
        return PL_FAIL(PL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    return PL_OK;
}

PlStatus pl_failures_add(PlFailureList *f, const char *id, int line, const char *stage, int regression,
                         const char *message) {
    FILE *fp = f->af.fp;
    fprintf(fp, "%s\t%d\t%s\t%s\t", id, line, stage, regression ? "yes" : "no");
    for (const char *c = message; *c; c++) fputc(*c == '\t' || *c == '\n' || *c == '\r' ? ' ' : *c, fp);
    if (fputc('\n', fp) == EOF || ferror(fp)) return PL_FAIL(PL_ERR_IO, "cannot write %s", f->af.final_path);
    return PL_OK;
}

PlStatus pl_failures_commit(PlFailureList *f) {
    if (ferror(f->af.fp)) {
        PlStatus st = PL_FAIL(PL_ERR_IO, "cannot write %s", f->af.final_path);
        pl_atomic_abort(&f->af);
        return st;
    }
    return pl_atomic_commit(&f->af);
}

void pl_failures_abort(PlFailureList *f) { pl_atomic_abort(&f->af); }

PlStatus pl_failures_remove(const char *path, int *removed) {
    *removed = 0;
    if (unlink(path) != 0) {   // the command's outcome does not hang on a stale list: say so and go on
        if (errno != ENOENT) pl_log_warn("cannot remove %s of an earlier run: %s", path, strerror(errno));
        return PL_OK;
    }
    *removed = 1;
    return pl_fsync_parent_dir(path);
}
