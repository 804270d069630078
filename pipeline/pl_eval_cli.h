// Helpers shared by the evaluation commands (knn, probe): data fractions and report provenance.
#ifndef PL_EVAL_CLI_H
#define PL_EVAL_CLI_H

#include <jansson.h>

#include "pl_error.h"

// Parse "0.01,0.1,1" into at most max values in (0, 1]; returns the count or -1.
int pl_eval_parse_fractions(const char *s, double *out, int max);
// Add "created" (UTC), "host" and "input_sha256" (of `input`, when readable) to `config`.
void pl_eval_add_provenance(json_t *config, const char *input);
// Outputs never overwrite inputs (pl_cli_check_outputs) for `command` "knn" or "probe": --json, --csv,
// --neighbours, --predictions and the files --report-dir gets, against --store or --features and --meta, and
// against each other. NULL = not given. PL_ERR_ARG names both options and paths.
PlStatus pl_eval_check_outputs(const char *command, const char *store, const char *features, const char *meta,
                               const char *json, const char *csv, const char *report_dir, const char *neighbours,
                               const char *predictions);

#endif
