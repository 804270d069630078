// Refuse an output that names the same file as an input or another output, however spelt (pl_cli_outputs.h).
#include "pl_cli_outputs.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_fs.h"
#include "pl_log.h"
#include "pl_modelcard.h"
#include "pl_train_ckpt.h"

// Record the clash of output `out` (its file `file`: the path itself or folder/name) with `other`, an input or
// (`other_is_output`) another output. `how` says which kind of clash, for the message.
static PlStatus outputs_refuse(const PlCliPath *out, const char *file, const PlCliPath *other, int other_is_output,
                               const char *how) {
    char *resolved = pl_path_resolve(other->path);
    const char *where = resolved ? resolved : other->path;
    PlStatus st;
    if (other_is_output)
        st = PL_FAIL(PL_ERR_ARG, "%s %s%s%s%s and %s %s are the same file (%s): one output would overwrite the "
                     "other; choose different paths", out->option, out->path, out->names ? " (its file " : "",
                     out->names ? file : "", out->names ? ")" : "", other->option, other->path, where);
    else if (!strcmp(how, "tree"))
        st = PL_FAIL(PL_ERR_ARG, "%s %s is a folder this command empties and removes, but it holds %s %s (%s), "
                     "an input: that would delete the input; choose another output path", out->option, out->path,
                     other->option, other->path, where);
    else if (!strcmp(how, "names"))
        st = PL_FAIL(PL_ERR_ARG, "%s %s would get %s, the same file as %s %s (%s), an input: writing it would "
                     "overwrite that input; choose another folder", out->option, out->path, file, other->option,
                     other->path, where);
    else
        st = PL_FAIL(PL_ERR_ARG, "%s %s is the same file as %s %s (%s), an input: writing it would overwrite that "
                     "input; choose another output path", out->option, file, other->option, other->path, where);
    free(resolved);
    return st;
}

// *rel = the path of `in` relative to folder `dir` when `in` resolves to a file inside it (malloc'd), else NULL.
static PlStatus outputs_relative(const char *in, const char *dir, char **rel) {
    *rel = NULL;
    char *ri = pl_path_resolve(in), *rd = pl_path_resolve(dir);
    PlStatus st = PL_OK;
    if (ri && rd) {
        size_t n = strcmp(rd, "/") ? strlen(rd) : 0;
        if (strncmp(ri, rd, n) == 0 && ri[n] == '/' && ri[n + 1] && !(*rel = pl_strdup(ri + n + 1))) st = PL_ERR_NOMEM;
    }
    free(ri);
    free(rd);
    return st;
}

// Does `other` (an input, or an output file) clash with output `out`? Records the message when it does.
static PlStatus outputs_check_one(const PlCliPath *out, const PlCliPath *other, int other_is_output) {
    if (!out->names) {
        if (pl_same_file(out->path, other->path)) return outputs_refuse(out, out->path, other, other_is_output, "file");
    } else {
        char *rel;
        PL_TRY(outputs_relative(other->path, out->path, &rel));
        for (const char *const *name = out->names; *name; name++) {
            char file[4096];
            int n = snprintf(file, sizeof file, "%s/%s", out->path, *name);
            if (n < 0 || (size_t)n >= sizeof file) {
                free(rel);
                return PL_FAIL(PL_ERR_ARG, "%s %s: the path of %s inside it is too long", out->option, out->path,
                               *name);
            }
            int glob = strpbrk(*name, "*?[") != NULL;
            if ((!glob && pl_same_file(file, other->path)) || (rel && fnmatch(*name, rel, FNM_PATHNAME) == 0)) {
                PlStatus st = outputs_refuse(out, rel && glob ? other->path : file, other, other_is_output, "names");
                free(rel);
                return st;
            }
        }
        free(rel);
    }
    if (out->tree && !other_is_output) {
        char *rel;
        PL_TRY(outputs_relative(other->path, out->path, &rel));
        int inside = rel != NULL;
        free(rel);
        if (inside) return outputs_refuse(out, out->path, other, 0, "tree");
    }
    return PL_OK;
}

PlStatus pl_cli_check_outputs(const PlCliPath *outputs, int n_outputs, const PlCliPath *inputs, int n_inputs) {
    for (int o = 0; o < n_outputs; o++) {
        if (!outputs[o].path) continue;
        for (int i = 0; i < n_inputs; i++)
            if (inputs[i].path) PL_TRY(outputs_check_one(&outputs[o], &inputs[i], 0));
    }
    // outputs against each other: a file output against every earlier output (a folder's names included)
    for (int o = 0; o < n_outputs; o++) {
        if (!outputs[o].path || outputs[o].names) continue;
        for (int p = 0; p < n_outputs; p++) {
            if (p == o || !outputs[p].path || (p > o && !outputs[p].names)) continue;
            PL_TRY(outputs_check_one(&outputs[p], &outputs[o], 1));
        }
    }
    return PL_OK;
}

char *pl_cli_card_weights(const char *card) {
    PlModelCard c;
    if (!card || pl_modelcard_load(card, &c) != PL_OK) {
        pl_error_clear();   // not a readable card: the command that loads it says why
        return NULL;
    }
    char *weights = c.weights ? strdup(c.weights) : NULL;
    pl_modelcard_free(&c);
    return weights;
}

PlStatus pl_cli_claim_train_dir(const char *dir, const char *command, const char *const *run_files, int resume,
                                int force, PlLock *lock) {
    char path[4200], ckpt[4200], what[64];
    snprintf(path, sizeof path, "%s/%s.lock", dir, command);
    snprintf(what, sizeof what, "protloc %s", command);
    PL_TRY(pl_lock_acquire(lock, path, what));
    enum { MAX_NAMES = 32 };
    char finals[MAX_NAMES][4200];
    const char *fin[MAX_NAMES];
    int n = 0;
    for (; run_files[n] && n < MAX_NAMES; n++) {
        snprintf(finals[n], sizeof finals[n], "%s/%s", dir, run_files[n]);
        fin[n] = finals[n];
    }
    pl_lock_remove_stale_temps(fin, n);
    snprintf(ckpt, sizeof ckpt, "%s/%s", dir, PL_TRAIN_CKPT_NAME);
    struct stat sb;
    if (lstat(ckpt, &sb) != 0) return PL_OK;
    if (!S_ISREG(sb.st_mode))
        return PL_FAIL(PL_ERR_ARG, "%s is not a regular file (a %s): remove it or choose another --out", ckpt,
                       S_ISDIR(sb.st_mode)    ? "directory"
                       : S_ISLNK(sb.st_mode)  ? "symbolic link"
                       : S_ISFIFO(sb.st_mode) ? "FIFO"
                                              : "special file");
    if (resume) return PL_OK;
    if (!force) {
        long long s = (long long)pl_train_ckpt_step(ckpt);
        char at[64] = "";
        if (s >= 0) snprintf(at, sizeof at, " (step %lld)", s);
        return PL_FAIL(PL_ERR_ARG, "%s holds the checkpoint of an earlier run%s; --resume continues it, --force starts "
                       "over and replaces it, or choose another --out", ckpt, at);
    }
    if (unlink(ckpt) != 0) return PL_FAIL(PL_ERR_IO, "--force: cannot remove %s: %s", ckpt, strerror(errno));
    pl_log_info("--force: removed %s of an earlier run", ckpt);
    return pl_fsync_parent_dir(ckpt);
}
