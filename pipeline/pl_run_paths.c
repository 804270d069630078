// `protloc run`: refuse an output (the store and its side files) that names one of the run's inputs (pl_run.h).
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_cli_outputs.h"
#include "pl_run.h"

// `base` with fnmatch's special characters escaped, then `suffix` (malloc'd), or NULL.
static char *run_paths_pattern(const char *base, const char *suffix) {
    char *p = malloc(2 * strlen(base) + strlen(suffix) + 1), *q = p;
    if (!p) return NULL;
    for (const char *s = base; *s; s++) {
        if (strchr("*?[]\\", *s)) *q++ = '\\';
        *q++ = *s;
    }
    strcpy(q, suffix);
    return p;
}

PlStatus pl_run_check_outputs(const PlRunOptions *o) {
    size_t n = strlen(o->out) + 32;
    char *failures = malloc(n), *lock = malloc(n), *journal = malloc(n), *dir = strdup(o->out), *base = strdup(o->out);
    char *weights = pl_cli_card_weights(o->model);   // NULL when the card cannot be read: pl_run says why
    char *temp = base ? run_paths_pattern(basename(base), ".tmp.*") : NULL;
    char *ftemp = base ? run_paths_pattern(basename(base), ".failures.tsv.tmp.*") : NULL;
    PlStatus st = PL_OK;
    if (!failures || !lock || !journal || !dir || !temp || !ftemp) {
        st = PL_FAIL(PL_ERR_NOMEM, "out of memory checking the paths of --out %s", o->out);
    } else {
        snprintf(failures, n, "%s.failures.tsv", o->out);   // the names pl_run_commit.c and pl_run.c use
        snprintf(lock, n, "%s.lock", o->out);
        snprintf(journal, n, "%s.journal", o->out);
        // temporary stores and failure lists of dead runs beside the output are removed at the commit
        const char *const temps[] = {temp, ftemp, NULL};
        const PlCliPath outputs[] = {{"--out", o->out, NULL, 0},
                                     {"the failure list of --out", failures, NULL, 0},
                                     {"the lock file of --out", lock, NULL, 0},
                                     {"the journal folder of --out", journal, NULL, 1},
                                     {"the folder of --out (stale temporary files there are removed)", dirname(dir),
                                      temps, 0}};
        const PlCliPath inputs[] = {{"--manifest", o->manifest, NULL, 0},
                                    {"--model", o->model, NULL, 0},
                                    {"the weights named by --model", weights, NULL, 0},
                                    {"--cell-labels", o->cell_labels, NULL, 0}};
        st = pl_cli_check_outputs(outputs, 5, inputs, 4);
    }
    free(failures), free(lock), free(journal), free(dir), free(base), free(weights), free(temp), free(ftemp);
    return st;
}
