// Helpers shared by the evaluation commands (knn, probe): data fractions and report provenance.
#ifndef PL_EVAL_CLI_H
#define PL_EVAL_CLI_H

#include <jansson.h>

// Parse "0.01,0.1,1" into at most max values in (0, 1]; returns the count or -1.
int pl_eval_parse_fractions(const char *s, double *out, int max);
// Add "created" (UTC), "host" and "input_sha256" (of `input`, when readable) to `config`.
void pl_eval_add_provenance(json_t *config, const char *input);

#endif
