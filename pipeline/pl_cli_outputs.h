// Outputs never overwrite inputs: the one check every command that writes files makes before it computes anything.
//
// A command lists the files it will write and the files it reads, each with the option that named it, and calls
// pl_cli_check_outputs once, after parsing its options and before any compute or output. Two paths clash when they
// name the same file however spelt: the same inode (a hard link, a symlink) or the same resolved path ("./a",
// "d/../d/a"), also when the output does not exist yet. The error names the output's option and path, the input's
// option and path and the file both resolve to, and says the output would overwrite the input. Commands return
// PL_EXIT_FAIL on it (export keeps its usage status, 2). Outputs that clash with each other are refused the same way.
//
// Example (`protloc finetune --manifest M --model CARD --out DIR`):
//     static const char *const names[] = {"backbone.safetensors", "head.safetensors", "*/report.json", NULL};
//     char *weights = pl_cli_card_weights(model);   // NULL when --model is no readable card
//     PlCliPath outs[] = {{"--out", out_dir, names, 0}};
//     PlCliPath ins[] = {{"--manifest", manifest}, {"--model", model}, {"the weights named by --model", weights}};
//     PlStatus st = pl_cli_check_outputs(outs, 1, ins, 3);
//     free(weights);
//     if (st != PL_OK) return PL_EXIT_FAIL;
#ifndef PL_CLI_OUTPUTS_H
#define PL_CLI_OUTPUTS_H

#include "pl_error.h"
#include "pl_lock.h"

typedef struct PlCliPath {
    const char *option;   // how the user named it, for the message: "--out", "--manifest", "the journal of --out"
    const char *path;     // NULL: not given (skipped)
    // Outputs only. NULL: `path` is the file written. Otherwise `path` is a folder and these names (NULL-terminated)
    // are written inside it: each "path/name" is an output. A name may hold a sub-folder ("run1/report.json") and
    // the fnmatch wildcards * ? [ ] (e.g. "probe_*_confusion.png", "f*_s*/report.json"): an input inside the folder
    // whose resolved relative path matches clashes (a wildcard name is compared by path, a plain one also by inode).
    const char *const *names;
    // Outputs only: 1 = `path` is a folder the command may empty and remove (a run's journal): any input inside it
    // clashes too.
    int tree;
} PlCliPath;

// PL_OK when no output names the same file as an input or as another output; otherwise PL_ERR_ARG with the message
// above. Entries whose path is NULL are skipped; inputs' `names` and `tree` are ignored.
PlStatus pl_cli_check_outputs(const PlCliPath *outputs, int n_outputs, const PlCliPath *inputs, int n_inputs);

// The weights file a model card names, resolved against the card's folder (malloc'd; the caller frees), or NULL
// when `card` is not a readable model card (a checkpoint, a missing file): the command that loads it later reports
// why, so nothing is recorded here.
char *pl_cli_card_weights(const char *card);

// Rank 0 of a training command (`finetune`, `pretrain`) before it writes into DIR: lock DIR/<command>.lock (one run
// per folder; PL_ERR_BUSY naming the holder), remove the temporaries dead runs left beside `run_files` (NULL-
// terminated names in DIR), and refuse to replace an earlier run's DIR/checkpoint.safetensors unless `resume`
// continues it or `force` starts over (removing it). The lock is held until pl_lock_release.
PlStatus pl_cli_claim_train_dir(const char *dir, const char *command, const char *const *run_files, int resume,
                                int force, PlLock *lock);

#endif
