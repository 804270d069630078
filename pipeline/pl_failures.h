// The failure list of the commands that feed a model from a manifest: `run`'s STORE.h5.failures.tsv and
// `finetune`'s DIR/failures.tsv, one writer for both. A TSV with the header "id\tline\tstage\tregression\tmessage"
// and one line per failed item: its manifest id and line, the step that failed, "yes" when the item had a row in
// the previous store (`run`; "no" where there is none, as for `finetune`), and the message (tabs and line breaks
// become spaces). Written atomically: the list appears whole at commit, or not at all.
// Ownership: a PlFailureList owns its temporary file until pl_failures_commit or pl_failures_abort.
#ifndef PL_FAILURES_H
#define PL_FAILURES_H

#include "pl_error.h"
#include "pl_fs.h"

typedef struct PlFailureList {
    PlAtomicFile af;
} PlFailureList;

// Open the list at `path` (under a temporary name) and write the header.
PlStatus pl_failures_open(PlFailureList *f, const char *path);
// One failed item.
PlStatus pl_failures_add(PlFailureList *f, const char *id, int line, const char *stage, int regression,
                         const char *message);
// Rename the list into place; on failure (or any earlier one) the temporary file is removed.
PlStatus pl_failures_commit(PlFailureList *f);
void pl_failures_abort(PlFailureList *f);
// A run without failures leaves no list of an earlier run: remove `path` if it exists (*removed = 1, the folder
// synced); PL_OK when there is none, and when it cannot be removed (a warning names it).
PlStatus pl_failures_remove(const char *path, int *removed);

#endif
